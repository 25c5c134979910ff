import { test, expect, USERS, hubPath, signIn, gotoHydrated } from './support';
import type { BrowserContext, Page } from '@playwright/test';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { PAUSE_FILE, STALL_AFTER_SECS } from '../engine-hooks';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Journeys on a run that is still running. start-server.sh imports a large
// scope (FLEET) whose drift takes seconds, long enough to act on it. No page
// is reloaded here: everything a page learns after loading comes over its
// live stream (a marker set on `window` would vanish on a reload).

const ACME_HUB = hubPath('acme');
const FLEET = 'servers/fleet';
const RUN_URL = /\/t\/acme\/operations\/[0-9a-f-]{36}(\?.*)?$/;

/** Marks the document: `expectNoReload` fails if it was replaced since. */
async function markDocument(page: Page) {
  await page.evaluate(() => ((window as unknown as { __live: boolean }).__live = true));
}

async function expectNoReload(page: Page) {
  const marked = await page.evaluate(() => (window as unknown as { __live?: boolean }).__live);
  expect(marked, 'the page was not reloaded').toBe(true);
}

/** Opens the drift form on the (hydrated) hub and picks `scope`. */
async function prepareDrift(page: Page, scope: string) {
  await page.getByTestId('start-forms').locator('summary', { hasText: 'Generate drift' }).click();
  const form = page.getByTestId('start-drift-form');
  await form.locator('select[name="scope_key"]').selectOption(scope);
  return form.locator('button[type="submit"]');
}

const progressOf = (page: Page) => page.locator('.card').getByTestId('progress-text');
const statusField = (page: Page) => page.locator('dt:text-is("Status") + dd');

/** Runs `journey` while the engine holds every run before its next batch
 * (an abort ends the hold), and lets them go again however it ends. */
async function whilePaused(journey: () => Promise<void>) {
  writeFileSync(PAUSE_FILE, '');
  try {
    await journey();
  } finally {
    rmSync(PAUSE_FILE, { force: true });
  }
}

/** Aborts the run the page shows and waits until the page says so, live. */
async function abortHere(page: Page) {
  await page.getByTestId('abort-form').locator('button').click();
  await expect(statusField(page)).toContainText('aborted', { timeout: 15_000 });
}

test('a duplicate start joins the run already going', async ({ page, newContext }) => {
  await signIn(page, USERS.acmeOperator.email);
  const other = await (await newContext()).newPage();
  await signIn(other, USERS.multi.email, undefined, ACME_HUB);
  const otherSubmit = await prepareDrift(other, FLEET);

  // The run is held before its first batch until it is aborted: it is
  // still active when the second start comes, however fast the engine.
  await whilePaused(async () => {
    await (await prepareDrift(page, FLEET)).click();
    await page.waitForURL(RUN_URL);
    const runPath = new URL(page.url()).pathname;

    await otherSubmit.click();
    await other.waitForURL((url) => url.pathname === runPath);
    await expect(other.getByTestId('joined-notice')).toBeVisible();
    // The first starter's page hears of the join on its next reload; the run
    // page lists who joined.
    await gotoHydrated(page, runPath);
    await expect(page.getByTestId('joins')).toContainText(USERS.multi.name);
    await abortHere(page);
  });
});

test('abort a running run: progress moves live, then the run ends aborted', async ({ page }) => {
  await signIn(page, USERS.acmeOperator.email);
  await (await prepareDrift(page, FLEET)).click();
  await page.waitForURL(RUN_URL);
  await gotoHydrated(page, new URL(page.url()).pathname);
  await markDocument(page);

  // Two different progress readings while it runs, without a reload.
  const seen = new Set<string>();
  await expect
    .poll(
      async () => {
        seen.add((await progressOf(page).textContent()) ?? '');
        return seen.size;
      },
      { message: 'progress moves', intervals: [100] },
    )
    .toBeGreaterThanOrEqual(2);
  await expect(statusField(page)).toContainText('running');
  // While it runs, the time it has left at its recent rate.
  await expect(page.getByTestId('run-eta')).toContainText(/^about \d/);

  await abortHere(page);
  await expect(page.getByTestId('run-eta')).toHaveCount(0);
  const [processed, total] = ((await progressOf(page).textContent()) ?? '').split(' / ').map(Number);
  expect(processed, 'the work done before the abort stays counted').toBeGreaterThan(0);
  expect(processed).toBeLessThan(total);
  await expectNoReload(page);
});

/** Signs the operator in on the hub, marked to prove it is never reloaded. */
async function watchHub(page: Page) {
  await signIn(page, USERS.acmeOperator.email);
  await gotoHydrated(page, ACME_HUB);
  await markDocument(page);
}

