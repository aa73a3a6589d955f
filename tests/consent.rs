//! Credentials mode `authorization_code` end to end: each user connects their own account at the
//! backend's own authorization server, and calls reach the backend as that user.
//!
//! Two real authorization servers (`tests/node/authorization-server.mjs`, panva's
//! `oidc-provider`): one signs users in to mcpgate (as in `tests/credentials.rs`), the other
//! plays the backend's own, where mcpgate is the confidential client `mcpgate-consent`
//! (authorization code with PKCE, refresh tokens). The backend accepts only the second one's
//! tokens and answers each `sub` with their own pets. Users are the official TypeScript SDK
//! (declaring URL-mode elicitation or not) and plain HTTP calls; the browser is
//! `tests/node/browse.mjs`, which follows redirects and submits the login, consent and connect
//! forms.
//!
//! mcpgate runs with `RUST_LOG=debug`; the tests scan its log, the results, the admin API's
//! answers and its data folder for every token and secret involved.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

#[path = "support/harness.rs"]
mod harness;
// Each including test uses its own part.
#[allow(dead_code)]
#[path = "support/parties.rs"]
mod parties;

use harness::{Gate, Node, http_get};
use parties::{AuthorizationServer, BACKEND_AUDIENCE, Backend, assert_never_forwarded};

const PACKAGES: [&str; 3] = [
    "node_modules/@modelcontextprotocol/sdk/package.json",
    "node_modules/oidc-provider/package.json",
    "node_modules/jose/package.json",
];

/// mcpgate's client at the backend's authorization server.
const CLIENT: (&str, &str) = ("mcpgate-consent", "mcpgate-consent-secret");
const ADMIN_TOKEN: &str = "consent-admin-token-0f3b";

const DOCUMENT: &str = r##"
openapi: 3.0.3
info: {title: Pets, version: "1"}
components:
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
                properties:
                  owner: {type: string}
                  pets: {type: array, items: {type: object}}
"##;

/// The parties of one test: both authorization servers, the backend, mcpgate.
struct World {
    runtime: tokio::runtime::Runtime,
    node: Node,
    mcp_as: AuthorizationServer,
    backend_as: AuthorizationServer,
    backend: Backend,
    gate: Gate,
    _spec: TempDir,
}

impl World {
    fn start() -> Option<World> {
        let node = Node::find(&PACKAGES)?;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mcp_as = AuthorizationServer::start(&node, None);
        let backend_as = AuthorizationServer::start(&node, None);
        let backend = Backend::start(&runtime, Some(&backend_as));
        let spec = TempDir::new().unwrap();
        std::fs::write(spec.path().join("pets.yaml"), DOCUMENT).unwrap();
        // `other` names no authorization server: its document's authorization code flow does.
        let flow = format!("authorizationUrl: {0}/auth\n          tokenUrl: {0}/token", backend_as.url);
        let other = DOCUMENT
            .replace("authorizationUrl: https://idp.example.com/authorize\n          tokenUrl: https://idp.example.com/token", &flow);
        assert_ne!(other, DOCUMENT);
        std::fs::write(spec.path().join("other.yaml"), other).unwrap();
        let other = json!({
            "slug": "other",
            "spec": spec.path().join("other.yaml").display().to_string(),
            "backend_url": backend.url,
            "credentials": {
                "mode": "authorization_code",
                "client_id": CLIENT.0,
                "client_secret": CLIENT.1,
                "resource": BACKEND_AUDIENCE,
            },
        });
        let server = json!({
            "slug": "pets",
            "spec": spec.path().join("pets.yaml").display().to_string(),
            "backend_url": backend.url,
            "credentials": {
                "mode": "authorization_code",
                "issuer": backend_as.url,
                "client_id": CLIENT.0,
                "client_secret": CLIENT.1,
                "resource": BACKEND_AUDIENCE,
            },
        });
        let tables = format!(
            "[admin]\nbootstrap_token = \"{ADMIN_TOKEN}\"\n\n{}",
            toml::to_string(&json!({"servers": [server, other]})).unwrap()
        );
        let auth = format!("mode = \"jwt\"\n\n[[auth.issuers]]\nissuer = \"{}\"", mcp_as.url);
        let gate = Gate::start_logging(&auth, &tables, "debug");
        Some(World { runtime, node, mcp_as, backend_as, backend, gate, _spec: spec })
    }

