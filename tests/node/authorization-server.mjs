// A real, independent OAuth 2.1 authorization server for tests/oauth.rs and tests/credentials.rs:
// panva's `oidc-provider`.
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
// Backends: any `https://{name}.backend.test`, with the same scopes. mcpgate gets tokens for them
// with the RFC 8693 token-exchange grant (a subject token this server issued for an MCP server,
// `audience` or `resource` naming a backend), or with `client_credentials` and `resource`, as one
// of three confidential clients: `mcpgate-basic` (`client_secret_basic`, secret
// `mcpgate-basic-secret`), `mcpgate-post` (`client_secret_post`, secret `mcpgate-post-secret`) and,
// when the environment variable `CLIENT_JWKS` holds a JWKS of public keys, `mcpgate-jwt`
// (`private_key_jwt` with those keys).
//
// Policy callers: the confidential clients `finance-client` and `support-client` (secrets
// `finance-client-secret`, `support-client-secret`) may use `client_credentials`; their access
// tokens carry `groups` and `tenant` claims (`["finance"]`, `acme`; `["support"]`, `globex`).
//
// Administrators: the public client `mcpgate-admin` (authorization code with PKCE, `openid
// profile`, any loopback port of `http://127.0.0.1/admin/callback`, as RFC 8252 allows native
// clients) signs users in to mcpgate's admin UI; ID tokens carry `preferred_username` and `roles`,
// which is `["mcpgate-admin"]` for logins ending in `-admin` and empty otherwise.
//
// As a backend's own authorization server (tests/consent.rs): the confidential client
// `mcpgate-consent` (`client_secret_basic`, secret `mcpgate-consent-secret`) uses the
// authorization code grant, with PKCE and `resource` naming a backend, and the refresh token grant;
// its redirect URI is any loopback port of `http://127.0.0.1/connect/pets/callback` (mcpgate's
// callback) or of `http://127.0.0.1/connect/other/callback`. Refresh tokens are issued to clients
// allowed the refresh token grant; RFC 7009 revocation is at `/token/revocation`.
//
// Test controls, on the same port:
//   GET  /test/exchanges               every token-exchange request that reached the grant
//                                      (`{"exchanges": [{client_id, client_auth, subject, audience,
//                                      resource, scope, requested_token_type, outcome}]}`, in order)
//   POST /test/fail-next?error=CODE    the next exchange fails with the OAuth error CODE
//   POST /test/lifetime?seconds=N      exchanged tokens live N seconds from now on (default 300)
//   POST /test/delay?ms=N              each exchange answers after N ms (default 0)
//   GET  /test/grants                  every token request that succeeded or failed
//                                      (`{"grants": [{grant_type, client_id, outcome}]}`, in order)
//   POST /test/revoke-grants?sub=NAME  ends every grant NAME gave (their refresh tokens stop working)
//
// Prints `listening http://127.0.0.1:PORT` on stdout when ready. The signing key is generated at
// start, so the JWKS is stable for the life of the process.

