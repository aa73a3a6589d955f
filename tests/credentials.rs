//! Backend credentials end to end (`[servers.credentials]`): mcpgate in front of a backend that
//! checks every bearer token against a real authorization server's keys, with panva's
//! `oidc-provider` (`tests/node/authorization-server.mjs`) issuing the callers' tokens and
//! exchanging them (RFC 8693), and the official TypeScript SDK's OAuth client signing users in.
//!
//! The backend answers each user with their own data and records every token it got, so the tests
//! can tell that it only ever saw tokens issued for it, for the right user, and never a token a
//! client sent to mcpgate. The authorization server counts the exchanges it served.
//! `entra_obo` is checked against a stand-in token endpoint that records the exact request;
//! `static` and `client_credentials` against the same recording backend. These parties live in
//! `tests/support/parties.rs`.
//!
//! mcpgate runs with `RUST_LOG=debug`; every test ends by scanning its log, the tool results and
//! its data folder for the secrets and tokens involved.
//!
//! Node and the packages come from `tests/node`, as for `tests/oauth.rs`: without them the tests
//! that need them skip, unless `MCPGATE_REQUIRE_NODE` is set, when they fail.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tempfile::TempDir;

#[path = "support/harness.rs"]
mod harness;
// Each including test uses its own part.
#[allow(dead_code)]
#[path = "support/parties.rs"]
mod parties;

use harness::{Gate, Node, free_port};
use parties::{
    AuthorizationServer, BACKEND_AUDIENCE, BASIC_CLIENT, Backend, JWT_CLIENT, POST_CLIENT, Seen, StandIn,
    TestKey, assert_never_forwarded,
};

/// What these tests run besides Node itself.
const PACKAGES: [&str; 3] = [
    "node_modules/@modelcontextprotocol/sdk/package.json",
    "node_modules/oidc-provider/package.json",
    "node_modules/jose/package.json",
];

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Listing pets needs `pets:read`, adding one `pets:write`; with token exchange, mcpgate asks for
/// the called tool's scopes.
const DOCUMENT: &str = r##"
openapi: 3.0.3
info: {title: Pets, version: "1"}
components:
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties: {id: {type: integer}, name: {type: string}, owner: {type: string}}
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        authorizationCode:
          authorizationUrl: https://idp.example.com/authorize
          tokenUrl: https://idp.example.com/token
          scopes: {pets:read: read pets, pets:write: add pets}
paths:
  /pets:
    get:
      operationId: listPets
      security: [{oauth: [pets:read]}]
      responses:
        "200":
          description: the caller's pets
          content:
            application/json:
              schema:
                type: object
                required: [pets]
                properties:
                  owner: {type: string}
                  pets: {type: array, items: {$ref: "#/components/schemas/Pet"}}
    post:
      operationId: addPet
      security: [{oauth: [pets:write]}]
      requestBody:
        required: true
        content: {application/json: {schema: {type: object, required: [name], properties: {name: {type: string}}}}}
      responses:
        "201": {description: created, content: {application/json: {schema: {$ref: "#/components/schemas/Pet"}}}}
"##;

/// Two users sign in with the SDK and list their pets: each gets only their own, because the
/// backend got a token exchanged for that user, for the backend, with the tool's scope, and never
/// the token the SDK sent to mcpgate. A tool needing another scope gets its own exchange.
#[test]
fn each_user_reaches_the_backend_with_a_token_exchanged_for_them() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let credentials =
        exchange_credentials(&issuer, json!({"client_id": BASIC_CLIENT.0, "client_secret": BASIC_CLIENT.1}));
    let gate = jwt_gate(&issuer, &[server("pets", &spec, &backend, credentials)]);
    let url = gate.mcp_url("pets");

    let mut mcp_tokens = Vec::new();
    let mut results = Vec::new();
    for (login, pets) in
        [("alice", json!([{"id": 1, "name": "Tom"}])), ("bob", json!([{"id": 2, "name": "Rex"}]))]
    {
        let run = node.run(&["sdk-oauth-client.mjs", "--login", login, "--show-token", &url, "listPets"]);
        assert_eq!(run.code, Some(0), "{run}\n--- mcpgate\n{}\n--- AS\n{}", gate.log_text(), issuer.log());
        let summary = run.stdout_json();
        assert_eq!(summary["claims"]["sub"], login, "{run}");
        assert_eq!(summary["claims"]["aud"], url, "{run}");
        assert_eq!(summary["result"]["isError"], false, "{run}");
        assert_eq!(summary["result"]["structuredContent"], json!({"owner": login, "pets": pets}), "{run}");
        mcp_tokens.push(summary["access_token"].as_str().expect("the SDK shows its token").to_owned());
        results.push(summary["result"].clone());
    }

    // alice adds a pet with the token the SDK got: a tool needing `pets:write`, so a new exchange.
    let alice = &mcp_tokens[0];
    let result = runtime.block_on(call(&url, Some(alice), "addPet", json!({"name": "Felix"})));
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(
        result["structuredContent"],
        json!({"id": 100, "name": "Felix", "owner": "alice"}),
        "{result}"
    );
    results.push(result);

    let seen = backend.take();
    let lines: Vec<&str> = seen.iter().map(|it| it.line.as_str()).collect();
    assert_eq!(lines, ["GET /pets", "GET /pets", "POST /pets"], "{seen:#?}");
    let expected = [("alice", "pets:read"), ("bob", "pets:read"), ("alice", "pets:write")];
    for (request, (sub, scope)) in seen.iter().zip(expected) {
        assert_eq!(request.refused, None, "{request:#?}");
        let claims = request.claims.as_ref().expect("a verified token");
        assert_eq!(claims["aud"], BACKEND_AUDIENCE, "{request:#?}");
        assert_eq!(claims["sub"], sub, "{request:#?}");
        assert_eq!(claims["scope"], scope, "{request:#?}");
        assert_eq!(claims["client_id"], BASIC_CLIENT.0, "issued to mcpgate: {request:#?}");
    }
    assert_never_forwarded(&seen, &mcp_tokens);

    let exchanges = issuer.exchanges();
    let summary: Vec<(&str, &str, &str, &str)> = exchanges
        .iter()
        .map(|it| (str(&it["subject"]), str(&it["audience"]), str(&it["scope"]), str(&it["outcome"])))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice", BACKEND_AUDIENCE, "pets:read", "issued"),
            ("bob", BACKEND_AUDIENCE, "pets:read", "issued"),
            ("alice", BACKEND_AUDIENCE, "pets:write", "issued"),
        ],
        "{exchanges:#?}"
    );
    assert!(exchanges.iter().all(|it| it["client_auth"] == "client_secret_basic"), "{exchanges:#?}");

    // Each exchange is in the audit log, without a token.
    let log = gate.log_text();
    let audit = audit_events(&log);
    for (sub, scope) in expected {
        assert!(
            audit.iter().any(|it| {
                field(it, "subject") == Some(sub)
                    && field(it, "server") == Some("pets")
                    && field(it, "audience") == Some(BACKEND_AUDIENCE)
                    && field(it, "scopes") == Some(scope)
                    && field(it, "outcome") == Some("issued")
            }),
            "no audit event for {sub} and {scope} in:\n{}",
            audit.join("\n")
        );
    }
    let backend_tokens: Vec<String> = seen.iter().filter_map(|it| it.token.clone()).collect();
    let secrets: Vec<&str> =
        mcp_tokens.iter().chain(&backend_tokens).map(String::as_str).chain([BASIC_CLIENT.1]).collect();
    assert_no_leaks(&gate, &results, &secrets);
}

