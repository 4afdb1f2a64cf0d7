import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { scrollsSideways, signIn, uploadAsAdmin, watchForErrors } from './helpers';

// Every page at a desktop's and a phone's width: saved under
// end2end/screenshots/ for people to look at, and checked for what can be
// checked by a machine (a heading, nothing scrolling sideways, no errors).
const sizes = [
  { name: 'desktop', width: 1280, height: 900 },
  { name: 'phone', width: 390, height: 844 },
];

test('every page at desktop and phone width', async ({ page, request }, testInfo) => {
  test.skip(testInfo.project.name !== 'hydrate', 'the pages are the same without script');
  const errors = watchForErrors(page);
  const id = await uploadAsAdmin(request, `screenshot-${Date.now()}-with-a-rather-long-file-name.iso`, randomBytes(4096));
  const pages = [
    { name: 'catalog', path: '/' },
    { name: 'my-images', path: '/?mine=true' },
    { name: 'image', path: `/image/${id}` },
    { name: 'upload', path: '/upload' },
    { name: 'environments', path: '/environments' },
    { name: 'deployments', path: '/deployments' },
    { name: 'store', path: '/personal-store' },
    { name: 'tokens', path: '/tokens' },
    { name: 'users', path: '/admin/users' },
    { name: 'tenants', path: '/admin/tenants' },
  ];
  // The run on PostgreSQL (scripts/test.sh) checks the same pages, and its
  // pictures would only replace the SQLite run's: it takes none.
  const pictures = !process.env.DEPOT_DATABASE_URL;
  const screenshot = async (path: string) => {
    if (pictures) await page.screenshot({ path, fullPage: true });
  };
  mkdirSync('screenshots', { recursive: true });
  await page.goto('/login');
  await screenshot('screenshots/login-desktop.png');
  await signIn(page);
  for (const size of sizes) {
    await page.setViewportSize({ width: size.width, height: size.height });
    for (const { name, path } of pages) {
      await page.goto(path);
      await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
      await screenshot(`screenshots/${name}-${size.name}.png`);
      expect(await scrollsSideways(page), `${path} scrolls sideways at ${size.width} px`).toBe(false);
    }
  }
  // The system's dark scheme is followed.
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto('/');
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(background).toBe('rgb(20, 24, 31)');
  await screenshot('screenshots/catalog-phone-dark.png');
  expect(errors).toEqual([]);
});
