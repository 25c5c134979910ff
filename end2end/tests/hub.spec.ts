import {
  USERS,
  allowStatus,
  expect,
  firstRunHref,
  gotoHydrated,
  hubPath,
  runIdOf,
  signIn,
  test,
} from './support';

// The hub as an operator of acme (and of acme only) sees it. Sign-in itself,
// tenant switching and sign-out are in auth.spec.ts.

const ACME_HUB = hubPath('acme');
const UNKNOWN_RUN = `${ACME_HUB}/00000000-0000-0000-0000-000000000000`;

test.beforeEach(async ({ page }) => {
  await signIn(page, USERS.acmeOperator.email);
  // The start page sends a single-tenant user on; let that finish first.
  await expect(page).toHaveURL(ACME_HUB);
});

test('the start page leads a single-tenant user to their hub', async ({ page }) => {
  const response = await gotoHydrated(page, '/');
  expect(response?.status()).toBe(200);
  await expect(page).toHaveURL(ACME_HUB);
  await expect(page.getByTestId('runs-table')).toBeVisible();

  await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);
  await expect(page.locator('button[data-testid="sign-out"]')).toBeVisible();
  // One tenant: nothing to switch between.
  await expect(page.locator('nav[data-testid="tenant-switcher"]')).toHaveCount(0);
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
  await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);

  // The same page as a deep link, rendered by the server.
  const direct = await gotoHydrated(page, href!);
  expect(direct?.status()).toBe(200);
  await expect(page.getByTestId('run-id')).toHaveText(runId);
  await expect(page.locator('h1')).toHaveText(/\S/);
  await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);
});

test('the refresh button works only once hydrated', async ({ page }) => {
  // In the server's HTML (no JavaScript ran) the button is disabled.
  // page.request shares the page's cookies, hence its session.
  const raw = await page.request.get(ACME_HUB, { maxRedirects: 0 });
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

// Another tenant's hub is indistinguishable from one that does not exist.
for (const [what, path] of [
  ['an unknown run', UNKNOWN_RUN],
  ['an unknown tenant', '/t/nope/operations'],
  ["another tenant's hub", hubPath('globex')],
]) {
  test.describe(what, () => {
    // Chromium logs the 404 of the document itself as a console error; only
    // that one is allowed (a 404 of a script or style on the page still fails).
    test.use({ allowedConsoleErrors: [allowStatus(404, path)] });

    test(`answers 404 "Not found"`, async ({ page }) => {
      const response = await gotoHydrated(page, path);
      expect(response?.status()).toBe(404);
      await expect(page).toHaveURL(path);
      await expect(page.getByText('Not found').first()).toBeVisible();
    });
  });
}

test.describe("another tenant's run", () => {
  test.use({ allowedConsoleErrors: [allowStatus(404, /\/t\/(acme|globex)\/operations\/[^/\s]+/)] });

  test('answers 404 "Not found", under either tenant', async ({ page, newContext }) => {
    // A real globex run, found by an operator of globex.
    const globex = await (await newContext()).newPage();
    await signIn(globex, USERS.globexOperator.email);
    await expect(globex).toHaveURL(hubPath('globex'));
    const href = await firstRunHref(globex);
    const runId = runIdOf(href, 'globex');

    for (const path of [href, `${ACME_HUB}/${runId}`]) {
      const response = await gotoHydrated(page, path);
      expect(response?.status(), path).toBe(404);
      await expect(page.getByText('Not found').first()).toBeVisible();
      await expect(page.getByTestId('run-id')).toHaveCount(0);
    }
  });
});

test.describe('without JavaScript', () => {
  test('the hub and the detail page are rendered by the server', async ({ page, newContext }) => {
    // The session of the (JavaScript) sign-in in beforeEach, in a context
    // that runs no scripts.
    const storageState = await page.context().storageState();
    const context = await newContext({ storageState, javaScriptEnabled: false });
    const noJs = await context.newPage();

    const response = await noJs.goto(ACME_HUB);
    expect(response?.status()).toBe(200);
    await expect(noJs).toHaveURL(ACME_HUB);
    // Proves that no script ran: nothing hydrated.
    await expect(noJs.locator('body')).not.toHaveAttribute('data-hydrated');
    await expect(noJs.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);

    const rows = noJs.getByTestId('runs-table').getByTestId('run-row');
    expect(await rows.count()).toBeGreaterThanOrEqual(10);

    const href = await rows.first().getByTestId('run-link').getAttribute('href');
    const runId = runIdOf(href);
    const detail = await noJs.goto(href!);
    expect(detail?.status()).toBe(200);
    await expect(noJs.getByTestId('run-id')).toHaveText(runId);
    await expect(noJs.locator('h1')).toHaveText(/\S/);
  });
});
