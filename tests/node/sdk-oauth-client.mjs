// A real MCP client that signs in on its own: the official TypeScript SDK's OAuth client flow,
// run by tests/oauth.rs and tests/credentials.rs against mcpgate and a real authorization server
// (authorization-server.mjs).
//
//   node sdk-oauth-client.mjs [--login NAME] [--show-token] URL [TOOL [ARGUMENTS_JSON]]
//
// The SDK does the MCP authorization flow: the first request gets 401 with
// `WWW-Authenticate: Bearer resource_metadata=...`; the SDK reads the Protected Resource Metadata,
// then the authorization server's metadata, registers a client dynamically, and sends the user to
// the authorization endpoint with PKCE (S256) and `resource`. The "user" here is
// `redirectToAuthorization`, which drives the authorization server over HTTP with a cookie jar
// (login as NAME, `alice` by default; consent) and captures the `code` sent to the redirect URL. Then
// `transport.finishAuth(code)` exchanges the code for tokens and the client reconnects, lists the
// tools and calls TOOL, if given.
//
// Prints one JSON object on stdout:
//   {"tools": [names], "result": CallToolResult or null, "claims": {aud, scope, iss, sub, client_id},
//    "authorization": {params of the authorize URL}, "exchanges": ["METHOD URL -> STATUS", ...]}
// With `--show-token`, the summary has the access token too (`"access_token"`), so that a test can
// make its own requests with it and check that it never goes further than mcpgate.
// With `--elicit-url`, the client declares URL-mode elicitation (2025-11-25) and accepts every
// `elicitation/create`, recording its parameters (`"elicitations"`). With `--connect-as LOGIN`,
// the client follows a URL elicitation's link as LOGIN with browse.mjs as it accepts it, while
// the call waits (`"connect"`: the final page); when instead the call's answer is an error whose
// text holds a link, it follows that link and calls again (the first answer is `"first"`).
// Exit status: 0 on success, 1 on any error (message on stderr), 2 when the call's result has
// `isError: true` (the summary is still printed).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

import { browse } from "./browse.mjs";

const REDIRECT_URL = "http://127.0.0.1:1/callback";
const DEFAULT_LOGIN = "alice";

/** Every HTTP exchange, in order: `METHOD URL -> STATUS`. */
const exchanges = [];

async function loggedFetch(input, init) {
  const request = new Request(input, init);
  const response = await fetch(request);
  exchanges.push(`${request.method} ${request.url} -> ${response.status}`);
  return response;
}

/** An in-memory OAuth client whose "browser" is `signIn`. */
class HeadlessProvider {
  constructor(login) {
    this._login = login;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._state = crypto.randomUUID();
    this.authorizationCode = undefined;
    this.authorizationParams = undefined;
  }

  get redirectUrl() {
    return REDIRECT_URL;
  }

  get clientMetadata() {
    return {
      client_name: "mcpgate-sdk-oauth-client",
      redirect_uris: [REDIRECT_URL],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: "pets:read pets:write",
    };
  }

  state() {
    return this._state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  saveClientInformation(info) {
    this._clientInformation = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  saveCodeVerifier(verifier) {
    this._codeVerifier = verifier;
  }

  codeVerifier() {
    if (!this._codeVerifier) {
      throw new Error("no code verifier saved");
    }
    return this._codeVerifier;
  }

  async redirectToAuthorization(url) {
    this.authorizationParams = Object.fromEntries(url.searchParams);
    const callback = await signIn(url, this._login);
    if (callback.searchParams.get("error")) {
      throw new Error(`authorization failed: ${callback.search}`);
    }
    if (callback.searchParams.get("state") !== this._state) {
      throw new Error(`the callback's state is not ours: ${callback.search}`);
    }
    this.authorizationCode = callback.searchParams.get("code");
    if (!this.authorizationCode) {
      throw new Error(`no code in the callback: ${callback}`);
    }
  }
}

/**
 * Drives the authorization server like a browser would: follows redirects, keeps cookies, signs in
 * at the login form and submits the consent form. Returns the URL the server finally redirects to
 * at `REDIRECT_URL` (never requested).
 */
async function signIn(authorizationUrl, login) {
  const jar = new Map();
  let url = new URL(authorizationUrl);
  let init = { method: "GET" };
  for (let step = 0; step < 20; step++) {
    if (url.href.startsWith(REDIRECT_URL)) {
      return url;
    }
    const headers = new Headers(init.headers);
    if (jar.size > 0) {
      headers.set("cookie", [...jar].map(([name, value]) => `${name}=${value}`).join("; "));
    }
    const response = await fetch(url, { ...init, headers, redirect: "manual" });
    exchanges.push(`${init.method} ${url.href} -> ${response.status}`);
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
    if (response.status !== 200) {
      throw new Error(`${init.method} ${url} answered ${response.status}: ${html.slice(0, 500)}`);
    }
    const form = html.match(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/);
    if (!form) {
      throw new Error(`no form at ${url}: ${html.slice(0, 500)}`);
    }
    const fields = new URLSearchParams();
    for (const input of form[2].matchAll(/<input[^>]*>/g)) {
      const name = input[0].match(/name="([^"]+)"/)?.[1];
      const value = input[0].match(/value="([^"]*)"/)?.[1] ?? "";
      if (name) {
        fields.set(name, value);
      }
    }
    // The dev login form takes any login and password.
    if (fields.get("prompt") === "login") {
      fields.set("login", login);
      fields.set("password", "any password");
    }
    url = new URL(form[1].replaceAll("&amp;", "&"), url);
    init = {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: fields.toString(),
    };
  }
  throw new Error("the authorization server never redirected to the client");
}

