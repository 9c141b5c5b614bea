import { test, expect, waitForHydration, ADMIN_STATE } from "./fixtures";

test.use({ storageState: ADMIN_STATE });

test("a new user opens their workspace: it starts, then the OpenClaw UI opens as them behind Traefik", async ({ page, browser }) => {
  test.setTimeout(300_000);
  const name = `ws${Date.now() % 100000}`;

  // The admin invites someone; they join in their own browser.
  await page.goto("/admin/invitations/new");
  await waitForHydration(page);
  await page.getByLabel("Username (optional)").fill(name);
  await page.getByRole("button", { name: "Create invitation" }).click();
  const link = (await page.locator("[data-invitation-link]").getAttribute("data-invitation-link"))!;
  const theirs = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const them = await theirs.newPage();
  const errors: string[] = [];
  them.on("pageerror", (err) => errors.push(String(err)));
  await them.goto(link);
  await waitForHydration(them);
  await them.getByLabel("Password", { exact: true }).fill("their own passphrase");
  await them.getByLabel("Password again").fill("their own passphrase");
  await them.getByRole("button", { name: "Create my account" }).click();
  await them.waitForURL((url) => url.pathname === "/");

  // No runtime yet: the workspace entry page starts one and shows the real stages.
  await them.goto("/workspace");
  await waitForHydration(them);
  await expect(them.getByRole("heading", { name: "Opening your workspace" })).toBeVisible();
  await expect(them.locator('[data-stage="config_rendered"][data-done="true"]')).toBeVisible({ timeout: 60_000 });
  await them.screenshot({ path: "test-results/screenshots/workspace-entry.png", fullPage: true });

  // Healthy and routed: the browser lands on the user's own workspace host.
  const host = `${name}.clawloops.localhost`;
  await them.waitForURL((url) => url.hostname === host, { timeout: 240_000 });
  await expect(them).toHaveTitle(/OpenClaw/i, { timeout: 30_000 });
  // The Control UI connected as this user (OpenClaw believed the identity Traefik passed).
  await expect(them.getByText(name, { exact: true }).first()).toBeVisible({ timeout: 30_000 });
  await them.screenshot({ path: "test-results/screenshots/workspace-openclaw.png", fullPage: true });

  // Back on the dashboard, "Open workspace" goes straight there now.
  const base = new URL(page.url());
  await them.goto(`${base.origin}/`);
  await waitForHydration(them);
  const card = them.getByRole("region", { name: "Your runtime" });
  await expect(card.locator('[data-runtime-state="Running"]')).toBeVisible();
  await expect(card.locator("[data-planned-stop=idle]")).toContainText("if the workspace stays unused");
  await them.screenshot({ path: "test-results/screenshots/workspace-dashboard.png", fullPage: true });
  await card.getByRole("link", { name: "Open workspace" }).click();
  await them.waitForURL((url) => url.hostname === host, { timeout: 30_000 });

  // Someone else's browser (the admin's) is refused on this host.
  const refused = await page.goto(`http://${host}:${base.port}/`);
  expect(refused?.status()).toBe(403);
  await expect(page.getByText("This workspace belongs to someone else.")).toBeVisible();

  // Stop it from the dashboard: the host stops routing.
  await them.goto(`${base.origin}/`);
  await waitForHydration(them);
  await card.getByRole("button", { name: "Stop" }).click();
  await expect(card.locator('[data-runtime-state="Stopped"]')).toBeVisible({ timeout: 60_000 });
  expect(errors).toEqual([]);
  await theirs.close();
});
