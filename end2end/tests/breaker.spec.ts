import { test, expect, waitForHydration, inviteAndJoin, callWithKey as call, ADMIN_STATE } from "./fixtures";

test.use({ storageState: ADMIN_STATE });

// An agent failing in a tight loop trips the runaway-agent breaker: its key is refused, its
// runtime paused; the dashboard says why and holds the owner's Resume until the cooldown ends;
// an admin resumes it at once and everything runs again.
test("a looping agent is paused by the breaker; the dashboard says why and an admin resumes it", async ({ page, browser, consoleErrors }) => {
  test.setTimeout(360_000);
  const name = `br${Date.now() % 100000}`;
  const them = await inviteAndJoin(page, browser, name, "breaker passphrase");

  // The admin tightens the error rule and counts personal keys, from the keyboard.
  await page.goto("/admin/breaker");
  await waitForHydration(page);
  const form = page.getByRole("form", { name: "Breaker rules" });
  const errors = form.getByLabel("Failed requests this many times");
  const personal = form.getByLabel("Count personal keys too", { exact: false });
  await expect(errors).not.toHaveValue("");
  const oldErrors = await errors.inputValue();
  await personal.check();
  await errors.fill("8");
  await errors.press("Enter");
  await expect(form.getByText("Saved.")).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/admin-breaker-rules.png", fullPage: true });

  try {
    await them.goto("/");
    await waitForHydration(them);
    const card = them.getByRole("region", { name: "Your runtime" });
    await card.getByRole("button", { name: "Start my runtime" }).click();
    await expect(card.locator('[data-runtime-state="Running"]')).toBeVisible({ timeout: 180_000 });

    await them.goto("/models");
    await waitForHydration(them);
    await them.getByLabel("Name", { exact: true }).fill("looping agent");
    await them.getByRole("button", { name: "Create key" }).click();
    const secret = await them.getByLabel("Your new API key").inputValue();

    // The agent asks for a model that is not there, again and again.
    const ask = { model: "no-such-model", messages: [{ role: "user", content: "try again" }] };
    for (let i = 0; i < 8; i++) {
      expect((await call(them, "/v1/chat/completions", secret, ask)).status).toBe(404);
    }
    const refused = await call(them, "/v1/chat/completions", secret, ask);
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("agent_paused");
    expect(refused.text).not.toContain(secret);

    await them.goto("/");
    await waitForHydration(them);
    const banner = them.locator('[data-breaker="tripped"]');
    await expect(banner).toBeVisible();
    await expect(banner).toContainText("8 of its requests failed within a minute");
    await expect(banner).toContainText("memory and workspace are kept");
    await expect(banner.getByRole("button", { name: "Resume my agent" })).toBeDisabled();
    await expect(card.locator('[data-runtime-state="Paused"]')).toBeVisible({ timeout: 15_000 });
    await them.screenshot({ path: "test-results/screenshots/dashboard-breaker-light.png", fullPage: true });
    await them.getByRole("button", { name: "Dark" }).click();
    await them.screenshot({ path: "test-results/screenshots/dashboard-breaker-dark.png", fullPage: true });
    await them.getByRole("button", { name: "System" }).click();

    // The admin sees the trip and resumes it now.
    await page.goto("/admin/breaker");
    await waitForHydration(page);
    const row = page.locator(`[data-trip="${name}"]`).first();
    await expect(row).toContainText("paused");
    await expect(row).toContainText("8 of its requests failed");
    await row.getByRole("button", { name: "Resume now" }).click();
    await expect(row).toContainText("resumed by");
    await page.screenshot({ path: "test-results/screenshots/admin-breaker-trips.png", fullPage: true });

    // The dashboard follows by itself; the key works again (the model is still not there).
    await expect(banner).toBeHidden({ timeout: 15_000 });
    await expect(card.locator('[data-runtime-state="Running"]')).toBeVisible({ timeout: 15_000 });
    expect((await call(them, "/v1/chat/completions", secret, ask)).status).toBe(404);
    expect(consoleErrors).toEqual([]);
  } finally {
    await page.goto("/admin/breaker");
    await waitForHydration(page);
    await expect(errors).toHaveValue("8");
    await errors.fill(oldErrors);
    await personal.uncheck();
    await form.getByRole("button", { name: "Save rules" }).click();
    await expect(form.getByText("Saved.")).toBeVisible();
  }
});
