import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { signIn, uploadAsAdmin, watchForErrors } from './helpers';

test('edit an image from its page; a stale second editor is refused, not silently overwritten', async ({ page, context, request }, testInfo) => {
  const errors = watchForErrors(page);
  const stamp = `edit-${testInfo.project.name}-${Date.now()}`;
  const id = await uploadAsAdmin(request, `${stamp}.img`, randomBytes(2048));

  await signIn(page);
  // A second tab opened on the same version before the first one saves.
  const stale = await context.newPage();
  await stale.goto(`/image/${id}`);
  await expect(stale.getByRole('heading', { name: `${stamp}.img` })).toBeVisible();

  await page.goto(`/image/${id}`);
  await page.getByLabel('Name').fill(`${stamp}-renamed.img`);
  await page.getByLabel('Label').fill('Golden image');
  await page.getByLabel('Description').fill('Patched on Monday.\nBoots in 5 s.');
  await page.getByLabel('Visibility').selectOption('public');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('heading', { name: `${stamp}-renamed.img` })).toBeVisible();
  await expect(page.locator('dd.label')).toHaveText('Golden image');
  await expect(page.locator('p.description')).toContainText('Boots in 5 s.');
  await expect(page.locator('dl.facts').first()).toContainText('public');

  await stale.getByLabel('Name').fill(`${stamp}-clobbered.img`);
  await stale.getByRole('button', { name: 'Save changes' }).click();
  await expect(stale.getByRole('alert')).toContainText('changed by someone else');
  await page.reload();
  await expect(page.getByRole('heading', { name: `${stamp}-renamed.img` })).toBeVisible();
  // The 409 of the refused save is logged by the browser itself; nothing else may be.
  expect(errors.filter((e) => !e.includes('409'))).toEqual([]);
});