/// Two MCP clients signed in as the same user hold two grants: each client's calls use a backend
/// token exchanged from that client's own token, never one exchanged for the other.
#[test]
fn two_clients_of_one_user_each_get_their_own_backend_token() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let credentials =
        exchange_credentials(&issuer, json!({"client_id": BASIC_CLIENT.0, "client_secret": BASIC_CLIENT.1}));
    let gate = jwt_gate(&issuer, &[server("pets", &spec, &backend, credentials)]);
    let url = gate.mcp_url("pets");
    // Each sign-in registers a client of its own (dynamic client registration).
    let first = sign_in(&node, &gate, "pets", "alice");
    let second = sign_in(&node, &gate, "pets", "alice");
    assert!(issuer.exchanges().is_empty() && backend.take().is_empty(), "signing in calls no tool");

    for token in [&first, &second, &first, &second] {
        let result = runtime.block_on(call(&url, Some(token), "listPets", json!({})));
        assert_eq!(result["isError"], false, "{result}");
    }
    let exchanges = issuer.exchanges();
    assert_eq!(
        exchanges.len(),
        2,
        "one exchange per client, then each client's token is reused: {exchanges:#?}"
    );
    assert!(exchanges.iter().all(|it| it["subject"] == "alice"), "{exchanges:#?}");
    let seen = backend.take();
    let tokens: Vec<String> = seen.iter().filter_map(|it| it.token.clone()).collect();
    assert_eq!(tokens.len(), 4, "{seen:#?}");
    assert_eq!((&tokens[0], &tokens[1]), (&tokens[2], &tokens[3]), "each client reuses its own token");
    assert_ne!(tokens[0], tokens[1], "the clients do not share a backend token");
}

/// A hundred calls by one user arriving together, before mcpgate holds a token for them, wait for
/// one exchange; the authorization server answers slowly so that they all do arrive first.
#[test]
fn concurrent_first_calls_share_one_exchange() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let credentials =
        exchange_credentials(&issuer, json!({"client_id": BASIC_CLIENT.0, "client_secret": BASIC_CLIENT.1}));
    let gate = jwt_gate(&issuer, &[server("pets", &spec, &backend, credentials)]);
    let url = gate.mcp_url("pets");
    let token = sign_in(&node, &gate, "pets", "carol");
    issuer.control("/test/delay?ms=500");

    let results = runtime.block_on(async {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (url, token) = (url.clone(), token.clone());
            calls.spawn(async move { call(&url, Some(&token), "listPets", json!({})).await });
        }
        calls.join_all().await
    });
    for result in &results {
        assert_eq!(result["isError"], false, "{result}\n--- mcpgate\n{}", gate.log_text());
        assert_eq!(result["structuredContent"], json!({"owner": "carol", "pets": []}), "{result}");
    }

    let exchanges = issuer.exchanges();
    assert_eq!(exchanges.len(), 1, "{exchanges:#?}");
    assert_eq!((str(&exchanges[0]["subject"]), str(&exchanges[0]["outcome"])), ("carol", "issued"));
    let seen = backend.take();
    assert_eq!(seen.len(), 100);
    let tokens: BTreeSet<&str> = seen.iter().map(|it| it.token.as_deref().expect("a token")).collect();
    assert_eq!(tokens.len(), 1, "every call used the one exchanged token");
    assert!(seen.iter().all(|it| it.refused.is_none() && it.claims.as_ref().unwrap()["sub"] == "carol"));
    assert_never_forwarded(&seen, std::slice::from_ref(&token));
    let log = gate.log_text();
    assert_eq!(audit_events(&log).len(), 1, "{}", audit_events(&log).join("\n"));
    let secrets: Vec<&str> = [token.as_str(), *tokens.first().unwrap(), BASIC_CLIENT.1].into();
    assert_no_leaks(&gate, &results, &secrets);
}

