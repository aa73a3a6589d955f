//! The harness for tests that run mcpgate in-process: [`Setup`] spells out a configuration (a
//! port-0 listener, a temporary data folder, the servers' documents), [`TestApp`] is mcpgate
//! assembled by `app::build` and served by `App::serve`, [`McpClient`] speaks MCP over raw HTTP,
//! and [`Backend`] is a backend on loopback that records every request it receives.
//!
//! Included with `#[path]` together with `support/harness.rs`, whose configuration text the
//! child-process `Gate` shares. A request may go over the socket (`McpClient`, reqwest) or
//! straight to its entry ([`TestApp::oneshot`]) when the test needs no connection.

#![allow(dead_code)] // Each including test uses its own part.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use mcpgate::app;
use mcpgate::config::Config;
use mcpgate::hosting::Hosting;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::harness::{config_text, toml_string};

/// The protocol version the raw clients speak.
pub const VERSION: &str = "2025-11-25";

// ---------------------------------------------------------------------------------------------
// mcpgate

/// The configuration of a [`TestApp`], spelled out: auth mode `none` and no servers until told
/// otherwise. Its temporary folder holds the servers' documents and mcpgate's data (`store/`).
pub struct Setup {
    dir: TempDir,
    /// Keys of the `[http]` table besides `listen`, such as `public_url` behind a proxy.
    http: String,
    /// Keys of the `[store]` table besides `data_dir`, such as `secret_keys`.
    store: String,
    /// The body of the `[auth]` table, `[[auth.issuers]]` tables included.
    auth: String,
    /// `[admin]` and `[[servers]]` tables.
    tables: String,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: TempDir::new().unwrap(),
            http: String::new(),
            store: String::new(),
            auth: "mode = \"none\"\n".to_owned(),
            tables: String::new(),
        }
    }

    /// Adds `keys` (TOML lines) to the `[http]` table.
    pub fn http(mut self, keys: &str) -> Setup {
        self.http.push_str(keys);
        self.http.push('\n');
        self
    }

    /// Adds `keys` (TOML lines) to the `[store]` table.
    pub fn store(mut self, keys: &str) -> Setup {
        self.store.push_str(keys);
        self.store.push('\n');
        self
    }

    /// Auth mode `jwt` trusting `issuers`, each serving its keys at `{issuer}/jwks`.
    pub fn jwt(mut self, issuers: &[&str]) -> Setup {
        self.auth = "mode = \"jwt\"\n".to_owned();
        for issuer in issuers {
            self.auth.push_str(&format!(
                "[[auth.issuers]]\nissuer = \"{issuer}\"\njwks_uri = \"{issuer}/jwks\"\n"
            ));
        }
        self
    }

    /// The admin API, with `token` as its bootstrap token.
    pub fn bootstrap_token(mut self, token: &str) -> Setup {
        self.tables.push_str(&format!("[admin]\nbootstrap_token = \"{token}\"\n"));
        self
    }

    /// Adds `text` (whole TOML tables, such as `[policy]`) to the configuration.
    pub fn table(mut self, text: &str) -> Setup {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    /// Hosts `document` as `slug` in front of `backend_url`; `extra` adds keys, then subtables
    /// such as `[servers.credentials]`, to the `[[servers]]` entry. The document is written to
    /// `{slug}.yaml` in the temporary folder ([`TestApp::document_path`]).
    pub fn server(mut self, slug: &str, document: &str, backend_url: &str, extra: &str) -> Setup {
        let spec = self.dir.path().join(format!("{slug}.yaml"));
        std::fs::write(&spec, document).unwrap();
        self.tables.push_str(&format!(
            "[[servers]]\nslug = \"{slug}\"\nspec = {}\nbackend_url = \"{backend_url}\"\n{extra}\n",
            toml_string(&spec)
        ));
        self
    }

    /// Binds a port-0 listener, builds mcpgate for that address and serves it in a task of the
    /// current runtime. Every server is provisioned when this returns.
    pub async fn start(self) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let text = config_text(addr, &self.dir.path().join("store"), &self.auth, &self.tables)
            .replacen("[http]\n", &format!("[http]\n{}", self.http), 1)
            .replacen("[auth]\n", &format!("{}[auth]\n", self.store), 1);
        let config = Config::parse(&text, &[])
            .unwrap_or_else(|err| panic!("the test configuration is invalid: {err}\n{text}"));
        let built = app::build(&config).await.unwrap_or_else(|err| panic!("mcpgate does not start: {err}"));
        let (entry, hosting) = (built.entry.clone(), built.hosting.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        // Dropping the `TestApp` drops `stop`, which shuts mcpgate down too.
        let server = tokio::spawn(built.serve(listener, async {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            addr,
            config,
            hosting,
            entry,
            http: reqwest::Client::new(),
            running: Some((stop, server)),
            setup: self,
        }
    }
}

/// The task serving mcpgate.
pub type Server = JoinHandle<Result<(), app::Error>>;

/// mcpgate in-process, serving on loopback.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://{addr}`, mcpgate's public URL.
    pub base: String,
    pub config: Config,
    /// The hosted servers, to publish through as the admin API does.
    pub hosting: Hosting,
    entry: app::Entry,
    pub http: reqwest::Client,
    /// What stops mcpgate, and the task serving it.
    running: Option<(oneshot::Sender<()>, Server)>,
    setup: Setup,
}

impl TestApp {
    pub fn mcp_url(&self, slug: &str) -> String {
        format!("{}/mcp/{slug}", self.base)
    }

    /// An MCP client of the hosted server `slug`, without a token.
    pub fn mcp(&self, slug: &str) -> McpClient {
        McpClient::new(self.http.clone(), self.mcp_url(slug))
    }

    /// The temporary folder: the documents, and mcpgate's data in `store/`.
    pub fn dir(&self) -> &Path {
        self.setup.dir.path()
    }

    /// Where [`Setup::server`] wrote the document of `slug`.
    pub fn document_path(&self, slug: &str) -> PathBuf {
        self.dir().join(format!("{slug}.yaml"))
    }

    /// Serves `document` as `slug` from now on, as the admin API does when a version is published.
    pub fn publish(&self, slug: &str, document: &str) {
        let settings = self.config.servers.iter().find(|it| it.slug == slug).expect("a configured server");
        let spec = mcpgate::source::ingest(&settings.spec, document.as_bytes()).unwrap();
        self.hosting.publish(settings.clone(), spec).expect("the document is published");
    }

    /// Sends `request` straight to mcpgate's entry, without a socket, as hyper hands requests
    /// over: an origin-form URI, with `Host` and (for a body) `Content-Length` set.
    pub async fn oneshot(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = request.build().expect("a valid request");
        let url = request.url().clone();
        let has_body = request.body().is_some();
        let request: axum::http::Request<reqwest::Body> = request.try_into().expect("an HTTP request");
        let (mut parts, body) = request.into_parts();
        parts.uri = url[url::Position::BeforePath..].parse::<Uri>().unwrap();
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        parts.headers.entry(header::HOST).or_insert(HeaderValue::from_str(authority).unwrap());
        if let Some(length) = body.size_hint().exact().filter(|_| has_body) {
            parts.headers.entry(header::CONTENT_LENGTH).or_insert(HeaderValue::from(length));
        }
        let request = axum::http::Request::from_parts(parts, Body::new(body));
        let response = self.entry.handle(request).await;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body reads");
        Reply { status: parts.status, headers: parts.headers, body }
    }

    /// Tells mcpgate to shut down; its task, which ends once every connection has closed.
    pub fn shutdown(&mut self) -> Server {
        let (stop, server) = self.running.take().expect("mcpgate is running");
        let _ = stop.send(());
        server
    }

    /// Shuts mcpgate down and waits until it has, asserting that it ended without an error.
    pub async fn stop(&mut self) {
        self.shutdown().await.expect("the server task ends").expect("mcpgate shuts down cleanly");
    }

    /// Stops mcpgate and starts it again, on another port, with the same configuration and data.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        // The entry and the hosted servers hold the store, which only one mcpgate may open.
        let TestApp { setup, entry, hosting, .. } = self;
        drop((entry, hosting));
        setup.start().await
    }
}