import { createPublicKey, generateKeyPairSync, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import { createLocalJWKSet, importJWK, jwtVerify, SignJWT } from "jose";
import Provider, { errors } from "oidc-provider";

const RESOURCE = /^http:\/\/127\.0\.0\.1:\d+\/mcp\/[a-z0-9-]+$/;
const BACKEND = /^https:\/\/[a-z0-9-]+\.backend\.test$/;
const RESOURCE_SCOPES = "pets:read pets:write";

/** The claims of the policy callers' access tokens, by client. */
const POLICY_CLAIMS = {
  "finance-client": { groups: ["finance"], tenant: "acme" },
  "support-client": { groups: ["support"], tenant: "globex" },
};

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const EXCHANGE_PARAMETERS = [
  "subject_token",
  "subject_token_type",
  "actor_token",
  "actor_token_type",
  "requested_token_type",
  "audience",
  "resource",
  "scope",
];

/** What the test can see and steer through `/test/...`. */
const controls = {
  exchanges: [],
  failures: [],
  lifetimeSeconds: 300,
  delayMs: 0,
  grants: [],
  /** Grant ids by account, from the authorization codes issued. */
  grantIds: new Map(),
};

function main(argv) {
  const port = Number(argv[0]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error("usage: authorization-server.mjs PORT");
  }
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", alg: "RS256", use: "sig" };
  const publicJwk = { ...createPublicKey(privateKey).export({ format: "jwk" }), kid: jwk.kid, alg: "RS256", use: "sig" };

  const mcpgateClient = (extra) => ({
    grant_types: [TOKEN_EXCHANGE, "client_credentials"],
    redirect_uris: [],
    response_types: [],
    scope: RESOURCE_SCOPES,
    ...extra,
  });
  const clients = [
    {
      client_id: "step-up-client",
      client_secret: "step-up-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: RESOURCE_SCOPES,
    },
    ...Object.keys(POLICY_CLAIMS).map((client_id) => ({
      client_id,
      client_secret: `${client_id}-secret`,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: RESOURCE_SCOPES,
    })),
    mcpgateClient({
      client_id: "mcpgate-basic",
      client_secret: "mcpgate-basic-secret",
      token_endpoint_auth_method: "client_secret_basic",
    }),
    mcpgateClient({
      client_id: "mcpgate-post",
      client_secret: "mcpgate-post-secret",
      token_endpoint_auth_method: "client_secret_post",
    }),
  ];
  clients.push({
    client_id: "mcpgate-admin",
    application_type: "native",
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code"],
    response_types: ["code"],
    redirect_uris: ["http://127.0.0.1/admin/callback"],
    scope: "openid profile",
  });
  clients.push({
    client_id: "mcpgate-consent",
    client_secret: "mcpgate-consent-secret",
    application_type: "native",
    token_endpoint_auth_method: "client_secret_basic",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: ["http://127.0.0.1/connect/pets/callback", "http://127.0.0.1/connect/other/callback"],
    scope: RESOURCE_SCOPES,
  });
  if (process.env.CLIENT_JWKS) {
    clients.push(
      mcpgateClient({
        client_id: "mcpgate-jwt",
        token_endpoint_auth_method: "private_key_jwt",
        jwks: JSON.parse(process.env.CLIENT_JWKS),
      }),
    );
  }

  const provider = new Provider(issuer, {
    jwks: { keys: [jwk] },
    clients,
    scopes: ["openid", "profile", "offline_access", "pets:read", "pets:write"],
    claims: { openid: ["sub"], profile: ["preferred_username", "roles"] },
    // The ID token carries the profile claims itself (mcpgate reads roles from it).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    extraTokenClaims: (_ctx, token) => POLICY_CLAIMS[token.clientId],
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    // Any account exists; `sub` is the login typed in.
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, preferred_username: sub, roles: sub.endsWith("-admin") ? ["mcpgate-admin"] : [] }),
    }),
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A request without `resource` gets no JWT access token for an MCP server.
        defaultResource: (_ctx, _client, oneOf) => (oneOf ? oneOf[0] : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (!RESOURCE.test(resource) && !BACKEND.test(resource)) {
            throw new errors.InvalidTarget(`unknown resource ${resource}`);
          }
          return {
            scope: RESOURCE_SCOPES,
            audience: resource,
            accessTokenFormat: "jwt",
            accessTokenTTL: controls.lifetimeSeconds,
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
  });
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    tokenExchange({
      issuer,
      keys: createLocalJWKSet({ keys: [publicJwk] }),
      signingKey: importJWK(jwk, "RS256"),
    }),
    EXCHANGE_PARAMETERS,
  );
  provider.use(testControls(provider));
  provider.on("authorization_code.saved", (code) => {
    const ids = controls.grantIds.get(code.accountId) ?? new Set();
    ids.add(code.grantId);
    controls.grantIds.set(code.accountId, ids);
  });
  const recordGrant = (ctx, outcome) => {
    controls.grants.push({
      grant_type: ctx.oidc.params?.grant_type ?? null,
      client_id: ctx.oidc.client?.clientId ?? null,
      outcome,
    });
  };
  provider.on("grant.success", (ctx) => recordGrant(ctx, "issued"));
  provider.on("grant.error", (ctx, err) => recordGrant(ctx, err?.error ?? "error"));
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

/**
 * The RFC 8693 token-exchange grant, as an API gateway uses it: the subject token is an access
 * token this server issued for an MCP server; the issued token is a JWT access token for the
 * backend named by `audience` (or else `resource`), for the same subject, with the requested
 * scopes (at most the subject token's and the backend's), and `act` naming the client that asked.
 * oidc-provider has authenticated the client, and checked it may use this grant, before this runs.
 */
function tokenExchange({ issuer, keys, signingKey }) {
  return async function tokenExchangeHandler(ctx) {
    const { params, client } = ctx.oidc;
    const record = {
      client_id: client.clientId,
      client_auth: client.clientAuthMethod,
      subject: null,
      audience: params.audience ?? null,
      resource: params.resource ?? null,
      scope: params.scope ?? null,
      requested_token_type: params.requested_token_type ?? null,
      outcome: "pending",
    };
    controls.exchanges.push(record);
    try {
      if (controls.delayMs > 0) {
        await sleep(controls.delayMs);
      }
      ctx.body = await exchange(ctx, record, { issuer, keys, signingKey: await signingKey });
      record.outcome = "issued";
    } catch (err) {
      record.outcome = err?.error ?? "server_error";
      throw err;
    }
  };
}

