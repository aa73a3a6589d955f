//! Versioned tool definitions end to end: each publication is a numbered generation; a
//! re-imported document changes nothing served until it is published (calls and `tools/list`
//! keep the old definitions and hashes) while the draft's diff names what changed; publishing
//! serves the new generation's hashes and tells connected sessions. The admin UI's Changes page
//! shows a re-import's changed description in Chromium (through `tests/node/admin-changes.mjs`;
//! skipped without Node or Chromium unless `MCPGATE_REQUIRE_NODE` or `MCPGATE_REQUIRE_BROWSER`
//! is set).

// Tests read their own switches from the environment, as `tests/admin_ui.rs` does.
#![allow(clippy::disallowed_methods)]

use axum::response::IntoResponse;
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;

use app::{Backend, Events, Seen, Setup, TestApp};
use harness::Node;

const BOOTSTRAP_TOKEN: &str = "boot-generations-7d1c0b";
const SCREENSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
const LIST_CHANGED: &str = "notifications/tools/list_changed";

const V1: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets.
      responses: {"200": {description: ok}}
  /pets/{id}:
    get:
      operationId: getPet
      summary: Get a pet.
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;

/// `getPet` described anew, its `id` an integer; `listPets` unchanged; `adoptPet` added.
const V2: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "2"}
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets.
      responses: {"200": {description: ok}}
    post:
      operationId: adoptPet
      summary: Adopt a pet.
      responses: {"200": {description: ok}}
  /pets/{id}:
    get:
      operationId: getPet
      summary: Fetch one pet by its number.
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
"#;

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request =
        app.http.request(method, format!("{}/admin/api{path}", app.base)).bearer_auth(BOOTSTRAP_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn get(app: &TestApp, path: &str) -> Value {
    admin(app, reqwest::Method::GET, path, None).await
}

/// The listed tools by name: (description, hash).
async fn listed(app: &TestApp) -> Vec<(String, String, String)> {
    let list = app.mcp("pets").rpc("tools/list", json!({})).await;
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| {
            (
                it["name"].as_str().unwrap().to_owned(),
                it["description"].as_str().unwrap_or_default().to_owned(),
                it["_meta"]["mcpgate/definitionHash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn hash_of<'a>(tools: &'a [(String, String, String)], name: &str) -> &'a str {
    &tools.iter().find(|it| it.0 == name).unwrap_or_else(|| panic!("no {name}: {tools:?}")).2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reimport_changes_nothing_served_until_it_is_published() {
    let backend =
        Backend::start(|seen: Seen| async move { axum::Json(json!({"path": seen.path()})).into_response() })
            .await;
    let app = Setup::new().bootstrap_token(BOOTSTRAP_TOKEN).start().await;
    let post = reqwest::Method::POST;
    admin(&app, post.clone(), "/servers", Some(json!({"slug": "pets", "text": V1}))).await;
    let settings = json!({"backend_url": backend.url});
    admin(&app, reqwest::Method::PATCH, "/servers/pets/settings", Some(settings)).await;
    let exposed = json!([{"key": "listPets", "exposed": true}, {"key": "getPet", "exposed": true}]);
    admin(&app, reqwest::Method::PATCH, "/servers/pets/operations", Some(exposed)).await;
    let published = admin(&app, post.clone(), "/servers/pets/publish", None).await;
    assert_eq!((published["generation"].as_u64(), published["tools"].as_u64()), (Some(1), Some(2)));

    let history = get(&app, "/servers/pets/generations").await;
    assert_eq!(history["kept"], 50);
    assert_eq!(history["generations"].as_array().unwrap().len(), 1);
    assert_eq!(history["generations"][0]["number"], 1);
    assert_eq!(history["generations"][0]["published_by"], "bootstrap-token");
    let before = listed(&app).await;
    let old_hash = hash_of(&before, "getPet").to_owned();
    let first = get(&app, "/servers/pets/generations/1").await;
    let stored: Vec<(&str, &str)> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| (it["name"].as_str().unwrap(), it["hash"].as_str().unwrap()))
        .collect();
    assert!(stored.contains(&("getPet", old_hash.as_str())), "the generation keeps the served hash: {first}");

    // A session that will hear of the publication.
    let client = app.mcp("pets");
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);

    admin(&app, post.clone(), "/servers/pets/document", Some(json!({"text": V2}))).await;

    // Served as before: the old definitions, the old hashes, the old schema (a string id).
    assert_eq!(listed(&app).await, before, "a re-import changed what is served");
    let called = client.call("getPet", json!({"id": "rex"})).await;
    assert_eq!(called["isError"], false, "{called}");
    assert_eq!(backend.take_lines(), ["GET /pets/rex"]);

    // The draft's diff names what changed.
    let changes = get(&app, "/servers/pets/changes").await;
    assert_eq!((changes["from"].as_u64(), changes["to"].as_u64()), (Some(1), None), "{changes}");
    assert_eq!(changes["draft"], true);
    assert_eq!(changes["added"], json!([]), "adoptPet is not exposed: {changes}");
    assert_eq!(changes["removed"], json!([]));
    assert_eq!(changes["unchanged"], 1);
    let changed = &changes["changed"][0];
    assert_eq!(changed["name"], "getPet", "{changes}");
    // The summary is the title too.
    assert_eq!(changed["parts"], json!(["description", "input_schema", "title"]), "{changes}");
    assert_eq!(changed["old_hash"], old_hash.as_str());
    assert_ne!(changed["new_hash"], old_hash.as_str());
    let description = &changed["changes"][0];
    assert_eq!(description["old"], "Get a pet.");
    assert_eq!(description["new"], "Fetch one pet by its number.");
    let paths: Vec<&str> = changed["changes"][1]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/properties/id/type"), "{paths:?}");
    let new_hash = changed["new_hash"].as_str().unwrap().to_owned();

    // Published: the new generation's hashes are served, and the session is told.
    let published = admin(&app, post.clone(), "/servers/pets/publish", None).await;
    assert_eq!(published["generation"], 2);
    events.until(LIST_CHANGED).await;
    let after = listed(&app).await;
    assert_eq!(hash_of(&after, "getPet"), new_hash);
    assert_eq!(hash_of(&after, "listPets"), hash_of(&before, "listPets"));
    assert!(after.iter().any(|it| it.1 == "Fetch one pet by its number."), "{after:?}");
    let refused = client.call("getPet", json!({"id": "rex"})).await;
    assert_eq!(refused["isError"], true, "the new schema wants an integer: {refused}");

    // Between the generations, the same change; nothing left between draft and published.
    let between = get(&app, "/servers/pets/changes?from=1&to=2").await;
    assert_eq!(between["changed"][0]["parts"], json!(["description", "input_schema", "title"]), "{between}");
    assert_eq!(between["changed"][0]["new_hash"], new_hash.as_str());
    let reverse = get(&app, "/servers/pets/changes?from=2&to=1").await;
    assert_eq!(reverse["changed"][0]["changes"][0]["new"], "Get a pet.");
    let settled = get(&app, "/servers/pets/changes").await;
    assert_eq!(
        (settled["draft"].as_bool(), settled["changed"].as_array().map(Vec::len)),
        (Some(false), Some(0))
    );
    let history = get(&app, "/servers/pets/generations").await;
    let numbers: Vec<u64> =
        history["generations"].as_array().unwrap().iter().map(|it| it["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [2, 1]);

    // Errors are said plainly.
    let missing = app
        .http
        .get(format!("{}/admin/api/servers/pets/generations/9", app.base))
        .bearer_auth(BOOTSTRAP_TOKEN);
    let missing = missing.send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let said: Value = missing.json().await.unwrap();
    assert_eq!(said["error"], "server `pets` has no generation 9 (the newest 50 are kept)");
    let bad = app
        .http
        .get(format!("{}/admin/api/servers/pets/changes?from=x", app.base))
        .bearer_auth(BOOTSTRAP_TOKEN);
    assert_eq!(bad.send().await.unwrap().status(), 400);
    let unknown =
        app.http.get(format!("{}/admin/api/servers/nope/generations", app.base)).bearer_auth(BOOTSTRAP_TOKEN);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}

/// The Chromium binary, or `None` (recorded as skipped) when it is missing and not required.
fn chromium() -> Option<std::path::PathBuf> {
    let bin = std::env::var_os("MCPGATE_CHROMIUM")
        .map_or_else(|| std::path::PathBuf::from("/usr/bin/chromium"), std::path::PathBuf::from);
    if bin.exists() {
        return Some(bin);
    }
    let help =
        format!("{} does not exist: `apt-get install chromium`, or set MCPGATE_CHROMIUM", bin.display());
    let required = std::env::var("MCPGATE_REQUIRE_BROWSER").is_ok_and(|it| !it.is_empty() && it != "0");
    assert!(!required, "MCPGATE_REQUIRE_BROWSER is set but {help}");
    harness::skip(&help);
    None
}

/// After a re-import, the server page's Changes link leads to the draft's changes: the changed
/// description, before and after, and the schema's changed path; the history lists generation 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changes_page_shows_a_reimported_description() {
    let Some(node) = Node::find(&["node_modules/playwright-core/package.json"]) else { return };
    let Some(chromium) = chromium() else { return };
    let app = Setup::new().bootstrap_token(BOOTSTRAP_TOKEN).start().await;
    let post = reqwest::Method::POST;
    admin(&app, post.clone(), "/servers", Some(json!({"slug": "pets", "text": V1}))).await;
    let settings = json!({"backend_url": "http://127.0.0.1:9"});
    admin(&app, reqwest::Method::PATCH, "/servers/pets/settings", Some(settings)).await;
    let exposed = json!([{"key": "getPet", "exposed": true}]);
    admin(&app, reqwest::Method::PATCH, "/servers/pets/operations", Some(exposed)).await;
    admin(&app, post.clone(), "/servers/pets/publish", None).await;
    admin(&app, post.clone(), "/servers/pets/document", Some(json!({"text": V2}))).await;

    let base = app.base.clone();
    // Into `docs/screenshots/` with `MCPGATE_UPDATE_SCREENSHOTS=1`, as `tests/admin_ui.rs` does.
    let shots = tempfile::TempDir::new().unwrap();
    let update = std::env::var("MCPGATE_UPDATE_SCREENSHOTS").is_ok_and(|it| !it.is_empty() && it != "0");
    let dir = if update { std::path::PathBuf::from(SCREENSHOTS) } else { shots.path().to_owned() };
    let shot = dir.join("admin-changes.png").display().to_string();
    let run = tokio::task::spawn_blocking(move || {
        node.run(&[
            "admin-changes.mjs",
            &base,
            BOOTSTRAP_TOKEN,
            "pets",
            &chromium.display().to_string(),
            &shot,
        ])
    })
    .await
    .unwrap();
    assert_eq!(run.code, Some(0), "{run}");
    let seen = run.stdout_json();
    assert_eq!(seen["problems"], json!([]), "{run}");
    assert_eq!(seen["link"], "/admin/servers/pets/changes", "{run}");
    assert_eq!(seen["landed"], "/admin/servers/pets/changes", "{run}");
    assert_eq!(seen["heading"], "Generation 1 → Draft", "{run}");
    let changed = seen["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{run}");
    assert_eq!(changed[0]["name"], "getPet");
    assert_eq!(changed[0]["parts"], "description, input schema, title");
    let rows = changed[0]["rows"].as_array().unwrap();
    assert_eq!(rows[0], json!(["description", "", "Get a pet.", "Fetch one pet by its number."]), "{run}");
    assert!(rows.iter().any(|it| it[0] == "input schema" && it[1] == "/properties/id/type"), "{run}");
    assert_eq!(seen["generations"], json!(["1"]), "{run}");
}

/// A server of the configuration file is never published: its first start records generation 1,
/// a restart with the same document records nothing, and a restart with a changed document
/// records generation 2, whose changes name what changed; the server's summary names the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_server_records_a_generation_when_its_tools_change() {
    let backend =
        Backend::start(|seen: Seen| async move { axum::Json(json!({"path": seen.path()})).into_response() })
            .await;
    let app =
        Setup::new().bootstrap_token(BOOTSTRAP_TOKEN).server("pets", V1, &backend.url, "").start().await;
    let history = get(&app, "/servers/pets/generations").await;
    let numbers = |history: &Value| -> Vec<u64> {
        history["generations"].as_array().unwrap().iter().map(|it| it["number"].as_u64().unwrap()).collect()
    };
    assert_eq!(numbers(&history), [1]);
    assert_eq!(history["generations"][0]["published_by"], "configuration file");
    assert_eq!(get(&app, "/servers/pets").await["summary"]["generation"], 1);

    let app = app.restart().await;
    assert_eq!(numbers(&get(&app, "/servers/pets/generations").await), [1], "nothing changed");

    std::fs::write(app.document_path("pets"), V2).unwrap();
    let app = app.restart().await;
    assert_eq!(numbers(&get(&app, "/servers/pets/generations").await), [2, 1]);
    let changes = get(&app, "/servers/pets/changes?from=1&to=2").await;
    let added: Vec<&str> =
        changes["added"].as_array().unwrap().iter().map(|it| it["name"].as_str().unwrap()).collect();
    assert_eq!(added, ["adoptPet"]);
    assert_eq!(changes["changed"][0]["name"], "getPet", "{changes}");
    let servers = get(&app, "/servers").await;
    assert_eq!(servers["servers"][0]["generation"], 2);
}