/// An exchanged token is used until a fifth of its lifetime is left, then exchanged again before
/// it expires; the backend, which allows no clock leeway, never sees an expired one. The
/// authorization server issues 6 s tokens, so this waits about 5 s; the rule itself, for any
/// lifetime and for the caller's own expiry, is tested on paused time in `credentials::cache`.
#[test]
fn tokens_are_exchanged_again_before_they_expire() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let credentials =
        exchange_credentials(&issuer, json!({"client_id": BASIC_CLIENT.0, "client_secret": BASIC_CLIENT.1}));
    let gate = jwt_gate(&issuer, &[server("pets", &spec, &backend, credentials)]);
    let url = gate.mcp_url("pets");
    let token = sign_in(&node, &gate, "pets", "dave");
    issuer.control("/test/lifetime?seconds=6");

    // The token is issued between `before` and `after`: renewal is due 4.8 s after it was received
    // (a fifth of 6 s left), so by `after` + 4.8 s, and it expires no sooner than `before` + 6 s.
    let before = Instant::now();
    let list = || runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
    let mut results = vec![list()];
    let after = Instant::now();
    let at =
        |seconds: f64| std::thread::sleep(Duration::from_secs_f64(seconds).saturating_sub(after.elapsed()));
    assert_eq!(issuer.exchanges().len(), 1);
    // More than a fifth of its lifetime left (and less than 30 s): the same token.
    at(2.5);
    results.push(list());
    assert_eq!(issuer.exchanges().len(), 1, "exchanged again with 3.5 s of 6 left");
    // Less than a fifth left, and not expired: a new one.
    at(4.9);
    assert!(before.elapsed() < Duration::from_millis(5800), "too slow to tell renewal from expiry");
    results.push(list());
    let exchanges = issuer.exchanges();
    assert_eq!(exchanges.len(), 2, "not exchanged again with about 1 s of 6 left: {exchanges:#?}");

    for result in &results {
        assert_eq!(result["isError"], false, "{result}");
    }
    let seen = backend.take();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|it| it.refused.is_none()), "{seen:#?}");
    let tokens: Vec<&str> = seen.iter().map(|it| it.token.as_deref().unwrap()).collect();
    assert_eq!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
    let secrets: Vec<&str> = tokens.iter().copied().chain([token.as_str(), BASIC_CLIENT.1]).collect();
    assert_no_leaks(&gate, &results, &secrets);
}

/// A backend that refuses a token (revoked, rotated keys) gets one new token and one retry: the
/// call succeeds if the new token is accepted, fails as a tool error if not, and never loops.
/// Concurrent calls refused together share the one new token.
#[test]
fn a_refused_token_is_exchanged_once_more_and_the_call_retried_once() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let credentials =
        exchange_credentials(&issuer, json!({"client_id": BASIC_CLIENT.0, "client_secret": BASIC_CLIENT.1}));
    let gate = jwt_gate(&issuer, &[server("pets", &spec, &backend, credentials)]);
    let url = gate.mcp_url("pets");
    let token = sign_in(&node, &gate, "pets", "erin");
    let list = || runtime.block_on(call(&url, Some(&token), "listPets", json!({})));

    // Refused once: a second exchange, a second request, success.
    backend.refuse_next(1);
    let first = list();
    assert_eq!(first["isError"], false, "{first}\n--- mcpgate\n{}", gate.log_text());
    assert_eq!(issuer.exchanges().len(), 2, "{:#?}", issuer.exchanges());
    let seen = backend.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen[0].refused.is_some() && seen[1].refused.is_none(), "{seen:#?}");
    assert_ne!(seen[0].token, seen[1].token, "the retry carried the refused token again");
    let mut backend_tokens: Vec<String> = seen.iter().filter_map(|it| it.token.clone()).collect();

    // The token that worked is kept.
    let second = list();
    assert_eq!(second["isError"], false, "{second}");
    assert_eq!(issuer.exchanges().len(), 2);
    let seen = backend.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].token, backend_tokens.last().cloned());

    // Refused always: one new token, one retry, then a tool error; nothing more happens after.
    backend.refuse_every_token();
    let refused_call = list();
    assert_eq!(refused_call["isError"], true, "{refused_call}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(issuer.exchanges().len(), 3, "{:#?}", issuer.exchanges());
    let seen = backend.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen.iter().all(|it| it.refused.is_some()));
    assert_ne!(seen[0].token, seen[1].token);
    backend_tokens.extend(seen.iter().filter_map(|it| it.token.clone()));

    // Twenty calls of another tool (another scope, so no token yet) share the first exchange, all
    // have that token refused, and all share the second exchange: two in all.
    backend.refuse_first_token();
    issuer.control("/test/delay?ms=300");
    let adds = runtime.block_on(async {
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..20 {
            let (url, token) = (url.clone(), token.clone());
            calls.spawn(async move {
                call(&url, Some(&token), "addPet", json!({"name": format!("pet {n}")})).await
            });
        }
        calls.join_all().await
    });
    assert!(adds.iter().all(|it| it["isError"] == false), "{adds:#?}\n--- mcpgate\n{}", gate.log_text());
    // The retried request carried its body again.
    let mut names: Vec<&str> = adds.iter().map(|it| str(&it["structuredContent"]["name"])).collect();
    names.sort_by_key(|it| it.trim_start_matches("pet ").parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(names, (0..20).map(|n| format!("pet {n}")).collect::<Vec<_>>(), "{adds:#?}");
    let exchanges = issuer.exchanges();
    let scopes: Vec<&str> = exchanges.iter().skip(3).map(|it| str(&it["scope"])).collect();
    assert_eq!(scopes, ["pets:write", "pets:write"], "{exchanges:#?}");
    let seen = backend.take();
    let refused: Vec<&Seen> = seen.iter().filter(|it| it.refused.is_some()).collect();
    let accepted: Vec<&Seen> = seen.iter().filter(|it| it.refused.is_none()).collect();
    assert_eq!(accepted.len(), 20, "{seen:#?}");
    assert!(refused.iter().all(|it| it.token == refused[0].token), "{seen:#?}");
    assert!(accepted.iter().all(|it| it.token == accepted[0].token && it.token != refused[0].token));
    backend_tokens.extend([&refused[0], &accepted[0]].iter().filter_map(|it| it.token.clone()));

    let exchanges = issuer.exchanges();
    assert!(
        exchanges.iter().all(|it| it["subject"] == "erin" && it["outcome"] == "issued"),
        "{exchanges:#?}"
    );
    let secrets: Vec<&str> =
        backend_tokens.iter().map(String::as_str).chain([token.as_str(), BASIC_CLIENT.1]).collect();
    let mut results = vec![first, second, refused_call];
    results.extend(adds);
    assert_no_leaks(&gate, &results, &secrets);
}

/// mcpgate authenticates to the authorization server with a client assertion signed by its own
/// key (RFC 7523 `private_key_jwt`), checked by `oidc-provider` against the public keys the
/// client registered: RSA (RS256, PS256), P-256 (ES256) and Ed25519 (EdDSA). A key the server
/// does not know is refused as `invalid_client`.
#[test]
fn private_key_jwt_client_authentication() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rsa = TestKey::rsa("mcpgate-rsa");
    let ec = TestKey::p256("mcpgate-p256");
    let ed = TestKey::ed25519("mcpgate-ed25519");
    let unknown = TestKey::rsa("mcpgate-rsa");
    let jwks = json!({"keys": [rsa.public_jwk, ec.public_jwk, ed.public_jwk]});
    let issuer = AuthorizationServer::start(&node, Some(&jwks));
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let jwt_client = |key: &TestKey, algorithm: &str| {
        exchange_credentials(
            &issuer,
            json!({
                "client_id": JWT_CLIENT,
                "client_auth": "private_key_jwt",
                "private_key": key.private_pem,
                "private_key_id": key.kid,
                "signing_algorithm": algorithm,
            }),
        )
    };
    let servers = [
        server("rs256", &spec, &backend, jwt_client(&rsa, "RS256")),
        server("ps256", &spec, &backend, jwt_client(&rsa, "PS256")),
        server("es256", &spec, &backend, jwt_client(&ec, "ES256")),
        server("eddsa", &spec, &backend, {
            // Scopes set in the configuration replace the tool's.
            let mut credentials = jwt_client(&ed, "EdDSA");
            credentials["scopes"] = json!(["pets:write", "pets:read"]);
            credentials
        }),
        server("unknown-key", &spec, &backend, jwt_client(&unknown, "RS256")),
    ];
    let gate = jwt_gate(&issuer, &servers);

    let mut caller_tokens = Vec::new();
    let mut results = Vec::new();
    for slug in ["rs256", "ps256", "es256", "eddsa"] {
        let url = gate.mcp_url(slug);
        let token = runtime.block_on(issuer.client_credentials_token(&url, "pets:read pets:write"));
        let result = runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
        assert_eq!(
            result["isError"],
            false,
            "{slug}: {result}\n--- mcpgate\n{}\n--- AS\n{}",
            gate.log_text(),
            issuer.log()
        );
        caller_tokens.push(token);
        results.push(result);
    }
    let exchanges = issuer.exchanges();
    assert_eq!(exchanges.len(), 4, "{exchanges:#?}");
    for exchange in &exchanges {
        assert_eq!(exchange["client_id"], JWT_CLIENT, "{exchange}");
        assert_eq!(exchange["client_auth"], "private_key_jwt", "{exchange}");
        assert_eq!(exchange["outcome"], "issued", "{exchange}");
    }
    let scopes: Vec<&str> = exchanges.iter().map(|it| str(&it["scope"])).collect();
    assert_eq!(scopes, ["pets:read", "pets:read", "pets:read", "pets:read pets:write"]);
    let seen = backend.take();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|it| it.claims.as_ref().is_some_and(|claims| claims["client_id"] == JWT_CLIENT)));

    // Signed with a key the authorization server does not know: refused before the grant runs.
    let url = gate.mcp_url("unknown-key");
    let token = runtime.block_on(issuer.client_credentials_token(&url, "pets:read pets:write"));
    let result = runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
    assert_eq!(result["isError"], true, "{result}");
    assert!(text(&result).contains("invalid_client"), "{result}");
    assert_eq!(issuer.exchanges().len(), 4);
    assert_eq!(backend.take().len(), 0);
    caller_tokens.push(token);
    results.push(result);

    let backend_tokens: Vec<String> = seen.iter().filter_map(|it| it.token.clone()).collect();
    let key_material: Vec<&str> = [&rsa, &ec, &ed, &unknown].iter().map(|it| it.secret_line()).collect();
    let secrets: Vec<&str> =
        caller_tokens.iter().chain(&backend_tokens).map(String::as_str).chain(key_material).collect();
    assert_no_leaks(&gate, &results, &secrets);
}

