import { test, expect } from '@playwright/test';
import { adminPassword } from '../playwright.config';
import { signIn, watchForErrors } from './helpers';

const basic = 'Basic ' + Buffer.from(`admin:${adminPassword}`).toString('base64');

test('create a token, copy it, use it from a script, then revoke it', async ({ page, context, request }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'the new secret is shown by the page script');
  const errors = watchForErrors(page);
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page);
  await page.getByRole('link', { name: 'Tokens' }).click();
  await expect(page.getByRole('heading', { name: 'Tokens' })).toBeVisible();
  await page.getByRole('button', { name: 'Create a token' }).click();

  const secret = await page.getByRole('textbox', { name: 'New token' }).inputValue();
  expect(secret.split('.')).toHaveLength(3);
  await page.getByRole('button', { name: 'Copy' }).click();
  await expect(page.getByText('Copied')).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);

  // A script (no cookies) acts with it.
  const listed = await request.get('/api/tokens', { headers: { Authorization: `Bearer ${secret}` } });
  expect(listed.status()).toBe(200);
  const id = (await listed.json()).tokens.map((token: { id: number }) => token.id).sort((a: number, b: number) => b - a)[0];
  await expect(page.getByRole('button', { name: `Revoke token ${id}` })).toBeVisible();

  await page.getByRole('button', { name: `Revoke token ${id}` }).click();
  await expect(page.getByRole('button', { name: `Revoke token ${id}` })).toHaveCount(0);
  const after = await request.get('/api/tokens', { headers: { Authorization: `Bearer ${secret}` } });
  expect(after.status()).toBe(401);
  expect(errors).toEqual([]);
});

test('revoke a token made by a script, from the page', async ({ page, request }) => {
  const errors = watchForErrors(page);
  const made = await request.post('/api/tokens', { headers: { Authorization: basic } });
  expect(made.status()).toBe(201);
  const { id, token } = await made.json();
  await signIn(page);
  await page.goto('/tokens');
  const revoke = page.getByRole('button', { name: `Revoke token ${id}` });
  await expect(revoke).toBeVisible();
  await expect(page.locator(`#token-${id}`)).toContainText('never');
  await revoke.click();
  await expect(page.getByRole('button', { name: `Revoke token ${id}` })).toHaveCount(0);
  const refused = await request.get('/api/tokens', { headers: { Authorization: `Bearer ${token}` } });
  expect(refused.status()).toBe(401);
  expect(errors).toEqual([]);
});

test('make a Coopr API key for a tenant, use it from a script, then revoke it', async ({ page, request }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'the new secret is shown by the page script');
  const errors = watchForErrors(page);
  const tenant = `t-${Date.now()}`;
  await signIn(page);
  await page.goto('/tokens');
  await page.getByLabel('Tenant').fill(tenant);
  await page.getByRole('button', { name: 'Create an API key' }).click();
  const key = await page.getByRole('textbox', { name: 'New API key' }).inputValue();
  expect(key).toMatch(/^cpr_/);
  const row = page.getByRole('row').filter({ hasText: tenant });
  await expect(row).toBeVisible();

  const coopr = { 'Coopr-UserID': 'admin', 'Coopr-TenantID': tenant, 'Coopr-ApiKey': key };
  expect((await request.get('/v2/imagetypes', { headers: coopr })).status()).toBe(200);
  await row.getByRole('button', { name: /^Revoke API key/ }).click();
  await expect(page.getByRole('row').filter({ hasText: tenant })).toHaveCount(0);
  expect((await request.get('/v2/imagetypes', { headers: coopr })).status()).toBe(401);
  // The 401 above is the script's, not the page's.
  expect(errors).toEqual([]);
});
