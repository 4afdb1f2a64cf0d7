import { test, expect } from '@playwright/test';
import { signIn, watchForErrors } from './helpers';

test('an admin creates an account, disables it, resets its password and enables it again', async ({ page, browser }, testInfo) => {
  const errors = watchForErrors(page);
  const username = `u-${testInfo.project.name}-${Date.now()}`;

  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('heading', { name: 'Users', level: 1 })).toBeVisible();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel(/^Password/).fill('first-password');
  await page.getByRole('button', { name: 'Create account' }).click();
  const row = page.getByRole('row').filter({ hasText: username });
  await expect(row).toContainText('active');
  await expect(row).toContainText('user');

  await page.getByRole('button', { name: `Disable ${username}` }).click();
  await expect(row).toContainText('disabled');

  if (testInfo.project.name !== 'hydrate') {
    // The new password is shown once by the page script; without it the
    // rest of the journey is the same as above.
    await page.getByRole('button', { name: `Enable ${username}` }).click();
    await expect(row).toContainText('active');
    expect(errors).toEqual([]);
    return;
  }
  await page.getByRole('button', { name: `Reset the password of ${username}` }).click();
  const shown = page.getByLabel('New password');
  await expect(shown).toBeVisible();
  const password = await shown.inputValue();
  expect(password.length).toBeGreaterThanOrEqual(16);

  // Disabled, the account cannot sign in even with its new password, and
  // is answered as a wrong password is (a right one shows nothing more).
  const other = await browser.newContext();
  const theirs = await other.newPage();
  await theirs.goto('/login');
  await theirs.getByLabel('Username').fill(username);
  await theirs.getByLabel('Password').fill(password);
  await theirs.getByRole('button', { name: 'Sign in' }).click();
  await expect(theirs.getByRole('alert')).toContainText('invalid username or password');

  await page.getByRole('button', { name: `Enable ${username}` }).click();
  await expect(row).toContainText('active');
  await theirs.goto('/login');
  await theirs.getByLabel('Username').fill(username);
  await theirs.getByLabel('Password').fill(password);
  await theirs.getByRole('button', { name: 'Sign in' }).click();
  await expect(theirs.getByRole('button', { name: 'Sign out' })).toBeVisible();
  // A plain user has no Users link and is refused the page.
  await expect(theirs.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' })).toHaveCount(0);
  await theirs.goto('/admin/users');
  await expect(theirs.getByRole('alert')).toContainText('only administrators');
  await other.close();
  expect(errors).toEqual([]);
});