/// `client_secret_post` authenticates too, and `resource` (RFC 8707) may name the backend instead
/// of `audience`, with a `requested_token_type`. Exchanges the authorization server refuses become
/// tool errors naming the OAuth error (and what to do), as does an authorization server that
/// cannot be reached; none of them carries a token or a secret, and a refusal is not remembered.
#[test]
fn refused_exchanges_are_tool_errors_naming_the_oauth_error() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let token_endpoint = format!("{}/token", issuer.url);
    let post = json!({
        "mode": "token_exchange",
        "token_endpoint": token_endpoint,
        "client_id": POST_CLIENT.0,
        "client_auth": "client_secret_post",
                "client_secret": POST_CLIENT.1,
        "resource": BACKEND_AUDIENCE,
        "requested_token_type": "urn:ietf:params:oauth:token-type:jwt",
    });
    let basic = |extra: Value| {
        let mut credentials = exchange_credentials(
            &issuer,
            json!({"client_id": BASIC_CLIENT.0, "client_secret": BASIC_CLIENT.1}),
        );
        credentials.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        credentials
    };
    let closed = format!("http://{}/token", free_port());
    let servers = [
        server("pets", &spec, &backend, post),
        server("elsewhere", &spec, &backend, basic(json!({"audience": "https://nowhere.example"}))),
        server("wrong-secret", &spec, &backend, basic(json!({"client_secret": "not-the-secret"}))),
        server("unreachable", &spec, &backend, basic(json!({"token_endpoint": closed}))),
    ];
    let gate = jwt_gate(&issuer, &servers);
    let url = gate.mcp_url("pets");
    let token = sign_in(&node, &gate, "pets", "frank");
    let list = || runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
    let mut results = Vec::new();

    for code in ["consent_required", "interaction_required", "invalid_grant"] {
        issuer.control(&format!("/test/fail-next?error={code}"));
        let result = list();
        assert_eq!(result["isError"], true, "{code}: {result}");
        assert!(text(&result).contains(code), "{code}: {result}");
        results.push(result);
    }
    // Refusals are not cached: the next call exchanges again, and gets through.
    let result = list();
    assert_eq!(result["isError"], false, "{result}\n--- mcpgate\n{}", gate.log_text());
    assert_eq!(result["structuredContent"], json!({"owner": "frank", "pets": []}), "{result}");
    results.push(result);
    let exchanges = issuer.exchanges();
    let outcomes: Vec<&str> = exchanges.iter().map(|it| str(&it["outcome"])).collect();
    assert_eq!(outcomes, ["consent_required", "interaction_required", "invalid_grant", "issued"]);
    for exchange in &exchanges {
        assert_eq!(exchange["client_auth"], "client_secret_post", "{exchange}");
        assert_eq!(exchange["resource"], BACKEND_AUDIENCE, "{exchange}");
        assert_eq!(exchange["audience"], Value::Null, "{exchange}");
        assert_eq!(exchange["requested_token_type"], "urn:ietf:params:oauth:token-type:jwt", "{exchange}");
        assert_eq!(exchange["subject"], "frank", "{exchange}");
    }
    let seen = backend.take();
    assert_eq!(seen.len(), 1, "only the exchange that succeeded reached the backend: {seen:#?}");
    assert_eq!(seen[0].claims.as_ref().unwrap()["sub"], "frank");
    let mut secrets: Vec<String> = seen.iter().filter_map(|it| it.token.clone()).collect();
    secrets.push(token.clone());

    // Refused by the authorization server for what mcpgate asks, or for who it is; or not there.
    let expected = [
        ("elsewhere", "invalid_target"),
        ("wrong-secret", "invalid_client"),
        ("unreachable", "cannot reach the authorization server"),
    ];
    for (slug, words) in expected {
        let url = gate.mcp_url(slug);
        let token = runtime.block_on(issuer.client_credentials_token(&url, "pets:read pets:write"));
        let result = runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
        assert_eq!(result["isError"], true, "{slug}: {result}");
        assert!(text(&result).contains(words), "{slug}: {result}");
        secrets.push(token);
        results.push(result);
    }
    assert_eq!(backend.take().len(), 0);
    let exchanges = issuer.exchanges();
    let outcomes: Vec<&str> = exchanges.iter().skip(4).map(|it| str(&it["outcome"])).collect();
    assert_eq!(outcomes, ["invalid_target"], "invalid_client is refused before the grant runs");

    // Each refusal is audited with its outcome.
    let log = gate.log_text();
    let audit = audit_events(&log);
    for (server, outcome) in
        [("pets", "consent_required"), ("elsewhere", "invalid_target"), ("wrong-secret", "invalid_client")]
    {
        assert!(
            // The outcome of a refusal is a sentence, so it is looked for in the whole line.
            audit.iter().any(|it| field(it, "server") == Some(server) && it.contains(outcome)),
            "no audit event for {server} with {outcome}:\n{}",
            audit.join("\n")
        );
    }
    let secrets: Vec<&str> =
        secrets.iter().map(String::as_str).chain([POST_CLIENT.1, BASIC_CLIENT.1, "not-the-secret"]).collect();
    assert_no_leaks(&gate, &results, &secrets);
}

