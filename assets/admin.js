// mcpgate admin UI: the pages are rendered on the server, but for a server's operations, which
// this script asks the JSON API for a page at a time; it sends every change to the JSON API
// (/admin/api) with the session's CSRF token. No framework, no
// build step, and nothing inserted as HTML: data goes in with textContent only.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** Calls the JSON API; resolves to {ok, status, data}. */
async function api(method, url, body, extra) {
  const headers = { "X-CSRF-Token": csrf(), ...extra };
  // A change names the version of the server it was made on: one made meanwhile by another
  // administrator is refused (409) rather than overwritten.
  const server = document.getElementById("server");
  if (server?.dataset.version && method !== "GET") headers["If-Match"] = `"${server.dataset.version}"`;
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const tag = response.headers.get("ETag");
  if (server && response.ok && tag) server.dataset.version = tag.replaceAll('"', "");
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  return { ok: response.ok, status: response.status, data };
}

/** Posts a document form (one of file, URL, text) as multipart with upload progress. */
function upload(form, url, extra) {
  return new Promise((resolve) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(extra)) {
      data.append(name, value);
    }
    const file = form.querySelector('input[type="file"]').files[0];
    const link = form.querySelector('input[name="url"]').value.trim();
    const text = form.querySelector('textarea[name="text"]').value;
    if (file) data.append("file", file, file.name);
    if (link) data.append("url", link);
    if (text.trim()) data.append("text", text);
    const progress = form.querySelector("progress");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    const version = document.getElementById("server")?.dataset.version;
    if (version) xhr.setRequestHeader("If-Match", `"${version}"`);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        progress.hidden = false;
        progress.value = Math.round((100 * event.loaded) / event.total);
      }
    });
    xhr.addEventListener("load", () => {
      progress.value = 100;
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { error: xhr.responseText };
      }
      resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data: body });
    });
    xhr.addEventListener("error", () => resolve({ ok: false, status: 0, data: { error: "the request failed" } }));
    progress.hidden = false;
    progress.value = 0;
    xhr.send(data);
  });
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** `1 tool`, `2 tools`. */
function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function say(target, text, kind) {
  target.textContent = text;
  target.dataset.kind = kind ?? "info";
}

function explain(res) {
  if (res.status === 403 && document.querySelector("#server[data-read-only]")) {
    return "refused: this server is read-only (declared in the configuration file)";
  }
  return `${res.status || "network"}: ${res.data?.error ?? "failed"}`;
}

/** A list under a heading, for the report and the diff. */
function listSection(parent, title, items, show) {
  if (!items.length) return;
  parent.append(el("h4", `${title} (${items.length})`));
  const list = el("ul");
  for (const item of items.slice(0, 200)) list.append(el("li", show(item)));
  if (items.length > 200) list.append(el("li", `… and ${items.length - 200} more`, "muted"));
  parent.append(list);
}

function copyButtons() {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed";
      }
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
  }
}

/** What the servers page says once it is loaded, from the page before (a deletion). */
const FLASH = "mcpgate-admin-flash";

/** Shows what an import or a restore made of the document: the conversion report. */
function showReport(target, imported) {
  const r = imported.report;
  target.replaceChildren();
  target.append(el("h3", `Conversion report: ${r.document.title} ${r.document.version}`));
  target.append(
    el(
      "p",
      `OpenAPI ${r.document.spec_version} (${r.document.format}, ${count(r.document.files, "file")}): ` +
        `${count(r.operations, "operation")}, ${count(r.tools, "tool")}, ${r.skipped.length} skipped, ` +
        `${count(r.warnings.length, "warning")}, about ${count(r.tokens.total, "token")} in all.`,
      "counts",
    ),
  );
  listSection(target, "Skipped", r.skipped, (it) => `${it.operation}: ${it.reason}`);
  listSection(target, "Warnings", r.warnings, (it) => `${it.operation ?? it.location}: ${it.message}`);
  const link = el("a", `Open ${imported.slug} to curate and publish →`, "primary-link");
  link.href = `/admin/servers/${encodeURIComponent(imported.slug)}`;
  target.append(link);
  target.hidden = false;
}

