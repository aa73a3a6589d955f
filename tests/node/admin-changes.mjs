// The admin UI's Changes page in a real browser, run by tests/generations.rs: Playwright
// (playwright-core) drives Debian's Chromium, presenting the bootstrap token on every request
// (the pages only read), from a server's page to its Changes page.
//
//   node admin-changes.mjs BASE_URL BOOTSTRAP_TOKEN SLUG CHROMIUM SCREENSHOT
//
// Prints one JSON object on stdout with what it saw: the link's target, the page's heading and
// sides, the changed tools with their rows (part, path, before, after), the history's
// generations, and any Content-Security-Policy violation or script error; exit status 0, or 1
// with the reason on stderr. The page is saved as the PNG file SCREENSHOT.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const STEP_TIMEOUT = 15_000;

async function main([base, token, slug, executablePath, screenshot]) {
  if (!(base && token && slug && executablePath && screenshot)) {
    throw new Error("usage: admin-changes.mjs BASE TOKEN SLUG CHROMIUM SCREENSHOT");
  }
  const seen = { problems: [] };
  const profile = await mkdtemp(join(tmpdir(), "mcpgate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    extraHTTPHeaders: { Authorization: `Bearer ${token}` },
    viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (message) => {
      if (message.type() === "error") {
        seen.problems.push(`console: ${message.text()}`);
      }
    });
    page.on("pageerror", (err) => seen.problems.push(`page error: ${err.message}`));
    await context.route(
      (url) => url.origin !== base,
      (route) => route.abort(),
    );

    await page.goto(`${base}/admin/servers/${slug}`);
    const link = page.locator("a#changes");
    seen.link = await link.getAttribute("href");
    await Promise.all([page.waitForURL(/\/changes/), link.click()]);
    seen.landed = new URL(page.url()).pathname;
    seen.heading = (await page.locator("#diff h2").innerText()).trim();
    seen.changed = await page.locator(".changed-tool").evaluateAll((tools) =>
      tools.map((tool) => ({
        name: tool.querySelector("h4 code")?.textContent ?? "",
        parts: tool.querySelector("h4 .muted")?.textContent ?? "",
        rows: [...tool.querySelectorAll("tbody tr")].map((row) =>
          [...row.querySelectorAll("td")].map((cell) => cell.textContent.trim()),
        ),
      })),
    );
    await page.screenshot({ path: screenshot, fullPage: true });
    seen.generations = await page
      .locator("#history tbody tr td:first-child")
      .evaluateAll((cells) => cells.map((cell) => cell.textContent.trim()));

    // A generation's own changes, from the history's link.
    const history = page.locator("#history a", { hasText: "changes from" }).first();
    if ((await history.count()) > 0) {
      await Promise.all([page.waitForURL(/from=/), history.click()]);
      seen.historyHeading = (await page.locator("#diff h2").innerText()).trim();
    }
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(seen));
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
