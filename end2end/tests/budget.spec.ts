import { test, expect, waitForHydration, inviteAndJoin, ADMIN_STATE } from "./fixtures";

test.use({ storageState: ADMIN_STATE });

// One budget for model requests and runtime time: runtime time alone uses it up, the runtime is
// stopped (workspace kept) and a start refused; raised so that the spend is ~85%, the dashboard
// warns instead.
test("runtime time uses up a budget: the runtime stops and the dashboard says so; at 85% it warns", async ({ page, browser, consoleErrors }) => {
  test.setTimeout(360_000);
  const name = `bu${Date.now() % 100000}`;

  const them = await inviteAndJoin(page, browser, name, "budget passphrase");

  // The admin prices the default size at $360 an hour (10 cents a second)…
  await page.goto("/admin/models");
  await waitForHydration(page);
  const prices = page.getByRole("region", { name: "Runtime time prices" });
  const size = prices.locator("tr", { hasText: "default size" });
  const sizeName = (await size.getAttribute("data-class"))!;
  const oldPrice = (await size.locator("td").nth(3).innerText()).replace("$", "");
  const setPrice = async (price: string) => {
    if (!page.url().endsWith("/admin/models")) {
      await page.goto("/admin/models");
      await waitForHydration(page);
    }
    await size.getByRole("button", { name: "Edit" }).click();
    await expect(prices.getByRole("textbox", { name: "Size class" })).toHaveValue(sizeName);
    await prices.getByLabel("Price per hour ($)").fill(price);
    await prices.getByRole("button", { name: "Save size class" }).click();
    await expect(prices.getByText("Saved.")).toBeVisible();
  };
  await setPrice("360");
  await expect(size).toContainText("$360");
  await page.screenshot({ path: "test-results/screenshots/admin-compute-prices.png", fullPage: true });

  try {
    // …and gives the new user half a dollar a week, from the keyboard.
    await page.goto("/admin/limits");
    await waitForHydration(page);
    await page.locator(`[data-user="${name}"]`).getByRole("button", { name: "Edit" }).click();
    const limits = page.getByRole("form", { name: `Limits of ${name}` });
    await limits.getByLabel("Budget period").selectOption("week");
    await limits.getByLabel("Spending budget ($)").fill("0.5");
    await limits.getByLabel("Spending budget ($)").press("Enter");
    await expect(limits.getByText("Saved.")).toBeVisible();
    await expect(page.locator(`[data-user="${name}"]`)).toContainText("$0.50 per week");

    // The user starts their runtime; seconds after it runs, the budget is used up.
    await them.goto("/");
    await waitForHydration(them);
    const card = them.getByRole("region", { name: "Your runtime" });
    await card.getByRole("button", { name: "Start my runtime" }).click();
    await expect(card.locator('[data-runtime-state="Running"]')).toBeVisible({ timeout: 180_000 });
    const usedUp = them.locator('[data-budget="used-up"]');
    await expect(usedUp).toBeVisible({ timeout: 60_000 });
    await expect(usedUp).toContainText("Your budget is used up.");
    await expect(usedUp).toContainText("runtime time $");
    await expect(card.locator('[data-runtime-state="Stopped"]')).toBeVisible({ timeout: 60_000 });
    await expect(card.locator("[data-stop-reason]")).toContainText("your budget for this week is used up");
    await expect(card.locator("[data-stop-reason]")).toContainText("your workspace is kept");
    await them.screenshot({ path: "test-results/screenshots/dashboard-budget-used-up-light.png", fullPage: true });
    await them.getByRole("button", { name: "Dark" }).click();
    await them.screenshot({ path: "test-results/screenshots/dashboard-budget-used-up-dark.png", fullPage: true });
    await them.getByRole("button", { name: "System" }).click();

    // A start is refused in plain words.
    await card.getByRole("button", { name: "Start", exact: true }).click();
    await expect(card.getByRole("alert").filter({ hasText: "cannot start" })).toBeVisible();

    // The admin sees the spend, runtime time apart, and raises the budget so it is ~85% used.
    await setPrice(oldPrice);
    await page.goto("/admin/limits");
    await waitForHydration(page);
    const used = await page.locator(`[data-user="${name}"] [data-used]`).innerText();
    expect(used).toMatch(/^\$\d+\.\d\d \(\d+%\) · runtime time \$\d+\.\d\d/);
    const spent = Number(used.match(/^\$(\d+\.\d\d)/)![1]);
    expect(spent).toBeGreaterThanOrEqual(0.5);
    await page.screenshot({ path: "test-results/screenshots/admin-limits-budget.png", fullPage: true });

    // Usage shows runtime time beside model requests: per user on the page, per day in the CSV.
    await page.goto(`/admin/usage?user=${name}`);
    await waitForHydration(page);
    await expect(page.locator(`[data-compute="${name}"]`)).toBeVisible();
    await expect(page.locator("[data-total=compute]")).not.toHaveText("$0.00");
    await page.getByLabel("Chart").selectOption("cost");
    await expect(page.locator("figure[data-chart=cost] svg rect").first()).toBeVisible();
    await page.screenshot({ path: "test-results/screenshots/admin-usage-spending.png", fullPage: true });
    const today = new Date().toISOString().slice(0, 10);
    const csv = await page.evaluate(async (url) => (await fetch(url)).text(), `/admin/usage.csv?from=${today}&to=${today}&user=${name}`);
    expect(csv.split("\n")[0]).toMatch(/^kind,time,user,model,.*,run_seconds$/);
    expect(csv.split("\n").find((line) => line.startsWith("runtime,"))).toContain(`,${name},${sizeName},`);

    await page.goto("/admin/limits");
    await waitForHydration(page);
    await page.locator(`[data-user="${name}"]`).getByRole("button", { name: "Edit" }).click();
    const raise = page.getByRole("form", { name: `Limits of ${name}` });
    await raise.getByLabel("Spending budget ($)").fill((spent / 0.85).toFixed(2));
    await raise.getByRole("button", { name: "Save limits" }).click();
    await expect(raise.getByText("Saved.")).toBeVisible();

    // The dashboard warns within its ten-second refresh.
    const warning = them.locator('[data-budget="warning"]');
    await expect(warning).toBeVisible({ timeout: 20_000 });
    await expect(warning).toContainText(/You have used 8\d% of your budget\./);
    await expect(usedUp).toHaveCount(0);
    await them.screenshot({ path: "test-results/screenshots/dashboard-budget-warning.png", fullPage: true });
  } finally {
    await page.goto("/admin/models");
    await waitForHydration(page);
    if (!(await size.locator("td").nth(3).innerText()).endsWith(`$${oldPrice}`)) await setPrice(oldPrice);
  }
  expect(consoleErrors).toEqual([]);
});
