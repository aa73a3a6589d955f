// The admin web UI in a real browser, run by tests/admin_ui.rs against `mcpgate serve --dev`:
// Playwright (playwright-core, no browser download) drives Debian's Chromium while an MCP client
// (the official TypeScript SDK, signed in with the development identity provider) watches the
// server being curated.
//
//   node admin-browser.mjs BASE_URL DOCUMENT SCREENSHOT_DIR CHROMIUM
//
// The browser signs in (dev mode: at once), uploads DOCUMENT as server `shop` with the file
// input and reads the conversion report, searches the operations, exposes getPetById and
// findPetsByStatus, publishes; the MCP client connects and lists the tools; the browser renames
// getPetById and publishes again; the client must hear `notifications/tools/list_changed` and
// list the new name. It also checks that a deep link opened signed out leads through sign-in back
// to its page and that a `next` elsewhere leads to /admin, that the state badge turns `live` at the
// first publish, that the JSON API refuses a PATCH without the CSRF token, that a provisioned
// server is read-only, that the audit log says what each curation changed, that `shop` can be
// exported (a download with the secret sealed), deleted and restored from the export as a draft,
// that no page breaks the Content-Security-Policy, and that signing out with the header's button
// ends the session (its cookie, presented again, is refused). Screenshots: admin-servers.png,
// admin-server.png, admin-audit.png in SCREENSHOT_DIR.
//
// Prints one JSON object on stdout with what it saw; exit status 0, or 1 with the reason on
// stderr.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const REDIRECT_URL = "http://127.0.0.1:1/callback";
/** The backend secret set in the settings form; no page or export may show it. */
const SECRET = "s3cret-for-the-backend";
const STEP_TIMEOUT = 15_000;

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** An in-memory OAuth client; the dev identity provider signs the dev user in without a form. */
class DevProvider {
  constructor() {
    this._state = crypto.randomUUID();
    this.code = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: "mcpgate-admin-browser-test",
      redirect_uris: [REDIRECT_URL],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return this._state;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }
  codeVerifier() {
    return this._verifier;
  }
  async redirectToAuthorization(url) {
    let next = new URL(url);
    for (let step = 0; step < 10 && !next.href.startsWith(REDIRECT_URL); step++) {
      const response = await fetch(next, { redirect: "manual" });
      await response.body?.cancel();
      check(response.status >= 300 && response.status < 400, `authorize answered ${response.status}`);
      next = new URL(response.headers.get("location"), next);
    }
    check(next.searchParams.get("state") === this._state, `foreign state in ${next.search}`);
    this.code = next.searchParams.get("code");
    check(this.code, `no code in ${next}`);
  }
}

/** An MCP client session on `url` that counts `notifications/tools/list_changed`. */
async function mcpSession(url) {
  const provider = new DevProvider();
  const client = new Client({ name: "mcpgate-admin-browser-test", version: "1.0.0" });
  const heard = { listChanged: 0, waiters: [] };
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    heard.listChanged += 1;
    for (const resolve of heard.waiters.splice(0)) resolve();
  });
  let transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  try {
    await client.connect(transport);
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    await transport.finishAuth(provider.code);
    transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    await client.connect(transport);
  }
  const listChanged = (count, ms) =>
    heard.listChanged >= count
      ? Promise.resolve(true)
      : Promise.race([
          new Promise((resolve) => heard.waiters.push(() => resolve(heard.listChanged >= count))),
          new Promise((resolve) => setTimeout(() => resolve(false), ms)),
        ]);
  const names = async () => (await client.listTools()).tools.map((it) => it.name).sort();
  return { client, transport, heard, listChanged, names };
}

