import { SIGN_IN, USERS, allowStatus, expect, forgetSession, gotoHydrated, hubPath, signIn, test } from './support';

// The browser side of the server's protections: the Content-Security-Policy
// is enforced on every page (and the shared fixture fails any test whose
// pages violate it), pages carry no inline script, and `next` after signing
// in never leaves the site.

const CSP = "script-src 'self' 'wasm-unsafe-eval'";

test.describe('pages', () => {
  // The missing tenant's page answers 404, which Chromium logs.
  test.use({ allowedConsoleErrors: [allowStatus(404, '/t/nope/operations')] });

  test('every page hydrates under the CSP, with no inline script', async ({ page }) => {
    await signIn(page, USERS.acmeOperator.email);
    const run = await page
      .getByTestId('runs-table')
      .getByTestId('run-link')
      .first()
      .getAttribute('href');
    for (const path of [
      SIGN_IN,
      '/',
      hubPath('acme'),
      run!,
      '/t/acme/findings',
      '/t/acme/notifications',
      '/t/nope/operations',
    ]) {
      const response = await gotoHydrated(page, path);
      const headers = response!.headers();
      expect(headers['content-security-policy'], path).toContain(CSP);
      expect(headers['content-security-policy'], path).toContain("frame-ancestors 'none'");
      expect(headers['x-content-type-options'], path).toBe('nosniff');
      expect(headers['referrer-policy'], path).toBe('same-origin');
      // Every script is a file or non-executable data.
      const inline = await page.locator('script:not([src]):not([type="application/json"])').count();
      expect(inline, `inline scripts on ${path}`).toBe(0);
    }
  });
});

test('a CSP violation fails the test that caused it', async ({ page, consoleProblems }) => {
  await gotoHydrated(page, SIGN_IN);
  // Something the policy refuses: an image from elsewhere.
  await page.evaluate(() => {
    const image = document.createElement('img');
    image.src = 'https://example.invalid/tracker.png';
    document.body.append(image);
  });
  await expect
    .poll(() => consoleProblems.filter((p) => p.startsWith('CSP')).length)
    .toBeGreaterThan(0);
  expect(consoleProblems.join('\n')).toContain('img-src');
  // The guard did its job; this test's own violation is no failure.
  consoleProblems.length = 0;
});

test('after signing in, `next` never leads off the site', async ({ page }) => {
  for (const next of ['/\t/evil.example', '//evil.example', '/\\evil.example', 'https://evil.example/']) {
    await signIn(page, USERS.acmeOperator.email, undefined, next);
    // Signed in, on this site's start page (which sends this operator to
    // the hub), whatever `next` said.
    await expect(page, `next=${JSON.stringify(next)}`).toHaveURL(hubPath('acme'));
    await forgetSession(page);
  }
});
