import { cpus } from "node:os";
import { test, expect, waitForHydration, ADMIN_STATE } from "./fixtures";

test.use({ storageState: ADMIN_STATE });

test("the runtime card starts a real OpenClaw runtime with live progress, then stops it", async ({ page, consoleErrors }) => {
  test.setTimeout(240_000);
  await page.goto("/");
  await waitForHydration(page);
  const card = page.getByRole("region", { name: "Your runtime" });
  await expect(card.getByText("Not created yet")).toBeVisible();

  await card.getByRole("button", { name: "Start my runtime" }).click();
  // Live progress: the first steps tick off while the gateway boots.
  await expect(card.locator('[data-stage="config_rendered"][data-done="true"]')).toBeVisible({ timeout: 30_000 });
  await expect(card.locator('[data-stage="started"][data-done="true"]')).toBeVisible({ timeout: 60_000 });
  await page.screenshot({ path: "test-results/screenshots/runtime-starting.png", fullPage: true });
  await expect(card.locator('[data-runtime-state="Running"]')).toBeVisible({ timeout: 180_000 });
  // The workspace is measured against its disk limit (every 5 s in this suite; 10 GiB default).
  await expect(card.locator("[data-disk-used]")).toContainText(/Workspace files: [\d.]+ (bytes|KiB|MiB) of 10 GiB/, { timeout: 20_000 });
  await expect(card.getByRole("progressbar", { name: "Workspace disk use" })).toHaveAttribute("aria-valuenow", "0");
  await page.screenshot({ path: "test-results/screenshots/runtime-running-light.png", fullPage: true });
  await page.getByRole("button", { name: "Dark" }).click();
  await page.screenshot({ path: "test-results/screenshots/runtime-running-dark.png", fullPage: true });
  await page.getByRole("button", { name: "System" }).click();

  // The admin runtimes page shows it, with its logs and memory.
  await page.goto("/admin/runtimes");
  await waitForHydration(page);
  // What runtimes may reach, and the host firewall holding them to it.
  const network = page.getByRole("region", { name: "Runtime network" });
  await expect(network).toContainText("Runtime firewall active");
  await expect(network).toContainText("Internet egress: none");
  await page.screenshot({ path: "test-results/screenshots/admin-runtimes.png", fullPage: true });
  const row = page.locator('tr[data-runtime-user="admin"]');
  await expect(row.getByText("Running")).toBeVisible();
  await expect(row.locator("[data-disk-used]")).toContainText(/disk [\d.]+ (bytes|KiB|MiB) of 10 GiB/);
  await row.getByRole("button", { name: "Details" }).click();
  const panel = page.getByRole("region", { name: "Runtime of admin" });
  await expect(page.getByLabel("Last 200 log lines")).toContainText("[gateway]", { timeout: 15_000 });
  await expect(page.getByText(/Memory: \d+ MiB of 2048 MiB/)).toBeVisible();

  // Per-user limits, from the keyboard: a bad value is explained, a good one saved.
  const limits = page.getByRole("form", { name: "Resource limits" });
  await expect(limits.getByLabel("Workspace disk (MiB)")).toHaveAttribute("placeholder", "default 10240");
  const memory = limits.getByLabel("Memory (MiB)");
  await memory.fill("10");
  await memory.press("Enter");
  await expect(limits.getByRole("alert")).toContainText("between 128 and 65536");
  // The list refreshes every 5 s; the open panel and what was typed survive it.
  await memory.fill("3072");
  await page.waitForTimeout(5_500);
  await expect(memory).toHaveValue("3072");
  await memory.press("Enter");
  await expect(limits.getByRole("status")).toContainText("Saved");
  await expect(panel.getByLabel("Last 200 log lines")).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/admin-runtimes.png", fullPage: true });

  await page.goto("/");
  await waitForHydration(page);
  await card.getByRole("button", { name: "Stop" }).click();
  await expect(card.locator('[data-runtime-state="Stopped"]')).toBeVisible({ timeout: 60_000 });
  await expect(card.getByRole("button", { name: "Start" })).toBeVisible();

  // A runtime that cannot start says why in plain words, with a code and a reference to quote;
  // the engine's own words go to the admin only. More CPUs than this host has: Docker refuses.
  expect(cpus().length, "this check needs a host with fewer than 64 CPUs").toBeLessThan(64);
  await page.goto("/admin/runtimes");
  await waitForHydration(page);
  await row.getByRole("button", { name: "Details" }).click();
  await limits.getByLabel("CPUs").fill("64");
  await limits.getByLabel("CPUs").press("Enter");
  await expect(limits.getByRole("status")).toContainText("Saved");
  await page.goto("/");
  await waitForHydration(page);
  await card.getByRole("button", { name: "Start" }).click();
  const problem = card.locator('[data-runtime-error="ENGINE_REFUSED"]');
  await expect(problem).toBeVisible({ timeout: 60_000 });
  await expect(problem).toContainText("The container engine refused to run the runtime.");
  await expect(problem).toContainText(/If it happens again, tell an administrator: reference [0-9a-f]{8}\./);
  await expect(card).not.toContainText(/CPU|Range of|daemon|Error response/i);
  await page.getByRole("button", { name: "Light" }).click();
  await page.screenshot({ path: "test-results/screenshots/runtime-problem-light.png", fullPage: true });
  await page.getByRole("button", { name: "Dark" }).click();
  await page.screenshot({ path: "test-results/screenshots/runtime-problem-dark.png", fullPage: true });
  await page.getByRole("button", { name: "System" }).click();
  // The admin sees the same code with the whole reference (the failed task's id), and what the
  // engine said. (The reconciler retries the start with a back-off, so the newest reference may
  // already be another attempt's than the one the card showed a moment ago.)
  await page.goto("/admin/runtimes");
  await waitForHydration(page);
  const seen = row.locator('[data-problem="ENGINE_REFUSED"]');
  // Between two attempts the row shows the last one's problem (the list refreshes every 5 s).
  await expect(seen).toContainText(/ENGINE_REFUSED · reference [0-9a-f]{8}-[0-9a-f]{4}-/, { timeout: 60_000 });
  await expect(seen).toContainText(/CPU/i, { timeout: 60_000 });
  // Back to the default for the tests after this one.
  await row.getByRole("button", { name: "Details" }).click();
  await limits.getByLabel("CPUs").fill("");
  await limits.getByLabel("CPUs").press("Enter");
  await expect(limits.getByRole("status")).toContainText("Saved");
  // The one deliberate refusal (memory 10 MiB) is the only failed request.
  expect(consoleErrors.filter((e) => !e.includes("422"))).toEqual([]);
});
