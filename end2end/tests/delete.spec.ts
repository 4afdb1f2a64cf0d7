import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { adminPassword } from '../playwright.config';
import { signIn, watchForErrors } from './helpers';

test('delete an image from its page, after ticking the confirmation', async ({ page, request }, testInfo) => {
  const errors = watchForErrors(page);
  const name = `e2e-delete-${testInfo.project.name}-${Date.now()}.img`;
  const made = await request.post('/api/upload', {
    headers: { Authorization: 'Basic ' + Buffer.from(`admin:${adminPassword}`).toString('base64') },
    multipart: { file: { name, mimeType: 'application/octet-stream', buffer: randomBytes(4096) } },
  });
  expect(made.status()).toBe(201);
  const id = (await made.json()).images[0].id;

  await signIn(page);
  await page.goto(`/image/${id}`);
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await page.getByLabel('Yes, delete this image and its file').check();
  await page.getByRole('button', { name: 'Delete image' }).click();
  await expect(page.getByRole('heading', { name: 'My images' })).toBeVisible();
  await expect(page.getByRole('link', { name })).toHaveCount(0);
  await page.goto(`/image/${id}`);
  await expect(page.getByText(`image ${id} not found`)).toBeVisible();
  expect(errors.filter((error) => !error.includes('404'))).toEqual([]);
});
