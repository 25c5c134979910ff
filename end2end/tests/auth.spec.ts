import {
  DEMO_PASSWORD,
  SIGN_IN,
  SIGN_IN_API,
  SIGN_IN_ERROR,
  TENANTS,
  USERS,
  allowStatus,
  expect,
  expectSignInPageFor,
  firstRunHref,
  gotoHydrated,
  hubPath,
  runIdOf,
  signIn,
  signInForm,
  signOut,
  submitSignIn,
  test,
} from './support';
import type { Page } from '@playwright/test';

// Operators and tenants: signing in, landing on one's tenant, switching
// tenants, deep links that survive the sign-in, signing out.

const ACME_HUB = hubPath('acme');

/** The tenant switcher's link to `slug`'s hub. */
const switcherLink = (page: Page, slug: string) =>
  page.locator(`nav[data-testid="tenant-switcher"] a[href="${hubPath(slug)}"]`);

/** Checks that the tenant switcher offers every tenant and marks `current`. */
async function expectCurrentTenant(page: Page, current: string) {
  const links = page.locator('nav[data-testid="tenant-switcher"] a[href^="/t/"]');
  await expect(links).toHaveCount(TENANTS.length);
  for (const { slug } of TENANTS) {
    const link = switcherLink(page, slug);
    if (slug === current) {
      await expect(link, `${slug} is current`).toHaveAttribute('aria-current', 'page');
    } else {
      await expect(link, `${slug} is not current`).not.toHaveAttribute('aria-current', 'page');
    }
  }
}

test.describe('signed out', () => {
  const privatePages = [
    '/',
    ACME_HUB,
    `${ACME_HUB}?bucket=failed&limit=5`,
    `${ACME_HUB}/00000000-0000-0000-0000-000000000000`,
    // Not even whether a tenant exists is told before signing in.
    '/t/nope/operations',
  ];

  test('every page answers 303 to the sign-in page, keeping where it was going', async ({
    request,
  }) => {
    // `request` has a cookie jar of its own: no session.
    for (const path of privatePages) {
      const response = await request.get(path, { maxRedirects: 0 });
      expect(response.status(), `GET ${path}`).toBe(303);
      const location = response.headers()['location'] ?? '';
      expect(location, `Location of GET ${path}`).toMatch(/^\/sign-in\?next=/);
      expect(new URL(location, 'http://x').searchParams.get('next'), `next of ${location}`).toBe(path);
    }
  });

  test('the sign-in page, health check and static files stay public', async ({ request }) => {
    for (const path of [
      SIGN_IN,
      `${SIGN_IN}?next=${encodeURIComponent(ACME_HUB)}`,
      '/healthz',
      '/pkg/opshub.css',
      '/pkg/opshub.js',
      '/favicon.ico',
    ]) {
      const response = await request.get(path, { maxRedirects: 0 });
      expect(response.status(), `GET ${path}`).toBe(200);
    }
  });

  test('a browser is sent to the sign-in page with the page it asked for', async ({ page }) => {
    const response = await gotoHydrated(page, ACME_HUB);
    const redirect = response?.request().redirectedFrom();
    expect(redirect?.url(), 'the request that was redirected').toMatch(/\/t\/acme\/operations$/);
    expect((await redirect?.response())?.status()).toBe(303);
    await expectSignInPageFor(page, ACME_HUB);
    await expect(page.getByTestId('user-menu')).toHaveCount(0);
  });
});

test('an operator of one tenant signs in and lands on its hub', async ({ page }) => {
  const response = await gotoHydrated(page, SIGN_IN);
  expect(response?.status()).toBe(200);

  const form = signInForm(page);
  await expect(form.locator('input[name="email"]')).toBeVisible();
  await expect(form.locator('input[name="password"]')).toHaveAttribute('type', 'password');
  await expect(form.locator('input[name="next"]')).toHaveAttribute('type', 'hidden');
  await expect(form.locator('button[type="submit"]')).toHaveText(/^\s*Sign in\s*$/);
  await expect(page.getByTestId('sign-in-error')).toHaveCount(0);
  await expect(page.getByTestId('user-menu')).toHaveCount(0);

  // No `next`: the start page, which sends a single-tenant user on to the hub.
  await submitSignIn(page, USERS.acmeOperator.email);
  await expect(page).toHaveURL(ACME_HUB);
  await expect(page.getByTestId('runs-table')).toBeVisible();
  await expect.poll(() => page.getByTestId('run-row').count()).toBeGreaterThanOrEqual(10);
  await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);
  await expect(page.locator('nav[data-testid="tenant-switcher"]')).toHaveCount(0);

  // The start page keeps sending them there.
  await gotoHydrated(page, '/');
  await expect(page).toHaveURL(ACME_HUB);
});