/** Another operator, in a browser of their own, starts a drift; its run id. */
async function startElsewhere(newContext: () => Promise<BrowserContext>, scope: string) {
  const other = await (await newContext()).newPage();
  await signIn(other, USERS.multi.email, undefined, ACME_HUB);
  await (await prepareDrift(other, scope)).click();
  await other.waitForURL(RUN_URL);
  return new URL(other.url()).pathname.split('/').pop()!;
}

test('the hub updates rows in place and announces new runs without moving rows', async ({
  page,
  newContext,
}) => {
  await watchHub(page);
  const rows = page.getByTestId('run-row');
  const firstBefore = await rows.first().getAttribute('data-run-id');
  const allCount = page.locator('nav.tabs a.tab', { hasText: /^All\s/ }).locator('.count');
  const allBefore = Number(await allCount.textContent());

  // Someone else starts a run: the hub announces it and keeps its rows.
  const started = await startElsewhere(newContext, 'apps/managed');

  const banner = page.getByTestId('new-runs');
  await expect(banner).toHaveText(/1 new run/);
  expect(await rows.first().getAttribute('data-run-id')).toBe(firstBefore);
  // The tabs count it too.
  await expect(allCount).toHaveText(String(allBefore + 1));
  await expectNoReload(page);

  await banner.click();
  await expect(rows.first()).toHaveAttribute('data-run-id', started);
  // The new run finishes; its row says so in place.
  await expect(rows.first()).toHaveAttribute('data-status', /^completed/, { timeout: 15_000 });
  await expectNoReload(page);
});

/** Tells the page its tab was hidden or shown again, as the browser does. */
async function setTabVisible(page: Page, visible: boolean) {
  await page.evaluate((visible) => {
    Object.defineProperty(document, 'visibilityState', {
      configurable: true,
      get: () => (visible ? 'visible' : 'hidden'),
    });
    document.dispatchEvent(new Event('visibilitychange'));
  }, visible);
}

test('a hidden tab closes its stream and catches up when shown again', async ({
  page,
  newContext,
}) => {
  await watchHub(page);
  await setTabVisible(page, false);
  await startElsewhere(newContext, 'apps/managed');
  // Hidden: nothing arrives (a visible page hears this within milliseconds;
  // absence can only be shown by waiting).
  await page.waitForTimeout(1_500);
  await expect(page.getByTestId('new-runs')).toHaveCount(0);

  // Shown again: the stream reopens and the page catches up with what it
  // missed while hidden.
  await setTabVisible(page, true);
  await expect(page.getByTestId('new-runs')).toHaveText(/1 new run/);
  await expectNoReload(page);
});

/**
 * An opshub server of the spec's own (its own port and SQLite database, demo
 * data), which a test may restart; the suite's server stays untouched.
 */
class OwnServer {
  private child?: ChildProcess;

