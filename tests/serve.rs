//! `mcpgate serve` end to end: an MCP client on one side, a real HTTP backend on loopback on the
//! other that records exactly what it received. Each test calls a tool and checks both the
//! request the backend saw and the result the client got, for every parameter style, body type,
//! response kind, error and limit.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;

use app::{Backend, Events, McpClient, Seen, Setup, VERSION, content_type};

const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Recorder, version: "1"}
servers: [{url: "http://placeholder.invalid/v1"}]
paths:
  /items/{id}:
    get:
      operationId: getItem
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: tags, in: query, schema: {type: array, items: {type: string}}}
        - {name: ids, in: query, explode: false, schema: {type: array, items: {type: integer}}}
        - {name: filter, in: query, style: deepObject, explode: true, schema: {type: object, properties: {color: {type: string}, size: {type: integer}}}}
        - {name: words, in: query, style: spaceDelimited, explode: false, schema: {type: array, items: {type: string}}}
        - {name: pipes, in: query, style: pipeDelimited, explode: false, schema: {type: array, items: {type: string}}}
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: session, in: cookie, schema: {type: string}}
        - {name: theme, in: cookie, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {id: {type: string}}}
  /label/{point}:
    get:
      operationId: getLabel
      parameters:
        - {name: point, in: path, required: true, style: label, explode: false, schema: {type: array, items: {type: integer}}}
      responses: {"204": {description: none}}
  /matrix/{point}:
    get:
      operationId: getMatrix
      parameters:
        - {name: point, in: path, required: true, style: matrix, explode: true, schema: {type: object, properties: {x: {type: integer}, y: {type: integer}}}}
      responses: {"204": {description: none}}
  /things:
    post:
      operationId: createThing
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: string}
                size: {type: integer, minimum: 1}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {type: object}
    get:
      operationId: listThings
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: array, items: {type: object}}
  /form:
    post:
      operationId: postForm
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                name: {type: string}
                tags: {type: array, items: {type: string}}
            encoding:
              tags: {style: form, explode: false}
      responses: {"204": {description: none}}
  /upload:
    post:
      operationId: upload
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              properties:
                note: {type: string}
                file: {type: string, format: binary}
      responses: {"204": {description: none}}
  /note:
    put:
      operationId: putNote
      requestBody:
        content:
          text/plain:
            schema: {type: string}
      responses: {"204": {description: none}}
  /blob:
    put:
      operationId: putBlob
      requestBody:
        content:
          application/octet-stream:
            schema: {type: string, format: binary}
      responses: {"204": {description: none}}
  /kinds/{kind}:
    get:
      operationId: getKind
      parameters:
        - {name: kind, in: path, required: true, schema: {type: string}}
      responses:
        "200": {description: anything}
"#;