/// Microsoft Entra ID's on-behalf-of flow, against a stand-in token endpoint: the exact request
/// (the caller's token as `assertion`, `requested_token_use=on_behalf_of`, the configured scope,
/// the client's credentials in the header or the form), and the backend gets the token it answers,
/// never the caller's. The token is reused for the next call. Refusals and broken answers are tool
/// errors that show nothing of the answer but the error code.
#[test]
fn entra_on_behalf_of_sends_the_documented_request() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let entra = StandIn::start(&runtime);
    let backend = Backend::start(&runtime, None);
    let spec = Spec::new();
    let obo = |tenant: &str, client_auth: &str| {
        json!({
            "mode": "entra_obo",
            "token_endpoint": format!("{}/{tenant}/oauth2/v2.0/token", entra.url),
            "client_id": "mcpgate-entra",
            "client_auth": client_auth,
            "client_secret": "entra-client-secret",
            "scopes": ["api://backend/.default"],
        })
    };
    let servers = [
        server("graph", &spec, &backend, obo("contoso", "client_secret_basic")),
        server("graph-post", &spec, &backend, obo("contoso", "client_secret_post")),
        server("graph-consent", &spec, &backend, obo("consent", "client_secret_basic")),
        server("graph-broken", &spec, &backend, obo("broken", "client_secret_basic")),
    ];
    let gate = jwt_gate(&issuer, &servers);
    let url = gate.mcp_url("graph");
    let token = sign_in(&node, &gate, "graph", "alice");
    let mut results = Vec::new();

    for _ in 0..2 {
        let result = runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
        assert_eq!(result["isError"], false, "{result}\n--- mcpgate\n{}", gate.log_text());
        results.push(result);
    }
    let requests = entra.take();
    assert_eq!(requests.len(), 1, "the token was not reused: {requests:#?}");
    let request = &requests[0];
    assert_eq!(request.path, "/contoso/oauth2/v2.0/token");
    let basic = format!("Basic {}", STANDARD.encode("mcpgate-entra:entra-client-secret"));
    assert_eq!(request.authorization.as_deref(), Some(basic.as_str()), "{request:#?}");
    let mut form = request.form.clone();
    // With the client in the header, `client_id` in the form is allowed (RFC 6749 §2.3.1) but not needed.
    form.retain(|(name, value)| !(name == "client_id" && value == "mcpgate-entra"));
    assert_eq!(
        sorted(form),
        sorted(vec![
            ("grant_type".to_owned(), JWT_BEARER.to_owned()),
            ("assertion".to_owned(), token.clone()),
            ("requested_token_use".to_owned(), "on_behalf_of".to_owned()),
            ("scope".to_owned(), "api://backend/.default".to_owned()),
        ]),
        "{request:#?}"
    );
    let seen = backend.take();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|it| it.token.as_deref() == Some("obo-token-1")), "{seen:#?}");
    assert_never_forwarded(&seen, std::slice::from_ref(&token));

    // The client's credentials in the form instead.
    let url = gate.mcp_url("graph-post");
    let post_token = runtime.block_on(issuer.client_credentials_token(&url, "pets:read pets:write"));
    let result = runtime.block_on(call(&url, Some(&post_token), "listPets", json!({})));
    assert_eq!(result["isError"], false, "{result}");
    results.push(result);
    let requests = entra.take();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].authorization, None, "{requests:#?}");
    assert_eq!(
        sorted(requests[0].form.clone()),
        sorted(vec![
            ("grant_type".to_owned(), JWT_BEARER.to_owned()),
            ("assertion".to_owned(), post_token.clone()),
            ("requested_token_use".to_owned(), "on_behalf_of".to_owned()),
            ("scope".to_owned(), "api://backend/.default".to_owned()),
            ("client_id".to_owned(), "mcpgate-entra".to_owned()),
            ("client_secret".to_owned(), "entra-client-secret".to_owned()),
        ]),
        "{requests:#?}"
    );
    let seen = backend.take();
    assert_eq!(seen.iter().map(|it| it.token.as_deref()).collect::<Vec<_>>(), [Some("obo-token-2")]);

    // Entra's refusal when the user has not consented is `invalid_grant` with a `suberror`; its
    // description (which echoes the assertion here) is not shown. An error page is no answer.
    let mut caller_tokens = vec![token.clone(), post_token.clone()];
    for (slug, words) in [("graph-consent", "consent_required"), ("graph-broken", "502")] {
        let url = gate.mcp_url(slug);
        let token = runtime.block_on(issuer.client_credentials_token(&url, "pets:read pets:write"));
        let result = runtime.block_on(call(&url, Some(&token), "listPets", json!({})));
        assert_eq!(result["isError"], true, "{slug}: {result}");
        assert!(text(&result).contains(words), "{slug}: {result}");
        assert!(text(&result).contains("authorization server"), "{slug}: {result}");
        assert!(!text(&result).contains("AADSTS"), "{slug}: {result}");
        caller_tokens.push(token);
        results.push(result);
    }
    assert_eq!(entra.take().len(), 2);
    assert_eq!(backend.take().len(), 0);

    let log = gate.log_text();
    let audit = audit_events(&log);
    assert!(
        audit
            .iter()
            .any(|it| field(it, "event") == Some("entra_obo") && field(it, "subject") == Some("alice")),
        "{}",
        audit.join("\n")
    );
    let secrets: Vec<&str> = caller_tokens
        .iter()
        .map(String::as_str)
        .chain(["entra-client-secret", "obo-token-1", "obo-token-2"])
        .collect();
    assert_no_leaks(&gate, &results, &secrets);
}

