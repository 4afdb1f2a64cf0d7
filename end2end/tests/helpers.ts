import { expect, type APIRequestContext, type Page } from '@playwright/test';
import { adminPassword } from '../playwright.config';

// Every browser test fails on a console error or an uncaught exception:
// a hydration mismatch shows up there first.
export function watchForErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return errors;
}

/// Waits until the page's script has taken over, in the project with
/// JavaScript: a click before then is the plain form's, not the page's.
export async function hydrated(page: Page) {
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
}

export async function signIn(page: Page) {
  await page.goto('/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
}

/// Basic credentials for the API, as scripts send them.
export function basicAuth(user: string, password: string): Record<string, string> {
  return { Authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64') };
}

/// Uploads a file through the REST API as the admin; answers the new image's id.
export async function uploadAsAdmin(request: APIRequestContext, name: string, buffer: Buffer): Promise<number> {
  const made = await request.post('/api/upload', {
    headers: basicAuth('admin', adminPassword),
    multipart: { file: { name, mimeType: 'application/octet-stream', buffer } },
  });
  expect(made.status()).toBe(201);
  return (await made.json()).images[0].id;
}

/// Whether the page is wider than the window, so that a phone would scroll sideways.
export async function scrollsSideways(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
}
