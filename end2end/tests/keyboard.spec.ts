import { test, expect, type Locator, type Page } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { uploadAsAdmin, watchForErrors } from './helpers';
import { adminPassword } from '../playwright.config';

/// Presses Tab until `target` has the focus, as a person would.
async function tabTo(page: Page, target: Locator) {
  for (let i = 0; i < 80; i++) {
    if (await target.evaluate((element) => element === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  await expect(target).toBeFocused();
}

// A person without a mouse: sign in, search the catalog, sort it and open an
// image, with the Tab and Enter keys only.
test('sign in, search, sort and open an image with the keyboard alone', async ({ page, request }, testInfo) => {
  const errors = watchForErrors(page);
  const stamp = `kbd-${testInfo.project.name}-${Date.now()}`;
  await uploadAsAdmin(request, `${stamp}-b.img`, randomBytes(2000));
  await uploadAsAdmin(request, `${stamp}-a.img`, randomBytes(1000));

  await page.goto('/login');
  await page.keyboard.press('Tab');
  // Tab through the top bar until the username field has the focus.
  await tabTo(page, page.getByLabel('Username'));
  await page.keyboard.type('admin');
  await page.keyboard.press('Tab');
  await page.keyboard.type(adminPassword);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();

  await page.goto('/');
  const search = page.getByRole('searchbox', { name: 'Search' });
  await tabTo(page, search);
  await page.keyboard.type(stamp);
  await page.keyboard.press('Enter');
  await expect(page.getByText('2 images')).toBeVisible();

  // On to the Name heading, and sort by it.
  const nameHeading = page.getByRole('columnheader', { name: 'Name' }).getByRole('link');
  await tabTo(page, nameHeading);
  await expect(nameHeading).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('columnheader', { name: 'Name' })).toHaveAttribute('aria-sort', 'ascending');
  const first = page.getByRole('link', { name: `${stamp}-a.img` });
  await tabTo(page, first);
  await expect(first).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: `${stamp}-a.img` })).toBeVisible();
  expect(errors).toEqual([]);
});
