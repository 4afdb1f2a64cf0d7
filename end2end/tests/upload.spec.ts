import { test, expect } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hydrated, signIn, watchForErrors } from './helpers';

test('sign in, upload a file, find it in the catalog and download the same bytes', async ({ page }, testInfo) => {
  const errors = watchForErrors(page);
  const withScript = testInfo.project.name === 'hydrate';
  const name = `e2e-${testInfo.project.name}-${Date.now()}.img`;
  const bytes = randomBytes(3 * 1024 * 1024 + 123);
  const sha256 = createHash('sha256').update(bytes).digest('hex');

  await signIn(page);
  await page.goto('/upload');
  if (withScript) await hydrated(page);
  await page.getByLabel('Label').fill('uploaded by the browser test');
  await page.getByLabel(/^Files/).setInputFiles({ name, mimeType: 'application/octet-stream', buffer: bytes });
  await page.getByRole('button', { name: 'Upload' }).click();

  if (withScript) {
    // The progress bar counts the bytes the browser actually sent: the file
    // and the multipart framing around it, all of them by the end.
    const progress = page.getByRole('progressbar', { name: `Upload of ${name}` });
    await expect(progress).toBeVisible();
    await expect(page.getByRole('link', { name: 'Done: view image' })).toBeVisible();
    const max = Number(await progress.getAttribute('max'));
    expect(max).toBeGreaterThan(bytes.length);
    expect(max).toBeLessThan(bytes.length + 1024);
    await expect(progress).toHaveAttribute('value', String(max));
    await expect(page.getByText(/3\.0 MiB of 3\.0 MiB/)).toBeVisible();
    await page.getByRole('link', { name: 'Done: view image' }).click();
  }
  // Without script the form posts itself and the server redirects to the image.
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await expect(page.locator('code.sha256')).toHaveText(sha256);
  await expect(page.locator('dd.size')).toContainText(`${bytes.length} bytes`);

  await page.goto('/?mine=true');
  await expect(page.getByRole('link', { name })).toBeVisible();
  await page.getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { name })).toBeVisible();

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe(name);
  const downloaded = await readFile(await download.path());
  expect(createHash('sha256').update(downloaded).digest('hex')).toBe(sha256);

  expect(errors).toEqual([]);
});

test('a wrong password is refused with a message in the page', async ({ page }) => {
  const errors = watchForErrors(page);
  await page.goto('/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('invalid username or password');
  // The 401 of the refused sign-in is logged by the browser itself; nothing else may be.
  expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
});

test('several files at once: a row each, a refused one says why in place, a slow one can be cancelled', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'progress, time left and cancel are the page script');
  const errors = watchForErrors(page);
  const stamp = `${Date.now()}`;
  const good = `good-${stamp}.img`;
  const refused = `evil\u202Egpj-${stamp}.img`;
  const slow = `slow-${stamp}.img`;
  await signIn(page);
  await page.goto('/upload');
  await hydrated(page);
  // A slow uplink, so that the big file is still on its way when cancelled.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 512 * 1024,
  });
  await page.getByLabel(/^Files/).setInputFiles([
    { name: good, mimeType: 'application/octet-stream', buffer: randomBytes(64 * 1024) },
    { name: refused, mimeType: 'application/octet-stream', buffer: randomBytes(4096) },
    { name: slow, mimeType: 'application/octet-stream', buffer: randomBytes(16 * 1024 * 1024) },
  ]);
  await page.getByRole('button', { name: 'Upload' }).click();

  const rows = page.locator('li.upload');
  await expect(rows).toHaveCount(3);
  await expect(rows.filter({ hasText: good }).getByRole('link', { name: 'Done: view image' })).toBeVisible();
  await expect(rows.filter({ hasText: refused }).getByRole('alert')).toContainText('bidirectional');
  const slowRow = rows.filter({ hasText: slow });
  await expect(slowRow).toContainText(/s left/);
  await slowRow.getByRole('button', { name: `Cancel the upload of ${slow}` }).click();
  await expect(slowRow).toContainText('Cancelled');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });

  // Nothing of the cancelled file was kept.
  await page.goto(`/?mine=true&q=${stamp}`);
  await expect(page.getByRole('link', { name: good })).toBeVisible();
  await expect(page.getByRole('link', { name: slow })).toHaveCount(0);
  // The refusal's 400 is logged by the browser itself; nothing else may be.
  expect(errors.filter((e) => !e.includes('400'))).toEqual([]);
});

test('files dropped on the drop zone are uploaded at once, each in its own row', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'dropping files is the page script');
  const errors = watchForErrors(page);
  const stamp = `${Date.now()}`;
  await signIn(page);
  await page.goto('/upload');
  await hydrated(page);
  // What the browser hands the page when a person drops two files on it.
  const dropped = await page.evaluateHandle((stamp) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(3000).fill(7)], `dropped-a-${stamp}.img`));
    data.items.add(new File([new Uint8Array(5000).fill(9)], `dropped-b-${stamp}.img`));
    return data;
  }, stamp);
  const zone = page.locator('.dropzone');
  // Until the page script has loaded, nothing listens: ask again until it does.
  await expect(async () => {
    await zone.dispatchEvent('dragover', { dataTransfer: dropped });
    await expect(zone).toHaveClass(/dragging/, { timeout: 500 });
  }).toPass({ timeout: 20_000 });
  await zone.dispatchEvent('drop', { dataTransfer: dropped });
  const rows = page.locator('li.upload');
  await expect(rows).toHaveCount(2);
  await expect(rows.getByRole('link', { name: 'Done: view image' })).toHaveCount(2);
  await page.goto(`/?mine=true&q=dropped-`);
  await expect(page.getByRole('link', { name: `dropped-a-${stamp}.img` })).toBeVisible();
  await expect(page.getByRole('link', { name: `dropped-b-${stamp}.img` })).toBeVisible();
  expect(errors).toEqual([]);
});