function serversPage() {
  const form = document.getElementById("create");
  if (!form) return;
  const flash = sessionStorage.getItem(FLASH);
  if (flash) {
    sessionStorage.removeItem(FLASH);
    say(document.getElementById("status"), flash, "ok");
  }
  const status = form.querySelector(".status");
  const report = document.getElementById("report");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const slug = form.querySelector('input[name="slug"]').value.trim();
    say(status, "Importing…");
    report.hidden = true;
    const res = await upload(form, "/admin/api/servers", { slug });
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    say(status, `Created ${res.data.slug}. Nothing is exposed yet: choose the tools, then publish.`, "ok");
    showReport(report, res.data);
  });
  restoreForm();
}

/** Restores a server from an export file: its JSON goes to the API as it is. */
function restoreForm() {
  const form = document.getElementById("restore");
  const status = form.querySelector(".status");
  const report = document.getElementById("restore-report");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    report.hidden = true;
    const file = form.elements.file.files[0];
    if (!file) {
      say(status, "Choose an export file first.", "error");
      return;
    }
    let exported;
    try {
      exported = JSON.parse(await file.text());
    } catch {
      say(status, `${file.name} is not JSON: choose a file exported from a server's page.`, "error");
      return;
    }
    say(status, "Restoring…");
    const res = await api("POST", "/admin/api/restore", exported);
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    say(status, `Restored ${res.data.slug} as a draft: check it, then publish to serve it.`, "ok");
    showReport(report, res.data);
  });
}

/** How many operations a bulk exposure may touch without asking: about a screenful. */
const SCREENFUL = 50;
/** Rows a page of operations holds. */
const PAGE = 50;
/** Milliseconds the filters wait for the typing to stop before asking the server. */
const TYPING = 200;

/** Runs `task` once calls stop for `ms`. */
function debounce(task, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => task(...args), ms);
  };
}

/** A budget from a form's four fields; empty fields are left out (they inherit). */
function budgetOf(form) {
  const budget = {};
  for (const name of ["max_schema_tokens", "max_output_schema_tokens", "optional_depth", "max_description_chars"]) {
    const text = form.elements[name].value.trim();
    if (text !== "") budget[name] = Number(text);
  }
  return budget;
}