    fn url(&self) -> String {
        self.gate.mcp_url("pets")
    }

    /// Signs `login` in to mcpgate with the SDK (nothing is called): their token for mcpgate.
    fn sign_in(&self, login: &str) -> String {
        self.sign_in_to("pets", login)
    }

    fn sign_in_to(&self, slug: &str, login: &str) -> String {
        let url = self.gate.mcp_url(slug);
        let run = self.node.run(&["sdk-oauth-client.mjs", "--login", login, "--show-token", &url]);
        assert_eq!(
            run.code,
            Some(0),
            "{run}\n--- mcpgate\n{}\n--- AS\n{}",
            self.gate.log_text(),
            self.mcp_as.log()
        );
        run.stdout_json()["access_token"].as_str().expect("the SDK shows its token").to_owned()
    }

    fn call(&self, token: &str) -> Value {
        self.runtime.block_on(call(&self.url(), token, "2025-11-25", Value::Null))
    }

    fn call_other(&self, token: &str) -> Value {
        self.runtime.block_on(call(&self.gate.mcp_url("other"), token, "2025-11-25", Value::Null))
    }

    /// Follows `link` as `login` in the headless browser: the final page and what it visited.
    fn browse(&self, link: &str, login: &str) -> Value {
        let run = self.node.run(&["browse.mjs", link, login]);
        assert_eq!(
            run.code,
            Some(0),
            "{run}\n--- mcpgate\n{}\n--- AS\n{}",
            self.gate.log_text(),
            self.backend_as.log()
        );
        run.stdout_json()
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> (u16, String) {
        self.runtime.block_on(async {
            let response = reqwest::Client::new()
                .request(method, format!("http://{}{path}", self.gate.addr))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    }
}

/// `tools/call listPets` over plain HTTP with `token`, as a client of protocol `version`
/// (2026-07-28 declares URL-mode elicitation in `_meta`, and may answer input requests with
/// `answers`): the call's result.
async fn call(url: &str, token: &str, version: &str, answers: Value) -> Value {
    let mut params = json!({"name": "listPets", "arguments": {}});
    if !answers.is_null() {
        params["inputResponses"] = answers;
    }
    if version >= "2026-07-28" {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}},
        });
    }
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let response = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(60))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", version)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "listPets")
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
    assert!(body.get("error").is_none(), "{body}");
    body["result"].clone()
}

fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|it| it["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The connect link to `pets` in a tool error's text.
#[track_caller]
fn link(result: &Value) -> String {
    link_to("pets", result)
}

/// The connect link to the server `slug` in a tool error's text.
#[track_caller]
fn link_to(slug: &str, result: &Value) -> String {
    assert_eq!(result["isError"], true, "{result}");
    let text = text(result);
    let start = text.find("http://").unwrap_or_else(|| panic!("no link in {text}"));
    let link = text[start..].split_whitespace().next().unwrap().to_owned();
    assert!(link.contains(&format!("/connect/{slug}/start?ticket=")), "{link}");
    link
}

/// The path and query of the callback request among `visited` (`METHOD URL -> STATUS`).
fn callback(page: &Value) -> String {
    let visited: Vec<&str> = page["visited"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let line =
        visited.iter().find(|it| it.contains("/connect/pets/callback?")).expect("the callback was visited");
    let url = line.split(' ').nth(1).unwrap();
    let url = url::Url::parse(url).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

fn owner(result: &Value) -> &str {
    result["structuredContent"]["owner"].as_str().unwrap_or_else(|| panic!("no owner in {result}"))
}

/// A user's first call asks them to connect, by URL-mode elicitation (the SDK: the call waits
/// for the connection, then runs) or a link in a tool error (plain HTTP); once they approve at
/// the backend's authorization server, their calls reach the backend with a token issued to
/// mcpgate for them, and each user gets their own data.
/// A callback's `state` works once, and only one mcpgate issued. The admin API lists and ends
/// connections; an ended connection, or a 2026-07-28 client, is asked again (InputRequiredResult).
#[test]
fn each_user_connects_their_own_account_once() {
    let Some(world) = World::start() else { return };
    let url = world.url();
    let run = world.node.run(&[
        "sdk-oauth-client.mjs",
        "--login",
        "alice",
        "--show-token",
        "--elicit-url",
        "--connect-as",
        "alice",
        &url,
        "listPets",
    ]);
    assert_eq!(
        run.code,
        Some(0),
        "{run}\n--- mcpgate\n{}\n--- AS\n{}",
        world.gate.log_text(),
        world.backend_as.log()
    );
    let summary = run.stdout_json();
    let elicitation = &summary["elicitations"][0];
    assert_eq!(elicitation["mode"], "url", "{summary}");
    let start = format!("http://{}/connect/pets/start?ticket=", world.gate.addr);
    assert!(elicitation["url"].as_str().unwrap().starts_with(&start), "{elicitation}");
    assert!(!elicitation["elicitationId"].as_str().unwrap_or_default().is_empty(), "{elicitation}");
    // The call waited while alice connected in the browser, then ran.
    assert!(summary["first"].is_null(), "{summary}");
    assert!(summary["connect"]["text"].as_str().unwrap().contains("connected for alice"), "{summary}");
    assert_eq!(summary["result"]["isError"], false, "{summary}");
    assert_eq!(
        summary["result"]["structuredContent"],
        json!({"owner": "alice", "pets": [{"id": 1, "name": "Tom"}]})
    );
    let alice = summary["access_token"].as_str().unwrap().to_owned();
    let mut results = vec![summary["result"].clone()];

    // The first call did not reach the backend; the second did, as alice, with the second
    // server's token issued to mcpgate.
    let seen = world.backend.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let claims = seen[0].claims.as_ref().expect("a token the backend accepted");
    assert_eq!(
        (claims["sub"].as_str(), claims["iss"].as_str(), claims["client_id"].as_str()),
        (Some("alice"), Some(world.backend_as.url.as_str()), Some(CLIENT.0)),
        "{claims}"
    );

    // bob calls over plain HTTP: a tool error with his own link.
    let bob = world.sign_in("bob");
    let first = world.call(&bob);
    let bob_link = link(&first);
    assert!(world.backend.take().is_empty(), "an unconnected user's call reaches no backend");
    let page = world.browse(&bob_link, "bob");
    assert!(page["text"].as_str().unwrap().contains("connected for bob"), "{page}");
    let result = world.call(&bob);
    assert_eq!(owner(&result), "bob", "{result}");
    results.extend([first, result]);
    let seen_bob = world.backend.take();
    assert_eq!(seen_bob[0].claims.as_ref().unwrap()["sub"], "bob");

    // `other` takes its authorization server's endpoints from its document.
    let bob_other = world.sign_in_to("other", "bob");
    let other = world.call_other(&bob_other);
    let page_other = world.browse(&link_to("other", &other), "bob");
    assert!(page_other["text"].as_str().unwrap().contains("connected for bob"), "{page_other}");
    let result = world.call_other(&bob_other);
    assert_eq!(owner(&result), "bob", "{result}");
    results.extend([other, result]);
    let seen_other = world.backend.take();

    // The page the callback links to shows bob his connection to `other` and ends it.
    let manage = page_other["links"][0].as_str().expect("a link to the connection's page").to_owned();
    assert!(manage.contains("/connect/other/manage?ticket="), "{page_other}");
    let (status, shown) = world.runtime.block_on(async {
        let response = reqwest::get(&manage).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("is connected for <strong>bob</strong>"), "{shown}");
    let ticket = url::Url::parse(&manage)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "ticket")
        .unwrap()
        .1
        .into_owned();
    let (status, ended) = world.runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://{}/connect/other/revoke", world.gate.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new()).append_pair("ticket", &ticket).finish(),
            )
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(status, 200, "{ended}");
    assert!(ended.contains("no longer connected"), "{ended}");
    let asked_other = world.call_other(&bob_other);
    link_to("other", &asked_other);
    results.push(asked_other);

    // The callback refuses a state used already, and one mcpgate never issued.
    let replayed = http_get(world.gate.addr, &callback(&page)).unwrap();
    assert_eq!(replayed.0, 400, "{replayed:?}");
    assert!(replayed.1.contains("used already"), "{replayed:?}");
    let forged =
        http_get(world.gate.addr, "/connect/pets/callback?state=forged-state&code=forged-code").unwrap();
    assert_eq!(forged.0, 400, "{forged:?}");
    // A link of one server does not start a connection to another.
    let elsewhere = bob_link.replace("/connect/pets/", "/connect/other/");
    let path = &elsewhere[elsewhere.find("/connect/").unwrap()..];
    let refused = http_get(world.gate.addr, path).unwrap();
    assert_eq!(refused.0, 400, "{refused:?}");
    assert!(refused.1.contains("not valid"), "{refused:?}");
    assert_eq!(http_get(world.gate.addr, "/connect/nowhere/start?ticket=x").unwrap().0, 404);

    // The admin API lists the connections, without tokens.
    let (status, listed) = world.admin(reqwest::Method::GET, "/admin/api/servers/pets/connections");
    assert_eq!(status, 200, "{listed}");
    let connections: Value = serde_json::from_str(&listed).unwrap();
    let subjects: Vec<&str> = connections["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|it| it["subject"].as_str())
        .collect();
    let mut sorted = subjects.clone();
    sorted.sort();
    assert_eq!(sorted, ["alice", "bob"], "{listed}");
    for connection in connections["connections"].as_array().unwrap() {
        assert_eq!(connection["issuer"], world.mcp_as.url, "{listed}");
        assert_eq!(connection["needs_consent"], false, "{listed}");
        assert!(connection["expires_at"].as_u64().is_some() && connection["connected_at"].as_u64().is_some());
    }

    // The admin UI shows the mode and how many users connected.
    let (status, ui) = world.admin(reqwest::Method::GET, "/admin/servers/pets");
    assert_eq!(status, 200, "{ui}");
    assert!(ui.contains("<option value=\"authorization_code\" selected>"), "{ui}");
    assert!(ui.contains("Connected users: <strong>2</strong>"), "{ui}");
    assert!(ui.contains("/connect/pets/callback"), "{ui}");

    // The administrator ends bob's connection: it is revoked at the backend's server, and bob is
    // asked again, by a 2026-07-28 client with an InputRequiredResult.
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("issuer", &world.mcp_as.url)
        .append_pair("subject", "bob")
        .finish();
    let (status, body) =
        world.admin(reqwest::Method::DELETE, &format!("/admin/api/servers/pets/connections?{query}"));
    assert_eq!(status, 204, "{body}");
    let log = world.gate.log_text();
    assert!(
        log.lines().any(|it| it.contains("mcpgate::audit")
            && it.contains("\"disconnect\"")
            && it.contains("outcome=revoked")),
        "no revocation in the log:\n{log}"
    );
    let asked = world.runtime.block_on(call(&url, &bob, "2026-07-28", Value::Null));
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let request = &asked["inputRequests"]["connect"];
    assert_eq!(request["method"], "elicitation/create", "{asked}");
    assert_eq!(request["params"]["mode"], "url", "{asked}");
    assert!(request["params"]["url"].as_str().unwrap().starts_with(&start), "{asked}");
    let again = world.call(&bob);
    link(&again);
    assert!(world.backend.take().is_empty());
    // The client retries with bob's acceptance while he connects: the retry waits, then runs.
    let retry = world.runtime.spawn({
        let (url, bob) = (url.clone(), bob.clone());
        async move { call(&url, &bob, "2026-07-28", json!({"connect": {"action": "accept"}})).await }
    });
    let page = world.browse(request["params"]["url"].as_str().unwrap(), "bob");
    assert!(page["text"].as_str().unwrap().contains("connected for bob"), "{page}");
    let retried = world.runtime.block_on(retry).unwrap();
    assert_eq!(owner(&retried), "bob", "{retried}");
    assert_eq!(world.backend.take().len(), 1);
    results.extend([asked, again, retried]);

    let all_seen: Vec<_> = seen.iter().chain(&seen_bob).chain(&seen_other).cloned().collect();
    assert_never_forwarded(&all_seen, &[alice.clone(), bob.clone(), bob_other.clone()]);
    let backend_tokens: Vec<String> = all_seen.iter().filter_map(|it| it.token.clone()).collect();
    let mut secrets: Vec<&str> = backend_tokens.iter().map(String::as_str).collect();
    secrets.extend([alice.as_str(), bob.as_str(), bob_other.as_str(), CLIENT.1, ADMIN_TOKEN]);
    assert_no_leaks(&world.gate, &results, &format!("{listed}{ui}"), &secrets);
}

/// Tokens are refreshed before they expire; a grant revoked at the backend's authorization
/// server, or a backend refusing even a refreshed token, makes the next call ask to connect again
/// (never an error on every call), and connecting again works.
#[test]
fn refreshes_and_asks_again_when_the_grant_is_gone() {
    let Some(world) = World::start() else { return };
    // Backend tokens live 10 s: renewed when less than 2 s (a fifth) is left.
    world.backend_as.control("/test/lifetime?seconds=10");
    let alice = world.sign_in("alice");
    let first = world.call(&alice);
    world.browse(&link(&first), "alice");
    let result = world.call(&alice);
    assert_eq!(owner(&result), "alice", "{result}");
    std::thread::sleep(Duration::from_secs(9));
    let refreshed = world.call(&alice);
    assert_eq!(owner(&refreshed), "alice", "{refreshed}");
    let seen = world.backend.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_ne!(seen[0].token, seen[1].token, "the second call carried a refreshed token");
    assert!(seen.iter().all(|it| it.refused.is_none()), "{seen:#?}");
    let refreshes = |outcome: &str| {
        world
            .backend_as
            .grants()
            .iter()
            .filter(|it| it["grant_type"] == "refresh_token" && it["outcome"] == outcome)
            .count()
    };
    assert_eq!(refreshes("issued"), 1, "{:#?}", world.backend_as.grants());

    // The user's grant ends at the backend's server: once the token is due, the refresh is
    // refused and the call asks to connect again, as does the one after.
    world.backend_as.control("/test/revoke-grants?sub=alice");
    std::thread::sleep(Duration::from_secs(9));
    let asked = world.call(&alice);
    let again = world.call(&alice);
    let relink = link(&again);
    link(&asked);
    assert_eq!(
        refreshes("invalid_grant"),
        1,
        "one refused refresh, then no more tries: {:#?}",
        world.backend_as.grants()
    );
    assert!(world.backend.take().is_empty());
    world.browse(&relink, "alice");
    assert_eq!(owner(&world.call(&alice)), "alice");
    let reconnected = world.backend.take();

    // The backend refuses the token, and the refreshed one: the call fails, the next asks.
    world.backend.refuse_every_token();
    let refused = world.call(&alice);
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text(&refused).contains("401"), "{refused}");
    let refusals = world.backend.take();
    assert_eq!(refusals.len(), 2, "one retry with a refreshed token: {refusals:#?}");
    assert_ne!(refusals[0].token, refusals[1].token, "{refusals:#?}");
    world.backend.refuse_next(0);
    let asked_again = world.call(&alice);
    link(&asked_again);
    assert!(world.backend.take().is_empty());
    assert_no_leaks(
        &world.gate,
        &[first, result, refreshed, asked, again, refused, asked_again],
        "",
        &[alice.as_str(), CLIENT.1],
    );
    let tokens: Vec<String> =
        seen.iter().chain(&reconnected).chain(&refusals).filter_map(|it| it.token.clone()).collect();
    assert_eq!(tokens.len(), 5);
    assert_no_leaks(&world.gate, &[], "", &tokens.iter().map(String::as_str).collect::<Vec<_>>());
}

/// No secret or token in `secrets` is in mcpgate's log, a result, an admin API answer or its
/// data folder: not whole, and not a JWT's signature.
#[track_caller]
fn assert_no_leaks(gate: &Gate, results: &[Value], admin: &str, secrets: &[&str]) {
    let log = gate.log_text();
    let results = serde_json::to_string(results).unwrap();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(gate.dir().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    for secret in secrets {
        assert!(secret.len() >= 8, "too short to look for: {secret:?}");
        let signature = secret.rsplit('.').next().unwrap();
        for needle in [*secret, signature] {
            if let Some(at) = log.find(needle) {
                let line = log[..at].rsplit('\n').next().unwrap_or_default();
                panic!("mcpgate logged a secret or token: {line}…");
            }
            assert!(!results.contains(needle), "a result holds a secret or token: {results}");
            assert!(!admin.contains(needle), "the admin API showed a secret or token: {admin}");
            for (path, bytes) in &stored {
                let found = bytes.windows(needle.len()).any(|it| it == needle.as_bytes());
                assert!(!found, "{} holds a secret or token in clear", path.display());
            }
        }
    }
}
