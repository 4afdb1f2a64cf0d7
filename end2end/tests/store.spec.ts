import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { signIn, watchForErrors } from './helpers';

// Bytes an ISO inspector takes for an ISO 9660 image.
function isoBytes(): Buffer {
  const bytes = randomBytes(40_000);
  bytes.write('CD001', 0x8001, 'latin1');
  return bytes;
}

test('browse the personal store, add a file to a new folder, sync it into an image, delete it', async ({ page }, testInfo) => {
  const errors = watchForErrors(page);
  const withScript = testInfo.project.name === 'hydrate';
  const folder = `cds-${testInfo.project.name}-${Date.now()}`;
  const file = `${folder}.iso`;

  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Store' }).click();
  await expect(page.getByRole('heading', { name: 'Personal store' })).toBeVisible();
  await page.getByLabel('New folder').fill(folder);
  await page.getByRole('button', { name: 'Create folder' }).click();
  await page.getByRole('link', { name: `${folder}/` }).click();
  await expect(page.getByRole('navigation', { name: 'Folder' })).toContainText(folder);
  await expect(page.getByText('This folder is empty.')).toBeVisible();

  await page.getByLabel('Files to add here').setInputFiles({ name: file, mimeType: 'application/octet-stream', buffer: isoBytes() });
  await page.getByRole('button', { name: 'Add to store' }).click();
  const row = page.getByRole('row').filter({ hasText: file });
  await expect(row).toContainText('39.1 KiB');

  await page.getByRole('button', { name: 'Sync ISOs' }).click();
  const sync = page.locator('table.syncs tbody tr').first();
  if (withScript) {
    // The page asks again by itself while the sync runs.
    await expect(sync).toContainText('PROCESSED', { timeout: 20_000 });
  } else {
    await expect(async () => {
      await page.getByRole('link', { name: 'Refresh' }).click();
      await expect(sync).toContainText('PROCESSED', { timeout: 1_000 });
    }).toPass({ timeout: 20_000 });
  }
  await page.goto(`/?mine=true&q=${folder}`);
  await expect(page.getByRole('link', { name: file })).toBeVisible();

  await page.goto(`/personal-store?path=${folder}`);
  await page.getByRole('button', { name: `Delete ${file}` }).click();
  await expect(page.getByText('This folder is empty.')).toBeVisible();
  expect(errors).toEqual([]);
});