function serverPage() {
  const root = document.getElementById("server");
  if (!root) return;
  const slug = root.dataset.slug;
  const base = `/admin/api/servers/${encodeURIComponent(slug)}`;
  const status = document.getElementById("status");
  const list = document.getElementById("operations");
  const search = document.getElementById("search");
  const method = document.getElementById("filter-method");
  const tag = document.getElementById("filter-tag");
  const state = document.getElementById("filter-state");
  const shownCount = document.getElementById("n-shown");
  const previous = document.getElementById("page-previous");
  const next = document.getElementById("page-next");
  const rowTemplate = document.getElementById("operation-row");
  const formTemplate = document.getElementById("curate-form");
  const readOnly = root.dataset.readOnly === "true";
  let offset = 0;
  let total = 0;
  // Answers to older requests are dropped: only the latest filters are shown.
  let asked = 0;

  const filter = () => ({ q: search.value.trim(), method: method.value, tag: tag.value, state: state.value });
  const query = (extra) => new URLSearchParams({ ...filter(), ...extra }).toString();

  function showTotals(totals) {
    document.getElementById("exposed-tokens").textContent = totals.exposed_tokens;
    document.getElementById("n-exposed").textContent = totals.n_exposed;
  }

  /** Shows what a row now is (from a page, or from a change's answer). */
  function fill(row, op) {
    row.dataset.key = op.key;
    row.dataset.method = op.method;
    row.dataset.tag = op.tag;
    row.dataset.tokens = op.tokens;
    row.dataset.exposed = String(op.exposed);
    row.classList.toggle("exposed", op.exposed);
    const toggle = row.querySelector("input.exposed");
    toggle.checked = op.exposed;
    toggle.disabled = !op.is_tool;
    row.querySelector("input.select").setAttribute("aria-label", `Select ${op.key}`);
    const badge = row.querySelector(".method");
    badge.textContent = op.method;
    badge.className = `method m-${op.method}`;
    row.querySelector(".path").textContent = op.path;
    row.querySelector(".tool-name").textContent = op.tool_name ?? "";
    row.querySelector(".summary").textContent = op.summary;
    row.querySelector(".tokens").textContent = `${op.tokens} tok`;
    const warnings = row.querySelector("ul.warnings");
    warnings.replaceChildren(...op.warnings.map((it) => el("li", it)));
    warnings.hidden = op.warnings.length === 0;
    for (const details of row.querySelectorAll("details")) {
      details.hidden = !op.is_tool;
      // Opened again, it shows the operation as it is now.
      details.dataset.loaded = "";
      details.querySelector("form, pre")?.remove();
      details.open = false;
    }
  }

  /** A row of the list; its definition and curation are loaded when they are opened. */
  function makeRow(op) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    fill(row, op);
    row.querySelector("input.exposed").addEventListener("change", (event) => {
      const exposed = event.target.checked;
      curate([{ key: row.dataset.key, exposed }], `${exposed ? "Exposed" : "Hid"} ${row.dataset.key}.`);
    });
    for (const details of row.querySelectorAll("details")) {
      details.addEventListener("toggle", () => {
        if (details.open && !details.dataset.loaded) open(row, details);
      });
    }
    return row;
  }

  async function open(row, details) {
    details.dataset.loaded = "loading";
    const res = await api("GET", `${base}/operation?${new URLSearchParams({ key: row.dataset.key })}`);
    if (!res.ok) {
      details.dataset.loaded = "";
      say(status, explain(res), "error");
      return;
    }
    details.dataset.loaded = "yes";
    const op = res.data;
    if (details.classList.contains("definition")) {
      details.append(el("pre", JSON.stringify(op.definition, null, 2)));
    } else {
      details.append(curateForm(row, op));
    }
  }

  function curateForm(row, op) {
    const form = formTemplate.content.firstElementChild.cloneNode(true);
    const curated = op.curation ?? {};
    form.elements.name.value = curated.name ?? "";
    form.elements.name.placeholder = op.tool_name ?? "";
    form.elements.description.value = curated.description ?? "";
    form.elements.description.placeholder = op.summary;
    for (const select of form.querySelectorAll(".hints select")) {
      const derived = op.default_annotations?.[select.name];
      select.options[0].textContent = derived === undefined ? "default" : `default (${derived ? "yes" : "no"})`;
      const value = curated.annotations?.[select.name];
      select.value = value === undefined ? "" : String(value);
    }
    for (const [name, value] of Object.entries(curated.budget ?? {})) {
      if (form.elements[name]) form.elements[name].value = value;
    }
    if (readOnly) for (const input of form.elements) input.disabled = true;
    const estimate = form.querySelector(".estimate");
    const preview = debounce(async () => {
      const res = await api("POST", `${base}/budget/preview`, {
        budget: budgetOf(document.getElementById("budget")),
        key: row.dataset.key,
        tool_budget: budgetOf(form),
      });
      if (!res.ok) {
        say(estimate, explain(res), "error");
        return;
      }
      const tool = res.data.tool;
      say(estimate, `This tool: about ${tool.tokens ?? "?"} tokens (now ${tool.current_tokens}); exposed tools: about ${res.data.exposed_tokens} (now ${res.data.current_exposed_tokens}).`);
    }, TYPING * 2);
    for (const input of form.querySelectorAll(".tool-budget input")) input.addEventListener("input", preview);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const change = { annotations: {} };
      const name = form.elements.name.value.trim();
      const description = form.elements.description.value.trim();
      if (name) change.name = name;
      if (description) change.description = description;
      for (const select of form.querySelectorAll(".hints select")) {
        if (select.value) change.annotations[select.name] = select.value === "true";
      }
      const budget = budgetOf(form);
      if (Object.keys(budget).length) change.budget = budget;
      curate([{ key: row.dataset.key, curated: change }], `Saved ${row.dataset.key}.`);
    });
    return form;
  }

  /** Asks for the page of rows at `offset` that the filters let through, and shows it. */
  async function load() {
    const ticket = ++asked;
    list.setAttribute("aria-busy", "true");
    const res = await api("GET", `${base}/operations?${query({ offset, limit: PAGE })}`);
    if (ticket !== asked) return;
    if (!res.ok) {
      say(status, explain(res), "error");
      list.setAttribute("aria-busy", "false");
      return;
    }
    const page = res.data;
    total = page.total;
    const parts = [];
    let group = null;
    for (const op of page.operations) {
      if (!group || group.dataset.tag !== op.tag) {
        const heading = el("h3", op.tag, "tag");
        heading.dataset.tag = op.tag;
        group = el("ul", undefined, "operations");
        group.dataset.tag = op.tag;
        parts.push(heading, group);
      }
      group.append(makeRow(op));
    }
    list.replaceChildren(...parts);
    document.getElementById("select-shown").checked = false;
    showTotals(page);
    const last = Math.min(offset + page.operations.length, total);
    shownCount.textContent = total
      ? `${offset + 1}–${last} of ${total} shown (${page.n_operations} operations)`
      : `0 of ${page.n_operations} shown`;
    previous.disabled = offset === 0;
    next.disabled = last >= total;
    list.setAttribute("aria-busy", "false");
  }
  const reload = () => {
    offset = 0;
    list.setAttribute("aria-busy", "true");
    typed();
  };
  const typed = debounce(load, TYPING);
  search.addEventListener("input", reload);
  for (const select of [method, tag, state]) select.addEventListener("input", reload);
  previous.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE;
    load();
  });
  load();

  const byKey = (key) => list.querySelector(`li.operation[data-key="${CSS.escape(key)}"]`);

  /** Sends curation changes; the answer names the changed rows and the new totals only. */
  async function curate(changes, done) {
    say(status, "Saving…");
    const started = performance.now();
    const res = await api("PATCH", `${base}/operations`, changes, { Prefer: "return=representation" });
    if (!res.ok) {
      say(status, explain(res), "error");
      await load();
      return false;
    }
    for (const op of res.data.changed ?? []) {
      const row = byKey(op.key);
      if (row) fill(row, op);
    }
    showTotals(res.data);
    document.getElementById("unpublished").hidden = false;
    root.dataset.roundTrip = String(Math.round(performance.now() - started));
    say(status, `${done} Unpublished until you publish.`, "ok");
    return true;
  }

  const selectShown = document.getElementById("select-shown");
  selectShown.addEventListener("change", () => {
    for (const box of list.querySelectorAll("input.select")) box.checked = selectShown.checked;
  });

  const dialog = document.getElementById("confirm-bulk");
  /** Resolves to whether the administrator confirms `question`. */
  function confirmBulk(question) {
    return new Promise((resolve) => {
      dialog.querySelector(".question").textContent = question;
      const answer = (yes) => {
        dialog.close();
        resolve(yes);
      };
      dialog.querySelector(".confirm").onclick = () => answer(true);
      dialog.querySelector(".cancel").onclick = () => answer(false);
      dialog.oncancel = () => resolve(false);
      dialog.showModal();
    });
  }

  /** Exposes or hides the selected rows, else every row the filters let through: the server
   * counts what it touches first, and a large exposure, or one of all shown, is confirmed. */
  async function bulk(exposed) {
    const selected = [...list.querySelectorAll("li.operation")]
      .filter((row) => row.querySelector("input.select").checked)
      .map((row) => row.dataset.key);
    const target = selected.length ? { keys: selected } : { filter: filter() };
    const preview = await api("POST", `${base}/operations/bulk`, { ...target, exposed, preview: true });
    if (!preview.ok) {
      say(status, explain(preview), "error");
      return;
    }
    const { operations, tokens } = preview.data;
    const verb = exposed ? "Expose" : "Hide";
    if (!operations) {
      say(status, `Nothing to ${verb.toLowerCase()}: every one is ${exposed ? "exposed" : "hidden"} already.`, "ok");
      return;
    }
    const what = `${count(operations, "operation")} (about ${count(tokens, "token")} of tool definitions)`;
    if (exposed && (operations > SCREENFUL || !selected.length)) {
      const question = `${verb} ${what}${selected.length ? "" : ", every one the filters let through"}?`;
      if (!(await confirmBulk(question))) {
        say(status, "Nothing changed.");
        return;
      }
    }
    say(status, "Saving…");
    const res = await api("POST", `${base}/operations/bulk`, { ...target, exposed });
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    await load();
    document.getElementById("unpublished").hidden = false;
    say(status, `${exposed ? "Exposed" : "Hid"} ${what}. Unpublished until you publish.`, "ok");
  }
  document.getElementById("expose-shown").addEventListener("click", () => bulk(true));
  document.getElementById("hide-shown").addEventListener("click", () => bulk(false));

  document.getElementById("publish").addEventListener("click", async () => {
    say(status, "Publishing…");
    const res = await api("POST", `${base}/publish`);
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    const badge = document.getElementById("state");
    badge.textContent = "live";
    badge.className = "badge state-live";
    document.getElementById("unpublished").hidden = true;
    const served = `${count(res.data.tools, "tool")} ${res.data.tools === 1 ? "is" : "are"} served now`;
    say(status, `Published: ${served}; connected clients were told.`, "ok");
  });

  reportCard(base);
  budgetForm(base, status);
  settingsForm(base, status);
  policiesForms(base);
  reimportForm(base, status);
  deleteDialog(slug, base);
}

