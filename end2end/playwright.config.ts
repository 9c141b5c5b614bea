import { defineConfig, devices } from "@playwright/test";

// The server is started by scripts/test.sh (or by you) and its address given in BASE_URL.
// Chromium comes from Debian: Playwright's own browser download does not work offline.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

function chromium() {
  return {
    ...devices["Desktop Chrome"],
    channel: undefined,
    launchOptions: {
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
      ],
    },
  };
}

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: process.env.CI ? 1 : 2,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: process.env.BASE_URL ?? "http://127.0.0.1:3000",
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    // Signs the first admin in once (one-time password from the server log) for the others.
    { name: "setup", testMatch: /.*\.setup\.ts/, use: { ...chromium() } },
    { name: "chromium", dependencies: ["setup"], use: { ...chromium() } },
  ],
});