async function exchange(ctx, record, { issuer, keys, signingKey }) {
  const { params, client } = ctx.oidc;
  if (!params.subject_token) {
    throw new errors.InvalidRequest("missing required parameter 'subject_token'");
  }
  if (![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(params.subject_token_type)) {
    throw new errors.InvalidRequest("subject_token_type must be an access token or a JWT");
  }
  if (params.actor_token) {
    throw new errors.InvalidRequest("actor tokens are not supported");
  }
  const requestedType = params.requested_token_type ?? ACCESS_TOKEN_TYPE;
  if (![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(requestedType)) {
    throw new errors.InvalidRequest("requested_token_type is not supported");
  }

  let subject;
  try {
    ({ payload: subject } = await jwtVerify(params.subject_token, keys, {
      issuer,
      algorithms: ["RS256"],
      typ: "at+jwt",
      requiredClaims: ["sub", "exp", "aud"],
    }));
  } catch (cause) {
    throw new errors.InvalidGrant("subject_token is not a valid access token of this server", { cause });
  }
  const subjectAudiences = [subject.aud].flat();
  if (!subjectAudiences.some((it) => RESOURCE.test(it))) {
    throw new errors.InvalidGrant("subject_token was not issued for an MCP server");
  }
  record.subject = subject.sub;

  const failure = controls.failures.shift();
  if (failure) {
    throw testFailure(failure);
  }

  const target = params.audience ?? params.resource;
  for (const it of [params.audience, params.resource]) {
    if (it !== undefined && !BACKEND.test(it)) {
      throw new errors.InvalidTarget(`unknown backend ${it}`);
    }
  }
  if (target === undefined) {
    throw new errors.InvalidTarget("audience or resource must name a backend");
  }

  const backendScopes = new Set(RESOURCE_SCOPES.split(" "));
  const subjectScopes = new Set((subject.scope ?? "").split(" ").filter(Boolean));
  let scopes;
  if (params.scope) {
    scopes = params.scope.split(" ").filter(Boolean);
    const beyond = scopes.filter((it) => !backendScopes.has(it) || !subjectScopes.has(it));
    if (beyond.length > 0) {
      throw new errors.InvalidScope(`scopes not available: ${beyond.join(" ")}`, beyond.join(" "));
    }
  } else {
    scopes = [...subjectScopes].filter((it) => backendScopes.has(it));
  }
  const scope = scopes.join(" ");

  const expiresIn = controls.lifetimeSeconds;
  const now = Math.floor(Date.now() / 1000);
  const accessToken = await new SignJWT({
    scope,
    client_id: client.clientId,
    act: { sub: client.clientId },
  })
    .setProtectedHeader({ alg: "RS256", kid: "test-rs256", typ: "at+jwt" })
    .setIssuer(issuer)
    .setSubject(subject.sub)
    .setAudience(target)
    .setIssuedAt(now)
    .setExpirationTime(now + expiresIn)
    .setJti(randomUUID())
    .sign(signingKey);
  return {
    access_token: accessToken,
    issued_token_type: requestedType,
    token_type: "Bearer",
    expires_in: expiresIn,
    scope,
  };
}

/** The OAuth error `code`, as an authorization server would answer it. */
function testFailure(code) {
  const err = new errors.CustomOIDCProviderError(code, `test failure: ${code}`);
  if (code === "invalid_client") {
    err.status = 401;
    err.statusCode = 401;
  } else if (code === "server_error" || code === "temporarily_unavailable") {
    err.status = 503;
    err.statusCode = 503;
    err.expose = true;
  }
  return err;
}

/** `/test/...`: the test's view of the exchanges and its switches. */
const testControls = (provider) => async function testControl(ctx, next) {
  if (!ctx.path.startsWith("/test/")) {
    return next();
  }
  const number = (name) => {
    const value = Number(ctx.query[name]);
    if (!Number.isFinite(value) || value < 0) {
      ctx.throw(400, `${name} must be a non-negative number`);
    }
    return value;
  };
  const route = `${ctx.method} ${ctx.path}`;
  if (route === "GET /test/exchanges") {
    ctx.body = { exchanges: controls.exchanges };
  } else if (route === "POST /test/fail-next") {
    if (!ctx.query.error) {
      ctx.throw(400, "error is required");
    }
    controls.failures.push(String(ctx.query.error));
    ctx.status = 204;
  } else if (route === "POST /test/lifetime") {
    controls.lifetimeSeconds = number("seconds");
    ctx.status = 204;
  } else if (route === "POST /test/delay") {
    controls.delayMs = number("ms");
    ctx.status = 204;
  } else if (route === "GET /test/grants") {
    ctx.body = { grants: controls.grants };
  } else if (route === "POST /test/revoke-grants") {
    for (const id of controls.grantIds.get(String(ctx.query.sub)) ?? []) {
      const grant = await provider.Grant.find(id);
      await grant?.destroy();
    }
    controls.grantIds.delete(String(ctx.query.sub));
    ctx.status = 204;
  } else {
    ctx.status = 404;
  }
};

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`authorization-server: ${err?.stack ?? err}\n`);
  process.exit(1);
}