/// How the recording backend answers, according to the path.
async fn answer(seen: Seen) -> Response {
    let path = seen.path();
    let json_response = |status: StatusCode, value: Value| (status, axum::Json(value)).into_response();
    match path {
        p if p.starts_with("/v1/items/") => {
            json_response(StatusCode::OK, json!({"id": p.trim_start_matches("/v1/items/")}))
        }
        "/v1/things" if seen.method == "POST" => json_response(StatusCode::CREATED, json!({"created": true})),
        "/v1/things" => json_response(StatusCode::OK, json!([{"n": 1}, {"n": 2}])),
        "/v1/kinds/text" => ([("content-type", "text/plain")], "plain words").into_response(),
        "/v1/kinds/image" => ([("content-type", "image/png")], vec![0x89, b'P', b'N', b'G']).into_response(),
        "/v1/kinds/binary" => ([("content-type", "application/pdf")], vec![1u8, 2, 3]).into_response(),
        "/v1/kinds/missing" => json_response(StatusCode::NOT_FOUND, json!({"message": "no such kind"})),
        "/v1/kinds/broken" => (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(10_000)).into_response(),
        "/v1/kinds/huge" => ([("content-type", "text/plain")], "y".repeat(5_000)).into_response(),
        "/v1/kinds/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        "/v1/kinds/away" => {
            (StatusCode::FOUND, [("location", "http://127.0.0.2:9/elsewhere")]).into_response()
        }
        "/v1/kinds/moved" => (StatusCode::MOVED_PERMANENTLY, [("location", "text")]).into_response(),
        "/v1/kinds/loop" => {
            (StatusCode::TEMPORARY_REDIRECT, [("location", "/v1/kinds/loop")]).into_response()
        }
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// mcpgate serving [`DOCUMENT`] as `recorder` in front of the recording backend.
struct TestApp {
    /// Serves while the test holds it.
    _app: app::TestApp,
    mcp_url: String,
    mcp: McpClient,
    client: reqwest::Client,
    recorder: Backend,
}

impl TestApp {
    async fn spawn() -> TestApp {
        TestApp::spawn_with(None, "").await
    }

    /// Starts the recording backend and mcpgate, whose server calls `backend` (default: the
    /// recording backend); `extra` adds keys to the `[[servers]]` entry.
    async fn spawn_with(backend_override: Option<&str>, extra: &str) -> TestApp {
        let recorder = Backend::start(answer).await;
        let backend_url = backend_override.map_or(format!("{}/v1", recorder.url), str::to_owned);
        let app = Setup::new()
            .server(
                "recorder",
                DOCUMENT,
                &backend_url,
                &format!("timeout_secs = 1\nmax_response_bytes = 1000\n{extra}"),
            )
            .start()
            .await;
        TestApp {
            mcp_url: app.mcp_url("recorder"),
            mcp: app.mcp("recorder"),
            client: app.http.clone(),
            _app: app,
            recorder,
        }
    }

    async fn rpc(&self, method: &str, params: Value) -> Value {
        self.mcp.rpc(method, params).await
    }

    /// `initialize`, which opens a session: the answer comes as SSE (tests/sessions.rs covers
    /// sessions).
    async fn initialize(&self, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params});
        let response = self.mcp.http_initialize(body).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("mcp-session-id"));
        Events::new(response).next().await.expect("an SSE message")
    }

    /// Calls a tool and returns its result (`isError`, `content`, `structuredContent`).
    async fn call(&self, tool: &str, arguments: Value) -> Value {
        self.mcp.call(tool, arguments).await
    }
}

fn text_of(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn query_header_and_cookie_parameters_are_serialized_per_style() {
    let app = TestApp::spawn().await;
    let result = app
        .call(
            "getItem",
            json!({
                "id": "a b/../c?d#e",
                "tags": ["x", "y z"],
                "ids": [1, 2, 3],
                "filter": {"color": "red", "size": 2},
                "words": ["one", "two"],
                "pipes": ["p", "q"],
                "X-Trace": "t-1",
                "session": "s1",
                "theme": "dark"
            }),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    let seen = app.recorder.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.uri,
        "/v1/items/a%20b%2F..%2Fc%3Fd%23e?tags=x&tags=y%20z&ids=1,2,3&filter%5Bcolor%5D=red&filter%5Bsize%5D=2&words=one%20two&pipes=p%7Cq"
    );
    assert_eq!(seen.headers["x-trace"], "t-1");
    assert_eq!(seen.headers["cookie"], "session=s1; theme=dark");
    assert_eq!(result["structuredContent"], json!({"id": "a%20b%2F..%2Fc%3Fd%23e"}));
}

#[tokio::test]
async fn path_parameters_cannot_leave_their_segment() {
    let app = TestApp::spawn().await;
    for id in ["..", "../admin", "%2e%2e", "a/b", "?x=1", "#frag", "\\..\\", "."] {
        let result = app.call("getItem", json!({"id": id})).await;
        let seen = app.recorder.take();
        if result["isError"] == true {
            // Refusing the value outright is as safe as confining it.
            assert!(seen.is_empty(), "{id}: refused, yet sent");
            continue;
        }
        let path = seen[0].uri.split('?').next().unwrap().to_owned();
        assert!(path.starts_with("/v1/items/"), "{id} escaped to {path}");
        assert_eq!(path.matches('/').count(), 3, "{id} added a segment: {path}");
        assert!(!["/v1/items/..", "/v1/items/."].contains(&path.as_str()), "{id} became a dot segment");
    }
}

#[tokio::test]
async fn label_and_matrix_styles() {
    let app = TestApp::spawn().await;
    app.call("getLabel", json!({"point": [3, 4, 5]})).await;
    assert_eq!(app.recorder.last().uri, "/v1/label/.3,4,5");
    app.call("getMatrix", json!({"point": {"x": 1, "y": 2}})).await;
    assert_eq!(app.recorder.last().uri, "/v1/matrix/;x=1;y=2");
}

#[tokio::test]
async fn json_bodies_are_assembled_from_flattened_arguments() {
    let app = TestApp::spawn().await;
    let result = app.call("createThing", json!({"name": "box", "size": 3})).await;
    assert_eq!(result["structuredContent"], json!({"created": true}));
    let seen = app.recorder.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&seen.body).unwrap(), json!({"name": "box", "size": 3}));
}