/** The conversion report: its kinds with counts, and the entries of one kind a page at a time.
 * Renames made only because of refused characters are counted, and listed only when chosen. */
function reportCard(base) {
  const card = document.getElementById("report");
  const groups = card.querySelector(".groups");
  const entries = card.querySelector(".entries");
  const previous = card.querySelector(".previous");
  const next = card.querySelector(".next");
  const position = card.querySelector(".position");
  let kind = "";
  let offset = 0;
  async function load() {
    const res = await api("GET", `${base}/report?${new URLSearchParams({ kind, offset, limit: PAGE })}`);
    if (!res.ok) {
      say(position, explain(res), "error");
      return;
    }
    const report = res.data;
    const buttons = [];
    const all = el("button", "all but renames", "kind");
    all.type = "button";
    all.setAttribute("aria-pressed", String(kind === ""));
    all.addEventListener("click", () => choose(""));
    buttons.push(all);
    for (const group of report.groups) {
      const label = group.collapsed
        ? `${group.kind.replaceAll("_", " ")} (${group.count}, not listed)`
        : `${group.kind.replaceAll("_", " ")} (${group.count})`;
      const button = el("button", label, "kind");
      button.type = "button";
      button.dataset.kind = group.kind;
      button.setAttribute("aria-pressed", String(kind === group.kind));
      button.addEventListener("click", () => choose(group.kind));
      buttons.push(button);
    }
    groups.replaceChildren(...buttons);
    entries.replaceChildren(
      ...report.entries.map((it) => el("li", `${it.operation ?? it.location}: ${it.message}`)),
    );
    const last = offset + report.entries.length;
    position.textContent = report.total ? `${offset + 1}–${last} of ${report.total}` : "none";
    previous.disabled = offset === 0;
    next.disabled = last >= report.total;
  }
  function choose(chosen) {
    kind = chosen;
    offset = 0;
    load();
  }
  previous.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE;
    load();
  });
  load();
}