test.describe('a refused sign-in', () => {
  // The sign-in server function answers 401, which Chromium logs; nothing else may.
  // Mind the server's limiter: 5 failed sign-ins for one account from one
  // address within 5 minutes refuse further sign-ins of that account from it,
  // 20 across accounts refuse every sign-in from it (127.0.0.1, for all specs).
  test.use({ allowedConsoleErrors: [allowStatus(401, SIGN_IN_API)] });

  test('says only that email or password is incorrect, and stays on the sign-in page', async ({
    page,
  }) => {
    await gotoHydrated(page, SIGN_IN);
    const error = page.getByTestId('sign-in-error');

    for (const [email, password] of [
      [USERS.acmeOperator.email, 'not-the-password'],
      ['nobody@acme.example', DEMO_PASSWORD],
    ]) {
      const form = signInForm(page);
      await form.locator('input[name="email"]').fill(email);
      await form.locator('input[name="password"]').fill(password);
      const [answer] = await Promise.all([
        page.waitForResponse(
          (r) => new URL(r.url()).pathname === SIGN_IN_API && r.request().method() === 'POST',
        ),
        form.locator('button[type="submit"]').click(),
      ]);
      expect(answer.status(), `sign-in as ${email}`).toBe(401);

      await expect(error).toHaveText(SIGN_IN_ERROR);
      await expect(page).toHaveURL((url) => url.pathname === SIGN_IN);
      await expect(page.getByTestId('user-menu')).toHaveCount(0);
      // Still usable (a full reload would need hydrating again).
      await page.waitForSelector('body[data-hydrated]');
    }

    // Nothing was signed in: the hub still sends the browser away.
    const raw = await page.request.get(ACME_HUB, { maxRedirects: 0 });
    expect(raw.status()).toBe(303);

    // The right password still works afterwards.
    await submitSignIn(page, USERS.acmeOperator.email);
    await expect(page).toHaveURL(ACME_HUB);
    await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);
  });
});

test('an operator of several tenants picks one and switches to another', async ({ page }) => {
  // No `next`: the start page, which lists their tenants.
  await signIn(page, USERS.multi.email);
  await expect(page).toHaveURL('/');
  await expect(page.getByTestId('user-menu')).toContainText(USERS.multi.name);

  // The list itself (the header's tenant switcher has the same links).
  const listed = page.locator('main a[href^="/t/"][href$="/operations"]');
  await expect(listed).toHaveCount(TENANTS.length);
  for (const { slug, name } of TENANTS) {
    await expect(page.locator(`main a[href="${hubPath(slug)}"]`)).toContainText(name);
  }

  await page.locator(`main a[href="${ACME_HUB}"]`).click();
  await expect(page).toHaveURL(ACME_HUB);
  await expect(page.getByTestId('runs-table')).toBeVisible();
  await expect(firstRunLink(page)).toHaveAttribute('href', /^\/t\/acme\/operations\//);
  await expectCurrentTenant(page, 'acme');
  await expect(page.getByTestId('user-menu')).toContainText(USERS.multi.name);

  await switcherLink(page, 'globex').click();
  await expect(page).toHaveURL(hubPath('globex'));
  await expect(page.getByTestId('runs-table')).toBeVisible();
  // The table now shows globex's runs, not acme's.
  await expect(firstRunLink(page)).toHaveAttribute('href', /^\/t\/globex\/operations\//);
  await expectCurrentTenant(page, 'globex');
  await expect(page.getByTestId('user-menu')).toContainText(USERS.multi.name);

  // The same, rendered by the server.
  const direct = await gotoHydrated(page, hubPath('globex'));
  expect(direct?.status()).toBe(200);
  await expectCurrentTenant(page, 'globex');
});

test('a deep link to a run survives signing in', async ({ page }) => {
  // A real run page, found while signed in.
  await signIn(page, USERS.acmeOperator.email);
  await expect(page).toHaveURL(ACME_HUB);
  const href = await firstRunHref(page);
  const runId = runIdOf(href);
  await signOut(page);

  // Signed out, the link leads to the sign-in page, which remembers it ...
  await gotoHydrated(page, href);
  await expectSignInPageFor(page, href);

  // ... and signing in arrives at exactly that run.
  await submitSignIn(page, USERS.acmeOperator.email);
  await expect(page).toHaveURL(href);
  await expect(page.getByTestId('run-id')).toHaveText(runId);
  await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);
});

test('signing out ends the session', async ({ page, playwright }) => {
  await signIn(page, USERS.acmeOperator.email);
  await expect(page).toHaveURL(ACME_HUB);
  await expect(page.getByTestId('user-menu')).toContainText(USERS.acmeOperator.name);
  const signedIn = await page.context().storageState();

  await signOut(page);
  await expect(page).toHaveURL((url) => url.pathname === SIGN_IN);
  await expect(page.getByTestId('user-menu')).toHaveCount(0);

  // The hub sends the browser back to the sign-in page.
  await gotoHydrated(page, ACME_HUB);
  await expectSignInPageFor(page, ACME_HUB);

  // The old session cookie, replayed, is no session any more either.
  const replay = await playwright.request.newContext({ storageState: signedIn });
  try {
    const raw = await replay.get(ACME_HUB, { maxRedirects: 0 });
    expect(raw.status()).toBe(303);
    expect(raw.headers()['location']).toMatch(/^\/sign-in\?next=/);
  } finally {
    await replay.dispose();
  }
});

function firstRunLink(page: Page) {
  return page.getByTestId('runs-table').getByTestId('run-row').first().getByTestId('run-link');
}