#[tokio::test]
async fn form_multipart_text_and_binary_bodies() {
    let app = TestApp::spawn().await;
    app.call("postForm", json!({"name": "a b&c", "tags": ["x", "y"]})).await;
    let seen = app.recorder.last();
    assert_eq!(seen.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(String::from_utf8(seen.body).unwrap(), "name=a%20b%26c&tags=x,y");

    // "aGVsbG8=" is base64 for "hello".
    app.call("upload", json!({"note": "hi", "file": "aGVsbG8="})).await;
    let seen = app.recorder.last();
    let content_type = seen.headers["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("multipart/form-data; boundary="), "{content_type}");
    let body = String::from_utf8_lossy(&seen.body);
    assert!(body.contains("name=\"note\"\r\n\r\nhi\r\n"), "{body}");
    assert!(body.contains("name=\"file\"; filename=\"file\""), "{body}");
    assert!(body.contains("\r\n\r\nhello\r\n"), "{body}");

    app.call("putNote", json!({"body": "some text"})).await;
    let seen = app.recorder.last();
    assert_eq!(seen.headers["content-type"], "text/plain");
    assert_eq!(seen.body, b"some text");

    app.call("putBlob", json!({"body": "AAEC"})).await;
    let seen = app.recorder.last();
    assert_eq!(seen.headers["content-type"], "application/octet-stream");
    assert_eq!(seen.body, [0u8, 1, 2]);
}

#[tokio::test]
async fn invalid_arguments_are_a_result_listing_each_violation() {
    let app = TestApp::spawn().await;
    let result = app.call("createThing", json!({"size": 0, "colour": "red"})).await;
    assert_eq!(result["isError"], true);
    let text = text_of(&result);
    assert!(text.starts_with("Invalid arguments for createThing:"), "{text}");
    assert!(text.contains("\"name\" is a required property"), "{text}");
    assert!(text.contains("`/size`"), "{text}");
    assert!(text.contains("colour"), "{text}");
    assert!(app.recorder.take().is_empty(), "nothing reached the backend");
}

#[tokio::test]
async fn unknown_tools_are_a_protocol_error() {
    let app = TestApp::spawn().await;
    let response = app.rpc("tools/call", json!({"name": "nope", "arguments": {}})).await;
    assert_eq!(response["error"]["code"], -32602, "{response}");
}

#[tokio::test]
async fn responses_become_structured_content_text_images_and_resources() {
    let app = TestApp::spawn().await;
    let array = app.call("listThings", json!({})).await;
    assert_eq!(array["structuredContent"], json!({"result": [{"n": 1}, {"n": 2}]}));
    assert_eq!(text_of(&array), r#"[{"n":1},{"n":2}]"#);

    let text = app.call("getKind", json!({"kind": "text"})).await;
    assert_eq!((text["isError"].clone(), text_of(&text)), (json!(false), "plain words".to_owned()));

    let image = app.call("getKind", json!({"kind": "image"})).await;
    assert_eq!(image["content"][0]["type"], "image");
    assert_eq!(image["content"][0]["mimeType"], "image/png");
    assert_eq!(image["content"][0]["data"], "iVBORw==");

    let binary = app.call("getKind", json!({"kind": "binary"})).await;
    assert_eq!(binary["content"][0]["type"], "resource");
    assert_eq!(binary["content"][0]["resource"]["mimeType"], "application/pdf");
    assert_eq!(binary["content"][0]["resource"]["blob"], "AQID");

    let empty = app.call("getKind", json!({"kind": "nothing"})).await;
    assert_eq!(text_of(&empty), "Done: the backend answered 204 No Content with no content.");
}

#[tokio::test]
async fn backend_errors_and_limits_are_tool_errors() {
    let app = TestApp::spawn().await;
    let missing = app.call("getKind", json!({"kind": "missing"})).await;
    assert_eq!(missing["isError"], true);
    assert_eq!(text_of(&missing), "The backend answered 404 Not Found:\n{\"message\":\"no such kind\"}");

    let broken = app.call("getKind", json!({"kind": "broken"})).await;
    let text = text_of(&broken);
    assert!(text.starts_with("The backend answered 500 Internal Server Error:\n"), "{text}");
    assert!(text.ends_with("[excerpt]") && text.len() < 1200, "the excerpt is bounded: {} bytes", text.len());

    let huge = app.call("getKind", json!({"kind": "huge"})).await;
    let text = text_of(&huge);
    assert!(text.ends_with("[response cut at 1000 bytes]"), "{}", &text[text.len() - 40..]);

    let slow = app.call("getKind", json!({"kind": "slow"})).await;
    assert_eq!(slow["isError"], true);
    assert!(text_of(&slow).contains("did not answer within 1s"), "{slow}");

    let away = app.call("getKind", json!({"kind": "away"})).await;
    assert_eq!(away["isError"], true);
    assert!(text_of(&away).contains("answered 302 with a redirect mcpgate does not follow"), "{away}");
}

#[tokio::test]
async fn credentials_in_the_backend_url_are_sent_as_basic_authorization() {
    let recorder = Backend::start(answer).await;
    let address = recorder.url.trim_start_matches("http://");
    let backend_url = format!("http://ann:p%40ss@{address}/v1");
    let app = Setup::new().server("recorder", DOCUMENT, &backend_url, "").start().await;
    let result = app.mcp("recorder").call("getKind", json!({"kind": "text"})).await;
    assert_eq!(text_of(&result), "plain words", "{result}");
    let seen = recorder.last();
    // "ann:p@ss", the password percent-decoded as in the URL.
    assert_eq!(seen.headers["authorization"], "Basic YW5uOnBAc3M=");
    assert!(!seen.uri.contains("ann") && !seen.uri.contains("ss@"), "{}", seen.uri);
}

#[tokio::test]
async fn redirects_are_followed_within_the_backends_origin_at_most_five_times() {
    let app = TestApp::spawn().await;
    let moved = app.call("getKind", json!({"kind": "moved"})).await;
    assert_eq!(text_of(&moved), "plain words", "{moved}");
    assert_eq!(app.recorder.take_lines(), ["GET /v1/kinds/moved", "GET /v1/kinds/text"]);

    let looping = app.call("getKind", json!({"kind": "loop"})).await;
    assert_eq!(looping["isError"], true);
    assert!(text_of(&looping).contains("answered 307 with a redirect"), "{looping}");
    assert_eq!(app.recorder.take_lines(), vec!["GET /v1/kinds/loop"; 6], "the request and five redirects");

    let away = app.call("getKind", json!({"kind": "away"})).await;
    assert_eq!(away["isError"], true);
    assert_eq!(app.recorder.count(), 1, "another origin is never asked");
}

#[tokio::test]
async fn an_unreachable_backend_is_named_in_the_error() {
    // A port that was free a moment ago: nothing listens on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = TestApp::spawn_with(Some(&format!("http://{closed}/v1")), "").await;
    let result = app.call("getKind", json!({"kind": "text"})).await;
    assert_eq!(result["isError"], true);
    let text = text_of(&result);
    assert!(text.starts_with("Cannot connect to the backend 127.0.0.1:"), "{text}");
}

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_refused() {
    let app = TestApp::spawn_with(None, "max_concurrency = 1").await;
    let (slow, busy) = tokio::join!(app.call("getKind", json!({"kind": "slow"})), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.call("getKind", json!({"kind": "text"})).await
    });
    assert!(text_of(&slow).contains("did not answer"), "{slow}");
    assert!(text_of(&busy).contains("is busy: 1 calls are in flight"), "{busy}");
}

#[tokio::test]
async fn tools_list_pages_and_refuses_bad_cursors() {
    let app = TestApp::spawn().await;
    let listed = app.rpc("tools/list", json!({})).await;
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().map(|it| it["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "getItem",
            "getLabel",
            "getMatrix",
            "listThings",
            "createThing",
            "postForm",
            "upload",
            "putNote",
            "putBlob",
            "getKind"
        ]
    );
    assert!(listed["result"].get("nextCursor").is_none());
    let bad = app.rpc("tools/list", json!({"cursor": "garbage"})).await;
    assert_eq!(bad["error"]["code"], -32602);
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let app = TestApp::spawn().await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let evil_host = app
        .client
        .post(&app.mcp_url)
        .header("host", "evil.example.com")
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(evil_host.status(), 403);
    let evil_origin = app
        .client
        .post(&app.mcp_url)
        .header("origin", "https://evil.example.com")
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(evil_origin.status(), 403);
    let unknown =
        app.client.post(app.mcp_url.replace("recorder", "nobody")).json(&body).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

/// Every route answers only the hosts mcpgate serves (`http.allowed_hosts`, by default the
/// public URL's and the loopback names), not only `/mcp/{slug}`: a page served from another name
/// that resolves to mcpgate (DNS rebinding) reads nothing, the admin API least of all.
#[tokio::test]
async fn every_route_answers_only_the_hosts_mcpgate_serves() {
    let token = "boot-host-check-3f9a";
    let app = Setup::new()
        .jwt(&["http://127.0.0.1:9"])
        .bootstrap_token(token)
        .server("pets", DOCUMENT, "http://127.0.0.1:9/v1", "")
        .start()
        .await;
    let port = app.addr.port();
    let mcp = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let requests = |host: &str| {
        let get = |path: &str| app.http.get(format!("{}{path}", app.base)).header("host", host);
        [
            ("/admin/api/servers", get("/admin/api/servers").bearer_auth(token), 200),
            ("/admin", get("/admin"), 200),
            ("/.well-known/…/mcp/pets", get("/.well-known/oauth-protected-resource/mcp/pets"), 200),
            ("/.well-known/…", get("/.well-known/oauth-protected-resource"), 200),
            ("/healthz", get("/healthz"), 200),
            ("/readyz", get("/readyz"), 200),
            ("/nowhere", get("/nowhere"), 404),
            (
                "/mcp/pets",
                app.mcp("pets").send(axum::http::Method::POST, None).header("host", host).json(&mcp),
                401,
            ),
        ]
    };
    let served = [format!("127.0.0.1:{port}"), "localhost".to_owned(), format!("[::1]:{port}")];
    for host in &served {
        for (path, request, status) in requests(host) {
            let reply = app.oneshot(request).await;
            assert_eq!(reply.status.as_u16(), status, "{path} for {host}: {}", reply.text());
        }
    }
    let foreign = ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example", "localhost.", "a b", ""];
    for host in foreign.map(|it| it.replace("{port}", &port.to_string())) {
        for (path, request, status) in requests(&host) {
            let reply = app.oneshot(request).await;
            if matches!(path, "/healthz" | "/readyz") {
                // Probes come by address; they read nothing a rebinding page could use.
                assert_eq!(reply.status.as_u16(), status, "{path} for {host:?}: {}", reply.text());
                continue;
            }
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} for {host:?}: {}", reply.text());
            assert_eq!(
                reply.json(),
                json!({"error": "this host name is not served here (http.allowed_hosts)"})
            );
        }
    }
}

/// `/readyz` says whether mcpgate is ready and counts the servers, and nothing more: why a server
/// failed (an internal URL, a path, a connection error) is for the log and the admin API.
#[tokio::test]
async fn readiness_is_counts_and_the_reasons_are_for_administrators() {
    let token = "boot-readiness-51c2";
    let broken = "openapi: 3.0.3\ninfo: {title: Broken, version: '1'}\npaths: [\n";
    let app = Setup::new()
        .bootstrap_token(token)
        .server("recorder", DOCUMENT, "http://127.0.0.1:9/v1", "")
        .server("broken", broken, "http://10.1.2.3:8080/internal", "")
        .start()
        .await;
    let ready = app.oneshot(app.http.get(format!("{}/readyz", app.base))).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json(), json!({"ready": false, "servers": 1, "failed": 1, "loading": 0, "store": "up"}));

    let list = app.oneshot(app.http.get(format!("{}/admin/api/servers", app.base)).bearer_auth(token)).await;
    let servers = list.json()["servers"].clone();
    let broken = servers.as_array().unwrap().iter().find(|it| it["slug"] == "broken").unwrap();
    let failure = broken["failure"].as_str().unwrap_or_else(|| panic!("no failure: {servers}"));
    assert!(failure.contains("broken.yaml") && failure.contains("invalid YAML"), "{failure}");
}

#[tokio::test]
async fn negotiates_each_supported_protocol_version() {
    let app = TestApp::spawn().await;
    for version in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let params = json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
        let response = app.initialize(params).await;
        assert_eq!(response["result"]["protocolVersion"], version, "{response}");
        assert_eq!(response["result"]["capabilities"]["tools"], json!({"listChanged": true}));
        assert_eq!(response["result"]["serverInfo"]["name"], "mcpgate/recorder");
    }
    let unsupported = app
        .client
        .post(&app.mcp_url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "1999-01-01")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), 400);
}

