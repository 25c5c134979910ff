import AxeBuilder from '@axe-core/playwright';
import {
  test,
  expect,
  USERS,
  hubPath,
  signIn,
  gotoHydrated,
  firstRunHref,
  allowStatus,
  forgetSession,
} from './support';
import type { Page } from '@playwright/test';

// An accessibility audit of every page with axe-core (WCAG 2.x A and AA
// rules), in light and dark mode, with open menus and forms included. Any
// violation fails, with what and where.

/** A demo admin of acme (see `opshub seed-demo`). */
const ACME_ADMIN = 'admin@acme.example';
const MISSING_RUN = '/t/acme/operations/00000000-0000-0000-0000-000000000000';

async function expectAccessible(page: Page, what: string) {
  const { violations } = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze();
  const found = violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
  expect(found, `${what}: accessibility violations`).toEqual([]);
}

for (const colorScheme of ['light', 'dark'] as const) {
  test.describe(`in ${colorScheme} mode`, () => {
    test.use({ colorScheme, allowedConsoleErrors: [allowStatus(404, MISSING_RUN)] });

    test('every page passes an accessibility audit', async ({ page }) => {
      // Eight audits of a few seconds each.
      test.setTimeout(120_000);
      await gotoHydrated(page, '/sign-in');
      await expectAccessible(page, 'the sign-in page');

      await signIn(page, USERS.multi.email);
      await gotoHydrated(page, '/');
      await expectAccessible(page, 'the tenant picker');

      const hub = hubPath('acme');
      await gotoHydrated(page, hub);
      await expectAccessible(page, 'the hub');
      await page.getByTestId('start-forms').locator('summary', { hasText: 'Add policies' }).click();
      await page.getByTestId('start-forms').locator('summary', { hasText: 'Generate drift' }).click();
      await page.getByTestId('bell').click();
      await expect(page.getByTestId('all-notifications')).toBeVisible();
      await expectAccessible(page, 'the hub with its forms and the bell menu open');

      await gotoHydrated(page, `${hub}?bucket=partially_succeeded`);
      await gotoHydrated(page, await firstRunHref(page));
      await expectAccessible(page, 'a run with failures');
      await gotoHydrated(page, '/t/acme/findings');
      await expectAccessible(page, 'findings');
      await gotoHydrated(page, '/t/acme/notifications');
      await expectAccessible(page, 'notifications');
      await gotoHydrated(page, '/t/acme/insights?window=30d');
      for (const summary of await page.locator('.chart-figure summary').all()) {
        await summary.click();
      }
      await expectAccessible(page, 'insights, charts and their tables');
      await gotoHydrated(page, MISSING_RUN);
      await expectAccessible(page, 'a run that does not exist');

      // Members are for admins.
      await forgetSession(page);
      await signIn(page, ACME_ADMIN, undefined, '/t/acme/members');
      await expectAccessible(page, 'members');
    });
  });
}
