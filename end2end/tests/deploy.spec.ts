import { test, expect } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { adminPassword, exportRoot } from '../playwright.config';
import { signIn, watchForErrors } from './helpers';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('register an environment, deploy an image into it and watch the deployment finish', async ({ page, request }, testInfo) => {
  const errors = watchForErrors(page);
  const project = testInfo.project.name;
  const withScript = project === 'hydrate';
  const name = `deploy-${project}-${Date.now()}.img`;
  const bytes = randomBytes(256 * 1024 + 7);
  // A folder of its own inside the root the server may deploy into.
  const folder = mkdtempSync(join(exportRoot, `${project}-`));
  const secret = `env-secret-${project}-${Date.now()}`;
  const title = `Folder ${project}`;

  // The image comes from a script, as ViCE clients and curl add them.
  const uploaded = await request.post('/api/upload', {
    headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}` },
    multipart: { file: { name, mimeType: 'application/octet-stream', buffer: bytes } },
  });
  expect(uploaded.status()).toBe(201);
  const imageId = (await uploaded.json()).images[0].id;

  await signIn(page);
  await page.goto('/environments');
  await page.getByLabel('Title').fill(title);
  const management = page.getByRole('group', { name: 'Management layer' });
  await management.getByLabel('Type').selectOption('basic');
  await management.getByLabel('Software').fill('rsync');
  await page.getByRole('group', { name: 'Runtime technology' }).getByLabel('Type').selectOption('virtualmachine');
  await page.getByLabel('Location').fill(`file://${folder}`);
  await page.getByLabel('Username').fill('deployer');
  await page.getByLabel('Password').fill(secret);
  await page.getByRole('button', { name: 'Register' }).click();

  // Listed with its password masked; the password itself is nowhere in the page.
  const environment = page.getByRole('row', { name: new RegExp(title) });
  await expect(environment).toContainText('basic rsync');
  await expect(environment).toContainText('********');
  expect(await page.content()).not.toContain(secret);
  // The form is empty again, ready for the next one.
  await expect(page.getByLabel('Title')).toHaveValue('');

  // A folder where the file should go makes the first attempt fail; the job
  // is retried (5 s later) and the deployment shows why meanwhile.
  const blocker = join(folder, name);
  mkdirSync(blocker);

  await page.goto(`/image/${imageId}`);
  await page.getByLabel('Environment', { exact: true }).selectOption({ label: `${title} (file://${folder})` });
  await page.getByLabel('Deployment title').fill(`Deploy ${project}`);
  await page.getByRole('button', { name: 'Deploy' }).click();
  await expect(page).toHaveURL(/\/deployments$/);

  const deployment = page.getByRole('row', { name: new RegExp(`Deploy ${project}`) });
  await expect(deployment).toContainText(name);
  await expect(deployment).toContainText(title);
  // With WASM the page asks again by itself while the job may change;
  // without, the user follows the Refresh link.
  const refreshed = async (text: string) => {
    if (withScript) {
      await expect(deployment).toContainText(text, { timeout: 20_000 });
    } else {
      await expect(async () => {
        await page.getByRole('link', { name: 'Refresh' }).click();
        await expect(deployment).toContainText(text, { timeout: 500 });
      }).toPass({ timeout: 20_000 });
    }
  };
  await refreshed('cannot write');
  await expect(deployment).toContainText('queued');
  rmSync(blocker, { recursive: true });
  await refreshed('done');
  const copied = await readFile(join(folder, name));
  expect(sha256(copied)).toBe(sha256(bytes));

  // Deleting the deployment removes its copy from the environment, as the
  // page says; deleting the environment takes it off the list.
  await expect(page.getByText('removes the file it wrote')).toBeVisible();
  await deployment.getByRole('button', { name: 'Delete' }).click();
  await expect(deployment).toHaveCount(0);
  expect(existsSync(join(folder, name))).toBe(false);
  await page.goto('/environments');
  await environment.getByRole('button', { name: 'Delete' }).click();
  await expect(environment).toHaveCount(0);

  expect(errors).toEqual([]);
});
