import { test, expect } from '@playwright/test';
import { signIn, watchForErrors } from './helpers';

// The interactive API docs: Swagger UI served by Depot itself, where a
// signed-in user tries a request with their session, no token pasted.
test('read the API docs and try a request with the session', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'Swagger UI is a script');
  const errors = watchForErrors(page);
  const requested: string[] = [];
  page.on('request', (request) => requested.push(request.url()));
  await signIn(page);
  await page.getByRole('link', { name: 'API' }).click();
  await expect(page).toHaveURL(/\/api\/docs$/);
  await expect(page.getByRole('heading', { name: /^Depot/ })).toBeVisible();

  const list = page.getByRole('button', { name: /^GET \/api\/tokens The caller/ });
  await list.click();
  await page.getByRole('button', { name: 'Try it out' }).click();
  await page.getByRole('button', { name: 'Execute' }).click();
  const answer = page.locator('.live-responses-table tbody .response-col_status').first();
  await expect(answer).toHaveText('200');
  await expect(page.locator('.live-responses-table')).toContainText('"tokens"');
  // The dialects' documents are a pick away.
  await page.getByRole('combobox', { name: 'API document' }).selectOption({ label: 'Coopr image types' });
  await expect(page.getByRole('heading', { name: /^Depot: Coopr image types/ })).toBeVisible();
  await expect(page.getByRole('button', { name: /^PUT \/v2\/imagetypes\/\{name\}/ })).toBeVisible();
  await page.getByRole('combobox', { name: 'API document' }).selectOption({ label: 'ViCE image registry' });
  await expect(page.getByRole('heading', { name: /^Depot: ViCE image registry/ })).toBeVisible();
  await expect(page.getByRole('button', { name: /^GET \/v1\/images List available images/ })).toBeVisible();

  // Nothing came from another host: no CDN, no validator badge.
  const origin = new URL(page.url()).origin;
  expect(requested.filter((url) => url.startsWith('http') && new URL(url).origin !== origin)).toEqual([]);
  expect(errors).toEqual([]);
});
