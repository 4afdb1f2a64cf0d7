import { test, expect } from '@playwright/test';
import { signIn, watchForErrors } from './helpers';

test('an admin creates a tenant, gives it an image type, edits it and deletes both', async ({ page }, testInfo) => {
  const errors = watchForErrors(page);
  const tenant = `lab-${testInfo.project.name}-${Date.now()}`;
  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tenants' }).click();
  await page.getByLabel('New tenant').fill(tenant);
  await page.getByRole('button', { name: 'Create tenant' }).click();
  // A member added, then taken out again.
  await page.getByLabel(`Member to add to ${tenant}`).fill('admin');
  await page.getByRole('row').filter({ hasText: tenant }).getByRole('button', { name: 'Add member' }).click();
  await page.getByRole('button', { name: `Remove admin from ${tenant}` }).click();
  await expect(page.getByRole('button', { name: `Remove admin from ${tenant}` })).toHaveCount(0);
  await page.getByRole('link', { name: tenant }).click();
  await expect(page.getByRole('heading', { name: `Image types of ${tenant}` })).toBeVisible();

  await page.getByLabel('Name', { exact: true }).fill('small');
  await page.getByLabel('Description', { exact: true }).fill('One vCPU');
  await page.getByLabel('Provider map (JSON)').fill('{"openstack": {"flavor": "m1.small"}}');
  await page.getByRole('button', { name: 'Create image type' }).click();
  const row = page.locator('table.image-types tbody tr').filter({ hasText: 'small' });
  await expect(row).toContainText('m1.small');

  // A provider map that is not JSON is refused with the reason.
  const openEditor = async () => {
    const details = page.locator('table.image-types tbody tr').filter({ hasText: 'small' }).locator('details');
    if (!(await details.evaluate((element) => (element as HTMLDetailsElement).open))) {
      await details.locator('summary').click();
    }
  };
  await openEditor();
  await page.getByLabel('Provider map of small (JSON)').fill('{not json');
  await page.getByRole('button', { name: 'Save small' }).click();
  await expect(page.getByRole('alert')).toContainText('not JSON');
  await openEditor();
  await page.getByLabel('Provider map of small (JSON)').fill('{"aws": {"flavor": "t3.micro"}}');
  await page.getByRole('button', { name: 'Save small' }).click();
  await expect(page.locator('table.image-types tbody tr').filter({ hasText: 'small' })).toContainText('t3.micro');

  await page.getByRole('button', { name: 'Delete image type small' }).click();
  await expect(page.locator('table.image-types tbody tr')).toHaveCount(0);
  await page.getByLabel(`Yes, delete ${tenant}`).check();
  await page.getByRole('button', { name: `Delete tenant ${tenant}` }).click();
  await expect(page.getByRole('link', { name: tenant })).toHaveCount(0);
  // The 400 of the refused save is logged by the browser itself.
  expect(errors.filter((e) => !e.includes('400'))).toEqual([]);
});
