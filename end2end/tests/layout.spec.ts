import { test, expect, USERS, hubPath, signIn, gotoHydrated, firstRunHref } from './support';
import type { Page } from '@playwright/test';

// Every page reads on a phone: nothing wider than the screen, so nothing
// needs sideways scrolling (tables fold into cards below 760 px).

const PHONE = { width: 375, height: 812 };

async function expectNoSidewaysScroll(page: Page, what: string) {
  const { overflow, culprits } = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const culprits = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .slice(0, 5)
      .map((el) => `<${el.tagName.toLowerCase()} class="${el.className}">`);
    return { overflow: document.documentElement.scrollWidth - width, culprits };
  });
  expect(overflow, `${what} is wider than a phone by ${overflow}px: ${culprits.join(' ')}`)
    .toBeLessThanOrEqual(0);
}

test('the hub, a run, findings and notifications fit a phone', async ({ page }) => {
  await page.setViewportSize(PHONE);
  await signIn(page, USERS.acmeOperator.email);
  const hub = hubPath('acme');
  await gotoHydrated(page, hub);
  await expectNoSidewaysScroll(page, 'the hub');
  // Open menus and forms must fit too.
  await page.getByTestId('start-forms').locator('summary', { hasText: 'Add policies' }).click();
  await expectNoSidewaysScroll(page, 'the hub with the start form open');
  await page.getByTestId('bell').click();
  await expect(page.getByTestId('all-notifications')).toBeVisible();
  await expectNoSidewaysScroll(page, 'the hub with the bell menu open');

  await gotoHydrated(page, await firstRunHref(page));
  await expectNoSidewaysScroll(page, 'a run');
  await gotoHydrated(page, `${hub}?bucket=partially_succeeded`);
  await gotoHydrated(page, await firstRunHref(page));
  await expectNoSidewaysScroll(page, 'a run with failures');
  await gotoHydrated(page, '/t/acme/findings');
  await expectNoSidewaysScroll(page, 'findings');
  await gotoHydrated(page, '/t/acme/notifications');
  await expectNoSidewaysScroll(page, 'notifications');
});
