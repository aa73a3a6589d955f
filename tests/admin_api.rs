//! The admin API (`/admin/api`) end to end: mcpgate in-process with a bootstrap token, a
//! provisioned server and a recording backend on loopback; `serve --dev` as a child process for
//! browser sessions. Every answer is checked against the API's own OpenAPI document (the status
//! is declared, a JSON body matches its schema), carries the admin security headers, and is
//! scanned for the configured secrets. Every refused request is shown to leave the store as it
//! was.

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::sync::Mutex;

use app::{Backend, Seen, Setup};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The API's description, as mcpgate serves it.
const DESCRIPTION: &str = include_str!("../src/admin/admin-api.openapi.json");
/// The routes, as the router declares them.
const API_SOURCE: &str = include_str!("../src/admin/api.rs");

const BOOTSTRAP_TOKEN: &str = "boot-7d0c1e5a9b-admin-automation";
/// The static credential an administrator sets through the API.
const BACKEND_SECRET: &str = "backend-key-4f2a9c81e6";
/// The credential of the server declared in the configuration file.
const FIXED_SECRET: &str = "fixed-key-93be17d0aa";
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const PETS_V1: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
servers: [{url: "http://placeholder.invalid/v1"}]
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: array, items: {type: object}}
    post:
      operationId: createPet
      summary: Add a pet
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses: {"201": {description: created}}
  /pets/{id}:
    get:
      operationId: getPet
      summary: Read a pet
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {id: {type: string}}}
    delete:
      operationId: deletePet
      summary: Remove a pet
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses: {"204": {description: gone}}
"#;

/// PETS_V1 with `deletePet` gone, `getPet` given a query parameter and `listPhotos` new.
const PETS_V2: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "2"}
servers: [{url: "http://placeholder.invalid/v1"}]
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: array, items: {type: object}}
    post:
      operationId: createPet
      summary: Add a pet
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses: {"201": {description: created}}
  /pets/{id}:
    get:
      operationId: getPet
      summary: Read a pet
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: fields, in: query, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {id: {type: string}}}
  /pets/{id}/photos:
    get:
      operationId: listPhotos
      summary: List a pet's photos
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;

// ---------------------------------------------------------------------------------------------
// The description

/// `(method, path)` of every route `api::router` declares, read from its source.
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for line in API_SOURCE.lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else { continue };
        let (path, handlers) = rest.split_once('"').unwrap();
        // `get(list).post(create)`: the identifier before each `(` is a method router.
        for (at, _) in handlers.match_indices('(') {
            let before = &handlers[..at];
            let start = before.rfind(|c: char| !c.is_ascii_alphanumeric() && c != '_').map_or(0, |it| it + 1);
            let name = &before[start..];
            if ["get", "post", "put", "patch", "delete"].contains(&name) {
                routes.insert((name.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

fn description() -> Value {
    serde_json::from_str(DESCRIPTION).expect("the description is JSON")
}

fn described_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|it| *it != "parameters") {
            routes.insert((method.clone(), path.clone()));
        }
    }
    routes
}

#[test]
fn the_description_names_every_route_and_mcpgate_converts_it() {
    let declared = declared_routes();
    assert!(
        declared.contains(&("get".into(), "/servers".into()))
            && declared.contains(&("delete".into(), "/servers/{slug}".into()))
            && declared.len() >= 13,
        "the routes were not read from api.rs: {declared:?}"
    );
    let doc = description();
    assert_eq!(described_routes(&doc), declared, "the description and api::router differ");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/admin/api");

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(it, _)| *it != "parameters") {
            let responses = &operation["responses"];
            assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            let changes = method != "get";
            let security = operation.get("security").unwrap_or(&doc["security"]);
            let session_needs_csrf = security
                .as_array()
                .unwrap()
                .iter()
                .filter(|it| it.get("session").is_some())
                .all(|it| it.get("csrf").is_some());
            assert_eq!(session_needs_csrf, changes, "{method} {path}: CSRF requirement");
            if changes {
                assert!(responses.get("403").is_some(), "{method} {path}: no 403");
            }
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bootstrapToken"]["scheme"], "bearer");
    assert_eq!(
        (&schemes["session"]["in"], &schemes["session"]["name"]),
        (&json!("cookie"), &json!("mcpgate_admin"))
    );
    assert_eq!(
        (&schemes["csrf"]["in"], &schemes["csrf"]["name"]),
        (&json!("header"), &json!("X-CSRF-Token"))
    );

    // mcpgate's own converter reads it whole: one tool per route, nothing skipped or unreadable.
    let spec = mcpgate::openapi::ingest(DESCRIPTION.as_bytes()).expect("mcpgate reads the description");
    assert_eq!(spec.info.title, "mcpgate admin API");
    let generated = mcpgate::tools::generate(&spec, &mcpgate::tools::Options::default());
    let report = &generated.report;
    assert_eq!(report.operations, declared.len());
    assert_eq!(report.tools, declared.len(), "skipped: {:?}", report.skipped);
    let unreadable: Vec<_> = report
        .warnings
        .iter()
        .filter(|it| it.kind == mcpgate::tools::WarningKind::Document)
        .map(|it| format!("{}: {}", it.location, it.message))
        .collect();
    assert!(unreadable.is_empty(), "{unreadable:#?}");
    mcpgate::source::ingest("admin-api.openapi.json", DESCRIPTION.as_bytes()).unwrap();

    // Every schema is valid JSON Schema 2020-12 (the dialect of OpenAPI 3.1).
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let with_components = json!({"components": doc["components"], "allOf": [schema]});
        jsonschema::draft202012::new(&with_components).unwrap_or_else(|err| panic!("{name}: {err}"));
    }
}

