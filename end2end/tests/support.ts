// Shared by every spec: the console-error guard, hydration-aware navigation,
// and signing in and out through the real sign-in form.
import {
  test as base,
  expect,
  type BrowserContext,
  type BrowserContextOptions,
  type Locator,
  type Page,
} from '@playwright/test';

export { expect };

/** The password of every demo user seeded by `opshub seed-demo`. */
export const DEMO_PASSWORD = 'opshub-demo';

/** Demo users (see `opshub seed-demo`) and the display name each one shows. */
export const USERS = {
  /** Operator in acme only. */
  acmeOperator: { email: 'operator@acme.example', name: 'Olivia Operator' },
  /** Operator in globex only. */
  globexOperator: { email: 'operator@globex.example', name: 'Olivia Operator' },
  /** Operator in acme, globex and initech. */
  multi: { email: 'multi@opshub.example', name: 'Morgan Multi' },
} as const;

/** The demo tenants: slug and display name. */
export const TENANTS = [
  { slug: 'acme', name: 'Acme Corp' },
  { slug: 'globex', name: 'Globex Corporation' },
  { slug: 'initech', name: 'Initech' },
] as const;

export const SIGN_IN = '/sign-in';
/** The server function a sign-in attempt posts to. */
export const SIGN_IN_API = '/api/session/sign-in';
export const SIGN_IN_ERROR = 'Email or password is incorrect.';

/** A tenant's hub, e.g. /t/acme/operations. */
export const hubPath = (slug: string) => `/t/${slug}/operations`;

/** Escapes text for use inside a RegExp. */
export const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Allows Chromium's console error for a document (or fetch) of `path` that
 * answered `status`; the same status of any other resource still fails.
 * `path` is a string (matched exactly, after the origin) or a RegExp source.
 */
export function allowStatus(status: number, path: string | RegExp): RegExp {
  const p = typeof path === 'string' ? escapeRegExp(path) : path.source;
  return new RegExp(`status of ${status} .*\\(https?://[^/\\s]+${p}\\)$`);
}

type Fixtures = {
  /** Console errors a test expects, matched against "text (url)". */
  allowedConsoleErrors: RegExp[];
  consoleProblems: string[];
  consoleGuard: void;
  /**
   * Opens another browser context (with the config's options, e.g. baseURL)
   * that is guarded like the default one and closed after the test.
   */
  newContext: (options?: BrowserContextOptions) => Promise<BrowserContext>;
};

/** Every page reports its Content-Security-Policy violations here. */
const CSP_BINDING = '__opshubCspViolation';

async function watchConsole(context: BrowserContext, allowed: RegExp[], problems: string[]) {
  // The server enforces its CSP (no inline script); anything it blocks fails
  // the test, whatever else the test allows.
  await context.exposeBinding(CSP_BINDING, ({ page }, report: string) => {
    problems.push(`CSP violation: ${report} (${page.url()})`);
  });
  await context.addInitScript((binding: string) => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const report = `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`;
      (window as unknown as Record<string, (r: string) => void>)[binding](report);
    });
  }, CSP_BINDING);
  context.on('console', (msg) => {
    const text = msg.text();
    const where = msg.location().url;
    const line = `${text} (${where})`;
    if (/Content Security Policy/i.test(text)) {
      problems.push(`CSP console error: ${line}`);
      return;
    }
    // Chromium's own request for /favicon.ico is no app error.
    if (where.endsWith('/favicon.ico')) return;
    if (msg.type() === 'error' && !allowed.some((re) => re.test(line))) {
      problems.push(`console.error: ${line}`);
    } else if (msg.type() === 'warning' && /hydrat/i.test(text)) {
      problems.push(`console.warn: ${line}`);
    }
  });
  context.on('weberror', (err) => {
    problems.push(`pageerror: ${err.error().stack ?? err.error().message} (${err.page()?.url()})`);
  });
}

/**
 * Every test fails if any page of its browser contexts logs a console error,
 * throws an uncaught exception, warns about hydration, or violates the
 * Content-Security-Policy. Tests that expect a
 * particular console error (a 404 document, a refused sign-in) list it in
 * `allowedConsoleErrors` (see `allowStatus`).
 */
export const test = base.extend<Fixtures>({
  allowedConsoleErrors: [[], { option: true }],
  consoleProblems: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const problems: string[] = [];
      await use(problems);
      expect(problems, 'console errors / page errors').toEqual([]);
    },
    { auto: true },
  ],
  consoleGuard: [
    async ({ context, allowedConsoleErrors, consoleProblems }, use) => {
      await watchConsole(context, allowedConsoleErrors, consoleProblems);
      await use();
    },
    { auto: true },
  ],
  newContext: async ({ browser, allowedConsoleErrors, consoleProblems }, use) => {
    const opened: BrowserContext[] = [];
    await use(async (options) => {
      const context = await browser.newContext(options);
      await watchConsole(context, allowedConsoleErrors, consoleProblems);
      opened.push(context);
      return context;
    });
    for (const context of opened) await context.close();
  },
});

