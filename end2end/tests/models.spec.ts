import { test, expect, waitForHydration, inviteAndJoin, callWithKey as call, ADMIN_STATE } from "./fixtures";

test.use({ storageState: ADMIN_STATE });

// LiteLLM started by scripts/test.sh with deploy/litellm/config.yaml (its `mock` model answers
// without any provider).
const LITELLM_URL = process.env.LITELLM_URL;
const LITELLM_KEY = process.env.LITELLM_KEY;

test("an admin registers LiteLLM; a user makes a key, calls the gateway through Traefik and sees the usage", async ({ page, browser, consoleErrors }) => {
  test.setTimeout(120_000);
  if (!LITELLM_URL || !LITELLM_KEY) throw new Error("LITELLM_URL and LITELLM_KEY must be set (scripts/test.sh starts LiteLLM)");
  const suffix = Date.now() % 100000;
  const model = `mock-${suffix}`;
  const credential = `litellm ${suffix}`;

  // The admin adds LiteLLM's key; it is never shown again, and "Verify" lists LiteLLM's models.
  await page.goto("/admin/models");
  await waitForHydration(page);
  const keyForm = page.getByRole("form", { name: "Add a provider key" });
  await keyForm.getByLabel("Name").fill(credential);
  await keyForm.getByLabel("API key").fill(LITELLM_KEY);
  await keyForm.getByLabel("Check against (optional)").fill(LITELLM_URL);
  await keyForm.getByRole("button", { name: "Add key" }).click();
  const row = page.locator(`[data-credential="${credential}"]`);
  await expect(row).toBeVisible();
  await row.getByRole("button", { name: "Verify" }).click();
  await expect(row.getByText("works")).toBeVisible({ timeout: 30_000 });
  expect(await page.content()).not.toContain(LITELLM_KEY);

  // …and a model that uses it, with a price.
  await page.getByRole("button", { name: "Add a model" }).click();
  const editor = page.getByRole("form", { name: "Add a model" });
  await editor.getByLabel("Name users ask for").fill(model);
  await editor.getByLabel("Upstream kind").selectOption("litellm");
  await editor.getByLabel("Upstream base URL").fill(LITELLM_URL);
  await editor.getByLabel("Model name at the upstream").fill("mock");
  const option = editor.getByLabel("Provider key").locator("option", { hasText: credential });
  await editor.getByLabel("Provider key").selectOption((await option.getAttribute("value"))!);
  await editor.getByLabel("Price per 1M input tokens ($)").fill("3");
  await editor.getByLabel("Price per 1M output tokens ($)").fill("15");
  await editor.getByRole("button", { name: "Save model" }).click();
  await expect(editor.getByText("Saved.")).toBeVisible();
  await expect(page.locator(`[data-model="${model}"]`)).toContainText("LiteLLM proxy");
  await page.screenshot({ path: "test-results/screenshots/admin-models.png", fullPage: true });

  // A new user joins.
  const name = `mu${suffix}`;
  const them = await inviteAndJoin(page, browser, name, "models passphrase");

  // They see the model and make a key, shown once.
  await them.goto("/models");
  await waitForHydration(them);
  await expect(them.locator(`[data-model="${model}"]`)).toContainText("$3 / $15");
  await them.getByLabel("Name", { exact: true }).fill("e2e script");
  await them.getByRole("button", { name: "Create key" }).click();
  const secret = await them.getByLabel("Your new API key").inputValue();
  expect(secret).toMatch(/^clk_[A-Za-z0-9_-]{43}$/);
  await expect(them.locator('[data-key="e2e script"]')).toContainText("active");
  await them.screenshot({ path: "test-results/screenshots/models-keys.png", fullPage: true });

  // The key works with any OpenAI client, through the entry proxy.
  const listed = JSON.parse((await call(them, "/v1/models", secret)).text);
  expect(listed.data.map((m: { id: string }) => m.id)).toContain(model);
  const hi = { model, messages: [{ role: "user", content: "Hi" }] };
  const answer = await call(them, "/v1/chat/completions", secret, hi);
  expect(answer.status).toBe(200);
  expect(JSON.parse(answer.text).choices[0].message.content).toBe("Hello from LiteLLM's mock model.");
  const streamed = await call(them, "/v1/chat/completions", secret, { ...hi, stream: true });
  expect(streamed.status).toBe(200);
  expect(streamed.type).toContain("text/event-stream");
  expect(streamed.text).toContain("data: [DONE]");
  const denied = await call(them, "/v1/chat/completions", "clk_wrong", hi);
  expect(denied.status).toBe(401);
  expect(JSON.parse(denied.text).error.code).toBe("invalid_api_key");

  // Their usage page draws the day's bar for the model (the log is written within a moment).
  await expect(async () => {
    await them.goto("/usage");
    await expect(them.locator(`[data-row="${model}"]`)).toContainText("2", { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await waitForHydration(them);
  await expect(them.locator("figure[data-chart=tokens] svg rect").first()).toBeVisible();
  await them.screenshot({ path: "test-results/screenshots/usage.png", fullPage: true });

  // The admin sees it per user, and the CSV has both requests.
  await page.goto(`/admin/usage?user=${name}`);
  await waitForHydration(page);
  await expect(page.locator(`[data-row="${name}"]`)).toBeVisible();
  await expect(page.locator("[data-total=requests]")).toHaveText("2");
  await page.screenshot({ path: "test-results/screenshots/admin-usage.png", fullPage: true });
  const today = new Date().toISOString().slice(0, 10);
  const csv = await call(page, `/admin/usage.csv?from=${today}&to=${today}&user=${name}`, "");
  expect(csv.type).toContain("text/csv");
  const lines = csv.text.trim().split("\n");
  expect(lines).toHaveLength(3);
  expect(lines[1]).toContain(`${name},${model},chat`);

  // A limit of one request per minute: the next call is refused with 429.
  await page.goto("/admin/limits");
  await waitForHydration(page);
  await page.locator(`[data-user="${name}"]`).getByRole("button", { name: "Edit" }).click();
  const limits = page.getByRole("form", { name: `Limits of ${name}` });
  await limits.getByLabel("Requests per minute").fill("1");
  await limits.getByRole("button", { name: "Save limits" }).click();
  await expect(limits.getByText("Saved.")).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/admin-limits.png", fullPage: true });
  const first = await call(them, "/v1/chat/completions", secret, hi);
  const second = await call(them, "/v1/chat/completions", secret, hi);
  expect([first.status, second.status]).toContain(429);

  // Revoked, the key stops working.
  await them.goto("/models");
  await waitForHydration(them);
  await them.locator('[data-key="e2e script"]').getByRole("button", { name: "Revoke" }).click();
  await them.getByRole("button", { name: "Revoke for good" }).click();
  await expect(them.locator('[data-key="e2e script"]')).toContainText("revoked");
  const after = await call(them, "/v1/models", secret);
  expect(after.status).toBe(401);
  expect(consoleErrors).toEqual([]);
});

test("the model pages work in dark mode and by keyboard", async ({ page }) => {
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto("/models");
  await waitForHydration(page);
  await page.getByLabel("Name", { exact: true }).focus();
  await page.keyboard.type("keyboard key");
  await page.keyboard.press("Enter");
  await expect(page.getByLabel("Your new API key")).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/models-dark.png", fullPage: true });
  await page.goto("/admin/usage");
  await waitForHydration(page);
  await page.screenshot({ path: "test-results/screenshots/admin-usage-dark.png", fullPage: true });
});