/// Checks an answer of `/admin/api` against the description: its status is declared for the
/// operation, and its body matches the declared schema (or is empty when none is).
fn check_described(doc: &Value, method: &str, path: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    let relative = path.strip_prefix("/admin/api").unwrap();
    let segments: Vec<&str> = relative.split('/').collect();
    let matches = |template: &str| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(part, it)| part.starts_with('{') || part == it)
    };
    let (template, item) = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(template, _)| matches(template))
        .unwrap_or_else(|| panic!("{path} is not described"));
    let operation =
        item.get(method.to_lowercase()).unwrap_or_else(|| panic!("{method} {template} is not described"));
    let mut response = operation["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {template} answered {status}, which is not described"));
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/components/responses/").unwrap();
        response = &doc["components"]["responses"][name];
    }
    let Some(content) = response.get("content") else {
        assert!(body.is_empty(), "{method} {template} {status}: a body where none is described");
        return;
    };
    let content_type = headers.get(CONTENT_TYPE).and_then(|it| it.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{method} {template} {status}: {content_type}");
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|err| panic!("{method} {template} {status}: not JSON ({err})"));
    let schema = &content["application/json"]["schema"];
    let root = json!({"components": doc["components"], "allOf": [schema]});
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&instance).map(|err| format!("{}: {err}", err.instance_path())).collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status} does not match its schema: {errors:#?}\n{instance:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// The harness

/// How the recording backend answers: the pet `/v1/pets/{id}` names, else a list of one.
async fn answer(seen: Seen) -> Response {
    match seen.path().strip_prefix("/v1/pets/") {
        Some(id) => axum::Json(json!({"id": id})).into_response(),
        None => axum::Json(json!([{"id": "1"}])).into_response(),
    }
}

/// Serves `routes` (path → body) on loopback; its base URL.
async fn document_server(routes: Vec<(&'static str, &'static str)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut app = axum::Router::new();
    for (path, body) in routes {
        app = app.route(path, axum::routing::get(move || async move { body }));
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// An answer, after the checks every answer gets.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    json: Value,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an error answer: `status` and `{"error": "..."}` containing `part`.
    #[track_caller]
    fn assert_error(&self, status: u16, part: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let message = self.json["error"].as_str().unwrap_or_else(|| panic!("not an error: {}", self.text()));
        assert_eq!(self.json.as_object().unwrap().len(), 1, "{}", self.text());
        assert!(message.contains(part), "`{message}` does not contain `{part}`");
    }
}

/// A client of one mcpgate: the base URL, how to sign in, and what must never be answered.
struct Api {
    base: String,
    client: reqwest::Client,
    doc: Value,
    /// Values that must appear in no answer, body or header.
    secrets: Vec<String>,
    /// How many answers were scanned.
    scanned: Mutex<usize>,
}

impl Api {
    fn new(base: String, secrets: &[&str]) -> Api {
        Api {
            base,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            doc: description(),
            secrets: secrets.iter().map(|it| (*it).to_owned()).collect(),
            scanned: Mutex::new(0),
        }
    }

    /// A request to `/admin/api{path}` with the bootstrap token.
    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path).header(AUTHORIZATION, format!("Bearer {BOOTSTRAP_TOKEN}"))
    }

    fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}/admin/api{path}", self.base))
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.admin(Method::GET, path)).await
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Answer {
        self.send(self.admin(method, path).json(&body)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let request = request.build().unwrap();
        let method = request.method().to_string();
        let path = request.url().path().to_owned();
        let response = self.client.execute(request).await.expect("mcpgate answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        self.inspect(&method, &path, status, &headers, &body);
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Answer { status, headers, body, json }
    }

    /// The checks every answer gets: no secret, the admin security headers, the description.
    fn inspect(&self, method: &str, path: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
        *self.scanned.lock().unwrap() += 1;
        for secret in &self.secrets {
            let in_body = body.windows(secret.len()).any(|it| it == secret.as_bytes());
            let in_headers =
                headers.values().any(|it| String::from_utf8_lossy(it.as_bytes()).contains(secret));
            assert!(!in_body && !in_headers, "{method} {path} ({status}) answered a secret");
        }
        if path.starts_with("/admin") {
            let header = |name: &str| headers.get(name).and_then(|it| it.to_str().ok()).unwrap_or_default();
            assert_eq!(header("content-security-policy"), CSP, "{method} {path}");
            assert_eq!(header("x-content-type-options"), "nosniff", "{method} {path}");
            assert_eq!(header("x-frame-options"), "DENY", "{method} {path}");
            assert_eq!(header("referrer-policy"), "same-origin", "{method} {path}");
            assert_eq!(header("cache-control"), "no-store", "{method} {path}");
        }
        if path.starts_with("/admin/api/") {
            check_described(&self.doc, method, path, status, headers, body);
        }
    }

    /// The list, every server's draft and the audit log: what a refused request must not change.
    async fn snapshot(&self) -> Value {
        let list = self.get("/servers").await;
        assert_eq!(list.status, 200);
        let mut drafts = Vec::new();
        for server in list.json["servers"].as_array().unwrap() {
            let draft = self.get(&format!("/servers/{}", server["slug"].as_str().unwrap())).await;
            assert_eq!(draft.status, 200, "{}", draft.text());
            drafts.push(draft.json);
        }
        let audit = self.get("/audit?limit=1000").await;
        json!({"servers": list.json, "drafts": drafts, "audit": audit.json})
    }

    /// Sends a request that must be refused with `status` and an error containing `part`, and
    /// checks that the store is as it was.
    #[track_caller]
    fn refused<'a>(
        &'a self,
        request: reqwest::RequestBuilder,
        status: u16,
        part: &'a str,
    ) -> impl std::future::Future<Output = Answer> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let before = self.snapshot().await;
            let answer = self.send(request).await;
            assert_eq!(answer.status, status, "at {caller}: {}", answer.text());
            answer.assert_error(status, part);
            assert_eq!(self.snapshot().await, before, "at {caller}: a refused request changed the store");
            answer
        }
    }

    /// One JSON-RPC request to `/mcp/{slug}`.
    async fn mcp(&self, slug: &str, method: &str, params: Value) -> Value {
        let request = self
            .client
            .post(format!("{}/mcp/{slug}", self.base))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
        let answer = self.send(request).await;
        assert_eq!(answer.status, 200, "{method} on /mcp/{slug}: {}", answer.text());
        answer.json
    }

    async fn tool_names(&self, slug: &str) -> Vec<String> {
        let listed = self.mcp(slug, "tools/list", json!({})).await;
        let tools = listed["result"]["tools"].as_array().unwrap_or_else(|| panic!("{listed}"));
        tools.iter().map(|it| it["name"].as_str().unwrap().to_owned()).collect()
    }

    async fn tools(&self, slug: &str) -> Value {
        self.mcp(slug, "tools/list", json!({})).await["result"]["tools"].clone()
    }

    /// Sends a request of `length` body bytes (`head` first, then `-` up to `length`) over a
    /// plain connection, streaming it while reading the answer, which may come before the end.
    async fn stream(&self, path: &str, content_type: &str, head: &[u8], length: usize) -> Answer {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let request_head = format!(
            "POST /admin/api{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {BOOTSTRAP_TOKEN}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        let head = head.to_vec();
        // The writing half is handed back rather than dropped: a half-closed connection makes
        // hyper close it before it answers.
        let sender = tokio::spawn(async move {
            writer.write_all(request_head.as_bytes()).await?;
            writer.write_all(&head).await?;
            let chunk = vec![b'-'; 1024 * 1024];
            let mut left = length - head.len();
            while left > 0 {
                let n = left.min(chunk.len());
                writer.write_all(&chunk[..n]).await?;
                left -= n;
            }
            writer.flush().await?;
            Ok::<_, std::io::Error>(writer)
        });
        let mut raw = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let (status, headers, body) = loop {
            let n = reader.read(&mut buffer).await.expect("the answer is readable");
            assert!(n > 0, "the connection closed without a whole answer: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buffer[..n]);
            let Some(end) = raw.windows(4).position(|it| it == b"\r\n\r\n") else { continue };
            let text = String::from_utf8_lossy(&raw[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
            let mut headers = HeaderMap::new();
            for line in lines {
                let (name, value) = line.split_once(':').unwrap();
                headers.append(
                    axum::http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                    value.trim().parse().unwrap(),
                );
            }
            let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
            if raw.len() >= end + 4 + length {
                break (status, headers, raw[end + 4..end + 4 + length].to_vec());
            }
        };
        sender.abort();
        self.inspect("POST", &format!("/admin/api{path}"), status, &headers, &body);
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Answer { status, headers, body, json }
    }
}

/// A `multipart/form-data` body of `(name, file name, content)` parts: its content type and bytes.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "mcpgate-test-boundary-5e1f";
    let mut body = Vec::new();
    for (name, file_name, content) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(file_name) = file_name {
            body.extend_from_slice(
                format!("; filename=\"{file_name}\"\r\nContent-Type: application/yaml").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// mcpgate in-process with the bootstrap token, a recording backend, and the server `fixed`
/// declared in the configuration file.
struct TestApp {
    api: Api,
    recorder: Backend,
    /// The recording backend's base URL, `/v1` included.
    backend_url: String,
    /// Serves while the test holds it.
    _app: app::TestApp,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let recorder = Backend::start(answer).await;
        let backend_url = format!("{}/v1", recorder.url);
        let credentials = format!(
            "[servers.credentials]\nmode = \"static\"\nscheme = \"bearer\"\nvalue = \"{FIXED_SECRET}\"\n"
        );
        let app = Setup::new()
            .bootstrap_token(BOOTSTRAP_TOKEN)
            .server("fixed", PETS_V1, &backend_url, &credentials)
            .start()
            .await;
        let api = Api::new(app.base.clone(), &[BOOTSTRAP_TOKEN, BACKEND_SECRET, FIXED_SECRET]);
        TestApp { api, recorder, backend_url, _app: app }
    }

    /// Creates `slug` from `document` sent as JSON text.
    async fn create(&self, slug: &str, document: &str) -> Answer {
        let answer = self.api.json(Method::POST, "/servers", json!({"slug": slug, "text": document})).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer
    }

    async fn ok(&self, method: Method, path: &str, body: Value) -> Answer {
        let answer = self.api.json(method, path, body).await;
        assert!(matches!(answer.status, 200 | 201 | 204), "{path}: {}", answer.text());
        answer
    }

    /// `pets` from PETS_V1, with `listPets` and `getPet` (as `fetch_pet`) exposed, the recording
    /// backend and its static key, published.
    async fn publish_pets(&self) {
        self.create("pets", PETS_V1).await;
        let curation = json!([
            {"key": "listPets", "exposed": true},
            {"key": "getPet", "exposed": true, "curated": {"name": "fetch_pet"}},
        ]);
        self.ok(Method::PATCH, "/servers/pets/operations", curation).await;
        let settings = json!({
            "backend_url": self.backend_url,
            "credentials": {"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": BACKEND_SECRET},
        });
        self.ok(Method::PATCH, "/servers/pets/settings", settings).await;
        self.ok(Method::POST, "/servers/pets/publish", Value::Null).await;
    }

    /// Calls `fetch_pet` and returns what the backend received.
    async fn fetch_pet(&self, slug: &str, id: &str) -> Seen {
        let called =
            self.api.mcp(slug, "tools/call", json!({"name": "fetch_pet", "arguments": {"id": id}})).await;
        assert_eq!(called["result"]["isError"], false, "{called}");
        assert_eq!(called["result"]["structuredContent"], json!({"id": id}));
        let mut seen = self.recorder.take();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen.remove(0)
    }
}

fn operation<'a>(draft: &'a Value, key: &str) -> &'a Value {
    let operations = draft["operations"].as_array().unwrap();
    operations.iter().find(|it| it["key"] == key).unwrap_or_else(|| panic!("no operation {key}"))
}

fn slugs(list: &Value) -> Vec<&str> {
    list["servers"].as_array().unwrap().iter().map(|it| it["slug"].as_str().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// The flows

#[tokio::test]
async fn create_curate_configure_publish_and_call() {
    let app = TestApp::spawn().await;
    let api = &app.api;

    let served = api.get("/openapi.json").await;
    assert_eq!((served.status, served.text()), (200, DESCRIPTION.to_owned()));
    let me = api.get("/me").await;
    assert_eq!(me.json, json!({"name": "bootstrap-token", "csrf_token": null}));

    // Created from an uploaded file: a draft, nothing exposed, nothing served.
    let (content_type, body) =
        multipart(&[("slug", None, b"pets"), ("file", Some("pets.yaml"), PETS_V1.as_bytes())]);
    let created =
        api.send(api.admin(Method::POST, "/servers").header(CONTENT_TYPE, content_type).body(body)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json["slug"], "pets");
    assert_eq!(
        (&created.json["report"]["operations"], &created.json["report"]["tools"]),
        (&json!(4), &json!(4))
    );
    assert_eq!(created.json["report"]["document"]["title"], "Pets");
    assert_eq!(created.json["diff"], json!({"added": [], "removed": [], "changed": []}));

    let list = api.get("/servers").await;
    assert_eq!(slugs(&list.json), ["fixed", "pets"]);
    let pets = &list.json["servers"][1];
    assert_eq!(
        (&pets["state"], &pets["tools"], &pets["unpublished"]),
        (&json!("draft"), &json!(0), &json!(true))
    );
    assert_eq!((&pets["title"], &pets["provisioned"]), (&json!("Pets"), &json!(false)));
    assert!(pets["mcp_url"].as_str().unwrap().ends_with("/mcp/pets"));
    assert_eq!(list.json["servers"][0]["provisioned"], true);

    // Read: every operation, with its definition and its cost.
    let draft = api.get("/servers/pets").await.json;
    let keys: Vec<&str> =
        draft["operations"].as_array().unwrap().iter().map(|it| it["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["listPets", "createPet", "getPet", "deletePet"]);
    let get_pet = operation(&draft, "getPet");
    assert_eq!(
        (&get_pet["method"], &get_pet["path"], &get_pet["exposed"]),
        (&json!("GET"), &json!("/pets/{id}"), &json!(false))
    );
    assert_eq!(get_pet["definition"]["name"], "getPet");
    assert_eq!(get_pet["definition"]["inputSchema"]["required"], json!(["id"]));
    assert!(get_pet["tokens"].as_u64().unwrap() > 10, "{get_pet}");
    assert_eq!(draft["exposed_tokens"], 0);
    assert_eq!(draft["report"]["tokens"]["per_tool"].as_array().unwrap().len(), 4);

    // Curate: expose two, rename one, describe one, set annotations and scopes.
    let curation = json!([
        {"key": "listPets", "exposed": true, "curated": {"description": "Every pet in the shop."}, "scopes": ["pets:read"]},
        {"key": "getPet", "exposed": true, "curated": {"name": "fetch_pet", "annotations": {"openWorldHint": false}}},
        {"key": "deletePet", "exposed": false},
    ]);
    let curated = app.ok(Method::PATCH, "/servers/pets/operations", curation).await;
    assert_eq!((curated.status, curated.body.len()), (204, 0));
    let draft = api.get("/servers/pets").await.json;
    let exposed: Vec<&str> = draft["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|it| it["exposed"] == true)
        .map(|it| it["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(exposed, ["listPets", "fetch_pet"]);
    let list_pets = operation(&draft, "listPets");
    assert_eq!(list_pets["definition"]["description"], "Every pet in the shop.");
    assert_eq!(list_pets["scopes"], json!(["pets:read"]));
    assert_eq!(list_pets["curated"], json!({"description": "Every pet in the shop."}));
    let get_pet = operation(&draft, "getPet");
    assert_eq!(get_pet["definition"]["name"], "fetch_pet");
    assert_eq!(get_pet["definition"]["annotations"]["openWorldHint"], false);
    assert_eq!(get_pet["curated"], json!({"name": "fetch_pet", "annotations": {"openWorldHint": false}}));
    let exposed_tokens = list_pets["tokens"].as_u64().unwrap() + get_pet["tokens"].as_u64().unwrap();
    assert_eq!(draft["exposed_tokens"], exposed_tokens);

    // Settings: the secret is write-only.
    let settings = json!({
        "backend_url": app.backend_url,
        "timeout_secs": 7,
        "headers": {"X-Env": "test"},
        "credentials": {"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": BACKEND_SECRET},
    });
    app.ok(Method::PATCH, "/servers/pets/settings", settings).await;
    let shown = api.get("/servers/pets").await.json["settings"].clone();
    assert_eq!(shown["backend_url"], app.backend_url);
    assert_eq!((&shown["timeout_secs"], &shown["headers"]), (&json!(7), &json!({"X-Env": "test"})));
    assert_eq!(
        shown["credentials"],
        json!({"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": "(set)", "username": null, "password": null})
    );
    // Changing the credentials without the secret, and sending back what was shown, keep it.
    let without_secret = json!({"timeout_secs": 9, "credentials": {"mode": "static", "scheme": "header", "name": "X-Api-Key"}});
    app.ok(Method::PATCH, "/servers/pets/settings", without_secret).await;
    app.ok(Method::PATCH, "/servers/pets/settings", json!({"credentials": shown["credentials"]})).await;
    let shown = api.get("/servers/pets").await.json["settings"].clone();
    assert_eq!((&shown["timeout_secs"], &shown["credentials"]["value"]), (&json!(9), &json!("(set)")));

    // Published: exactly the exposed tools, under their new names, reaching the backend with the
    // credential set before the last two changes.
    let published = app.ok(Method::POST, "/servers/pets/publish", Value::Null).await;
    assert_eq!(published.json, json!({"published": "pets", "tools": 2, "generation": 1}));
    let tools = api.tools("pets").await;
    let names: Vec<&str> = tools.as_array().unwrap().iter().map(|it| it["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["listPets", "fetch_pet"]);
    assert_eq!(tools[0]["description"], "Every pet in the shop.");
    assert_eq!(tools[1]["annotations"]["openWorldHint"], false);
    let seen = app.fetch_pet("pets", "7").await;
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("GET", "/v1/pets/7"));
    assert_eq!(seen.headers["x-api-key"], BACKEND_SECRET);
    assert_eq!(seen.headers["x-env"], "test");
    assert!(seen.headers.get("authorization").is_none(), "no caller token is passed on");
    let hidden = api.mcp("pets", "tools/call", json!({"name": "deletePet", "arguments": {"id": "7"}})).await;
    assert!(hidden.get("error").is_some(), "an unexposed operation is no tool: {hidden}");
    assert!(app.recorder.take().is_empty());

    let list = api.get("/servers").await;
    let pets = &list.json["servers"][1];
    assert_eq!(
        (&pets["state"], &pets["tools"], &pets["unpublished"]),
        (&json!("live"), &json!(2), &json!(false))
    );

    // The audit log, newest first, with the actor.
    let audit = api.get("/audit?limit=6").await;
    let entries = audit.json["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|it| it["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["publish", "configure", "configure", "configure", "curate", "create"]);
    for entry in entries {
        assert_eq!(
            (&entry["actor"], &entry["server"]),
            (&json!("bootstrap-token"), &json!("pets")),
            "{entry}"
        );
    }
    assert_eq!(entries[0]["detail"], "generation 1, 2 tools");
    assert_eq!(entries[1]["detail"], "settings and credentials");
    // The curation says what changed (`deletePet` was hidden already).
    assert_eq!(
        entries[4]["detail"],
        "exposed listPets, getPet; renamed getPet to fetch_pet; changed the description of listPets; \
         changed the hints of getPet; changed the scopes of listPets"
    );
    assert_eq!(entries[5]["detail"], "4 operations, 4 tools; +0 -0 ~0");
    assert_eq!(api.get("/audit?limit=2").await.json["entries"].as_array().unwrap().len(), 2);
    let undo = json!([{"key": "listPets", "exposed": false}, {"key": "getPet", "curated": {}}]);
    app.ok(Method::PATCH, "/servers/pets/operations", undo).await;
    let entry = &api.get("/audit?limit=1").await.json["entries"][0];
    assert_eq!(
        entry["detail"],
        "renamed getPet back to its generated name; changed the hints of getPet; hid listPets"
    );
    assert!(*api.scanned.lock().unwrap() > 15);
}

#[tokio::test]
async fn reimporting_reports_the_diff_and_keeps_the_curation() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    let created = app.create("pets", PETS_V1).await;
    assert_eq!(created.json["report"]["operations"], 4);
    let curation = json!([
        {"key": "getPet", "exposed": true, "curated": {"name": "fetch_pet", "description": "One pet."}, "scopes": ["pets:read"]},
        {"key": "deletePet", "exposed": true},
        {"key": "listPets", "exposed": true},
    ]);
    app.ok(Method::PATCH, "/servers/pets/operations", curation).await;
    app.ok(Method::PATCH, "/servers/pets/settings", json!({"backend_url": app.backend_url})).await;

    // The new version as an uploaded file.
    let (content_type, body) = multipart(&[("file", Some("pets-v2.yaml"), PETS_V2.as_bytes())]);
    let request =
        api.admin(Method::POST, "/servers/pets/document").header(CONTENT_TYPE, content_type).body(body);
    let imported = api.send(request).await;
    assert_eq!(imported.status, 200, "{}", imported.text());
    assert_eq!(
        imported.json["diff"],
        json!({"added": ["listPhotos"], "removed": ["deletePet"], "changed": ["getPet"]})
    );
    assert_eq!(imported.json["report"]["document"]["version"], "2");

    let draft = api.get("/servers/pets").await.json;
    let keys: Vec<&str> =
        draft["operations"].as_array().unwrap().iter().map(|it| it["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["listPets", "createPet", "getPet", "listPhotos"]);
    let get_pet = operation(&draft, "getPet");
    assert_eq!((&get_pet["exposed"], &get_pet["tool_name"]), (&json!(true), &json!("fetch_pet")));
    assert_eq!(get_pet["definition"]["description"], "One pet.");
    assert_eq!(get_pet["scopes"], json!(["pets:read"]));
    assert!(get_pet["definition"]["inputSchema"]["properties"].get("fields").is_some(), "{get_pet}");
    assert_eq!(operation(&draft, "listPhotos")["exposed"], false, "new operations wait to be chosen");
    assert_eq!(operation(&draft, "listPets")["exposed"], true);
    assert_eq!(draft["settings"]["backend_url"], app.backend_url);

    app.ok(Method::POST, "/servers/pets/publish", Value::Null).await;
    assert_eq!(api.tool_names("pets").await, ["listPets", "fetch_pet"]);
    let seen = app.fetch_pet("pets", "3").await;
    assert_eq!(seen.uri, "/v1/pets/3");

    // The same document again, as JSON text: nothing changed.
    let again =
        app.ok(Method::POST, "/servers/pets/document", json!({"text": PETS_V2, "name": "v2.yaml"})).await;
    assert_eq!(again.json["diff"], json!({"added": [], "removed": [], "changed": []}));
    let entry = &api.get("/audit?limit=1").await.json["entries"][0];
    assert_eq!(
        (&entry["action"], &entry["detail"]),
        (&json!("import"), &json!("4 operations, 4 tools; +0 -0 ~0"))
    );
}

#[tokio::test]
async fn export_delete_restore_and_publish_give_the_same_tools() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    app.publish_pets().await;
    let tools = api.tools("pets").await;
    assert_eq!(tools.as_array().unwrap().len(), 2);

    let export = api.get("/servers/pets/export").await;
    assert_eq!(export.status, 200);
    assert_eq!(export.json["document"], PETS_V1);
    let settings = &export.json["settings"];
    assert_eq!((&settings["slug"], &settings["expose"]), (&json!("pets"), &json!(["listPets", "getPet"])));
    let sealed = settings["credentials"]["value"].as_str().unwrap();
    assert!(sealed.starts_with("mcpgate-sealed:"), "the secret leaves sealed: {sealed}");

    let deleted = api.send(api.admin(Method::DELETE, "/servers/pets")).await;
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    assert_eq!(slugs(&api.get("/servers").await.json), ["fixed"]);
    api.get("/servers/pets").await.assert_error(404, "no server `pets`");
    let gone = api.client.post(format!("{}/mcp/pets", api.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(gone.status(), 404, "no longer served");

    let restored = app.ok(Method::POST, "/restore", export.json.clone()).await;
    assert_eq!(restored.status, 201);
    assert_eq!((&restored.json["slug"], &restored.json["report"]["tools"]), (&json!("pets"), &json!(4)));
    let draft = api.get("/servers/pets").await.json;
    assert_eq!(draft["summary"]["state"], "draft");
    assert_eq!(draft["settings"]["credentials"]["value"], "(set)");
    app.ok(Method::POST, "/servers/pets/publish", Value::Null).await;
    assert_eq!(api.tools("pets").await, tools);
    let seen = app.fetch_pet("pets", "11").await;
    assert_eq!(seen.headers["x-api-key"], BACKEND_SECRET, "the sealed secret opens again");

    let entries = api.get("/audit?limit=4").await.json["entries"].clone();
    let actions: Vec<&str> =
        entries.as_array().unwrap().iter().map(|it| it["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["publish", "restore", "delete", "export"]);
}

/// No administrator can make mcpgate fetch from a private address: that is the operator's choice,
/// `allow_private_spec_url` in the configuration file, which an export cannot carry in (see
/// `bad_inputs_answer_a_clear_error_and_change_nothing`). Fetching itself is `tests/fetch.rs`'s.
#[tokio::test]
async fn documents_come_from_urls_but_never_from_private_addresses() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    let base = document_server(vec![("/v1.yaml", PETS_V1), ("/v2.yaml", PETS_V2)]).await;
    let v1 = format!("{base}/v1.yaml");

    // New servers never fetch from loopback, JSON or multipart.
    let request = api.admin(Method::POST, "/servers").json(&json!({"slug": "pets", "url": v1}));
    api.refused(request, 400, "resolves to the non-public address 127.0.0.1").await;
    let (content_type, body) = multipart(&[("slug", None, b"pets"), ("url", None, v1.as_bytes())]);
    let request = api.admin(Method::POST, "/servers").header(CONTENT_TYPE, content_type).body(body);
    api.refused(request, 400, "which is refused").await;

    // Nor do existing ones, and no administrator can allow it: that is the operator's choice, in
    // the configuration file (a restored export that asks for it is refused).
    app.create("pets", PETS_V1).await;
    let request =
        api.admin(Method::POST, "/servers/pets/document").json(&json!({"url": format!("{base}/v2.yaml")}));
    api.refused(request, 400, "non-public address").await;
    let mut export = api.get("/servers/pets/export").await.json;
    export["settings"]["allow_private_spec_url"] = json!(true);
    let request = api.admin(Method::POST, "/restore").json(&export);
    api.refused(request, 400, "allow_private_spec_url can be set in the configuration file only").await;
    let export = api.get("/servers/pets/export").await.json;
    assert_eq!(export["settings"]["allow_private_spec_url"], false);
    assert_eq!(export["document"], PETS_V1);
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn bad_inputs_answer_a_clear_error_and_change_nothing() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    app.publish_pets().await;
    let post = |path: &str, body: Value| api.admin(Method::POST, path).json(&body);
    let patch = |path: &str, body: Value| api.admin(Method::PATCH, path).json(&body);

    // Malformed and unreadable documents, for a new server and for an existing one.
    let broken = "openapi: 3.0.3\ninfo: {title: Broken, version: '1'}\npaths: [\n";
    let answer = api
        .refused(post("/servers", json!({"slug": "broken", "text": broken})), 400, "invalid YAML at line")
        .await;
    assert!(answer.json["error"].as_str().unwrap().starts_with("pasted:document: "), "{}", answer.text());
    let (content_type, body) =
        multipart(&[("slug", None, b"broken"), ("file", Some("broken.yaml"), broken.as_bytes())]);
    let request = api.admin(Method::POST, "/servers").header(CONTENT_TYPE, content_type).body(body);
    api.refused(request, 400, "upload:broken.yaml: invalid YAML at line").await;
    api.refused(post("/servers/pets/document", json!({"text": broken})), 400, "invalid YAML").await;
    api.refused(post("/servers", json!({"slug": "broken", "text": "{\"swagger\": 1}"})), 400, "").await;
    api.refused(post("/servers", json!({"slug": "broken", "text": "{}"})), 400, "not an OpenAPI document")
        .await;

    // What a request must say.
    api.refused(post("/servers", json!({"text": PETS_V1})), 400, "`slug` is required").await;
    let both = json!({"slug": "two", "text": PETS_V1, "url": "https://example.com/openapi.yaml"});
    api.refused(post("/servers", both), 400, "exactly one of a file, a url or a text").await;
    api.refused(post("/servers", json!({"slug": "none"})), 400, "exactly one").await;
    api.refused(
        post("/servers", json!({"slug": "x", "text": PETS_V1, "colour": 1})),
        400,
        "unknown field `colour`",
    )
    .await;
    let request =
        api.admin(Method::POST, "/servers").header(CONTENT_TYPE, "application/json").body("{\"slug\": ");
    api.refused(request, 400, "invalid JSON").await;
    let (content_type, body) = multipart(&[("slug", None, b"x"), ("url", None, b"not a url")]);
    let request = api.admin(Method::POST, "/servers").header(CONTENT_TYPE, content_type).body(body);
    api.refused(request, 400, "url: ").await;

    // Slugs.
    for slug in ["Bad_Slug", "-pets", "", &"a".repeat(64)] {
        let request = post("/servers", json!({"slug": slug, "text": PETS_V1}));
        api.refused(request, 400, "is not a valid slug").await;
    }
    api.refused(
        post("/servers", json!({"slug": "pets", "text": PETS_V1})),
        409,
        "server `pets` exists already",
    )
    .await;
    api.refused(post("/servers", json!({"slug": "fixed", "text": PETS_V1})), 409, "exists already").await;

    // Unknown servers.
    api.refused(api.admin(Method::GET, "/servers/nope"), 404, "no server `nope`").await;
    api.refused(patch("/servers/nope/operations", json!([])), 404, "no server `nope`").await;
    api.refused(patch("/servers/nope/settings", json!({})), 404, "no server `nope`").await;
    api.refused(post("/servers/nope/document", json!({"text": PETS_V1})), 404, "no server `nope`").await;
    api.refused(api.admin(Method::POST, "/servers/nope/publish"), 404, "no server `nope`").await;
    api.refused(api.admin(Method::GET, "/servers/nope/export"), 404, "no server `nope`").await;
    api.refused(api.admin(Method::DELETE, "/servers/nope"), 404, "no server `nope`").await;

    // Curation: all or nothing.
    api.refused(patch("/servers/pets/operations", json!([])), 400, "no changes given").await;
    let unknown = json!([{"key": "createPet", "exposed": true}, {"key": "feedPet", "exposed": true}]);
    api.refused(patch("/servers/pets/operations", unknown), 400, "no operation `feedPet` in the document")
        .await;
    let bad_name = json!([{"key": "listPets", "curated": {"name": "list pets!"}}]);
    api.refused(patch("/servers/pets/operations", bad_name), 400, "listPets: tool name `list pets!` must be")
        .await;
    let bad_hint = json!([{"key": "listPets", "curated": {"annotations": {"fastHint": true}}}]);
    api.refused(patch("/servers/pets/operations", bad_hint), 400, "unknown annotation `fastHint`").await;
    let not_bool = json!([{"key": "listPets", "curated": {"annotations": {"readOnlyHint": "yes"}}}]);
    api.refused(patch("/servers/pets/operations", not_bool), 400, "must be true or false").await;
    let clash = json!([{"key": "createPet", "curated": {"name": "fetch_pet"}}]);
    api.refused(patch("/servers/pets/operations", clash), 400, "two tools would be called `fetch_pet`").await;
    // A name another tool has without curation is taken too: it would silently rename that tool.
    let clash = json!([{"key": "createPet", "curated": {"name": "listPets"}}]);
    api.refused(patch("/servers/pets/operations", clash), 400, "two tools would be called `listPets`").await;
    let long = json!([{"key": "createPet", "curated": {"name": "n".repeat(100)}}]);
    api.refused(patch("/servers/pets/operations", long), 400, "createPet: the tool would be called `nnn")
        .await;
    let twins = json!([{"key": "createPet", "curated": {"name": "twin"}}, {"key": "deletePet", "curated": {"name": "twin"}}]);
    api.refused(patch("/servers/pets/operations", twins), 400, "two tools would be called `twin`").await;
    api.refused(patch("/servers/pets/operations", json!({"key": "listPets"})), 400, "").await;
    api.refused(
        patch("/servers/pets/operations", json!([{"key": "listPets", "hidden": true}])),
        400,
        "unknown field",
    )
    .await;

    // Settings.
    let settings = |body: Value| patch("/servers/pets/settings", body);
    api.refused(settings(json!({"backend_url": "ftp://files.example.com/"})), 400, "must be an http(s) URL")
        .await;
    api.refused(settings(json!({"timeout_secs": 0})), 400, "timeout_secs: must be between 1 and 600").await;
    api.refused(
        settings(json!({"max_concurrency": 0})),
        400,
        "max_concurrency: must be between 1 and 100000",
    )
    .await;
    api.refused(settings(json!({"headers": {"bad header": "x"}})), 400, "`bad header` is not a header name")
        .await;
    api.refused(settings(json!({"backend": "http://x"})), 400, "unknown field `backend`").await;
    api.refused(settings(json!({"credentials": "secret"})), 400, "credentials must be an object").await;
    api.refused(settings(json!({"credentials": {"mode": "magic"}})), 400, "credentials: ").await;
    let per_user = json!({"credentials": {"mode": "token_exchange", "client_id": "gate", "client_secret": "s3cr3t-x",
        "token_endpoint": "https://idp.example.com/token"}});
    api.refused(settings(per_user), 400, "need auth mode `jwt`").await;

    // Restores.
    let mut export = api.get("/servers/pets/export").await.json;
    export["settings"]["slug"] = json!("Not Valid");
    api.refused(post("/restore", export.clone()), 400, "is not a valid slug").await;
    export["settings"]["slug"] = json!("fixed");
    api.refused(post("/restore", export.clone()), 403, "declared in the configuration file").await;
    // Sealed secrets belong to their server: an export is not a template for another.
    export["settings"]["slug"] = json!("copy");
    api.refused(post("/restore", export.clone()), 400, "credentials: the sealed secret").await;
    export["settings"]["slug"] = json!("pets");
    // Fetching from private addresses is the operator's choice, made in the configuration file.
    let mut private = export.clone();
    private["settings"]["allow_private_spec_url"] = json!(true);
    api.refused(post("/restore", private), 400, "can be set in the configuration file only").await;
    export["document"] = json!(broken);
    api.refused(post("/restore", export), 400, "invalid YAML").await;
    api.refused(post("/restore", json!({"settings": {}})), 400, "").await;

    // The audit query.
    api.refused(api.admin(Method::GET, "/audit?limit=many"), 400, "limit").await;

    // After all that, the server is served as before.
    assert_eq!(api.tool_names("pets").await, ["listPets", "fetch_pet"]);
}

#[tokio::test]
async fn uploads_over_64_mib_are_refused_with_413() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    app.create("pets", PETS_V1).await;
    let before = api.snapshot().await;

    // A file part that takes the body just over the limit.
    let boundary = "big-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"slug\"\r\n\r\nbig\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.yaml\"\r\n\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let answer = api.stream("/servers", &content_type, head.as_bytes(), MAX_UPLOAD_BYTES + 1).await;
    answer.assert_error(413, "the document is too large");
    let answer =
        api.stream("/servers/pets/document", &content_type, head.as_bytes(), MAX_UPLOAD_BYTES + 1).await;
    answer.assert_error(413, "the document is too large");
    // The same as JSON: `{"slug": "big", "text": "-----...`.
    let head = br#"{"slug": "big", "text": ""#;
    let answer = api.stream("/servers", "application/json", head, MAX_UPLOAD_BYTES + 1).await;
    answer.assert_error(413, "the document is too large");
    let head = br#"{"settings": {"slug": "big", "spec": "x"}, "document": ""#;
    let answer = api.stream("/restore", "application/json", head, MAX_UPLOAD_BYTES + 1).await;
    answer.assert_error(413, "too large");
    assert_eq!(api.snapshot().await, before);
}

#[tokio::test]
async fn without_the_token_nothing_is_answered_or_changed() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    app.create("pets", PETS_V1).await;
    let wrong =
        |method: Method, path: &str| api.anonymous(method, path).header(AUTHORIZATION, "Bearer boot-wrong");
    let create = json!({"slug": "new", "text": PETS_V1});
    for (method, path) in [
        (Method::GET, "/openapi.json"),
        (Method::GET, "/me"),
        (Method::GET, "/servers"),
        (Method::GET, "/servers/pets"),
        (Method::GET, "/servers/pets/export"),
        (Method::GET, "/audit"),
        (Method::POST, "/servers/pets/publish"),
        (Method::DELETE, "/servers/pets"),
    ] {
        let answer = api.refused(api.anonymous(method.clone(), path), 401, "send the bootstrap token").await;
        assert!(answer.headers.get("set-cookie").is_none());
        api.refused(wrong(method, path), 401, "sign in at /admin/login").await;
    }
    api.refused(api.anonymous(Method::POST, "/servers").json(&create), 401, "bootstrap token").await;
    api.refused(wrong(Method::POST, "/servers").json(&create), 401, "bootstrap token").await;
    let basic = api.anonymous(Method::GET, "/servers").basic_auth("admin", Some(BOOTSTRAP_TOKEN));
    api.refused(basic, 401, "bootstrap token").await;
    let curation = json!([{"key": "listPets", "exposed": true}]);
    api.refused(wrong(Method::PATCH, "/servers/pets/operations").json(&curation), 401, "bootstrap token")
        .await;
    api.refused(wrong(Method::PATCH, "/servers/pets/settings").json(&json!({})), 401, "bootstrap token")
        .await;
    api.refused(wrong(Method::POST, "/restore").json(&json!({})), 401, "bootstrap token").await;
    let import = json!({"text": PETS_V2});
    api.refused(wrong(Method::POST, "/servers/pets/document").json(&import), 401, "bootstrap token").await;
}

/// Without `[admin.oidc]` nobody can sign in to the UI; `/admin`, which the log names at start,
/// says so and how to change it rather than answering an empty 404.
#[tokio::test]
async fn without_sign_in_the_ui_says_how_to_configure_it() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    for path in ["/admin", "/admin/login"] {
        let page = api.send(api.client.get(format!("{}{path}", api.base))).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let content_type = page.headers[CONTENT_TYPE].to_str().unwrap();
        assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
        for part in ["Sign-in is not configured", "[admin.oidc]", "/admin/api", "admin.bootstrap_token"] {
            assert!(page.text().contains(part), "{path}: no `{part}` in {}", page.text());
        }
        assert!(page.headers.get("set-cookie").is_none(), "{path}");
    }
}

#[tokio::test]
async fn servers_declared_in_the_configuration_are_read_only() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    let fixed = api.get("/servers/fixed").await;
    assert_eq!(fixed.status, 200);
    assert_eq!(
        (&fixed.json["summary"]["provisioned"], &fixed.json["summary"]["state"]),
        (&json!(true), &json!("live"))
    );
    assert_eq!(fixed.json["settings"]["credentials"]["value"], "(set)", "a configured secret is not shown");
    assert_eq!(fixed.json["settings"]["backend_url"], app.backend_url);

    let message = "server `fixed` is declared in the configuration file; change it there";
    let request = api
        .admin(Method::PATCH, "/servers/fixed/operations")
        .json(&json!([{"key": "listPets", "exposed": false}]));
    api.refused(request, 403, message).await;
    let request = api.admin(Method::PATCH, "/servers/fixed/settings").json(&json!({"timeout_secs": 5}));
    api.refused(request, 403, message).await;
    let request = api.admin(Method::POST, "/servers/fixed/document").json(&json!({"text": PETS_V2}));
    api.refused(request, 403, message).await;
    let (content_type, body) = multipart(&[("file", Some("v2.yaml"), PETS_V2.as_bytes())]);
    let request =
        api.admin(Method::POST, "/servers/fixed/document").header(CONTENT_TYPE, content_type).body(body);
    api.refused(request, 403, message).await;
    api.refused(api.admin(Method::POST, "/servers/fixed/publish"), 403, message).await;
    api.refused(api.admin(Method::DELETE, "/servers/fixed"), 403, message).await;
    assert_eq!(api.tool_names("fixed").await, ["listPets", "createPet", "getPet", "deletePet"]);
}

#[tokio::test]
async fn browser_sessions_need_the_csrf_token_and_mcpgates_origin() {
    let gate = tokio::task::spawn_blocking(harness::Gate::start_dev).await.unwrap();
    let base = format!("http://{}", gate.addr);
    let mut api = Api::new(base.clone(), &[]);

    // The dev user is signed in at once with a session cookie.
    let login = api.send(api.client.get(format!("{base}/admin/login"))).await;
    assert_eq!(login.status, 303, "{}", login.text());
    let set_cookie = login.headers["set-cookie"].to_str().unwrap().to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    let (name, value) = attributes[0].split_once('=').unwrap();
    assert_eq!(name, "mcpgate_admin");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
        assert!(attributes.contains(&attribute), "{attribute} missing: {set_cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "plain http: {set_cookie}");
    let cookie = format!("mcpgate_admin={value}");
    // The session cookie appears in no answer from here on.
    api.secrets.push(value.to_owned());

    let session = |method: Method, path: &str| api.anonymous(method, path).header(COOKIE, &cookie);
    let me = api.send(session(Method::GET, "/me")).await;
    assert_eq!(me.json["name"], "dev-user");
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    assert!(csrf.len() >= 32, "{csrf}");
    let list = api.send(session(Method::GET, "/servers")).await;
    assert_eq!(slugs(&list.json), ["petstore", "train-travel"]);

    let before = api.send(session(Method::GET, "/servers")).await.json;
    let create = json!({"slug": "pets", "text": PETS_V1});
    let answer = api.send(session(Method::POST, "/servers").json(&create)).await;
    answer.assert_error(403, "missing or wrong CSRF token (X-CSRF-Token)");
    let answer =
        api.send(session(Method::POST, "/servers").header("x-csrf-token", "guess").json(&create)).await;
    answer.assert_error(403, "missing or wrong CSRF token");
    let evil = session(Method::POST, "/servers")
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example");
    api.send(evil.json(&create)).await.assert_error(403, "cross-origin request refused");
    let curation = json!([{"key": "listPets", "exposed": true}]);
    let answer = api.send(session(Method::PATCH, "/servers/petstore/operations").json(&curation)).await;
    answer.assert_error(403, "CSRF");
    let answer = api.send(session(Method::DELETE, "/servers/petstore")).await;
    answer.assert_error(403, "CSRF");
    assert_eq!(api.send(session(Method::GET, "/servers")).await.json, before, "nothing changed");
    // A cookie from another key is no session.
    let forged = api.anonymous(Method::GET, "/servers").header(COOKIE, "mcpgate_admin=e30.AAAA");
    api.send(forged).await.assert_error(401, "sign in");

    // With the token, from mcpgate's own origin, the same request is done, in the user's name.
    let own = session(Method::POST, "/servers").header("x-csrf-token", &csrf).header("origin", &base);
    let created = api.send(own.json(&create)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let answer = api
        .send(
            session(Method::PATCH, "/servers/petstore/operations")
                .header("x-csrf-token", &csrf)
                .json(&curation),
        )
        .await;
    answer.assert_error(403, "declared in the configuration file");
    let audit = api.send(session(Method::GET, "/audit?limit=1")).await;
    let entry = &audit.json["entries"][0];
    assert_eq!(
        (&entry["actor"], &entry["action"], &entry["server"]),
        (&json!("dev-user"), &json!("create"), &json!("pets"))
    );
    // The bootstrap token is not configured under `--dev`: a bearer token is no way in.
    let bearer =
        api.anonymous(Method::GET, "/servers").header(AUTHORIZATION, format!("Bearer {BOOTSTRAP_TOKEN}"));
    api.send(bearer).await.assert_error(401, "sign in");

    // A page on another host name that resolves to mcpgate (DNS rebinding) reads nothing, though
    // `/admin/login` signs anyone in here: not the API, nor the development identity provider.
    let idp = format!("{base}/dev-idp/.well-known/openid-configuration");
    assert_eq!(api.client.get(&idp).send().await.unwrap().status(), 200);
    for url in [idp, format!("{base}/admin/login"), format!("{base}/admin/api/servers")] {
        let rebound = api.client.get(&url).header("host", "evil.example").header(COOKIE, &cookie);
        let answer = rebound.send().await.unwrap();
        assert_eq!(answer.status(), 403, "{url}");
        assert!(answer.headers().get("set-cookie").is_none(), "{url}");
    }
    drop(gate);
}

/// Signing out ends the session for good: its cookie, though validly signed, is refused from
/// then on. Signing out is a change like any other, so another site cannot do it for the user.
#[tokio::test]
async fn signing_out_ends_the_session_and_needs_the_csrf_token() {
    let gate = tokio::task::spawn_blocking(harness::Gate::start_dev).await.unwrap();
    let base = format!("http://{}", gate.addr);
    let api = Api::new(base.clone(), &[]);
    let sign_in = || async {
        let login = api.send(api.client.get(format!("{base}/admin/login"))).await;
        assert_eq!(login.status, 303, "{}", login.text());
        let set_cookie = login.headers["set-cookie"].to_str().unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let me = api.send(api.anonymous(Method::GET, "/me").header(COOKIE, &cookie)).await;
        assert_eq!(me.status, 200, "{}", me.text());
        (cookie, me.json["csrf_token"].as_str().unwrap().to_owned())
    };
    let (cookie, csrf) = sign_in().await;
    let (other_cookie, _) = sign_in().await;
    let me = |cookie: &str| api.send(api.anonymous(Method::GET, "/me").header(COOKIE, cookie));
    let logout = |form: String| {
        api.client
            .post(format!("{base}/admin/logout"))
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
    };

    // Refused without the token, with a wrong one, and from another origin: the session goes on.
    for (request, reason) in [
        (logout(String::new()), "missing or wrong CSRF token"),
        (logout("csrf=guess".to_owned()), "missing or wrong CSRF token"),
        (
            logout(format!("csrf={csrf}")).header("origin", "http://evil.example"),
            "cross-origin request refused",
        ),
    ] {
        let answer = api.send(request).await;
        assert_eq!(answer.status, 403, "{}", answer.text());
        assert!(answer.text().contains(reason), "{}", answer.text());
        assert!(answer.headers.get("set-cookie").is_none());
        assert_eq!(me(&cookie).await.status, 200, "the session still works");
    }

    // With the token (as the page's form sends it), from mcpgate's own origin: signed out.
    let answer = api.send(logout(format!("csrf={csrf}")).header("origin", &base)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("You are signed out"), "{}", answer.text());
    let cleared = answer.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("mcpgate_admin=;") && cleared.contains("Max-Age=0"), "{cleared}");

    // The old cookie, kept by whoever copied it, no longer signs anyone in.
    me(&cookie).await.assert_error(401, "sign in");
    let create = api
        .anonymous(Method::POST, "/servers")
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"slug": "pets", "text": PETS_V1}));
    api.send(create).await.assert_error(401, "sign in");
    let page = api.send(api.client.get(format!("{base}/admin")).header(COOKIE, &cookie)).await;
    assert_eq!((page.status, page.headers["location"].to_str().unwrap()), (303, "/admin/login"));
    // Signing out again changes nothing; the other session goes on, and signing in works.
    assert_eq!(api.send(logout(format!("csrf={csrf}"))).await.status, 200);
    assert_eq!(me(&other_cookie).await.status, 200);
    let (cookie, _) = sign_in().await;
    assert_eq!(me(&cookie).await.status, 200);
    assert!(gate.log_text().contains("admin signed out"), "the sign-out is audited");
    drop(gate);
}

/// What the server page asks for: a page of operations filtered on the server, one operation
/// whole, a change answered with only what changed, a bulk exposure counted before it is made
/// and made in one request, the report by kind, and a budget's estimate.
#[tokio::test]
async fn the_server_page_reads_a_page_at_a_time_and_changes_rows() {
    let app = TestApp::spawn().await;
    let api = &app.api;
    app.create("pets", PETS_V1).await;
    let keys = |answer: &Answer| -> Vec<String> {
        let rows = answer.json["operations"].as_array().unwrap_or_else(|| panic!("{}", answer.text()));
        rows.iter().map(|it| it["key"].as_str().unwrap().to_owned()).collect()
    };

    let page = api.get("/servers/pets/operations?limit=2").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        (&page.json["total"], &page.json["n_operations"], &page.json["n_exposed"]),
        (&json!(4), &json!(4), &json!(0))
    );
    assert_eq!(keys(&page), ["listPets", "createPet"]);
    assert!(page.json["operations"][0].get("definition").is_none(), "rows come without definitions");
    let next = api.get("/servers/pets/operations?limit=2&offset=2").await;
    assert_eq!(keys(&next), ["getPet", "deletePet"]);
    let filtered = api.get("/servers/pets/operations?method=DELETE&q=pet").await;
    assert_eq!((keys(&filtered), &filtered.json["total"]), (vec!["deletePet".to_owned()], &json!(1)));

    let detail = api.get("/servers/pets/operation?key=getPet").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    assert_eq!(detail.json["definition"]["name"], "getPet");
    assert_eq!(detail.json["default_annotations"]["readOnlyHint"], true);
    let tokens = detail.json["tokens"].as_u64().unwrap();
    api.get("/servers/pets/operation?key=nothing").await.assert_error(404, "no operation `nothing`");

    // A change answers with the changed row and the new totals when asked to.
    let request = api
        .admin(Method::PATCH, "/servers/pets/operations")
        .header("prefer", "return=representation")
        .json(&json!([{"key": "getPet", "exposed": true}]));
    let changed = api.send(request).await;
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!((&changed.json["n_exposed"], &changed.json["exposed_tokens"]), (&json!(1), &json!(tokens)));
    assert_eq!(changed.json["changed"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&changed.json["changed"][0]["key"], &changed.json["changed"][0]["exposed"]),
        (&json!("getPet"), &json!(true))
    );
    let etag = changed.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", changed.json["version"]));

    // A bulk exposure over a filter: counted first, then made in one request.
    let bulk = json!({"filter": {"q": "pet"}, "exposed": true, "preview": true});
    let preview = app.ok(Method::POST, "/servers/pets/operations/bulk", bulk).await;
    assert_eq!(preview.json["operations"], 3, "getPet is exposed already: {}", preview.text());
    assert!(preview.json["tokens"].as_u64().unwrap() > 0);
    assert_eq!(preview.json["totals"]["n_exposed"], 1, "a preview changes nothing");
    let applied = app
        .ok(Method::POST, "/servers/pets/operations/bulk", json!({"filter": {"q": "pet"}, "exposed": true}))
        .await;
    assert_eq!((&applied.json["operations"], &applied.json["totals"]["n_exposed"]), (&json!(3), &json!(4)));
    let hidden = app
        .ok(Method::POST, "/servers/pets/operations/bulk", json!({"keys": ["listPets"], "exposed": false}))
        .await;
    assert_eq!(hidden.json["totals"]["n_exposed"], 3);
    let audit = api.get("/audit?limit=2").await;
    assert_eq!(audit.json["entries"][0]["detail"], "hid listPets");
    assert_eq!(audit.json["entries"][1]["detail"], "exposed listPets, createPet, deletePet");
    let refused = api.json(Method::POST, "/servers/fixed/operations/bulk", json!({"exposed": true})).await;
    assert_eq!(refused.status, 403, "{}", refused.text());

    // The report, grouped by kind.
    let report = api.get("/servers/pets/report").await;
    assert_eq!(report.status, 200, "{}", report.text());
    assert_eq!((&report.json["operations"], &report.json["tools"]), (&json!(4), &json!(4)));
    assert!(report.json["groups"].is_array());

    // A budget's estimate changes nothing.
    let trial = json!({"budget": {"max_description_chars": 5}, "key": "getPet", "tool_budget": {"max_output_schema_tokens": 0}});
    let estimate = app.ok(Method::POST, "/servers/pets/budget/preview", trial).await;
    let current = estimate.json["current_exposed_tokens"].as_u64().unwrap();
    assert!(estimate.json["exposed_tokens"].as_u64().unwrap() < current, "{}", estimate.text());
    let tool = &estimate.json["tool"];
    assert!(tool["tokens"].as_u64().unwrap() < tool["current_tokens"].as_u64().unwrap(), "{tool}");
    let wrong = json!({"budget": {"max_schema_tokens": 0}});
    api.json(Method::POST, "/servers/pets/budget/preview", wrong)
        .await
        .assert_error(400, "max_schema_tokens");
}
