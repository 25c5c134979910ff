import { defineConfig } from '@playwright/test';
import { rmSync } from 'node:fs';
import { PAUSE_FILE, STALL_AFTER_SECS } from './engine-hooks';

// Tests run against the release build: `make build` first.
// The browser is Debian's Chromium (apt package `chromium`); Playwright's own
// browser download (`npx playwright install`) cannot work on our machines.
const baseURL = process.env.OPSHUB_E2E_BASE_URL ?? 'http://127.0.0.1:3000';
const port = new URL(baseURL).port || '80';
// A pause left behind by an interrupted run would hold every run.
rmSync(PAUSE_FILE, { force: true });

export default defineConfig({
  testDir: './tests',
  workers: 1,
  retries: 0,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  use: {
    baseURL,
    headless: true,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    },
  },
  webServer: {
    // Starts the server on a fresh SQLite database with demo data.
    command: 'bash ./start-server.sh',
    url: `${baseURL}/healthz`,
    env: {
      OPSHUB_E2E_PORT: port,
      OPSHUB_ENGINE_PAUSE_FILE: PAUSE_FILE,
      OPSHUB_STALL_FLOOR_SECS: String(STALL_AFTER_SECS),
      OPSHUB_STALL_CEILING_SECS: String(STALL_AFTER_SECS),
    },
    reuseExistingServer: false,
    timeout: 120_000,
    // SIGTERM lets the server shut down gracefully instead of being SIGKILLed.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 5_000 },
    stdout: 'pipe',
    stderr: 'pipe',
  },
});