/// A token endpoint may say a token lives (practically) forever: the call still gets an answer,
/// and the token is used and kept.
#[test]
fn a_token_said_to_live_forever_is_used() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let entra = StandIn::start(&runtime);
    let backend = Backend::start(&runtime, None);
    let spec = Spec::new();
    let credentials = json!({
        "mode": "entra_obo",
        "token_endpoint": format!("{}/forever/oauth2/v2.0/token", entra.url),
        "client_id": "mcpgate-entra",
        "client_secret": "entra-client-secret",
        "scopes": ["api://backend/.default"],
    });
    let gate = jwt_gate(&issuer, &[server("graph", &spec, &backend, credentials)]);
    let url = gate.mcp_url("graph");
    let token = runtime.block_on(issuer.client_credentials_token(&url, "pets:read pets:write"));
    let mut results = Vec::new();
    for _ in 0..2 {
        let answer = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), call(&url, Some(&token), "listPets", json!({})))
                .await
        });
        let result =
            answer.unwrap_or_else(|_| panic!("no answer within 20 s\n--- mcpgate\n{}", gate.log_text()));
        assert_eq!(result["isError"], false, "{result}");
        results.push(result);
    }
    assert_eq!(entra.take().len(), 1);
    let tokens: Vec<Option<String>> = backend.take().into_iter().map(|it| it.token).collect();
    assert_eq!(tokens, [Some("obo-token-1".to_owned()), Some("obo-token-1".to_owned())]);
    assert!(!gate.log_text().contains("panicked"), "{}", gate.log_text());
    assert_no_leaks(&gate, &results, &[&token, "entra-client-secret", "obo-token-1"]);
}

/// Fixed credentials, in each place a backend may want them; no authentication of callers needed.
/// A 401 is not retried: there is no other credential to try.
#[test]
fn static_credentials_in_every_scheme() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = Backend::start(&runtime, None);
    let spec = Spec::new();
    let with_prefix = |slug: &str, credentials: Value| {
        let mut it = server(slug, &spec, &backend, credentials);
        it["backend_url"] = json!(format!("{}/{slug}", backend.url));
        it
    };
    let servers = [
        with_prefix(
            "header",
            json!({"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": "header-key-5f2c"}),
        ),
        with_prefix(
            "query",
            json!({"mode": "static", "scheme": "query", "name": "api_key", "value": "query-key-8d1e"}),
        ),
        with_prefix("bearer", json!({"mode": "static", "scheme": "bearer", "value": "bearer-key-3a9b"})),
        with_prefix(
            "basic",
            json!({"mode": "static", "scheme": "basic", "username": "mcpgate", "password": "basic-password-7c4d"}),
        ),
        with_prefix("none", json!({"mode": "none"})),
    ];
    let gate = Gate::start_logging("mode = \"none\"", &servers_toml(&servers), "debug");
    let mut results = Vec::new();
    for slug in ["header", "query", "bearer", "basic", "none"] {
        let result = runtime.block_on(call(&gate.mcp_url(slug), None, "listPets", json!({})));
        assert_eq!(result["isError"], false, "{slug}: {result}\n--- mcpgate\n{}", gate.log_text());
        results.push(result);
    }
    let seen = backend.take();
    let lines: Vec<&str> = seen.iter().map(|it| it.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /header/pets",
            "GET /query/pets?api_key=query-key-8d1e",
            "GET /bearer/pets",
            "GET /basic/pets",
            "GET /none/pets"
        ]
    );
    let credential_headers = |request: &Seen| -> Vec<(String, String)> {
        request
            .headers
            .iter()
            .filter(|(name, _)| name == "authorization" || name == "x-api-key")
            .cloned()
            .collect()
    };
    let basic = format!("Basic {}", STANDARD.encode("mcpgate:basic-password-7c4d"));
    let expected: [Vec<(&str, &str)>; 5] = [
        vec![("x-api-key", "header-key-5f2c")],
        vec![],
        vec![("authorization", "Bearer bearer-key-3a9b")],
        vec![("authorization", basic.as_str())],
        vec![],
    ];
    for (request, expected) in seen.iter().zip(expected) {
        let expected: Vec<(String, String)> =
            expected.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        assert_eq!(credential_headers(request), expected, "{request:#?}");
    }

    // A fixed credential cannot be renewed: a 401 is the call's answer, without a second try.
    backend.refuse_next(1);
    let refused = runtime.block_on(call(&gate.mcp_url("bearer"), None, "listPets", json!({})));
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(backend.take().len(), 1);
    results.push(refused);
    assert_no_leaks(
        &gate,
        &results,
        &[
            "header-key-5f2c",
            "query-key-8d1e",
            "bearer-key-3a9b",
            "basic-password-7c4d",
            basic.trim_start_matches("Basic "),
        ],
    );
}

