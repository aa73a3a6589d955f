// mcpgate admin UI: the pages are rendered on the server; this script filters them and sends
// every change to the JSON API (/admin/api) with the session's CSRF token. No framework, no
// build step, and nothing inserted as HTML: data goes in with textContent only.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** Calls the JSON API; resolves to {ok, status, data}. */
async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrf() };
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

function serverPage() {
  const root = document.getElementById("server");
  if (!root) return;
  const slug = root.dataset.slug;
  const base = `/admin/api/servers/${encodeURIComponent(slug)}`;
  const status = document.getElementById("status");
  const rows = [...document.querySelectorAll("li.operation")];
  const byKey = new Map(rows.map((row) => [row.dataset.key, row]));
  const search = document.getElementById("search");
  const method = document.getElementById("filter-method");
  const tag = document.getElementById("filter-tag");
  const state = document.getElementById("filter-state");
  const shownCount = document.getElementById("n-shown");

  const shown = () => rows.filter((row) => !row.hidden);

  function filter() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of rows) {
      row.hidden = !(
        words.every((word) => row.dataset.search.includes(word)) &&
        (!method.value || row.dataset.method === method.value) &&
        (!tag.value || row.dataset.tag === tag.value) &&
        (!state.value || (row.dataset.exposed === "true") === (state.value === "exposed"))
      );
    }
    for (const list of document.querySelectorAll("ul.operations")) {
      const empty = ![...list.children].some((row) => !row.hidden);
      list.hidden = empty;
      document.querySelector(`h3.tag[data-tag="${CSS.escape(list.dataset.tag)}"]`).hidden = empty;
    }
    shownCount.textContent = `${shown().length} of ${rows.length} shown`;
  }
  for (const input of [search, method, tag, state]) input.addEventListener("input", filter);
  filter();

  /** Shows the draft as the API now has it: exposure, names, definitions, warnings, totals. */
  async function refresh() {
    const res = await api("GET", base);
    if (!res.ok) return;
    const draft = res.data;
    for (const op of draft.operations) {
      const row = byKey.get(op.key);
      if (!row) continue;
      row.dataset.exposed = String(op.exposed);
      row.classList.toggle("exposed", op.exposed);
      row.querySelector("input.exposed").checked = op.exposed;
      row.querySelector(".tool-name").textContent = op.tool_name ?? "";
      row.querySelector(".tokens").textContent = `${op.tokens} tok`;
      const pre = row.querySelector("details.definition pre");
      if (pre) pre.textContent = op.definition ? JSON.stringify(op.definition, null, 2) : "";
      let warnings = row.querySelector("ul.warnings");
      if (!warnings) {
        warnings = el("ul", undefined, "warnings");
        row.querySelector(".row").after(warnings);
      }
      warnings.replaceChildren(...op.warnings.map((it) => el("li", it)));
      warnings.hidden = op.warnings.length === 0;
    }
    const badge = document.getElementById("state");
    badge.textContent = draft.summary.state;
    badge.className = `badge state-${draft.summary.state}`;
    document.getElementById("exposed-tokens").textContent = draft.exposed_tokens;
    document.getElementById("n-exposed").textContent = draft.operations.filter((it) => it.exposed).length;
    document.getElementById("unpublished").hidden = !draft.summary.unpublished;
    filter();
  }

  async function curate(changes, done) {
    say(status, "Saving…");
    const res = await api("PATCH", `${base}/operations`, changes);
    if (!res.ok) {
      say(status, explain(res), "error");
      await refresh();
      return false;
    }
    await refresh();
    say(status, `${done} Unpublished until you publish.`, "ok");
    return true;
  }

  for (const row of rows) {
    row.querySelector("input.exposed").addEventListener("change", (event) => {
      const exposed = event.target.checked;
      curate([{ key: row.dataset.key, exposed }], `${exposed ? "Exposed" : "Hid"} ${row.dataset.key}.`);
    });
    const form = row.querySelector("form.curate");
    form?.addEventListener("submit", (event) => {
      event.preventDefault();
      const curated = { annotations: {} };
      const name = form.elements.name.value.trim();
      const description = form.elements.description.value.trim();
      if (name) curated.name = name;
      if (description) curated.description = description;
      for (const select of form.querySelectorAll(".hints select")) {
        if (select.value) curated.annotations[select.name] = select.value === "true";
      }
      curate([{ key: row.dataset.key, curated }], `Saved ${row.dataset.key}.`);
    });
  }

  const selectShown = document.getElementById("select-shown");
  selectShown.addEventListener("change", () => {
    for (const row of shown()) row.querySelector("input.select").checked = selectShown.checked;
  });
  function bulk(exposed) {
    const candidates = shown().filter((row) => !row.querySelector("input.exposed").disabled);
    const selected = candidates.filter((row) => row.querySelector("input.select").checked);
    const chosen = selected.length ? selected : candidates;
    if (!chosen.length) return;
    const changes = chosen.map((row) => ({ key: row.dataset.key, exposed }));
    curate(changes, `${exposed ? "Exposed" : "Hid"} ${count(changes.length, "operation")}.`);
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
    await refresh();
    const served = `${count(res.data.tools, "tool")} ${res.data.tools === 1 ? "is" : "are"} served now`;
    say(status, `Published: ${served}; connected clients were told.`, "ok");
  });

  settingsForm(base, status);
  policiesForms(base);
  reimportForm(base, status);
  deleteDialog(slug, base);
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
    await api("GET", base);
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
