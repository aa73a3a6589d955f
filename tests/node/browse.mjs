// A headless "browser" for tests: follows redirects, keeps cookies, and submits the one form of
// each page it meets (authorization-server.mjs's dev login form, where it signs in as LOGIN with
// any password, its consent form, and mcpgate's own connect page), until a page has no form or an
// answer is neither a redirect nor a 200.
//
//   node browse.mjs URL LOGIN
//
// Prints one JSON object on stdout: {"url": the last URL, "status": its status, "text": the last
// page's text without tags, "links": the absolute URLs of its links, "visited": ["METHOD URL ->
// STATUS", ...]}. Exit status 0, or 1 with
// the reason on stderr.
//
// Imported by sdk-oauth-client.mjs, which follows the link mcpgate hands out to connect an account.

import { pathToFileURL } from "node:url";

const MAX_STEPS = 30;

/** Browses from `start` as `login`; `stop(url)` ends the walk before requesting `url`. */
export async function browse(start, login, stop = () => false) {
  const jar = new Map();
  const visited = [];
  let url = new URL(start);
  let init = { method: "GET" };
  for (let step = 0; step < MAX_STEPS; step++) {
    if (stop(url)) {
      return { url: url.href, status: 0, text: "", links: [], visited };
    }
    const headers = new Headers(init.headers);
    if (jar.size > 0) {
      headers.set("cookie", [...jar].map(([name, value]) => `${name}=${value}`).join("; "));
    }
    const response = await fetch(url, { ...init, headers, redirect: "manual" });
    visited.push(`${init.method} ${url.href} -> ${response.status}`);
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const at = pair.indexOf("=");
      jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      url = new URL(response.headers.get("location"), url);
      init = { method: "GET" };
      continue;
    }
    const html = await response.text();
    const form = html.match(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/);
    if (response.status !== 200 || !form) {
      const links = [...html.matchAll(/<a[^>]*href="([^"]+)"/g)].map((it) => new URL(unescape(it[1]), url).href);
      return { url: url.href, status: response.status, text: textOf(html), links, visited };
    }
    const fields = new URLSearchParams();
    for (const input of form[2].matchAll(/<input[^>]*>/g)) {
      const name = input[0].match(/name="([^"]+)"/)?.[1];
      const value = input[0].match(/value="([^"]*)"/)?.[1] ?? "";
      if (name) {
        fields.set(name, unescape(value));
      }
    }
    // The dev login form takes any login and password.
    if (fields.get("prompt") === "login") {
      fields.set("login", login);
      fields.set("password", "any password");
    }
    url = new URL(unescape(form[1]), url);
    init = {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: fields.toString(),
    };
  }
  throw new Error(`no final page after ${MAX_STEPS} steps:\n${visited.join("\n")}`);
}

function unescape(text) {
  return text
    .replaceAll("&quot;", '"')
    .replaceAll("&#39;", "'")
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&amp;", "&");
}

function textOf(html) {
  return unescape(html.replace(/<style[\s\S]*?<\/style>/g, "").replace(/<[^>]+>/g, " ")).replace(/\s+/g, " ").trim();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [start, login] = process.argv.slice(2);
  browse(start, login).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    },
    (err) => {
      process.stderr.write(`browse: ${err?.stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