#[tokio::test]
async fn notifications_are_accepted_and_oversized_requests_refused() {
    let app = TestApp::spawn().await;
    let notification = app
        .client
        .post(&app.mcp_url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(notification.status(), 202);
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "putNote", "arguments": {"body": "z".repeat(5 * 1024 * 1024)}}});
    let oversized = app
        .client
        .post(&app.mcp_url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    assert!(app.recorder.take().is_empty());
}

#[tokio::test]
async fn what_is_not_one_json_rpc_message_gets_a_json_rpc_error() {
    let app = TestApp::spawn().await;
    let send = |body: &'static str| {
        app.client
            .post(&app.mcp_url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
            .send()
    };
    let cases: [(&str, u16, i64, Value); 6] = [
        ("not json", 400, -32700, Value::Null),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#, 400, -32600, Value::Null),
        (r#"{"id":1,"method":"tools/list"}"#, 400, -32600, json!(1)),
        (r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#, 400, -32600, Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getItem","arguments":[1]}}"#,
            200,
            -32602,
            json!(2),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"arguments":{}}}"#,
            200,
            -32602,
            json!("a"),
        ),
    ];
    for (body, status, code, id) in cases {
        let response = send(body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!((&answer["error"]["code"], &answer["id"]), (&json!(code), &id), "{body}: {answer}");
    }
    assert!(app.recorder.take().is_empty(), "nothing reached the backend");
}