async function main([base, document, shots, executablePath]) {
  check(base && document && shots && executablePath, "usage: admin-browser.mjs BASE DOCUMENT SHOTS CHROMIUM");
  const summary = { problems: [] };
  const profile = await mkdtemp(join(tmpdir(), "mcpgate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
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
  context.setDefaultTimeout(STEP_TIMEOUT);
  let session;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    // Anything the Content-Security-Policy blocks, and any script error, is a failure.
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
    // The browser reaches mcpgate only: a redirect elsewhere would fail here, not leave.
    await context.route(
      (url) => url.origin !== base,
      (route) => route.abort(),
    );

    // Without a session, the UI sends the browser to sign in.
    const bounce = await page.request.get(`${base}/admin`, { maxRedirects: 0 });
    summary.unsignedStatus = bounce.status();
    summary.unsignedLocation = bounce.headers().location;
    const deepBounce = await page.request.get(`${base}/admin/servers/petstore`, { maxRedirects: 0 });
    summary.deepLinkLocation = deepBounce.headers().location;

    // A deep link opened signed out leads through sign-in back to its page.
    await page.goto(`${base}/admin/servers/petstore`);
    summary.deepLinkLanded = new URL(page.url()).pathname;
    summary.deepLinkHeading = (await page.locator("h1").textContent()).trim();
    // A `next` that leads elsewhere is not followed.
    summary.foreignNextLanded = {};
    for (const next of ["//evil.example", "https://evil.example", "/\\evil.example"]) {
      await context.clearCookies();
      try {
        await page.goto(`${base}/admin/login?next=${encodeURIComponent(next)}`);
        summary.foreignNextLanded[next] = page.url();
      } catch (err) {
        summary.foreignNextLanded[next] = `left mcpgate: ${err.message}`;
      }
    }
    await context.clearCookies();

    await page.goto(`${base}/admin/login`);
    check(new URL(page.url()).pathname === "/admin", `signed in at ${page.url()}`);
    summary.listed = await page.locator("table.servers tbody tr[data-slug]").evaluateAll((rows) =>
      rows.map((it) => it.dataset.slug),
    );

    // Upload the document as `shop`, with the file input.
    await page.fill('#create input[name="slug"]', "shop");
    await page.setInputFiles('#create input[name="file"]', document);
    await page.click('#create button[type="submit"]');
    await page.locator("#report").waitFor({ state: "visible" });
    summary.createStatus = await page.locator("#create .status").textContent();
    summary.report = await page.locator("#report .counts").textContent();
    summary.progress = await page.locator("#create progress").evaluate((it) => it.value);
    await page.click("#report a.primary-link");
    await page.waitForURL(`${base}/admin/servers/shop`);

    // Search, then expose two operations. The rows come from the API a page at a time: the list
    // is busy until the page the filters ask for is shown.
    const settled = () => page.locator('#operations[aria-busy="false"]').waitFor();
    await settled();
    const rows = page.locator("li.operation");
    summary.operations = await rows.count();
    await page.fill("#search", "findPetsBy");
    await settled();
    summary.shownForSearch = await page.locator("li.operation:visible").evaluateAll((it) =>
      it.map((row) => row.dataset.key),
    );
    await page.fill("#search", "pet");
    await page.selectOption("#filter-method", "GET");
    await settled();
    summary.shownForGetPet = await page.locator("li.operation:visible").count();
    await page.selectOption("#filter-method", "");
    await settled();
    for (const key of ["getPetById", "findPetsByStatus"]) {
      await page.check(`li.operation[data-key="${key}"] input.exposed`);
      await page.locator("#status", { hasText: `Exposed ${key}.` }).waitFor();
    }
    summary.exposedTokens = Number(await page.locator("#exposed-tokens").textContent());
    await page.selectOption("#filter-state", "exposed");
    await settled();
    summary.shownExposed = await page.locator("li.operation:visible").evaluateAll((it) =>
      it.map((row) => row.dataset.key).sort(),
    );
    await page.selectOption("#filter-state", "");
    await settled();
    summary.stateBeforePublish = await page.locator("#state").textContent();
    await page.click("#publish");
    await page.locator("#status", { hasText: "Published: 2 tools" }).waitFor();
    // The state shows live at once, here and on the list the browser goes back to.
    summary.stateAfterPublish = await page.locator("#state").textContent();
    summary.stateClassAfterPublish = await page.locator("#state").getAttribute("class");
    await page.goBack();
    const shopRow = page.locator('table.servers tr[data-slug="shop"]');
    await shopRow.waitFor();
    summary.listStateAfterPublish = await shopRow.locator('.badge[class*="state-"]').textContent();
    await page.goto(`${base}/admin/servers/shop`);

    // A client connects to the published server.
    session = await mcpSession(`${base}/mcp/shop`);
    summary.listChangedCapability = session.client.getServerCapabilities()?.tools?.listChanged === true;
    summary.toolsBefore = await session.names();

    // The JSON API refuses a change without the CSRF token, from this very browser session.
    summary.patchWithoutCsrf = await page.evaluate(async () => {
      const response = await fetch("/admin/api/servers/shop/operations", {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify([{ key: "getPetById", exposed: false }]),
      });
      return response.status;
    });
    summary.patchWithCsrf = await page.evaluate(async () => {
      const response = await fetch("/admin/api/servers/shop/operations", {
        method: "PATCH",
        headers: {
          "Content-Type": "application/json",
          "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
        },
        // Exposing what is exposed already: accepted, and changes nothing.
        body: JSON.stringify([{ key: "getPetById", exposed: true }]),
      });
      return response.status;
    });
    // That change made a new version of the server behind the page's back: the page would be
    // refused as stale (409) until it is loaded again.
    await page.reload();

    // Settings: the secret is sent once and never shown again.
    await page.fill('#settings input[name="backend_url"]', `${base}/dev-backend/api/v3`);
    await page.fill('#settings input[name="timeout_secs"]', "20");
    await page.selectOption('#settings select[name="mode"]', "static");
    await page.selectOption('#settings select[name="scheme"]', "bearer");
    await page.fill('#settings input[name="value"]', SECRET);
    await page.fill('#settings input[name="per_user_write"]', "10");
    await page.fill('#settings textarea[name="rate_limit_tools"]', '{"getPetById": {"per_user": 5}}');
    await page.click('#settings button[type="submit"]');
    await page.locator("#status", { hasText: "Settings saved." }).waitFor();
    await page.reload();
    summary.secretPlaceholder = await page.getAttribute('#settings input[name="value"]', "placeholder");
    summary.secretShown = (await page.content()).includes(SECRET);
    summary.timeoutShown = await page.inputValue('#settings input[name="timeout_secs"]');
    summary.rateLimitShown = await page.inputValue('#settings input[name="per_user_write"]');
    summary.toolRateLimitsShown = await page.inputValue('#settings textarea[name="rate_limit_tools"]');

    // Re-import the same document: nothing added, removed or changed.
    await page.setInputFiles('#reimport input[name="file"]', document);
    await page.click('#reimport button[type="submit"]');
    await page.locator("#diff").waitFor({ state: "visible" });
    summary.reimportDiff = await page.locator("#diff h3").textContent();

    // Rename one tool in the browser and publish again.
    await settled();
    const row = page.locator('li.operation[data-key="getPetById"]');
    await row.locator("details.edit > summary").click();
    await row.locator('form.curate input[name="name"]').fill("fetchPet");
    await row.locator('form.curate textarea[name="description"]').fill("Fetch one pet by its id.");
    await row.locator('form.curate button[type="submit"]').click();
    await page.locator("#status", { hasText: "Saved getPetById." }).waitFor();
    summary.renamedShown = await row.locator(".tool-name").textContent();
    await page.click("#publish");
    await page.locator("#status", { hasText: "Published: 2 tools" }).waitFor();
    summary.heardListChanged = await session.listChanged(1, 10_000);
    summary.toolsAfter = await session.names();

    // The server page, showing the renamed tool's definition.
    await page.reload();
    await settled();
    await page.locator('li.operation[data-key="getPetById"] details.definition > summary').click();
    summary.definitionShown = JSON.parse(
      await page.locator('li.operation[data-key="getPetById"] details.definition pre').textContent(),
    ).name;
    await page.fill("#search", "pet");
    await settled();
    await page.setViewportSize({ width: 1280, height: 1500 });
    await page.screenshot({ path: join(shots, "admin-server.png") });
    await page.setViewportSize({ width: 1280, height: 900 });

    // The client calls a tool; the server's page of recent calls shows the call.
    await session.client.callTool({ name: "findPetsByStatus", arguments: { status: "available" } });
    await page.click("#calls");
    await page.locator("table.calls").waitFor();
    summary.recentCalls = await page.locator("table.calls tbody tr").evaluateAll((rows) =>
      rows.map((it) => it.innerText.replace(/\s+/g, " ").trim()),
    );

    // A server from the configuration file is read-only.
    await page.goto(`${base}/admin/servers/petstore`);
    summary.readOnlyNotice = await page.locator(".notice").isVisible();
    summary.readOnlyNoticeText = await page.locator(".notice").textContent();
    summary.readOnlyPublishDisabled = await page.locator("#publish").isDisabled();
    summary.readOnlyExportOrDelete = await page.locator("#export, #delete").count();
    summary.readOnlyPatch = await page.evaluate(async () => {
      const response = await fetch("/admin/api/servers/petstore/operations", {
        method: "PATCH",
        headers: {
          "Content-Type": "application/json",
          "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
        },
        body: JSON.stringify([{ key: "getPetById", exposed: false }]),
      });
      return response.status;
    });

    await page.goto(`${base}/admin`);
    summary.listedAfter = await page.locator("table.servers tbody tr[data-slug]").evaluateAll((rows) =>
      rows.map((it) => ({ slug: it.dataset.slug, text: it.innerText.replace(/\s+/g, " ").trim() })),
    );
    await page.screenshot({ path: join(shots, "admin-servers.png"), fullPage: true });

    await page.goto(`${base}/admin/audit`);
    summary.audit = await page.locator("table.audit tbody tr").evaluateAll((rows) =>
      rows.map((it) => [...it.cells].slice(2, 4).map((cell) => cell.innerText.trim()).join(" ")),
    );
    summary.curateDetails = await page.locator("table.audit tbody tr").evaluateAll((rows) =>
      rows.filter((it) => it.cells[2].innerText.trim() === "curate").map((it) => it.cells[4].innerText.trim()),
    );
    await page.screenshot({ path: join(shots, "admin-audit.png"), fullPage: true });

    // Export `shop`: a download of its settings and document, the secret sealed.
    await page.goto(`${base}/admin/servers/shop`);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
    const exportFile = join(profile, download.suggestedFilename());
    await download.saveAs(exportFile);
    const exportText = await readFile(exportFile, "utf8");
    const exported = JSON.parse(exportText);
    summary.exportName = download.suggestedFilename();
    summary.exportSlug = exported.settings?.slug;
    summary.exportExpose = exported.settings?.expose;
    summary.exportCredentials = exported.settings?.credentials;
    summary.exportHasDocument = typeof exported.document === "string" && exported.document.includes("openapi");
    summary.exportShowsSecret = exportText.includes(SECRET);

    // Delete it: asked first, then back to the list, without it.
    await page.click("#delete");
    summary.deleteAsked = await page.locator("#confirm-delete").isVisible();
    await page.click("#delete-cancel");
    summary.deleteCancelled = !(await page.locator("#confirm-delete").isVisible());
    await page.click("#delete");
    await page.click("#delete-confirm");
    await page.waitForURL(`${base}/admin`);
    summary.deletedStatus = await page.locator("#status").textContent();
    summary.listedAfterDelete = await page.locator("table.servers tbody tr[data-slug]").evaluateAll((rows) =>
      rows.map((it) => it.dataset.slug),
    );
    summary.deletedPage = (await page.request.get(`${base}/admin/api/servers/shop`)).status();

    // Restore it from the export: back as a draft, with the report shown as for an import.
    await page.setInputFiles('#restore input[name="file"]', exportFile);
    await page.click('#restore button[type="submit"]');
    await page.locator("#restore-report").waitFor({ state: "visible" });
    summary.restoreStatus = await page.locator("#restore .status").textContent();
    summary.restoreReport = await page.locator("#restore-report .counts").textContent();
    await page.click("#restore-report a.primary-link");
    await page.waitForURL(`${base}/admin/servers/shop`);
    summary.restoredState = await page.locator("#state").textContent();
    await settled();
    summary.restoredExposed = await page.locator("li.operation.exposed").evaluateAll((it) =>
      it.map((row) => row.querySelector(".tool-name").textContent).sort(),
    );
    await page.goto(`${base}/admin`);
    summary.restoredRow = await page.locator('table.servers tr[data-slug="shop"]').innerText();
    await page.goto(`${base}/admin/audit`);
    summary.auditAfterRestore = await page.locator("table.audit tbody tr").evaluateAll((rows) =>
      rows.slice(0, 3).map((it) => [...it.cells].slice(2, 4).map((cell) => cell.innerText.trim()).join(" ")),
    );

    // Sign out with the header's button (a form carrying the CSRF token): the browser forgets
    // the cookie, and a copy of it kept elsewhere no longer signs anyone in.
    const sessionCookie = (await context.cookies()).find((it) => it.name === "mcpgate_admin");
    check(sessionCookie, "no session cookie before signing out");
    await page.click('form.who button[type="submit"]');
    await page.getByRole("heading", { name: "Signed out" }).waitFor();
    summary.signedOutAt = new URL(page.url()).pathname;
    summary.cookieAfterSignOut = (await context.cookies()).some((it) => it.name === "mcpgate_admin");
    // From Node rather than the page: the refusal is expected, not a failed request of the UI.
    const reused = await fetch(`${base}/admin/api/me`, {
      headers: { cookie: `mcpgate_admin=${sessionCookie.value}` },
    });
    summary.oldSessionStatus = reused.status;

    summary.heardListChangedTotal = session.heard.listChanged;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await session?.transport.terminateSession().catch(() => {});
    await session?.client.close().catch(() => {});
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
