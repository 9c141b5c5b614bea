import { test as base, expect, type Browser, type Page } from "@playwright/test";
import { readFileSync } from "node:fs";

/** The password the setup project gives the first admin. */
export const ADMIN_PASSWORD = "e2e admin passphrase";
/** Where the setup project leaves the signed-in admin's cookies. */
export const ADMIN_STATE = "test-results/.auth/admin.json";

/** Collects console errors and uncaught page errors; tests assert there were none. */
export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: async ({ page }, use) => {
    const errors: string[] = [];
    page.on("console", (msg) => {
      if (msg.type() === "error") errors.push(msg.text());
    });
    page.on("pageerror", (err) => errors.push(String(err)));
    await use(errors);
  },
});

export { expect };

/** Resolves once the WASM bundle has hydrated the page (frontend/src/lib.rs marks <html>). */
export async function waitForHydration(page: Page) {
  await page.locator("html[data-hydrated=true]").waitFor({ state: "attached" });
}

/** The first admin's one-time password, as the server printed it to its log. */
export function oneTimeAdminPassword(): string {
  const log = process.env.SERVER_LOG;
  if (!log) throw new Error("SERVER_LOG must name the server's log file");
  const match = readFileSync(log, "utf8").match(/first sign-in\): (\S+)/);
  if (!match) throw new Error(`no one-time password in ${log}`);
  return match[1];
}

/** Signs in on the login page (the page must be hydrated first). */
export async function signIn(page: Page, username: string, password: string) {
  await page.goto("/login");
  await waitForHydration(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The admin (on `page`) invites `name`, who joins with `password` in a context of their own;
 * their page, signed in on the dashboard. */
export async function inviteAndJoin(page: Page, browser: Browser, name: string, password: string): Promise<Page> {
  await page.goto("/admin/invitations/new");
  await waitForHydration(page);
  await page.getByLabel("Username (optional)").fill(name);
  await page.getByRole("button", { name: "Create invitation" }).click();
  const link = (await page.locator("[data-invitation-link]").getAttribute("data-invitation-link"))!;
  const them = await (await browser.newContext({ storageState: { cookies: [], origins: [] } })).newPage();
  await them.goto(link);
  await waitForHydration(them);
  await them.getByLabel("Password", { exact: true }).fill(password);
  await them.getByLabel("Password again").fill(password);
  await them.getByRole("button", { name: "Create my account" }).click();
  await them.waitForURL((url) => url.pathname === "/");
  return them;
}

/** A request made by the page itself (Chromium resolves *.localhost; Node's resolver does not). */
export async function callWithKey(page: Page, path: string, key: string, body?: unknown) {
  return page.evaluate(
    async ({ path, key, body }) => {
      const res = await fetch(path, {
        method: body === undefined ? "GET" : "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
    },
    { path, key, body },
  );
}