/// An answer from [`TestApp::oneshot`].
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// MCP over raw HTTP

/// An MCP client of one hosted server speaking raw HTTP, with a bearer token or without.
#[derive(Clone)]
pub struct McpClient {
    pub http: reqwest::Client,
    pub url: String,
    token: Option<String>,
}

impl McpClient {
    pub fn new(http: reqwest::Client, url: String) -> McpClient {
        McpClient { http, url, token: None }
    }

    pub fn with_token(&self, token: String) -> McpClient {
        McpClient { http: self.http.clone(), url: self.url.clone(), token: Some(token) }
    }

    /// A request as clients send it after `initialize`: the protocol version, the session if
    /// any, the bearer token if any.
    pub fn send(&self, method: Method, session: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", VERSION);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    pub async fn post(&self, session: Option<&str>, body: Value) -> reqwest::Response {
        self.send(Method::POST, session).json(&body).send().await.expect("mcpgate answers")
    }

    pub async fn get(&self, session: Option<&str>) -> reqwest::Response {
        self.send(Method::GET, session).header("accept", "text/event-stream").send().await.unwrap()
    }

    pub async fn delete(&self, session: Option<&str>) -> reqwest::Response {
        self.send(Method::DELETE, session).send().await.unwrap()
    }

    /// One JSON-RPC request without a session: the JSON-RPC response, which must come with 200.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let response =
            self.post(None, json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).await;
        assert_eq!(response.status(), 200, "{method}");
        response.json().await.expect("a JSON-RPC response")
    }

    /// `tools/call` without a session: the result (`isError`, `content`, `structuredContent`).
    pub async fn call(&self, tool: &str, arguments: Value) -> Value {
        let response = self.rpc("tools/call", json!({"name": tool, "arguments": arguments})).await;
        response.get("result").cloned().unwrap_or_else(|| panic!("no result: {response}"))
    }

    /// `initialize`: the session id and the result.
    pub async fn initialize(&self) -> (String, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let response = self.http_initialize(body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            content_type(&response),
            "text/event-stream",
            "rmcp answers a session's requests with SSE"
        );
        let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let message = Events::new(response).next().await.expect("the initialize response");
        (session, message["result"].clone())
    }

    /// POSTs an `initialize` request `body`.
    pub async fn http_initialize(&self, body: Value) -> reqwest::Response {
        // `initialize` names its version in the body; clients send the header only afterwards.
        let mut request =
            self.http.post(&self.url).header("accept", "application/json, text/event-stream").json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("mcpgate answers")
    }

    /// `initialize` then `notifications/initialized`: a session ready to hear of changes.
    pub async fn open_session(&self) -> String {
        let (session, _) = self.initialize().await;
        let initialized =
            self.post(Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert_eq!(initialized.status(), 202);
        session
    }

    /// `tools/list` within `session`: the tool names. The answer may be JSON or an SSE stream, as
    /// the transport allows; clients take both.
    pub async fn list_in_session(&self, session: &str) -> Vec<String> {
        let response =
            self.post(Some(session), json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})).await;
        assert_eq!(response.status(), 200);
        if content_type(&response) == "application/json" {
            return names(&response.json().await.expect("a JSON-RPC response"));
        }
        let mut events = Events::new(response);
        loop {
            let message = events.next().await.expect("the tools/list response");
            if message["id"] == 5 {
                return names(&message);
            }
        }
    }

    /// `tools/list` without a session: the status, the content type and the JSON-RPC response.
    pub async fn list_stateless(&self) -> (StatusCode, String, Value) {
        let response = self.post(None, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
        let status = response.status();
        assert!(response.headers().get("mcp-session-id").is_none(), "no session is made");
        let kind = content_type(&response);
        (status, kind, response.json().await.unwrap_or(Value::Null))
    }
}