  private constructor(
    readonly baseURL: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(port: number): Promise<OwnServer> {
    const dir = mkdtempSync(path.join(tmpdir(), 'opshub-e2e-restart-'));
    const env = {
      ...process.env,
      OPSHUB_DATABASE_URL: `sqlite://${dir}/e2e.db`,
      OPSHUB_LISTEN: `127.0.0.1:${port}`,
    };
    for (const step of ['migrate', 'seed-demo']) {
      execFileSync(SERVER_BIN, [step], { cwd: REPO_ROOT, env, stdio: 'ignore' });
    }
    const server = new OwnServer(`http://127.0.0.1:${port}`, env);
    await server.serve();
    return server;
  }

  /** SIGTERM (a graceful shutdown), then the same server on the same database. */
  async restart() {
    await this.stop();
    await this.serve();
  }

  async stop() {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  private async serve() {
    // From the repository root: the server serves its assets from target/site.
    this.child = spawn(SERVER_BIN, ['serve'], { cwd: REPO_ROOT, env: this.env, stdio: 'ignore' });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const up = await fetch(`${this.baseURL}/healthz`).then((r) => r.ok, () => false);
      if (up) return;
      if (Date.now() > deadline) throw new Error(`${this.baseURL} did not come up`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const REPO_ROOT = path.resolve(__dirname, '../..');
// As start-server.sh: OPSHUB_BIN when the target dir moved.
const SERVER_BIN = path.resolve(REPO_ROOT, process.env.OPSHUB_BIN ?? 'target/release/opshub');

test.describe('a server restart', () => {
  const port = Number(process.env.OPSHUB_E2E_RESTART_PORT ?? 3919);
  let server: OwnServer | undefined;
  test.use({
    baseURL: `http://127.0.0.1:${port}`,
    // While the server is down the browser's reconnect attempts fail loudly.
    allowedConsoleErrors: [/\/api\/live\/acme\)$/],
  });
  test.beforeAll(async () => {
    server = await OwnServer.start(port);
  });
  test.afterAll(async () => {
    await server?.stop();
  });

  test('live streams resume after the server restarts', async ({ page, newContext }) => {
    await watchHub(page);
    await server!.restart();
    // The page reconnects by itself: a run started now reaches it live.
    await startElsewhere(newContext, 'apps/managed');
    await expect(page.getByTestId('new-runs')).toHaveText(/1 new run/, { timeout: 15_000 });
    await expectNoReload(page);
  });
});

test("watching a run brings its end to the watcher's bell", async ({ page, newContext }) => {
  // Another user, with nothing unread, will watch it. The feed is loaded
  // and hydrated before its button is looked for.
  const watcher = await (await newContext()).newPage();
  await signIn(watcher, USERS.multi.email);
  await gotoHydrated(watcher, '/t/acme/notifications');
  await expect(watcher.getByTestId('unread-total')).toBeVisible();
  const markAll = watcher.getByTestId('mark-all-read');
  if (await markAll.count()) {
    await markAll.click();
  }
  await expect(watcher.getByTestId('unread-total')).toHaveText('0 unread');
  await expect(watcher.getByTestId('bell-count')).toHaveText('0');

  await signIn(page, USERS.acmeOperator.email);
  // The run is held before its first batch until it is aborted (an abort
  // ends the hold): it cannot end by itself before it is watched, however
  // fast the engine. Watched and aborted within seconds, well before it
  // would count as stalled.
  await whilePaused(async () => {
    await (await prepareDrift(page, FLEET)).click();
    await page.waitForURL(RUN_URL);
    const runPath = new URL(page.url()).pathname;
    await Promise.all([gotoHydrated(page, runPath), gotoHydrated(watcher, runPath)]);
    await watcher.getByTestId('watch').click();
    await expect(watcher.getByTestId('watch-state')).toBeVisible();
    await markDocument(watcher);

    // The run ends (aborted by its starter): the watcher's bell hears it, live.
    await abortHere(page);
  });
  await expect(watcher.getByTestId('bell-count')).toHaveText('1', { timeout: 15_000 });
  await expectNoReload(watcher);
});

test('a stalled run gets its badge and notice, and loses the badge when it moves again', async ({
  page,
  newContext,
}) => {
  // The stall takes its threshold to come, on top of the journey.
  test.setTimeout(60_000 + STALL_AFTER_SECS * 1_000);
  await signIn(page, USERS.acmeOperator.email);
  // The engine holds every run between batches while the file exists.
  await whilePaused(async () => {
    await (await prepareDrift(page, FLEET)).click();
    await page.waitForURL(RUN_URL);
    const runPath = new URL(page.url()).pathname;
    const runId = runPath.split('/').pop()!;
    await gotoHydrated(page, runPath);
    await markDocument(page);
    await expect(page.getByTestId('stalled-badge')).toHaveCount(0);

    // Its progress stands still past the threshold: flagged, live.
    const stalledWithin = { timeout: (STALL_AFTER_SECS + 10) * 1_000 };
    await expect(page.getByTestId('stalled-badge')).toHaveText('Stalled', stalledWithin);
    await expect(page.getByTestId('stall-notice')).toContainText('no progress since');
    await expect(statusField(page)).toContainText('running');

    // The hub shows it on the run's row; the starter's feed has the notice.
    const other = await (await newContext()).newPage();
    await signIn(other, USERS.acmeOperator.email, undefined, ACME_HUB);
    const row = other.locator(`[data-testid="run-row"][data-run-id="${runId}"]`);
    await expect(row.getByTestId('stalled-badge')).toBeVisible();
    await gotoHydrated(other, '/t/acme/notifications?kind=stalled');
    const entry = other.locator(`[data-testid="feed-entry"][data-run-id="${runId}"]`);
    await expect(entry).toHaveCount(1);
    await expect(entry).toHaveAttribute('data-kind', 'run_stalled');
    await expect(entry).toContainText(/stalled.*no progress for/s);
  });

  // It moves again: the badge goes by itself, without a reload.
  await expect(page.getByTestId('stalled-badge')).toHaveCount(0, { timeout: 15_000 });
  await expect(page.getByTestId('stall-notice')).toHaveCount(0);
  await expect(progressOf(page)).not.toHaveText(/^0 \//);
  await abortHere(page);
  await expectNoReload(page);
});
