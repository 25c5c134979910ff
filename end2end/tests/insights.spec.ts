import { test, expect, USERS, hubPath, signIn, gotoHydrated } from './support';

// The Insights page: server-drawn charts that follow runs as they end,
// without a reload.

const INSIGHTS = '/t/acme/insights?operation=drift.generate';
const RUN_URL = /\/t\/acme\/operations\/[0-9a-f-]{36}(\?.*)?$/;

test('insights count a run that just ended, live', async ({ page, newContext }) => {
  await signIn(page, USERS.acmeOperator.email);
  await gotoHydrated(page, INSIGHTS);
  await expect(page.getByTestId('chart-outcomes').locator('svg.chart')).toBeVisible();
  await page.evaluate(() => ((window as unknown as { __live: boolean }).__live = true));
  const ended = page.getByTestId('total-ended').locator('strong');
  const before = Number(await ended.textContent());

  // Another tab starts a drift run; it ends within a second.
  const other = await (await newContext()).newPage();
  await signIn(other, USERS.acmeOperator.email, undefined, hubPath('acme'));
  await other.getByTestId('start-forms').locator('summary', { hasText: 'Generate drift' }).click();
  const form = other.getByTestId('start-drift-form');
  await form.locator('select[name="scope_key"]').selectOption('apps/managed');
  await form.locator('button[type="submit"]').click();
  await other.waitForURL(RUN_URL);

  await expect
    .poll(async () => Number(await ended.textContent()), { timeout: 20_000 })
    .toBeGreaterThan(before);
  const stillLive = await page.evaluate(() => (window as unknown as { __live?: boolean }).__live);
  expect(stillLive, 'the page was not reloaded').toBe(true);

  // Its table view says the same as the chart, and links to the runs.
  await page.getByTestId('chart-outcomes').locator('summary').click();
  const table = page.getByTestId('chart-outcomes').locator('table');
  await expect(table).toBeVisible();
  await expect(table.locator('tbody tr').first().locator('a').first()).toHaveAttribute(
    'href',
    /^\/t\/acme\/operations\?bucket=succeeded&operation=drift\.generate&from=/,
  );
});
