import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { hydrated, scrollsSideways, signIn, uploadAsAdmin, watchForErrors } from './helpers';

test('search, filter, sort by a heading both ways and page through the catalog', async ({ page, request }, testInfo) => {
  const errors = watchForErrors(page);
  const withScript = testInfo.project.name === 'hydrate';
  const stamp = `cat-${testInfo.project.name}-${Date.now()}`;
  const names: string[] = [];
  for (let i = 0; i < 12; i++) {
    const name = `${stamp}-${String(i).padStart(2, '0')}.img`;
    names.push(name);
    await uploadAsAdmin(request, name, randomBytes(1000 + i * 100));
  }

  await signIn(page);
  await page.goto('/');
  if (withScript) await hydrated(page);
  // A mark that a full page load would wipe out.
  await page.evaluate(() => ((window as any).depotNoReload = true));
  const filters = page.getByRole('form', { name: 'Search and filters' });
  await filters.getByLabel('Search').fill(stamp);
  await filters.getByLabel('Per page').selectOption('10');
  await filters.getByRole('button', { name: 'Search' }).click();
  await expect(page).toHaveURL(/per_page=10/);
  await expect(page.getByText('12 images')).toBeVisible();
  const rows = page.locator('table.images tbody tr');
  await expect(rows).toHaveCount(10);

  // A click on a heading sorts by that column; a second click turns the order round.
  const nameHeading = page.getByRole('columnheader', { name: 'Name' });
  await nameHeading.getByRole('link').click();
  await expect(nameHeading).toHaveAttribute('aria-sort', 'ascending');
  await expect(rows.first()).toContainText(names[0]);
  await nameHeading.getByRole('link').click();
  await expect(nameHeading).toHaveAttribute('aria-sort', 'descending');
  await expect(rows.first()).toContainText(names[11]);
  await expect(page).toHaveURL(/sort=name&dir=desc/);

  // Numbered pages keep the search, the order and the page size.
  await page.getByRole('link', { name: 'Page 2' }).click();
  await expect(rows).toHaveCount(2);
  await expect(rows.first()).toContainText(names[1]);
  await expect(page.getByRole('navigation', { name: 'Pages' }).locator('[aria-current="page"]')).toHaveText('2');
  await page.getByRole('link', { name: 'Previous page' }).click();
  await expect(rows).toHaveCount(10);

  // Filters narrow it; the form shows what the URL says.
  await filters.getByLabel('Owner').fill('somebody-else');
  await filters.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByText('No images match.')).toBeVisible();
  await filters.getByLabel('Owner').fill('admin');
  await filters.getByLabel('Kind').selectOption('disk');
  await filters.getByLabel('Visibility').selectOption('private');
  await filters.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByText('12 images')).toBeVisible();
  await expect(filters.getByLabel('Search')).toHaveValue(stamp);
  await expect(filters.getByLabel('Kind')).toHaveValue('disk');

  if (withScript) {
    // Everything above happened in one page load.
    expect(await page.evaluate(() => (window as any).depotNoReload)).toBe(true);
  }

  // At a phone's width the rows become cards and nothing scrolls sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(rows.first()).toBeVisible();
  expect(await scrollsSideways(page)).toBe(false);
  expect(errors).toEqual([]);
});
