// A real, independent OAuth 2.1 authorization server for tests/oauth.rs: panva's `oidc-provider`.
//
//   node authorization-server.mjs PORT
//
// Issuer `http://127.0.0.1:PORT`, with RFC 8414 / OIDC discovery, dynamic client registration
// (`/reg`), PKCE (S256, required for public clients), RFC 8707 resource indicators issuing JWT
// access tokens (RS256, `aud` = the resource), refresh tokens, and headless dev interactions: any
// login and password signs in, and a POST of `prompt=consent` grants what was asked.
//
// Resources: any `http://127.0.0.1:*/mcp/{slug}` URL (an mcpgate hosted server), with the scopes
// `pets:read pets:write`. One pre-registered confidential client, `step-up-client` (secret
// `step-up-secret`), may use `client_credentials` to mint narrower tokens for tests.
//
// Prints `listening http://127.0.0.1:PORT` on stdout when ready. The signing key is generated at
// start, so the JWKS is stable for the life of the process.

import { generateKeyPairSync } from "node:crypto";

import Provider, { errors } from "oidc-provider";

const RESOURCE = /^http:\/\/127\.0\.0\.1:\d+\/mcp\/[a-z0-9-]+$/;
const RESOURCE_SCOPES = "pets:read pets:write";

function main(argv) {
  const port = Number(argv[0]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error("usage: authorization-server.mjs PORT");
  }
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", alg: "RS256", use: "sig" };

  const provider = new Provider(issuer, {
    jwks: { keys: [jwk] },
    clients: [
      {
        client_id: "step-up-client",
        client_secret: "step-up-secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: RESOURCE_SCOPES,
      },
    ],
    scopes: ["openid", "offline_access", "pets:read", "pets:write"],
    pkce: { required: () => true },
    // Any account exists; `sub` is the login typed in.
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A request without `resource` gets no JWT access token for an MCP server.
        defaultResource: (_ctx, _client, oneOf) => (oneOf ? oneOf[0] : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (!RESOURCE.test(resource)) {
            throw new errors.InvalidTarget(`unknown resource ${resource}`);
          }
          return {
            scope: RESOURCE_SCOPES,
            audience: resource,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
  });
  provider.on("server_error", (_ctx, err) => {
    process.stderr.write(`authorization-server: server_error: ${err?.stack ?? err}\n`);
  });

  const server = provider.listen(port, "127.0.0.1", () => {
    process.stdout.write(`listening ${issuer}\n`);
  });
  server.on("error", (err) => {
    process.stderr.write(`authorization-server: ${err.message}\n`);
    process.exit(1);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`authorization-server: ${err?.stack ?? err}\n`);
  process.exit(1);
}
