// The admin server page of a very large document in a real browser, run by
// tests/admin_ui_big.rs against `mcpgate serve --dev`: Playwright (playwright-core) drives
// Debian's Chromium.
//
//   node admin-big.mjs BASE_URL DOCUMENT CHROMIUM
//
// Signs in (dev mode: at once), imports DOCUMENT as server `big` through the admin API, opens
// its page once (the first opening waits for its view to be built), then measures three more
// openings: the time until the first page of rows is shown (their median), the bytes
// transferred and the number of DOM elements.
// Then it filters, opens a tool definition, exposes one operation and measures the click's round
// trip, and asks to expose every operation the filters let through, reading the confirmation's
// count without confirming.
//
// Prints one JSON object on stdout with what it saw; exit status 0, or 1 with the reason on
// stderr.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const STEP_TIMEOUT = 60_000;

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function main([base, document, executablePath]) {
  check(base && document && executablePath, "usage: admin-big.mjs BASE DOCUMENT CHROMIUM");
  const summary = { problems: [] };
  const profile = await mkdtemp(join(tmpdir(), "mcpgate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"],
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    // (Failed requests are listed by URL below; the console repeats them without one.)
    page.on("console", (message) => {
      const text = message.text();
      if (message.type() === "error" && !text.startsWith("Failed to load resource")) {
        summary.problems.push(`console: ${text}`);
      }
    });
    summary.failedRequests = [];
    page.on("response", (response) => {
      if (response.status() >= 400) {
        const url = new URL(response.url());
        summary.failedRequests.push(`${response.request().method()} ${url.pathname} ${response.status()}`);
      }
    });
    page.on("pageerror", (err) => summary.problems.push(`page error: ${err.message}`));
    // Bytes of every response body as sent (compressed), while `counting` is on.
    let counting = false;
    let bytes = 0;
    page.on("requestfinished", async (request) => {
      if (!counting) return;
      const sizes = await request.sizes().catch(() => null);
      if (sizes) bytes += sizes.responseBodySize + sizes.responseHeadersSize;
    });

    await page.goto(`${base}/admin/login`);
    check(new URL(page.url()).pathname === "/admin", `signed in at ${page.url()}`);
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
    const started = Date.now();
    const created = await page.request.post(`${base}/admin/api/servers`, {
      headers: { "X-CSRF-Token": csrf },
      multipart: {
        slug: "big",
        file: { name: "document.json", mimeType: "application/json", buffer: await readFile(document) },
      },
      timeout: 170_000,
    });
    check(created.status() === 201, `import: ${created.status()} ${await created.text()}`);
    summary.importMs = Date.now() - started;

    const url = `${base}/admin/servers/big`;
    const settled = () => page.locator('#operations[aria-busy="false"]').waitFor();
    let begun = Date.now();
    await page.goto(url);
    await settled();
    summary.firstOpeningMs = Date.now() - begun;

    // The page as an administrator opens it: until the first page of rows is shown. Three
    // openings, as the machine may be busy with other work; the median is the figure.
    summary.loadsMs = [];
    for (let run = 0; run < 3; run++) {
      bytes = 0;
      counting = true;
      begun = Date.now();
      await page.goto(url);
      await settled();
      summary.loadsMs.push(Date.now() - begun);
      await page.waitForLoadState("networkidle");
      counting = false;
    }
    summary.loadMs = [...summary.loadsMs].sort((a, b) => a - b)[1];
    summary.bytes = bytes;
    summary.domElements = await page.evaluate(() => document.getElementsByTagName("*").length);
    summary.rows = await page.locator("li.operation").count();
    summary.shown = await page.locator("#n-shown").textContent();
    summary.reportGroups = await page.locator("#report .groups button").evaluateAll((buttons) =>
      buttons.map((it) => it.textContent),
    );
    summary.reportEntries = await page.locator("#report .entries li").count();

    // A filter: a search and a method.
    begun = Date.now();
    await page.fill("#search", "messages");
    await page.selectOption("#filter-method", "GET");
    await settled();
    summary.filterMs = Date.now() - begun;
    summary.filteredShown = await page.locator("#n-shown").textContent();
    summary.filteredRows = await page.locator("li.operation").count();
    summary.filteredKeys = await page.locator("li.operation").evaluateAll((rows) =>
      rows.slice(0, 3).map((row) => `${row.dataset.method} ${row.querySelector(".path").textContent}`),
    );

    // A tool definition, loaded when it is opened.
    const row = page.locator("li.operation").first();
    const toolName = await row.locator(".tool-name").textContent();
    begun = Date.now();
    await row.locator("details.definition > summary").click();
    const definition = JSON.parse(await row.locator("details.definition pre").textContent());
    summary.definitionMs = Date.now() - begun;
    summary.definitionMatches = definition.name === toolName;

    // One click's round trip: expose the first row.
    const exposedBefore = Number(await page.locator("#n-exposed").textContent());
    const key = await row.getAttribute("data-key");
    begun = Date.now();
    await row.locator("input.exposed").check();
    await page.locator("#status", { hasText: `Exposed ${key}.` }).waitFor();
    summary.clickMs = Date.now() - begun;
    summary.clickRoundTripMs = Number(await page.locator("#server").getAttribute("data-round-trip"));
    summary.exposedAfterClick = Number(await page.locator("#n-exposed").textContent()) - exposedBefore;
    summary.tokensAfterClick = Number(await page.locator("#exposed-tokens").textContent());

    // Expose all shown, nothing selected: asked first, with the count.
    const total = Number((await page.locator("#n-shown").textContent()).match(/of (\d+) shown/)[1]);
    summary.filteredTotal = total;
    await page.click("#expose-shown");
    const dialog = page.locator("#confirm-bulk");
    await dialog.waitFor({ state: "visible" });
    summary.bulkQuestion = await dialog.locator(".question").textContent();
    await dialog.locator(".cancel").click();
    await page.locator("#status", { hasText: "Nothing changed." }).waitFor();
    summary.exposedAfterCancel = Number(await page.locator("#n-exposed").textContent()) - exposedBefore;

    // The context budget: the server's, with a live estimate over the exposed tools, and the
    // one tool's, with its own estimate.
    await page.fill('#budget input[name="max_description_chars"]', "40");
    begun = Date.now();
    const estimate = page.locator("#budget-estimate", { hasText: "Exposed tools (1)" });
    await estimate.waitFor();
    summary.budgetEstimateMs = Date.now() - begun;
    summary.budgetEstimate = await estimate.textContent();
    await row.locator("details.edit > summary").click();
    await row.locator('form.curate input[name="max_schema_tokens"]').fill("50");
    const toolEstimate = row.locator("form.curate .estimate", { hasText: "This tool" });
    await toolEstimate.waitFor();
    summary.toolEstimate = await toolEstimate.textContent();

    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  },
);
