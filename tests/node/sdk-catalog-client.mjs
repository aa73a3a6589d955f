// A machine client of a server in catalog mode, on the official TypeScript SDK, run by
// tests/catalog_mode.rs against mcpgate (auth mode `jwt`) and authorization-server.mjs.
//
//   node sdk-catalog-client.mjs [--no-step-up] URL ISSUER CLIENT_ID CLIENT_SECRET SCOPE STEPS_JSON
//
// The client signs in with the SDK's own `client_credentials` flow (the first request gets 401;
// the SDK discovers the authorization server, which must be ISSUER, and gets a token with SCOPE), lists the tools, then
// runs STEPS_JSON, a list of `[tool, arguments]` pairs (`search_operations`,
// `describe_operation`, `call_operation`), each through `client.callTool`.
//
// A call the token's scopes do not cover gets HTTP 403 `insufficient_scope`, which the SDK
// handles by asking for a token again and retrying once. The SDK's client-credentials provider
// asks for its configured scope again; this one asks for the scope the challenge names (a
// step-up), unless `--no-step-up`, when the retry gets 403 again and the call fails with the
// SDK's 403 error.
//
// Prints one JSON object on stdout:
//   {"tools": [names], "definitions": [the listed tools],
//    "steps": [{"result": CallToolResult} or {"error": message, "code": n}],
//    "scopes": [scope of each token obtained], "challenges": [WWW-Authenticate of each 403],
//    "exchanges": ["METHOD URL -> STATUS", ...]}
// Exit status: 0 when the summary is printed, 1 on any other error (message on stderr).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const exchanges = [];
const challenges = [];
const scopes = [];

async function loggedFetch(input, init) {
  const request = new Request(input, init);
  const response = await fetch(request);
  exchanges.push(`${request.method} ${request.url} -> ${response.status}`);
  if (response.status === 403) {
    challenges.push(response.headers.get("www-authenticate") ?? "");
  }
  return response;
}

/** The `scope` parameter of a `WWW-Authenticate: Bearer` challenge. */
function challengedScope(header) {
  return header?.match(/scope="([^"]*)"/)?.[1];
}

/** `client_credentials`, asking for the scope of the last 403 challenge once there is one. */
class StepUpProvider extends ClientCredentialsProvider {
  constructor(options, stepUp) {
    super(options);
    this._stepUp = stepUp;
  }

  prepareTokenRequest(scope) {
    const challenged = this._stepUp ? challengedScope(challenges.at(-1)) : undefined;
    return super.prepareTokenRequest(challenged ?? scope);
  }

  saveTokens(tokens) {
    scopes.push(tokens.scope ?? null);
    super.saveTokens(tokens);
  }
}

async function main(argv) {
  const stepUp = argv[0] !== "--no-step-up";
  const [url, issuer, clientId, clientSecret, scope, rawSteps] = stepUp ? argv : argv.slice(1);
  if (!rawSteps) {
    throw new Error("usage: sdk-catalog-client.mjs [--no-step-up] URL ISSUER CLIENT_ID CLIENT_SECRET SCOPE STEPS_JSON");
  }
  const steps = JSON.parse(rawSteps);
  const provider = new StepUpProvider({ clientId, clientSecret, scope, expectedIssuer: issuer }, stepUp);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: loggedFetch });
  const client = new Client({ name: "mcpgate-sdk-catalog-client", version: "1.0.0" });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    const results = [];
    for (const [name, args] of steps) {
      try {
        results.push({ result: await client.callTool({ name, arguments: args }) });
      } catch (err) {
        results.push({ error: String(err?.message ?? err), code: err?.code ?? null });
      }
    }
    const summary = { tools: tools.map((it) => it.name), definitions: tools, steps: results, scopes, challenges, exchanges };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sdk-catalog-client: ${err?.stack ?? err}\n`);
    process.stderr.write(`exchanges:\n${exchanges.join("\n")}\n`);
    process.exitCode = 1;
  },
);
