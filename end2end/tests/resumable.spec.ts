import { test, expect, type Page, type Route } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { hydrated, signIn, watchForErrors } from './helpers';

// Large files go over tus in 32 MiB requests; 40 MiB is two of them.
const CHUNK = 32 * 1024 * 1024;
const SIZE = CHUNK + 8 * 1024 * 1024;

test.skip(({ javaScriptEnabled }) => !javaScriptEnabled, 'resumable uploads are the page script');

/// A file on disk (so that picking it again gives the same file, to the
/// modification time the browser fingerprints), and its SHA-256.
async function largeFile(path: string): Promise<string> {
  const bytes = randomBytes(SIZE);
  await writeFile(path, bytes);
  return createHash('sha256').update(bytes).digest('hex');
}

/// Lets the first chunk through and holds every later one: the upload
/// stands still with the first chunk on the server.
async function holdAfterFirstChunk(page: Page): Promise<void> {
  let chunks = 0;
  await page.route('**/api/uploads/*', async (route: Route) => {
    if (route.request().method() === 'PATCH' && ++chunks > 1) return;
    await route.fallback();
  });
}

async function pick(page: Page, path: string) {
  await page.getByLabel(/^Files/).setInputFiles(path);
  await page.getByRole('button', { name: 'Upload' }).click();
}

/// The browser's own log of requests it gave up on is expected here.
function unexpected(errors: string[]): string[] {
  return errors.filter((error) => !/net::ERR_(ABORTED|CONNECTION_RESET|FAILED)/.test(error));
}

test('a large upload goes on after the page is reloaded and the file picked again', async ({ page }, testInfo) => {
  const errors = watchForErrors(page);
  const name = `resumed-${Date.now()}.img`;
  const path = testInfo.outputPath(name);
  const sha256 = await largeFile(path);

  await signIn(page);
  await page.goto('/upload');
  await hydrated(page);
  await holdAfterFirstChunk(page);
  const firstChunk = page.waitForResponse(
    (response) => response.request().method() === 'PATCH' && response.status() === 204,
  );
  await pick(page, path);
  await firstChunk;

  // The page goes away mid-upload; the same file, picked again, goes on.
  // The held chunk is still held as the page goes: unrouting first would let
  // it go, and under load it could complete the upload (and the old page see
  // it done, and forget it) before the reload, leaving nothing to resume.
  await page.reload();
  await hydrated(page);
  await page.unroute('**/api/uploads/*');
  // The page asks the server where the upload stands and sends from there.
  const offsets: number[] = [];
  const kept: number[] = [];
  page.on('request', (request) => {
    if (request.method() === 'PATCH') offsets.push(Number(request.headers()['upload-offset']));
  });
  page.on('response', (response) => {
    if (response.request().method() === 'HEAD') kept.push(Number(response.headers()['upload-offset']));
  });
  await pick(page, path);
  await expect(page.getByText('Resumed: the bytes sent before were kept')).toBeVisible({ timeout: 30_000 });
  await expect(page.getByRole('link', { name: 'Done: view image' })).toBeVisible({ timeout: 30_000 });
  // The first chunk was kept, and nothing of the held one reached the
  // server. Only what the server lacks is sent, from where it stands.
  expect(kept).toEqual([CHUNK]);
  expect(offsets).toEqual([CHUNK]);

  await page.getByRole('link', { name: 'Done: view image' }).click();
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await expect(page.locator('code.sha256')).toHaveText(sha256);
  expect(unexpected(errors)).toEqual([]);
});

test('a large upload pauses, resumes, and gets over a dropped connection', async ({ page }, testInfo) => {
  const errors = watchForErrors(page);
  const name = `paused-${Date.now()}.img`;
  const path = testInfo.outputPath(name);
  const sha256 = await largeFile(path);

  await signIn(page);
  await page.goto('/upload');
  await hydrated(page);
  // The first try of the first chunk is cut off and the page tries again;
  // the second chunk is held until the upload is paused.
  let patches = 0;
  await page.route('**/api/uploads/*', async (route: Route) => {
    if (route.request().method() !== 'PATCH') return route.fallback();
    patches += 1;
    if (patches === 1) return route.abort('connectionreset');
    if (patches === 2) return route.fallback();
  });
  const firstChunk = page.waitForResponse(
    (response) => response.request().method() === 'PATCH' && response.status() === 204,
  );
  await pick(page, path);
  await firstChunk;
  expect(patches).toBeGreaterThanOrEqual(2);

  await page.getByRole('button', { name: `Pause the upload of ${name}` }).click();
  await expect(page.getByText('Paused', { exact: true })).toBeVisible();
  await page.unroute('**/api/uploads/*');
  await page.getByRole('button', { name: `Resume the upload of ${name}` }).click();
  await expect(page.getByRole('link', { name: 'Done: view image' })).toBeVisible({ timeout: 30_000 });
  await expect(page.getByRole('progressbar', { name: `Upload of ${name}` })).toHaveAttribute('value', String(SIZE));

  await page.getByRole('link', { name: 'Done: view image' }).click();
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await expect(page.locator('code.sha256')).toHaveText(sha256);
  expect(unexpected(errors)).toEqual([]);
});