/** The server's context budget, with a live estimate of the exposed tools' tokens under it. */
function budgetForm(base, status) {
  const form = document.getElementById("budget");
  const estimate = document.getElementById("budget-estimate");
  const preview = debounce(async () => {
    const res = await api("POST", `${base}/budget/preview`, { budget: budgetOf(form) });
    if (!res.ok) {
      say(estimate, explain(res), "error");
      return;
    }
    const it = res.data;
    say(estimate, `Exposed tools (${it.n_exposed}): about ${it.exposed_tokens} tokens under this budget (now ${it.current_exposed_tokens}).`);
  }, TYPING * 2);
  for (const input of form.querySelectorAll("input")) input.addEventListener("input", preview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(status, "Saving the budget…");
    const res = await api("PATCH", `${base}/settings`, { budget: budgetOf(form) });
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    say(status, "Budget saved. Unpublished until you publish; reload to see each tool under it.", "ok");
    document.getElementById("unpublished").hidden = false;
  });
}

/** Delete, once confirmed, then back to the list (absent from a read-only server's page). */
function deleteDialog(slug, base) {
  const dialog = document.getElementById("confirm-delete");
  if (!dialog) return;
  const status = dialog.querySelector(".status");
  document.getElementById("delete").addEventListener("click", () => {
    say(status, "");
    dialog.showModal();
  });
  document.getElementById("delete-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("delete-confirm").addEventListener("click", async () => {
    say(status, "Deleting…");
    const res = await api("DELETE", base);
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    sessionStorage.setItem(FLASH, `Deleted ${slug}: it is no longer served.`);
    location.assign("/admin");
  });
}

