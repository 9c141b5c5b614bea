import { test, expect, waitForHydration, ADMIN_STATE } from "./fixtures";

test("a stranger is sent to sign in, by the server itself", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const response = await page.goto("/admin/users");
  expect(response?.status()).toBe(200);
  await expect(page).toHaveURL(/\/login\?next=\/admin\/users$/);
  await expect(page).toHaveTitle("Sign in · ClawLoops");
  await expect(page.getByRole("heading", { name: "Sign in to ClawLoops" })).toBeVisible();
  await context.close();
});

test("a wrong password gets one clear message, next to nothing else", async ({ page, consoleErrors }) => {
  await page.goto("/login");
  await waitForHydration(page);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password", { exact: true }).fill("not the password");
  await page.keyboard.press("Enter");
  await expect(page.getByRole("alert")).toHaveText("The username or password is not correct.");
  // The failed attempt answers 401, which Chromium logs; nothing else may fail.
  expect(consoleErrors.filter((e) => !e.includes("401"))).toEqual([]);
});

test.describe("as the admin", () => {
  test.use({ storageState: ADMIN_STATE });

  test("the status panel shows version, database state and build time", async ({ page, consoleErrors }) => {
    await page.goto("/admin");
    const control = page.getByRole("article", { name: "Control plane" });
    await expect(control).toContainText("Running");
    await expect(control).toContainText(/Version\s*\d+\.\d+\.\d+/);
    await expect(control).toContainText(/Built\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
    const database = page.getByRole("article", { name: "Database" });
    await expect(database).toContainText("Connected");
    await expect(database).toContainText(/PostgreSQL\s*\d+/);
    await expect(database).toContainText(/\d+ migrations?/);
    await expect(page.getByRole("article", { name: "Installation" })).toContainText(/[0-9a-f]{8}-[0-9a-f]{4}-/);
    // The replicas: here one, serving, leading the reconciler, the one that answered.
    const replicas = page.getByRole("region", { name: "Control-plane replicas" });
    await expect(replicas.locator("tbody tr")).toHaveCount(1);
    await expect(replicas).toContainText("Reconciler leader");
    await expect(replicas).toContainText("Serving");
    await expect(replicas).toContainText("(answered this page)");
    await waitForHydration(page);
    expect(consoleErrors).toEqual([]);
  });

  test("a sign-in link cannot send anyone to another site", async ({ page, context }) => {
    // Browsers drop tabs and line breaks from URLs and read `\` as `/`: each `next` below would
    // have become `//evil.example`. Requests to that host are stopped here, never sent.
    const offSite: string[] = [];
    // Matched by host: our own sign-in URL carries the name in its query.
    await context.route((url) => url.hostname === "evil.example", (route) => {
      offSite.push(route.request().url());
      return route.abort();
    });
    for (const next of ["/%09/evil.example", "/%0A/evil.example", "/%5Cevil.example", "//evil.example", "https://evil.example/"]) {
      await page.goto(`/login?next=${next}`);
      await waitForHydration(page);
      await expect(page).toHaveURL((url) => url.pathname === "/" && url.hostname !== "evil.example");
      expect(offSite, `next=${next}`).toEqual([]);
    }
  });

  test("the page hydrates: Refresh asks the server again", async ({ page, consoleErrors }) => {
    await page.goto("/admin");
    await waitForHydration(page);
    const checked = page.locator("[data-checked-at]");
    const before = await checked.getAttribute("data-checked-at");
    expect(before).toBeTruthy();
    const status = page.waitForResponse((r) => r.url().endsWith("/api/admin/status") && r.status() === 200);
    await page.getByRole("button", { name: "Refresh now" }).click();
    await status;
    await expect(checked).not.toHaveAttribute("data-checked-at", before!);
    expect(consoleErrors).toEqual([]);
  });
});

test("the theme choice applies at once and survives a reload", async ({ page, consoleErrors }) => {
  await page.emulateMedia({ colorScheme: "light" });
  await page.goto("/login");
  await waitForHydration(page);
  const html = page.locator("html");
  await expect(html).not.toHaveClass(/dark/);

  const dark = page.getByRole("button", { name: "Dark" });
  await dark.click();
  await expect(dark).toHaveAttribute("aria-pressed", "true");
  await expect(html).toHaveClass(/dark/);

  await page.reload();
  await expect(html).toHaveClass(/dark/); // applied before hydration, no flash
  await waitForHydration(page);
  await expect(page.getByRole("button", { name: "Dark" })).toHaveAttribute("aria-pressed", "true");

  await page.getByRole("button", { name: "Light" }).focus();
  await page.keyboard.press("Enter");
  await expect(html).not.toHaveClass(/dark/);
  expect(consoleErrors).toEqual([]);
});

test("an unknown address shows a styled 404 page with a way back", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await page.getByRole("link", { name: "Back to the overview" }).click();
  await expect(page).toHaveURL(/\/login/);
});

test.describe("the dashboard's files", () => {
  test.use({ storageState: ADMIN_STATE });

  test("arrive compressed, under 500 KB, cached for a year; pages are never cached; admin pages load their own part", async ({ page, consoleErrors }) => {
    const assets: { url: string; encoding?: string; cache?: string; bytes: number }[] = [];
    page.on("response", async (response) => {
      if (!new URL(response.url()).pathname.startsWith("/pkg/")) return;
      const headers = await response.allHeaders();
      const sizes = await response.request().sizes();
      assets.push({
        url: response.url(),
        encoding: headers["content-encoding"],
        cache: headers["cache-control"],
        bytes: sizes.responseBodySize,
      });
    });
    const document = await page.goto("/");
    expect(document?.headers()["cache-control"]).toBe("no-store");
    await waitForHydration(page);
    const firstLoad = assets.filter((a) => /\/pkg\/(clawloops|__wasm_split)\./.test(a.url));
    expect(firstLoad.map((a) => new URL(a.url).pathname.replace(/\.[A-Za-z0-9_-]{22}\./, ".<hash>.")).sort()).toEqual([
      "/pkg/__wasm_split.<hash>.js",
      "/pkg/clawloops.<hash>.css",
      "/pkg/clawloops.<hash>.js",
      "/pkg/clawloops.<hash>.wasm",
    ]);
    for (const asset of firstLoad) {
      expect(asset.encoding, asset.url).toMatch(/^(br|gzip)$/);
      expect(asset.cache, asset.url).toBe("public, max-age=31536000, immutable");
    }
    const total = firstLoad.reduce((sum, a) => sum + a.bytes, 0);
    expect(total).toBeLessThan(500_000);
    // No admin page's code came with the dashboard; opening one fetches its part.
    expect(assets.some((a) => a.url.includes("split___users_view"))).toBe(false);
    await page.getByRole("link", { name: "Administration" }).first().click();
    await page.getByRole("link", { name: "Users", exact: true }).first().click();
    await expect(page).toHaveURL(/\/admin\/users$/);
    await expect(page.getByRole("heading", { name: "Users" })).toBeVisible();
    await expect.poll(() => assets.some((a) => a.url.includes("split___users_view"))).toBe(true);
    expect(consoleErrors).toEqual([]);
  });
});