/// The media type of a response, without parameters.
pub fn content_type(response: &reqwest::Response) -> String {
    let value = response.headers().get("content-type").map_or("", |it| it.to_str().unwrap());
    value.split(';').next().unwrap().trim().to_owned()
}

/// The tool names of a `tools/list` response.
pub fn names(response: &Value) -> Vec<String> {
    let tools = response["result"]["tools"].as_array().unwrap_or_else(|| panic!("no tools: {response}"));
    tools.iter().map(|it| it["name"].as_str().unwrap().to_owned()).collect()
}

/// The JSON-RPC messages of an SSE response, as they come.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub fn new(response: reqwest::Response) -> Events {
        Events { response, buffer: String::new() }
    }

    /// The next message, skipping priming events and keep-alive comments; `None` when the
    /// stream ends. Waits at most 10 s.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> =
                    event.lines().filter_map(|it| it.strip_prefix("data:")).map(str::trim_start).collect();
                let data = data.join("\n");
                if data.trim().is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&data).unwrap_or_else(|err| panic!("{err}: {data}")));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("the stream reads")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Messages until one with `method`, which is returned.
    pub async fn until(&mut self, method: &str) -> Value {
        loop {
            let message = self.next().await.unwrap_or_else(|| panic!("the stream ended before {method}"));
            if message["method"] == method {
                return message;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The recording backend

/// What the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// `METHOD /path?query`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }
}

/// A backend on loopback that records every request, then answers it as told.
pub struct Backend {
    /// The base URL, `http://127.0.0.1:{port}`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    /// Starts the backend in a task of the current runtime (a test without one starts it with
    /// `runtime.block_on`); `answer` makes each response.
    pub async fn start<F, Fut>(answer: F) -> Backend
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let record = seen.clone();
        let router =
            Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let request =
                    Seen { method: method.to_string(), uri: uri.to_string(), headers, body: body.to_vec() };
                record.lock().unwrap().push(request.clone());
                answer(request)
            });
        tokio::spawn(async move { axum::serve(listener, router).await });
        Backend { url, seen }
    }

    /// The requests received since the last call.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// The requests received since the last call, as `METHOD /path?query`.
    pub fn take_lines(&self) -> Vec<String> {
        self.take().iter().map(Seen::line).collect()
    }

    /// The last request received (all are taken).
    #[track_caller]
    pub fn last(&self) -> Seen {
        self.take().pop().expect("the backend received a request")
    }

    /// How many requests are recorded and not yet taken.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}