/// A document may name the credential's header or query parameter as an ordinary parameter: the
/// tool does not offer it (a value for it is refused as an unknown argument), and the backend gets
/// the configured credential only.
#[test]
fn static_credentials_replace_parameters_of_the_same_name() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = Backend::start(&runtime, None);
    let dir = TempDir::new().unwrap();
    let document = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    get:
      operationId: listPets
      parameters:
        - {name: api_key, in: query, schema: {type: string}}
        - {name: X-Api-Key, in: header, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let spec = dir.path().join("pets.yaml");
    std::fs::write(&spec, document).unwrap();
    let server = |slug: &str, credentials: Value| {
        json!({
            "slug": slug,
            "spec": spec.display().to_string(),
            "backend_url": format!("{}/{slug}", backend.url),
            "credentials": credentials,
        })
    };
    let servers = [
        server(
            "query",
            json!({"mode": "static", "scheme": "query", "name": "api_key", "value": "query-key-8d1e"}),
        ),
        server(
            "header",
            json!({"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": "header-key-5f2c"}),
        ),
    ];
    let gate = Gate::start_logging("mode = \"none\"", &servers_toml(&servers), "debug");
    let arguments = json!({"api_key": "callers-key", "X-Api-Key": "callers-key"});
    let mut results = Vec::new();
    let mut seen = Vec::new();
    for slug in ["query", "header"] {
        let refused = runtime.block_on(call(&gate.mcp_url(slug), None, "listPets", arguments.clone()));
        assert_eq!(refused["isError"], true, "{refused}");
        let reached = backend.take();
        assert!(reached.is_empty(), "a refused call reaches no backend: {refused} {reached:#?}");
        let result = runtime.block_on(call(&gate.mcp_url(slug), None, "listPets", json!({})));
        assert_ne!(result["isError"], true, "{result}");
        results.push(result);
        seen.extend(backend.take());
    }
    let query = seen.iter().find(|it| it.line.starts_with("GET /query/")).expect("the query server called");
    let keys: Vec<String> =
        url::Url::parse(&format!("http://backend{}", query.line.trim_start_matches("GET ")))
            .unwrap()
            .query_pairs()
            .filter(|(name, _)| name == "api_key")
            .map(|(_, value)| value.into_owned())
            .collect();
    assert_eq!(keys, ["query-key-8d1e"], "{query:#?}");
    let header =
        seen.iter().find(|it| it.line.starts_with("GET /header/")).expect("the header server called");
    let keys: Vec<&str> = header
        .headers
        .iter()
        .filter(|(name, _)| name == "x-api-key")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(keys, ["header-key-5f2c"], "{header:#?}");
    assert_no_leaks(&gate, &results, &["query-key-8d1e", "header-key-5f2c"]);
}

/// `client_credentials`: mcpgate's own token for the backend, the same whoever calls, from the
/// real authorization server with `resource` naming the backend and the tool's scope.
#[test]
fn client_credentials_get_mcpgate_its_own_token() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = Backend::start(&runtime, Some(&issuer));
    let spec = Spec::new();
    let credentials = json!({
        "mode": "client_credentials",
        "token_endpoint": format!("{}/token", issuer.url),
        "client_id": BASIC_CLIENT.0,
        "client_secret": BASIC_CLIENT.1,
        "resource": BACKEND_AUDIENCE,
    });
    let gate = Gate::start_logging(
        "mode = \"none\"",
        &servers_toml(&[server("pets", &spec, &backend, credentials)]),
        "debug",
    );
    let url = gate.mcp_url("pets");
    let mut results = Vec::new();
    for (tool, arguments) in
        [("listPets", json!({})), ("listPets", json!({})), ("addPet", json!({"name": "Nemo"}))]
    {
        let result = runtime.block_on(call(&url, None, tool, arguments));
        assert_eq!(
            result["isError"],
            false,
            "{result}\n--- mcpgate\n{}\n--- AS\n{}",
            gate.log_text(),
            issuer.log()
        );
        results.push(result);
    }
    let seen = backend.take();
    assert_eq!(seen.len(), 3);
    let scopes: Vec<&str> =
        seen.iter().map(|it| str(&it.claims.as_ref().expect("verified")["scope"])).collect();
    assert_eq!(scopes, ["pets:read", "pets:read", "pets:write"], "{seen:#?}");
    for request in &seen {
        let claims = request.claims.as_ref().unwrap();
        assert_eq!(
            (&claims["aud"], &claims["client_id"], &claims["sub"]),
            (&json!(BACKEND_AUDIENCE), &json!(BASIC_CLIENT.0), &json!(BASIC_CLIENT.0))
        );
    }
    assert_eq!(seen[0].token, seen[1].token, "the token is reused");
    assert!(issuer.exchanges().is_empty());
    let tokens: Vec<&str> = seen.iter().filter_map(|it| it.token.as_deref()).collect();
    let secrets: Vec<&str> = tokens.into_iter().chain([BASIC_CLIENT.1]).collect();
    assert_no_leaks(&gate, &results, &secrets);
}

