import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The server under test: the binary and site folder built by `cargo leptos build`
// (the server in the `bench` profile, into the release build's folder),
// on a fresh data folder (SQLite by default; DEPOT_DATABASE_URL switches it).
const port = process.env.DEPOT_E2E_PORT ?? '3917';
const bin = process.env.DEPOT_BIN ?? '../target/release/depot';
const siteRoot = process.env.DEPOT_SITE_ROOT ?? '../target/site';
const dataDir = process.env.DEPOT_E2E_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'depot-e2e-'));
export const adminPassword = process.env.DEPOT_ADMIN_PASSWORD ?? 'e2e-admin-password';
// The folder file:// environments may deploy into. Set in the environment so
// that the test workers, which load this file again, see the same folder.
if (!process.env.DEPOT_E2E_EXPORT_ROOT) {
  process.env.DEPOT_E2E_EXPORT_ROOT = mkdtempSync(join(tmpdir(), 'depot-e2e-export-'));
}
export const exportRoot: string = process.env.DEPOT_E2E_EXPORT_ROOT;

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  // The runs share two cores with the Rust tests (scripts/test.sh), so a
  // page may take a few seconds more to hydrate than on a quiet machine: an
  // assertion waits up to 15 s for what it expects (5 s by default). One
  // that passes returns as soon as it holds, so this costs passing tests
  // nothing.
  expect: { timeout: 15_000 },
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    launchOptions: {
      // Debian's chromium-headless-shell (scripts/setup.sh), the build of
      // Chromium that Playwright itself runs headless: half the CPU of the
      // full browser in headless mode, which the test command shares.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/lib/chromium/chromium-headless-shell',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  projects: [
    { name: 'hydrate', use: { javaScriptEnabled: true } },
    { name: 'ssr', use: { javaScriptEnabled: false } },
  ],
  webServer: {
    command: `${bin} serve --bind 127.0.0.1:${port} --data-dir ${dataDir} --site-root ${siteRoot}`,
    url: `http://127.0.0.1:${port}/healthz`,
    env: { DEPOT_ADMIN_PASSWORD: adminPassword, DEPOT_EXPORT_ROOT: exportRoot },
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
  },
});
