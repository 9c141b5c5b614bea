import { test as setup, expect } from "@playwright/test";
import { ADMIN_PASSWORD, ADMIN_STATE, oneTimeAdminPassword, signIn, waitForHydration } from "./fixtures";

setup("the first admin signs in with the one-time password and must choose a new one", async ({ page }) => {
  const oneTime = oneTimeAdminPassword();
  await signIn(page, "admin", oneTime);
  await page.waitForURL("**/account/password");
  await waitForHydration(page);
  await expect(page.getByText("Choose your own before you continue")).toBeVisible();

  // Anything else is out of reach until the password is changed.
  await page.goto("/admin");
  await expect(page).toHaveURL(/\/account\/password$/);
  await waitForHydration(page);

  // The policy is shown next to the field, and enforced.
  await expect(page.getByText("10 to 128 characters").first()).toBeVisible();
  await page.getByLabel("Current password").fill(oneTime);
  await page.getByLabel("New password", { exact: true }).fill("short");
  await page.getByLabel("New password again").fill("short");
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByText("Use at least 10 characters.")).toBeVisible();

  await page.getByLabel("New password", { exact: true }).fill(ADMIN_PASSWORD);
  await page.getByLabel("New password again").fill(ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Change password" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await page.context().storageState({ path: ADMIN_STATE });
});
