import { defineConfig } from '@playwright/test';

// Tests run against the release build: `make build` first.
// The browser is Debian's Chromium (apt package `chromium`); Playwright's own
// browser download (`npx playwright install`) cannot work on our machines.
const baseURL = process.env.OPSHUB_E2E_BASE_URL ?? 'http://127.0.0.1:3000';
const port = new URL(baseURL).port || '80';

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
    env: { OPSHUB_E2E_PORT: port },
    reuseExistingServer: false,
    timeout: 120_000,
    // SIGTERM lets the server shut down gracefully instead of being SIGKILLed.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 5_000 },
    stdout: 'pipe',
    stderr: 'pipe',
  },
});
