import { test, expect, type Page } from '@playwright/test';
import { hydrated, signIn, watchForErrors } from './helpers';

// Each page's view is a piece of the WASM of its own: a first visit fetches
// the main bundle and the pieces of the page it shows, named in the page so
// they come at once, and a page opened later fetches its own when it opens.

/// The WASM files the page has fetched so far, by name, as often as each
/// was fetched: twice would mean the browser did not use what it preloaded.
function wasmFetched(page: Page): string[] {
  const fetched: string[] = [];
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname;
    if (path.endsWith('.wasm')) {
      expect(response.status(), path).toBe(200);
      fetched.push(path.split('/').pop()!);
    }
  });
  return fetched;
}

/// The pieces of the WASM the page names for the browser to fetch at once.
async function piecesNamed(page: Page): Promise<string[]> {
  return page
    .locator('link[rel="preload"][href$=".wasm"]')
    .evaluateAll((links) => links.map((link) => (link as HTMLLinkElement).href.split('/').pop()!));
}

test('a first visit fetches only what the page it shows needs', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'pieces of the WASM are fetched by the script');
  const errors = watchForErrors(page);
  await signIn(page);
  // The page signing in lands on fetches the bundle too: counting starts
  // once it has run, or its late answer would be counted as the catalog's.
  await hydrated(page);
  const fetched = wasmFetched(page);

  // The catalog, where most visits start, is in the main bundle: one file.
  await page.goto('/');
  await hydrated(page);
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  expect([...fetched]).toEqual(['depot.wasm']);

  // The tokens page, opened from the bar without a page load, brings its
  // own piece and works.
  await page.evaluate(() => ((window as any).depotNoReload = true));
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tokens', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Tokens', level: 1 })).toBeVisible();
  expect(await page.evaluate(() => (window as any).depotNoReload)).toBe(true);
  await expect.poll(() => [...fetched].some((name) => name.includes('tokens'))).toBe(true);

  // Loaded first, the tokens page names its pieces, and that is all the
  // browser fetches for it: the other pages' stay on the server.
  fetched.length = 0;
  await page.goto('/tokens');
  await hydrated(page);
  const named = await piecesNamed(page);
  expect(named.some((name) => name.includes('tokens'))).toBe(true);
  // The main bundle is named too, by Leptos.
  expect(named).toContain('depot.wasm');
  expect([...fetched].sort()).toEqual(named.sort());
  expect([...fetched].some((name) => name.includes('users') || name.includes('upload'))).toBe(false);

  // The page works from its piece: a token made here is shown once.
  await page.getByRole('button', { name: 'Create a token' }).click();
  const secret = await page.getByRole('textbox', { name: 'New token' }).inputValue();
  expect(secret.split('.')).toHaveLength(3);
  expect(errors).toEqual([]);
});