/// Modes that act for the caller need callers: with auth mode `none`, mcpgate refuses to serve
/// such a server rather than calling the backend with no user.
#[test]
fn per_user_modes_need_auth_mode_jwt() {
    let dir = TempDir::new().unwrap();
    let spec = dir.path().join("pets.yaml");
    std::fs::write(&spec, DOCUMENT).unwrap();
    let addr = free_port();
    let credentials = json!({
        "mode": "token_exchange",
        "token_endpoint": "http://127.0.0.1:9/token",
        "client_id": BASIC_CLIENT.0,
        "client_secret": BASIC_CLIENT.1,
        "audience": BACKEND_AUDIENCE,
    });
    let servers = servers_toml(&[json!({
        "slug": "pets",
        "spec": spec.display().to_string(),
        "backend_url": "http://127.0.0.1:9",
        "credentials": credentials,
    })]);
    let config = harness::config_text(addr, &dir.path().join("data"), "mode = \"none\"", &servers);
    let config_path = dir.path().join("mcpgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("log");
    let log_file = File::create(&log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcpgate"));
    // The test switches CI sets (`MCPGATE_NODE`, ...) are not configuration.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MCPGATE_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    // Either mcpgate does not start, or it starts without that server.
    let start = Instant::now();
    let verdict = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break format!("exited with {status}");
        }
        if let Some((status, body)) = harness::http_get(addr, "/readyz") {
            // Killed, mcpgate writes no more of its log: the lines so far are written first.
            std::thread::sleep(harness::LOG_WRITTEN_WITHIN);
            let _ = child.kill();
            let _ = child.wait();
            assert_ne!(status, 200, "served a token_exchange server without authentication: {body}");
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "mcpgate neither started nor stopped");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("jwt") || verdict.contains("jwt"), "the reason is not given: {verdict}\n{log}");
    assert!(!log.contains(BASIC_CLIENT.1), "{log}");
}

// ---------------------------------------------------------------------------------------------
// mcpgate

/// The pets document in a temporary folder.
struct Spec {
    dir: TempDir,
}

impl Spec {
    fn new() -> Spec {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("pets.yaml"), DOCUMENT).unwrap();
        Spec { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("pets.yaml").display().to_string()
    }
}

/// One `[[servers]]` entry hosting the pets document as `slug` in front of `backend`.
fn server(slug: &str, spec: &Spec, backend: &Backend, credentials: Value) -> Value {
    json!({
        "slug": slug,
        "spec": spec.path(),
        "backend_url": backend.url,
        "max_concurrency": 200,
        "credentials": credentials,
    })
}

/// `[servers.credentials]` for token exchange at `issuer` for the pets backend, with `client`'s
/// fields.
fn exchange_credentials(issuer: &AuthorizationServer, client: Value) -> Value {
    let mut credentials = json!({
        "mode": "token_exchange",
        "token_endpoint": format!("{}/token", issuer.url),
        "audience": BACKEND_AUDIENCE,
    });
    credentials.as_object_mut().unwrap().extend(client.as_object().unwrap().clone());
    credentials
}

fn servers_toml(servers: &[Value]) -> String {
    toml::to_string(&json!({"servers": servers})).unwrap()
}

/// mcpgate in auth mode `jwt` trusting `issuer`, logging at debug level.
fn jwt_gate(issuer: &AuthorizationServer, servers: &[Value]) -> Gate {
    let auth = format!("mode = \"jwt\"\n\n[[auth.issuers]]\nissuer = \"{}\"", issuer.url);
    Gate::start_logging(&auth, &servers_toml(servers), "debug")
}

/// Signs `login` in with the SDK's OAuth flow for the hosted server `slug` (nothing is called)
/// and returns the access token the SDK got for mcpgate.
fn sign_in(node: &Node, gate: &Gate, slug: &str, login: &str) -> String {
    let url = gate.mcp_url(slug);
    let run = node.run(&["sdk-oauth-client.mjs", "--login", login, "--show-token", &url]);
    assert_eq!(run.code, Some(0), "{run}\n--- mcpgate\n{}", gate.log_text());
    let summary = run.stdout_json();
    assert_eq!(summary["claims"]["sub"], login, "{run}");
    summary["access_token"].as_str().expect("the SDK shows its token").to_owned()
}

/// `tools/call` over plain HTTP, with `token` as the bearer token if given: the call's result.
async fn call(url: &str, token: Option<&str>, tool: &str, arguments: Value) -> Value {
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
    let mut request = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(60))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(message.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{tool}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{tool}: {err}: {text}"));
    assert!(body.get("error").is_none(), "{tool}: {body}");
    body["result"].clone()
}

/// The text of a tool result.
fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|it| it["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The events mcpgate logged under `mcpgate::audit`.
fn audit_events(log: &str) -> Vec<&str> {
    // The grant requests' target, not the call audit's (`mcpgate::audit::call`).
    log.lines().filter(|it| it.contains(" mcpgate::audit: ")).collect()
}

/// The value of `name=` in a text log line, quoted or not.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(' ').next(),
    }
}

/// No secret or token in `secrets` is in mcpgate's log, in a tool result or in its data folder
/// (the store): not whole, and not the part of a JWT that is its own (the signature).
#[track_caller]
fn assert_no_leaks(gate: &Gate, results: &[Value], secrets: &[&str]) {
    let log = gate.log_text();
    let results = serde_json::to_string(results).unwrap();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(gate.dir().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(!stored.is_empty(), "no data in {}", gate.dir().display());
    for secret in secrets {
        assert!(secret.len() >= 8, "too short to look for: {secret:?}");
        let signature = secret.rsplit('.').next().unwrap();
        for needle in [*secret, signature] {
            if let Some(at) = log.find(needle) {
                let line = log[..at].rsplit('\n').next().unwrap_or_default();
                panic!("mcpgate logged a secret or token: {line}…");
            }
            assert!(!results.contains(needle), "a tool result holds a secret or token: {results}");
            for (path, bytes) in &stored {
                let found = bytes.windows(needle.len()).any(|it| it == needle.as_bytes());
                assert!(!found, "{} holds a secret or token in clear", path.display());
            }
        }
    }
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

fn str(value: &Value) -> &str {
    value.as_str().unwrap_or("(not a string)")
}