/** Saves the server's Cedar policies to the draft; asks how the published ones decide a call. */
function policiesForms(base) {
  const form = document.getElementById("policies");
  const status = form.querySelector(".status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(status, "Saving policies…");
    const res = await api("PATCH", `${base}/settings`, { policies: form.elements.policies.value });
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    say(status, "Saved to the draft: publish to check them against the tools and apply them.", "ok");
  });
  const trial = document.getElementById("try-policies");
  const out = trial.querySelector(".decision");
  trial.addEventListener("submit", async (event) => {
    event.preventDefault();
    let claims, args;
    try {
      claims = JSON.parse(trial.elements.claims.value || "{}");
      args = JSON.parse(trial.elements.arguments.value || "{}");
    } catch {
      out.textContent = "Claims and arguments must be JSON objects.";
      return;
    }
    const res = await api("POST", `${base}/policies/try`, { claims, tool: trial.elements.tool.value.trim(), arguments: args });
    if (!res.ok) {
      out.textContent = explain(res);
      return;
    }
    const it = res.data;
    const lines = [it.allowed ? "Allowed" : "Denied"];
    if (!it.policies_configured) lines.push("No policy: what the scopes allow is allowed.");
    if (it.decided_by.length) lines.push(`Decided by: ${it.decided_by.join(", ")}`);
    if (it.message) lines.push(`The caller reads: ${it.message}`);
    lines.push(it.listed ? "Listed to this caller." : "Not listed to this caller.");
    for (const err of it.errors) lines.push(`Error: ${err}`);
    out.textContent = lines.join("\n");
  });
}

function settingsForm(base, status) {
  const form = document.getElementById("settings");
  const mode = form.elements.mode;
  const showMode = () => {
    for (const part of form.querySelectorAll(".mode-fields")) {
      part.hidden = !part.dataset.modes.split(" ").includes(mode.value);
    }
  };
  mode.addEventListener("change", showMode);
  showMode();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const settings = {};
    if (value("backend_url")) settings.backend_url = value("backend_url");
    if (value("timeout_secs")) settings.timeout_secs = Number(value("timeout_secs"));
    settings.catalog_mode = form.elements.catalog_mode.checked;
    const limits = {};
    for (const name of ["per_user", "per_user_write", "per_tool", "per_tool_write"]) {
      if (value(name)) limits[name] = Number(value(name));
    }
    if (value("rate_limit_tools")) {
      try {
        limits.tools = JSON.parse(value("rate_limit_tools"));
      } catch {
        say(status, "Rate limits per tool: not JSON, such as {\"addPet\": {\"per_user\": 5}}.", "error");
        return;
      }
    }
    settings.rate_limits = limits;
    const credentials = { mode: mode.value };
    const part = form.querySelector(`.mode-fields:not([hidden])`);
    for (const input of part ? part.querySelectorAll("input, select, textarea") : []) {
      const text = input.value.trim();
      // Secrets are write-only: an empty field keeps the current one.
      if (!text) continue;
      credentials[input.name] = input.name === "scopes" ? text.split(/\s+/) : text;
    }
    settings.credentials = credentials;
    say(status, "Saving settings…");
    const res = await api("PATCH", `${base}/settings`, settings);
    if (!res.ok) {
      say(status, explain(res), "error");
      return;
    }
    for (const input of form.querySelectorAll('input[type="password"], textarea')) {
      if (input.value) {
        input.value = "";
        input.placeholder = "(set) — type to replace";
      }
    }
    say(status, "Settings saved. Unpublished until you publish.", "ok");
    document.getElementById("unpublished").hidden = false;
  });
}

function reimportForm(base, status) {
  const form = document.getElementById("reimport");
  const diff = document.getElementById("diff");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const local = form.querySelector(".status");
    say(local, "Importing…");
    const res = await upload(form, `${base}/document`, {});
    if (!res.ok) {
      say(local, explain(res), "error");
      return;
    }
    // The import made a new version: the next change names it.
    await api("GET", `${base}/operations?limit=1`);
    say(local, "Imported into the draft. Reload to curate the new operations.", "ok");
    say(status, "The document changed: unpublished until you publish.", "ok");
    const d = res.data.diff;
    diff.replaceChildren(el("h3", `Changes: +${d.added.length} −${d.removed.length} ~${d.changed.length}`));
    listSection(diff, "Added", d.added, (it) => it);
    listSection(diff, "Removed", d.removed, (it) => it);
    listSection(diff, "Changed", d.changed, (it) => it);
    const link = el("a", "Reload", "primary-link");
    link.href = location.pathname;
    diff.append(link);
    diff.hidden = false;
  });
}

// A page restored from the back-forward cache would show servers as they were (a server
// published since still `draft`): show them as they are.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) location.reload();
});

document.addEventListener("DOMContentLoaded", () => {
  copyButtons();
  serversPage();
  serverPage();
});
