import { test, expect, waitForHydration, signIn, ADMIN_STATE } from "./fixtures";

test.use({ storageState: ADMIN_STATE });

test("an invited person joins, is disabled, and the audit log tells the story", async ({ page, browser, consoleErrors }) => {
  const name = `pat${Date.now() % 100000}`;

  // The admin invites someone.
  await page.goto("/admin/invitations/new");
  await waitForHydration(page);
  await page.getByLabel("Username (optional)").fill(name);
  await page.getByLabel("Valid for (hours)").fill("24");
  await page.getByRole("button", { name: "Create invitation" }).click();
  const linkBox = page.locator("[data-invitation-link]");
  await expect(linkBox).toBeVisible();
  const link = (await linkBox.getAttribute("data-invitation-link"))!;
  expect(link).toMatch(/\/invite\/[A-Za-z0-9_-]{43}$/);

  // In another browser, the invitee accepts it and lands on their home page.
  const theirs = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const them = await theirs.newPage();
  await them.goto(link);
  await waitForHydration(them);
  await expect(them.getByText("invited you as")).toContainText("admin invited you as User");
  await expect(them.getByLabel("Username")).toHaveValue(name);
  await them.getByLabel("Password", { exact: true }).fill("pat's own passphrase");
  await them.getByLabel("Password again").fill("pat's own passphrase");
  await them.getByRole("button", { name: "Create my account" }).click();
  await them.waitForURL((url) => url.pathname === "/");
  await expect(them.getByRole("heading", { name: `Welcome, ${name}` })).toBeVisible();
  // Their account page offers to sign out everywhere and, with it, to revoke their API keys.
  await them.goto("/account");
  await waitForHydration(them);
  const revoke = them.getByLabel("Also revoke my personal API keys");
  await expect(revoke).not.toBeChecked();
  await revoke.focus();
  await them.keyboard.press("Space");
  await expect(revoke).toBeChecked();
  await expect(them.getByText("also restarts your workspace if it is running")).toBeVisible();
  await them.screenshot({ path: "test-results/screenshots/account.png", fullPage: true });
  await them.emulateMedia({ colorScheme: "dark" });
  await them.screenshot({ path: "test-results/screenshots/account-dark.png", fullPage: true });
  // Not an admin: no administration link, and the admin pages answer 403.
  await expect(them.getByRole("link", { name: "Administration" })).toHaveCount(0);
  const forbidden = await them.goto("/admin/users");
  expect(forbidden?.status()).toBe(403);
  await expect(them.getByRole("heading", { name: "You do not have access to this page" })).toBeVisible();

  // The same link does not work twice.
  const again = await (await browser.newContext({ storageState: { cookies: [], origins: [] } })).newPage();
  await again.goto(link);
  await expect(again.getByRole("alert")).toHaveText("This invitation has already been used.");

  // The admin disables the account.
  await page.goto("/admin/users");
  await waitForHydration(page);
  await page.getByLabel("Search").fill(name);
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name }).click();
  await waitForHydration(page);
  await expect(page.getByLabel("When resetting the password, also revoke their personal API keys")).not.toBeChecked();
  await page.screenshot({ path: "test-results/screenshots/admin-user.png", fullPage: true });
  await page.getByRole("button", { name: "Disable account" }).click();
  await page.getByRole("button", { name: "Yes, disable and sign out" }).click();
  await expect(page.getByText("Disabled", { exact: true }).first()).toBeVisible();

  // Their next page load shows the disabled page; the one after, the sign-in page.
  await them.goto("/");
  await expect(them).toHaveURL(/\/disabled$/);
  await expect(them.getByRole("heading", { name: "Your account has been disabled" })).toBeVisible();
  await them.goto("/");
  await expect(them).toHaveURL(/\/login/);

  // Signing in again is refused with the same words, only after the right password.
  await signIn(them, name, "pat's own passphrase");
  await expect(them.getByRole("alert")).toHaveText("This account is disabled. Ask an administrator to enable it.");

  // The audit log shows what happened.
  await page.goto(`/admin/audit?action=&person=${name}`);
  for (const action of ["invitation.accepted", "user.created", "user.disabled", "login.denied"]) {
    await expect(page.locator(`tr[data-action="${action}"]`).first()).toBeVisible();
  }
  await expect(page.locator('tr[data-action="invitation.created"]')).toHaveCount(0); // about the invitation, not the person
  await page.goto("/admin/audit?action=invitation&person=");
  await expect(page.locator('tr[data-action="invitation.created"]').first()).toBeVisible();

  expect(consoleErrors.filter((e) => !/status of 40[13]/.test(e))).toEqual([]);
  await theirs.close();
});