function decodeJwtPayload(token) {
  const parts = token.split(".");
  if (parts.length !== 3) {
    throw new Error("the access token is not a JWT");
  }
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

async function connect(url, provider) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    authProvider: provider,
    fetch: loggedFetch,
  });
  const client = new Client({ name: "mcpgate-sdk-oauth-client", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

/** The options (`--login NAME`, `--show-token`) and the positional arguments. */
function parseArguments(argv) {
  const options = { login: DEFAULT_LOGIN, showToken: false, elicitUrl: false, connectAs: undefined };
  const rest = [...argv];
  while (rest[0]?.startsWith("--")) {
    const option = rest.shift();
    if (option === "--login" && rest.length > 0) {
      options.login = rest.shift();
    } else if (option === "--show-token") {
      options.showToken = true;
    } else if (option === "--elicit-url") {
      options.elicitUrl = true;
    } else if (option === "--connect-as" && rest.length > 0) {
      options.connectAs = rest.shift();
    } else {
      throw new Error(`unknown option ${option}`);
    }
  }
  return { options, positional: rest };
}

async function main(argv) {
  const { options, positional } = parseArguments(argv);
  const [url, tool, rawArguments = "{}"] = positional;
  if (!url) {
    throw new Error("usage: sdk-oauth-client.mjs [--login NAME] [--show-token] URL [TOOL [ARGUMENTS_JSON]]");
  }
  const args = JSON.parse(rawArguments);
  const provider = new HeadlessProvider(options.login);
  let client;
  try {
    client = await connect(url, provider);
    throw new Error("mcpgate accepted a client without a token");
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || !provider.authorizationCode) {
      throw err;
    }
  }
  // The user has signed in: exchange the code and connect again, now with a token.
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    authProvider: provider,
    fetch: loggedFetch,
  });
  await transport.finishAuth(provider.authorizationCode);
  const elicitations = [];
  const capabilities = options.elicitUrl ? { elicitation: { url: {} } } : {};
  client = new Client({ name: "mcpgate-sdk-oauth-client", version: "1.0.0" }, { capabilities });
  let browsing;
  if (options.elicitUrl) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      elicitations.push(request.params);
      if (options.connectAs && request.params.mode === "url") {
        // The user opens the page as they accept; the call waits for the connection.
        browsing = browse(request.params.url, options.connectAs);
      }
      return { action: "accept" };
    });
  }
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    let result = tool ? await client.callTool({ name: tool, arguments: args }) : null;
    let first;
    let connected = await browsing;
    if (options.connectAs && result?.isError && !connected) {
      const text = result.content.map((it) => it.text ?? "").join("\n");
      const link = elicitations[0]?.url ?? text.match(/https?:\/\/\S+\/connect\/\S+/)?.[0];
      if (link) {
        connected = await browse(link, options.connectAs);
        first = result;
        result = await client.callTool({ name: tool, arguments: args });
      }
    }
    const claims = decodeJwtPayload(provider.tokens().access_token);
    const summary = {
      tools: tools.map((it) => it.name),
      result,
      claims: {
        aud: claims.aud,
        scope: claims.scope,
        iss: claims.iss,
        sub: claims.sub,
        client_id: claims.client_id,
      },
      client_id: provider.clientInformation()?.client_id,
      authorization: provider.authorizationParams,
      exchanges,
      elicitations,
      first,
      connect: connected,
    };
    if (options.showToken) {
      summary.access_token = provider.tokens().access_token;
    }
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return result?.isError ? 2 : 0;
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sdk-oauth-client: ${err?.stack ?? err}\n`);
    process.stderr.write(`exchanges:\n${exchanges.join("\n")}\n`);
    process.exitCode = 1;
  },
);