#[tokio::test]
async fn without_a_session_there_is_no_stream_to_open_or_end() {
    let app = TestApp::spawn().await;
    let get = app.client.get(&app.mcp_url).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(get.status(), 405, "no session: no GET stream (tests/sessions.rs covers sessions)");
    assert_eq!(app.client.delete(&app.mcp_url).send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn a_restart_serves_the_stored_document_when_the_original_is_gone() {
    let tool_count = |app: &app::TestApp| {
        let mcp = app.mcp("kept");
        async move {
            let response = mcp.rpc("tools/list", json!({})).await;
            response["result"]["tools"].as_array().map_or(0, Vec::len)
        }
    };
    let app = Setup::new().server("kept", DOCUMENT, "http://127.0.0.1:9/v1", "").start().await;
    assert_eq!(tool_count(&app).await, 10, "round 0");
    std::fs::remove_file(app.document_path("kept")).unwrap();
    // Stops (asserting a clean shutdown) and starts again on the same data.
    let mut app = app.restart().await;
    assert_eq!(tool_count(&app).await, 10, "round 1");
    app.stop().await;
}

/// With Nagle's algorithm, a session's answer, an SSE event written after the headers, waited
/// for the client's delayed ACK: about 40 ms a call. The proof that accepted sockets have
/// `TCP_NODELAY` is the accept loop's unit test; this shows the effect, with a bound far from
/// both the delay and a loopback call's few milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_a_session_are_not_held_back_by_nagles_algorithm() {
    let app = TestApp::spawn().await;
    let (session, _) = app.mcp.initialize().await;
    let mut took = Vec::new();
    for id in 0..20 {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "getItem", "arguments": {"id": "a"}}});
        let started = std::time::Instant::now();
        let response = app.mcp.post(Some(&session), call).await;
        assert_eq!(response.status(), 200);
        // The whole stream, so that the connection goes back to the pool for the next call.
        let text = response.text().await.unwrap();
        took.push(started.elapsed());
        assert!(text.contains(r#""structuredContent":{"id":"a"}"#), "{text}");
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(median < Duration::from_millis(20), "median {median:?} of {took:?}");
}

/// `tools/call` and `tools/list` are answered by mcpgate's direct path, and anything it does not
/// serve by rmcp: both answer alike. Each request is sent as the direct path takes it, and again
/// with an allowed `Origin`, which only rmcp checks and so takes; the answers must be the same,
/// without a session and in one (where rmcp answers with SSE, the direct path with JSON).
/// A future is copied whole each time it moves (into its task, into a box), and is as large as
/// its largest state: a request's future that carried room for the rare paths (rmcp's sessions,
/// token requests, confirmations) was over 100 KB, copied several times per call.
#[tokio::test]
async fn a_request_future_carries_no_room_for_the_rare_paths() {
    let recorder = Backend::start(answer).await;
    let app = Setup::new().server("recorder", DOCUMENT, &format!("{}/v1", recorder.url), "").start().await;
    let hosted = app.hosting.get("recorder").expect("the server is hosted");
    let request =
        axum::http::Request::post("/mcp/recorder").body(axum::body::Body::empty()).expect("a request");
    let handling = hosted.service.handle(hosted.host.current(), request);
    let size = std::mem::size_of_val(&handling);
    // About 4 KB in a release build; debug builds keep more.
    assert!(size < 16 * 1024, "a request's future takes {size} bytes");
}

/// The newest protocol version, which names itself in each request's `_meta`.
const NEXT: &str = "2026-07-28";

#[tokio::test]
async fn the_direct_path_answers_as_rmcp_does() {
    let recorder = Backend::start(answer).await;
    let app = Setup::new()
        .http("allowed_origins = [\"http://app.example\"]")
        .server(
            "recorder",
            DOCUMENT,
            &format!("{}/v1", recorder.url),
            "timeout_secs = 1\nmax_response_bytes = 1000\n",
        )
        .start()
        .await;
    let mcp = app.mcp("recorder");
    let session = mcp.open_session().await;
    let requests = [
        json!({"method": "tools/call", "params": {"name": "getItem", "arguments": {"id": "a/b"}}}),
        json!({"method": "tools/call", "params": {"name": "listThings", "arguments": {}}}),
        // Without arguments: read as sent, not as rmcp's type (`envelope::Params`).
        json!({"method": "tools/call", "params": {"name": "listThings"}}),
        json!({"method": "tools/call", "params": {"name": "listThings", "arguments": {}, "_meta": {"progressToken": 5}}}),
        json!({"method": "tools/call", "params": {"name": "createThing", "arguments": {"size": 0}}}),
        json!({"method": "tools/call", "params": {"name": "getKind", "arguments": {"kind": "missing"}}}),
        json!({"method": "tools/call", "params": {"name": "getKind", "arguments": {"kind": "image"}}}),
        json!({"method": "tools/call", "params": {"name": "nope", "arguments": {}}}),
        json!({"method": "tools/call", "params": {"name": "getItem", "arguments": {"id": "1"},
            "_meta": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}),
        json!({"method": "tools/list", "params": {}}),
        json!({"method": "tools/list"}),
        json!({"method": "tools/list", "params": {"cursor": "garbage"}}),
    ];
    for (n, request) in requests.iter().enumerate() {
        let mut request = request.clone();
        request["jsonrpc"] = json!("2.0");
        request["id"] = json!(n);
        for session in [None, Some(session.as_str())] {
            let send = |origin: Option<&'static str>| {
                let mut it = mcp
                    .http
                    .post(&mcp.url)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", VERSION)
                    .json(&request);
                if let Some(session) = session {
                    it = it.header("mcp-session-id", session);
                }
                if let Some(origin) = origin {
                    it = it.header("origin", origin);
                }
                it.send()
            };
            let direct = send(None).await.unwrap();
            let through_rmcp = send(Some("http://app.example")).await.unwrap();
            assert_eq!(direct.status(), through_rmcp.status(), "{request} in session {session:?}");
            assert_eq!(content_type(&direct), "application/json", "the direct path answered {request}");
            let direct: Value = direct.json().await.unwrap();
            let through_rmcp = match session {
                Some(_) => {
                    assert_eq!(content_type(&through_rmcp), "text/event-stream", "rmcp answered {request}");
                    Events::new(through_rmcp).next().await.expect("rmcp's answer")
                }
                None => through_rmcp.json().await.unwrap(),
            };
            assert_eq!(direct, through_rmcp, "{request} in session {session:?}");
        }
        // The same request as a 2026-07-28 client sends it: no session, its version and
        // capabilities in `_meta`, the method and tool repeated in headers (the direct path
        // answers its calls, rmcp its listings).
        let mut next = request.clone();
        let params = next.as_object_mut().unwrap().entry("params").or_insert(json!({}));
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": NEXT,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let send = |origin: Option<&'static str>| {
            let mut it = mcp
                .http
                .post(&mcp.url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", NEXT)
                .header("mcp-method", next["method"].as_str().unwrap())
                .json(&next);
            if let Some(name) = next["params"]["name"].as_str() {
                it = it.header("mcp-name", name);
            }
            if let Some(origin) = origin {
                it = it.header("origin", origin);
            }
            it.send()
        };
        let direct = send(None).await.unwrap();
        let through_rmcp = send(Some("http://app.example")).await.unwrap();
        assert_eq!(direct.status(), through_rmcp.status(), "{next}");
        let (direct, through_rmcp): (Value, Value) =
            (direct.json().await.unwrap(), through_rmcp.json().await.unwrap());
        assert_eq!(direct, through_rmcp, "{next}");
        assert!(direct.get("error").is_some() || direct["result"]["resultType"] == "complete", "{direct}");
    }
    assert!(!recorder.take().is_empty(), "calls reached the backend");
}
