import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test, expect, waitForHydration, ADMIN_STATE } from "./fixtures";
import type { Page } from "@playwright/test";

// Single sign-on through a real OpenID provider (end2end/oidc/provider.mjs, started by
// scripts/test.sh with end2end/oidc/people.json as "Corp ID").
const people = JSON.parse(readFileSync(join(__dirname, "../oidc/people.json"), "utf8"));
const SECRET: string = people.users[0].password;

/** From our sign-in page, through the provider's own form, as `login`. */
async function signInWithCorp(page: Page, login: string) {
  await page.goto("/login");
  await waitForHydration(page);
  await page.getByRole("link", { name: "Sign in with Corp ID" }).click();
  await expect(page.getByRole("heading", { name: "Test identity provider: sign in" })).toBeVisible();
  await page.getByLabel("Login").fill(login);
  await page.getByLabel("Secret").fill(SECRET);
  await page.getByRole("button", { name: "Continue" }).click();
}

/** Who the page's session is (asked by the page itself: Node's resolver knows no *.localhost). */
async function me(page: Page) {
  return page.evaluate(async () => (await fetch("/api/auth/me", { method: "POST" })).json());
}

test.describe("single sign-on", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("an admin-group member lands on the dashboard as a new admin", async ({ page, consoleErrors }) => {
    await signInWithCorp(page, "lena");
    await page.waitForURL((url) => url.pathname === "/");
    await expect(page.getByRole("heading", { name: "Welcome, lena" })).toBeVisible();
    expect(await me(page)).toMatchObject({ username: "lena", role: "admin", email: "lena@example.com" });
    await expect(page.locator("header").getByRole("link", { name: "Administration" })).toBeVisible();
    expect(consoleErrors).toEqual([]);
  });

  test("a first sign-in from an allowed domain makes a plain account", async ({ page }) => {
    await signInWithCorp(page, "omar");
    await page.waitForURL((url) => url.pathname === "/");
    await expect(page.getByRole("heading", { name: "Welcome, omar" })).toBeVisible();
    expect(await me(page)).toMatchObject({ username: "omar", role: "user" });
    await expect(page.getByRole("link", { name: "Administration" })).toHaveCount(0);
  });

  test("someone outside the allowed groups is refused in words", async ({ page }) => {
    await signInWithCorp(page, "vic");
    await page.waitForURL((url) => url.pathname === "/login" && url.searchParams.get("sso_error") === "not_allowed");
    await waitForHydration(page);
    await expect(page.getByRole("alert")).toContainText(
      "Your Corp ID account is not allowed here (its e-mail domain or groups). Ask your administrator for access.",
    );
    expect(await me(page)).toBeNull();
    await page.screenshot({ path: "test-results/screenshots/sso-refused.png", fullPage: true });
  });
});

test("the admin sees the provider (no secret), the password policy and a user's link", async ({ browser }) => {
  // Tess signs in with the provider once, in a browser of her own.
  const hers = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const tess = await hers.newPage();
  await signInWithCorp(tess, "tess");
  await tess.waitForURL((url) => url.pathname === "/");
  await hers.close();

  const context = await browser.newContext({ storageState: ADMIN_STATE });
  const page = await context.newPage();
  await page.goto("/admin/users?search=tess");
  await waitForHydration(page);
  await page.getByRole("link", { name: "tess", exact: true }).click();
  const links = page.getByRole("table", { name: "Linked identities" });
  await expect(links).toContainText("Corp ID");
  await expect(links).toContainText("tess@example.com");
  await expect(links).toContainText("(created)");
  await page.screenshot({ path: "test-results/screenshots/user-sso.png", fullPage: true });

  await page.goto("/admin/sign-in");
  await waitForHydration(page);
  const card = page.locator("[data-provider=corp]");
  await expect(card).toContainText("Corp ID");
  await expect(card).toContainText("set (never shown)");
  await expect(card).toContainText("/auth/sso/corp/callback");
  await expect(page.getByTestId("policy-status")).toContainText("everyone may sign in with a password");
  expect(await page.content()).not.toContain(process.env.SSO_CLIENT_SECRET ?? "no secret given");
  await page.screenshot({ path: "test-results/screenshots/admin-sign-in.png", fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.reload();
  await waitForHydration(page);
  await expect(page.locator("html.dark")).toHaveCount(1);
  await page.screenshot({ path: "test-results/screenshots/admin-sign-in-dark.png", fullPage: true });
  await context.close();
});

test("an address an account already uses is linked only with that account's password", async ({ browser }) => {
  const password = "nina's own passphrase";
  // The admin invites nina with her address; she joins with a password.
  const adminContext = await browser.newContext({ storageState: ADMIN_STATE });
  const admin = await adminContext.newPage();
  await admin.goto("/admin/invitations/new");
  await waitForHydration(admin);
  await admin.getByLabel("Username (optional)").fill("nina");
  await admin.getByLabel("E-mail (optional)").fill("nina@example.com");
  await admin.getByRole("button", { name: "Create invitation" }).click();
  const link = (await admin.locator("[data-invitation-link]").getAttribute("data-invitation-link"))!;
  await adminContext.close();
  const joinContext = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const join = await joinContext.newPage();
  await join.goto(link);
  await waitForHydration(join);
  await join.getByLabel("Password", { exact: true }).fill(password);
  await join.getByLabel("Password again").fill(password);
  await join.getByRole("button", { name: "Create my account" }).click();
  await join.waitForURL((url) => url.pathname === "/");
  await joinContext.close();

  // Later, she signs in with the provider, which vouches for the same address.
  const context = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  const page = await context.newPage();
  await signInWithCorp(page, "nina.s");
  await page.waitForURL((url) => url.pathname === "/sso/link");
  await waitForHydration(page);
  await expect(page.getByText("The ClawLoops account nina already uses that address.")).toBeVisible();
  expect(await me(page)).toBeNull();
  await page.getByLabel("Password").fill("not her password");
  await page.keyboard.press("Enter");
  await expect(page.getByRole("alert")).toContainText("not correct");
  await page.screenshot({ path: "test-results/screenshots/sso-link.png", fullPage: true });
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Link and sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await expect(page.getByRole("heading", { name: "Welcome, nina" })).toBeVisible();
  await context.close();
});
