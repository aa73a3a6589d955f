// Signs in to mcpgate's admin UI in a real browser, run by tests/admin_ui.rs: Playwright drives
// Debian's Chromium from START (default /admin/login; a page of the UI opened signed out leads
// there) through the identity provider (authorization-server.mjs, whose dev login form takes any
// login and password, then a consent form) and back.
//
//   node admin-signin.mjs BASE_URL CHROMIUM LOGIN [START]
//
// Prints one JSON object on stdout: the URL the browser ends at, its HTTP status, the page's
// heading and text, and the names of the cookies mcpgate set. Exit status 0, or 1 with the reason
// on stderr.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const STEP_TIMEOUT = 15_000;

async function main([base, executablePath, login, start = "/admin/login"]) {
  const profile = await mkdtemp(join(tmpdir(), "mcpgate-signin-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    await page.goto(`${base}${start}`);
    // The identity provider's login form, then its consent form.
    await page.fill('input[name="login"]', login);
    await page.fill('input[name="password"]', "any");
    await page.click('button[type="submit"]');
    await page.waitForSelector('button[type="submit"]');
    // The first answer from mcpgate that is not a redirect: /admin, or the refusal itself.
    const last = page.waitForResponse(
      (it) => it.url().startsWith(`${base}/admin`) && (it.status() < 300 || it.status() >= 400),
    );
    await page.click('button[type="submit"]');
    const response = await last;
    await page.waitForLoadState();
    const cookies = (await browser.cookies(`${base}/admin`)).map((it) => ({ name: it.name, httpOnly: it.httpOnly, sameSite: it.sameSite }));
    const result = {
      url: page.url(),
      status: response.status(),
      heading: (await page.textContent("h1"))?.trim() ?? "",
      text: (await page.textContent("body"))?.replace(/\s+/g, " ").trim() ?? "",
      cookies,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await browser.close();
    await rm(profile, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`admin-signin: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
