import { test as base, expect, type Page } from '@playwright/test';

// Every test fails if any page of its browser context logs a console error,
// throws an uncaught exception, or warns about hydration. Tests that expect a
// particular console error (a 404 document) list it in `allowedConsoleErrors`,
// matched against "text (url)".
// Chromium's own request for /favicon.ico is ignored: its 404 is no app error.
const test = base.extend<{ allowedConsoleErrors: RegExp[]; consoleGuard: void }>({
  allowedConsoleErrors: [[], { option: true }],
  consoleGuard: [
    async ({ context, allowedConsoleErrors }, use) => {
      const problems: string[] = [];
      context.on('console', (msg) => {
        const text = msg.text();
        const where = msg.location().url;
        if (where.endsWith('/favicon.ico')) return;
        const line = `${text} (${where})`;
        if (msg.type() === 'error' && !allowedConsoleErrors.some((re) => re.test(line))) {
          problems.push(`console.error: ${line}`);
        } else if (msg.type() === 'warning' && /hydrat/i.test(text)) {
          problems.push(`console.warn: ${line}`);
        }
      });
      context.on('weberror', (err) => {
        problems.push(`pageerror: ${err.error().stack ?? err.error().message} (${err.page()?.url()})`);
      });
      await use();
      expect(problems, 'console errors / page errors').toEqual([]);
    },
    { auto: true },
  ],
});

const ACME_HUB = '/t/acme/operations';
const UNKNOWN_RUN = '/t/acme/operations/00000000-0000-0000-0000-000000000000';

/**
 * Navigates and waits until the app has hydrated (only then do clicks work).
 * An uncaught error (a hydration panic, typically) fails at once instead of
 * after the test's timeout.
 */
async function gotoHydrated(page: Page, path: string) {
  let onError: (e: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    onError = (e) => reject(new Error(`page error before hydration of ${path}: ${e.message}`));
    page.on('pageerror', onError);
  });
  try {
    const response = await Promise.race([page.goto(path), failed]);
    await Promise.race([page.waitForSelector('body[data-hydrated]'), failed]);
    return response;
  } finally {
    page.off('pageerror', onError);
  }
}

/** The run id at the end of a detail link such as /t/acme/operations/{id}. */
function runIdOf(href: string | null): string {
  const m = href?.match(/^\/t\/acme\/operations\/([^/?#]+)$/);
  expect(m, `detail link ${href}`).toBeTruthy();
  return m![1];
}

test('the start page lists the tenants and leads to a hub', async ({ page }) => {
  const response = await gotoHydrated(page, '/');
  expect(response?.status()).toBe(200);

  const tenantLinks = page.locator('a[href^="/t/"][href$="/operations"]');
  await expect(tenantLinks).toHaveCount(3);
  const acme = page.locator(`a[href="${ACME_HUB}"]`);
  await expect(acme).toHaveText(/Acme Corp/);

  await acme.click();
  await expect(page).toHaveURL(ACME_HUB);
  await expect(page.getByTestId('runs-table')).toBeVisible();
});

test('the hub lists the seeded runs and links each to its detail page', async ({ page }) => {
  const response = await gotoHydrated(page, ACME_HUB);
  expect(response?.status()).toBe(200);

  const rows = page.getByTestId('runs-table').getByTestId('run-row');
  await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(10);

  const link = rows.first().getByTestId('run-link');
  const href = await link.getAttribute('href');
  const runId = runIdOf(href);

  await link.click();
  await expect(page).toHaveURL(href!);
  await expect(page.getByTestId('run-id')).toHaveText(runId);
  await expect(page.locator('h1')).toHaveText(/\S/);

  // The same page as a deep link, rendered by the server.
  const direct = await gotoHydrated(page, href!);
  expect(direct?.status()).toBe(200);
  await expect(page.getByTestId('run-id')).toHaveText(runId);
  await expect(page.locator('h1')).toHaveText(/\S/);
});

test('the refresh button works only once hydrated', async ({ page, request }) => {
  // In the server's HTML (no JavaScript ran) the button is disabled.
  const raw = await request.get(ACME_HUB);
  expect(raw.status()).toBe(200);
  const html = await raw.text();
  const tag = html.match(/<button\b[^>]*\bdata-testid="refresh-runs"[^>]*>/)?.[0];
  expect(tag, 'refresh button in the server-rendered HTML').toBeTruthy();
  expect(tag).toMatch(/\sdisabled(?=[\s=>/])/);

  await gotoHydrated(page, ACME_HUB);
  const table = page.getByTestId('runs-table');
  const button = page.locator('button[data-testid="refresh-runs"]');
  await expect(button).toBeEnabled();
  await expect(table).not.toHaveAttribute('data-refreshed-at', /./);

  await button.click();
  await expect(table).toHaveAttribute('data-refreshed-at', /\S/);
  await expect.poll(() => table.getByTestId('run-row').count()).toBeGreaterThanOrEqual(10);
});

for (const [what, path] of [
  ['run', UNKNOWN_RUN],
  ['tenant', '/t/nope/operations'],
]) {
  test.describe(`an unknown ${what}`, () => {
    // Chromium logs the 404 of the document itself as a console error; only
    // that one is allowed (a 404 of a script or style on the page still fails).
    test.use({ allowedConsoleErrors: [new RegExp(`status of 404 .*\\(\\S*${path}\\)$`)] });

    test(`answers 404 "Not found"`, async ({ page }) => {
      const response = await gotoHydrated(page, path);
      expect(response?.status()).toBe(404);
      await expect(page.getByText('Not found').first()).toBeVisible();
    });
  });
}

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the hub and the detail page are rendered by the server', async ({ page }) => {
    const response = await page.goto(ACME_HUB);
    expect(response?.status()).toBe(200);
    // Proves that no script ran: nothing hydrated.
    await expect(page.locator('body')).not.toHaveAttribute('data-hydrated');

    const rows = page.getByTestId('runs-table').getByTestId('run-row');
    expect(await rows.count()).toBeGreaterThanOrEqual(10);

    const href = await rows.first().getByTestId('run-link').getAttribute('href');
    const runId = runIdOf(href);
    const detail = await page.goto(href!);
    expect(detail?.status()).toBe(200);
    await expect(page.getByTestId('run-id')).toHaveText(runId);
    await expect(page.locator('h1')).toHaveText(/\S/);
  });
});
