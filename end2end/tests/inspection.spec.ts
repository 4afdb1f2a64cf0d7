import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hydrated, signIn, watchForErrors } from './helpers';

// A disk image made by qemu-img (scripts/setup.sh installs it).
function qemuImage(options: string[]): Buffer {
  const file = join(mkdtempSync(join(tmpdir(), 'depot-e2e-disk-')), 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...options, file, '1M']);
  return readFileSync(file);
}

async function upload(page: import('@playwright/test').Page, name: string, buffer: Buffer, withScript: boolean) {
  await page.goto('/upload');
  if (withScript) await hydrated(page);
  await page.getByLabel(/^Files/).setInputFiles({ name, mimeType: 'application/octet-stream', buffer });
  await page.getByRole('button', { name: 'Upload' }).click();
}

test('an uploaded disk shows what inspection found, and an unsafe one is refused with the reason', async ({ page }, testInfo) => {
  const errors = watchForErrors(page);
  const withScript = testInfo.project.name === 'hydrate';
  const stamp = `${testInfo.project.name}-${Date.now()}`;
  const name = `e2e-${stamp}.qcow2`;

  await signIn(page);
  await upload(page, name, qemuImage([]), withScript);
  if (withScript) {
    await page.getByRole('link', { name: 'Done: view image' }).click();
  }
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Inspection' })).toBeVisible();
  const facts = page.locator('dl.inspection');
  await expect(facts).toContainText('qcow2 v3');
  await expect(facts).toContainText('1048576 bytes');
  expect(errors).toEqual([]);

  // A qcow2 that names a backing file is refused, and the page says why.
  await upload(page, `e2e-${stamp}-backed.qcow2`, qemuImage(['-b', '/etc/hostname', '-F', 'raw']), withScript);
  if (withScript) {
    await expect(page.getByRole('alert')).toContainText('backing file');
  } else {
    // Without script the browser shows the server's answer itself.
    await expect(page.getByText(/backing file/)).toBeVisible();
  }
});
