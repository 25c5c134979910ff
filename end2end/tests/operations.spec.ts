import { test, expect, USERS, hubPath, signIn, gotoHydrated, waitForHydration } from './support';
import type { Page } from '@playwright/test';

const ACME_HUB = hubPath('acme');
const RUN_URL = /\/t\/acme\/operations\/[0-9a-f-]{36}(\?.*)?$/;

/** The status badge in the run page's heading. */
const statusOf = (page: Page) => page.locator('.page-head .badge').first();

/** Waits until the run page's status reads `label`: the page hears it live. */
async function waitForStatus(page: Page, label: string) {
  await expect(statusOf(page), `run reaches ${label}`).toHaveText(label, { timeout: 20_000 });
}

test('start drift from the hub: the run completes live and its findings are listed', async ({ page }) => {
  await signIn(page, USERS.acmeOperator.email);
  await expect(page).toHaveURL(ACME_HUB);
  const forms = page.getByTestId('start-forms');
  await forms.locator('summary', { hasText: 'Generate drift' }).click();
  const form = page.getByTestId('start-drift-form');
  await form.locator('select[name="scope_key"]').selectOption('devices/windows');
  await form.locator('button[type="submit"]').click();
  await page.waitForURL(RUN_URL);
  await waitForHydration(page);
  await expect(page.locator('h1')).toHaveText('Generate drift');
  await page.evaluate(() => ((window as unknown as { __live: boolean }).__live = true));

  await waitForStatus(page, 'Succeeded');
  await expect(page.getByTestId('progress-text').first()).toHaveText(/^(\d+) \/ \1$/);
  await expect(page.getByTestId('run-findings').locator('li').first()).toBeVisible();
  const live = await page.evaluate(() => (window as unknown as { __live?: boolean }).__live);
  expect(live, 'the page learnt of the completion without a reload').toBe(true);
  await page.getByTestId('run-findings-link').click();
  await page.waitForURL(/\/t\/acme\/findings\?scope=devices%2Fwindows&baseline=[0-9a-f-]+&current=[0-9a-f-]+$/);
  await waitForHydration(page);
  await expect(page.getByTestId('finding-row').first()).toBeVisible();
});

test('the bell counts a finished run live and its entry opens the run', async ({ page }) => {
  await signIn(page, USERS.acmeOperator.email);
  const before = Number(await page.getByTestId('bell-count').textContent());

  await page.getByTestId('start-forms').locator('summary', { hasText: 'Add policies' }).click();
  const form = page.getByTestId('start-add-policies-form');
  const policies = form.locator('select[name="policy_ids[]"]');
  const first = await policies.locator('option').first().getAttribute('value');
  await policies.selectOption([first!]);
  await form.locator('button[type="submit"]').click();
  await page.waitForURL(RUN_URL);
  const runPath = new URL(page.url()).pathname;
  await waitForHydration(page);
  await waitForStatus(page, 'Succeeded');
  // "queued" and "completed": two new notifications, counted without a reload.
  await expect(page.getByTestId('bell-count')).toHaveText(String(before + 2));

  // From elsewhere, the bell's menu lists the run's entry and opens the run.
  await gotoHydrated(page, ACME_HUB);
  await page.getByTestId('bell').click();
  const runId = runPath.split('/').pop();
  const completed = page
    .getByTestId('bell-menu')
    .locator(`[data-testid="feed-entry"][data-kind="run_completed"][data-run-id="${runId}"]`);
  await expect(completed).toBeVisible();
  await completed.getByTestId('open-notification').click();
  await page.waitForURL((url) => url.pathname === runPath);
  await waitForHydration(page);
  await expect(page.getByTestId('bell-count')).toHaveText(String(before + 1));

  // Following the entry closed the menu. The whole feed is one link away;
  // Escape closes the menu.
  await expect(page.getByTestId('all-notifications')).toBeHidden();
  await page.getByTestId('bell').click();
  await expect(page.getByTestId('all-notifications')).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(page.getByTestId('all-notifications')).toBeHidden();
  await page.getByTestId('bell').click();
  await page.getByTestId('all-notifications').click();
  await page.waitForURL(/\/t\/acme\/notifications$/);
  await expect(
    page.locator(`[data-testid="feed"] [data-testid="feed-entry"][data-run-id="${runId}"]`),
  ).toHaveCount(2);
});

test('retry the failed items of a partly failed run: a new run, linked both ways', async ({ page }) => {
  await signIn(page, USERS.acmeOperator.email);
  await gotoHydrated(page, `${ACME_HUB}?bucket=partially_succeeded`);
  await page.getByTestId('run-row').first().getByTestId('run-link').click();
  await page.waitForURL(RUN_URL);
  await waitForHydration(page);
  const original = new URL(page.url()).pathname;
  await expect(page.getByTestId('failure-group').first()).toBeVisible();

  await page.getByTestId('retry-form').locator('button').click();
  await page.waitForURL((url) => RUN_URL.test(url.href) && url.pathname !== original);
  await waitForHydration(page);
  await expect(page.getByTestId('retry-of')).toHaveAttribute('href', original);

  await gotoHydrated(page, original);
  await expect(page.getByTestId('retries').locator('a')).toHaveCount(1);
});

test('hub filters and paging round-trip through the URL', async ({ page }) => {
  await signIn(page, USERS.acmeOperator.email);
  const filters = page.getByTestId('hub-filters');
  await filters.locator('select[name="operation"]').selectOption('drift.generate');
  await filters.locator('select[name="limit"]').selectOption('20');
  await filters.locator('button[type="submit"]').click();
  await page.waitForURL(/operation=drift\.generate/);
  await waitForHydration(page);
  const url = new URL(page.url());
  expect(url.searchParams.get('limit')).toBe('20');
  await expect(page.getByTestId('run-row')).toHaveCount(20);
  for (const link of await page.getByTestId('run-link').all()) {
    await expect(link).toHaveText('Generate drift');
  }
  // Older keeps the filters; back returns to the first page.
  await page.locator('a[rel="next"]').click();
  await page.waitForURL(/older=/);
  expect(new URL(page.url()).searchParams.get('operation')).toBe('drift.generate');
  await page.goBack();
  await page.waitForURL((u) => !u.searchParams.has('older'));
  await expect(filters.locator('select[name="operation"]')).toHaveValue('drift.generate');
});