/** Resolves once the current document has hydrated (only then do clicks work). */
export async function waitForHydration(page: Page) {
  await page.waitForSelector('body[data-hydrated]');
}

/**
 * Navigates and waits until the app has hydrated (only then do clicks work).
 * An uncaught error (a hydration panic, typically) fails at once instead of
 * after the test's timeout. Returns the final response (after redirects).
 */
export async function gotoHydrated(page: Page, path: string) {
  let onError: (e: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    onError = (e) => reject(new Error(`page error before hydration of ${path}: ${e.message}`));
    page.on('pageerror', onError);
  });
  try {
    const response = await Promise.race([page.goto(path), failed]);
    await Promise.race([waitForHydration(page), failed]);
    return response;
  } finally {
    page.off('pageerror', onError);
  }
}

/** The sign-in page's URL, with `next` when given. */
export function signInPath(next?: string) {
  return next === undefined ? SIGN_IN : `${SIGN_IN}?next=${encodeURIComponent(next)}`;
}

/** The sign-in form of the current page. */
export function signInForm(page: Page): Locator {
  return page.locator('form[data-testid="sign-in-form"]');
}

/** True for the sign-in page, whatever its query. */
export const isSignInUrl = (url: URL) => url.pathname === SIGN_IN;

/**
 * Checks that `page` is the sign-in page and that its `next` (query and hidden
 * field) is `next`, i.e. the page the user asked for before being sent here.
 */
export async function expectSignInPageFor(page: Page, next: string) {
  const url = new URL(page.url());
  expect(url.pathname, `${page.url()} is the sign-in page`).toBe(SIGN_IN);
  expect(url.searchParams.get('next'), `next of ${page.url()}`).toBe(next);
  await expect(signInForm(page).locator('input[name="next"]')).toHaveValue(next);
}

/**
 * Fills and submits the sign-in form of the current (hydrated) sign-in page,
 * then waits for the browser to leave /sign-in and for the page it lands on to
 * hydrate. Fails at once, with the page's message, if the sign-in is refused.
 */
export async function submitSignIn(page: Page, email: string, password = DEMO_PASSWORD) {
  await expect(page).toHaveURL(isSignInUrl);
  const form = signInForm(page);
  await form.locator('input[name="email"]').fill(email);
  await form.locator('input[name="password"]').fill(password);

  const error = page.getByTestId('sign-in-error');
  // An error left over from an earlier attempt must not count as this one's.
  const watchError = !(await error.isVisible());
  await form.locator('button[type="submit"]').click();

  const outcome = { refused: null as string | null };
  await expect
    .poll(
      async () => {
        if (!isSignInUrl(new URL(page.url()))) return 'left';
        if (watchError && (await error.isVisible())) {
          outcome.refused = (await error.textContent())?.trim() ?? '';
          return 'refused';
        }
        return 'waiting';
      },
      { message: `signing in as ${email} leaves ${SIGN_IN}` },
    )
    .not.toBe('waiting');
  if (outcome.refused !== null) {
    throw new Error(`signing in as ${email} was refused: ${outcome.refused}`);
  }
  await page.waitForLoadState();
  await waitForHydration(page);
}

/**
 * Signs in through the sign-in form (`/sign-in`, or `/sign-in?next=...` when
 * `next` is given) and waits until the page the server sends the user to has
 * hydrated. The page's context then holds the session cookie.
 */
export async function signIn(page: Page, email: string, password = DEMO_PASSWORD, next?: string) {
  await gotoHydrated(page, signInPath(next));
  await submitSignIn(page, email, password);
}

/**
 * Forgets the browser's session without signing out (the server still holds
 * it). The page is left first: a live page whose cookie vanished would
 * answer its next live update with an unauthorised request, which Chromium
 * logs as a console error the guard rightly counts.
 */
export async function forgetSession(page: Page) {
  await page.goto('about:blank');
  await page.context().clearCookies();
}

/** Clicks "sign out" in the header and waits for the (hydrated) sign-in page. */
export async function signOut(page: Page) {
  await page.locator('button[data-testid="sign-out"]').click();
  await page.waitForURL(isSignInUrl);
  await waitForHydration(page);
}

/** The run id at the end of a detail link such as /t/acme/operations/{id}. */
export function runIdOf(href: string | null, slug = 'acme'): string {
  const m = href?.match(new RegExp(`^/t/${escapeRegExp(slug)}/operations/([^/?#]+)$`));
  expect(m, `detail link ${href}`).toBeTruthy();
  return m![1];
}

/** The href of the first run on the (hydrated) hub the page shows. */
export async function firstRunHref(page: Page): Promise<string> {
  const link = page.getByTestId('runs-table').getByTestId('run-row').first().getByTestId('run-link');
  const href = await link.getAttribute('href');
  expect(href, 'first run link').toBeTruthy();
  return href!;
}
