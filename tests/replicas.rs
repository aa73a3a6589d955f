//! Several mcpgate processes on one PostgreSQL store: a publication through one replica is served
//! by the others within a second, two administrators changing one server on two replicas get one
//! 409, a replica killed in the middle of publications leaves the store consistent, and a session
//! ended through any replica ends on all.
//! Skipped (and listed) without PostgreSQL 15, unless `MCPGATE_REQUIRE_POSTGRES` is set.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_MATCH};
use serde_json::{Value, json};

#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "support/postgres.rs"]
mod postgres;

use harness::{Gate, toml_string};

const TOKEN: &str = "replicas-bootstrap-token";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

const PETSTORE: &str = r#"
openapi: 3.0.0
info: {title: Pets, version: "1"}
servers: [{url: "http://127.0.0.1:9/v1"}]
paths:
  /pets:
    get: {operationId: listPets, responses: {"200": {description: ok}}}
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
"#;

/// A replica on the database at `url`, sharing the keys every replica needs.
fn replica(url: &str) -> Gate {
    Gate::start_configured(|dir, addr| {
        format!(
            "[http]\nlisten = \"{addr}\"\n[store]\ndata_dir = {}\nurl = \"{url}\"\n\
             secret_keys = [{{ id = \"k1\", key = \"{KEY}\" }}]\n\
             [auth]\nmode = \"none\"\n[admin]\nbootstrap_token = \"{TOKEN}\"\n",
            toml_string(&dir.join("data"))
        )
    })
}

struct Admin {
    client: reqwest::Client,
}

impl Admin {
    fn new() -> Admin {
        Admin { client: reqwest::Client::new() }
    }

    fn request(&self, gate: &Gate, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}/admin/api{path}", gate.addr))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
    }

    async fn servers(&self, gate: &Gate) -> Value {
        let response = self.request(gate, reqwest::Method::GET, "/servers").send().await.unwrap();
        response.json().await.unwrap()
    }

    async fn tools(&self, gate: &Gate, slug: &str) -> Option<u64> {
        let servers = self.servers(gate).await;
        let server = servers["servers"].as_array()?.iter().find(|it| it["slug"] == slug)?.clone();
        (server["state"] == "live").then(|| server["tools"].as_u64().unwrap_or(0))
    }

    async fn version(&self, gate: &Gate, slug: &str) -> String {
        let response =
            self.request(gate, reqwest::Method::GET, &format!("/servers/{slug}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.headers()[ETAG].to_str().unwrap().to_owned()
    }

    async fn expose(&self, gate: &Gate, slug: &str, keys: &[&str], version: Option<&str>) -> StatusCode {
        let changes: Vec<Value> = ["listPets", "getPet"]
            .iter()
            .map(|key| json!({"key": key, "exposed": keys.contains(key)}))
            .collect();
        let mut request =
            self.request(gate, reqwest::Method::PATCH, &format!("/servers/{slug}/operations")).json(&changes);
        if let Some(version) = version {
            request = request.header(IF_MATCH, version);
        }
        // A replica killed meanwhile answers nothing.
        request.send().await.map_or(StatusCode::BAD_GATEWAY, |it| it.status())
    }

    /// Creates `pets` through `gate` from [`PETSTORE`] with `listPets` alone exposed, and
    /// publishes it.
    async fn publish_pets(&self, gate: &Gate) {
        let created = self
            .request(gate, reqwest::Method::POST, "/servers")
            .json(&json!({"slug": "pets", "text": PETSTORE}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        assert_eq!(self.expose(gate, "pets", &["listPets"], None).await, StatusCode::NO_CONTENT);
        assert_eq!(self.publish(gate, "pets").await, StatusCode::OK);
    }

    async fn publish(&self, gate: &Gate, slug: &str) -> StatusCode {
        let path = format!("/servers/{slug}/publish");
        self.request(gate, reqwest::Method::POST, &path)
            .send()
            .await
            .map_or(StatusCode::BAD_GATEWAY, |it| it.status())
    }
}

/// nginx on a loopback port, spreading requests over `replicas` in turn; killed on drop.
struct Nginx {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(replicas: &[&Gate]) -> Option<Nginx> {
        let program =
            ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|it| std::path::Path::new(it).exists());
        let Some(program) = program else {
            harness::skip("nginx is not installed: the replicas were asked directly");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let addr = harness::free_port();
        let p = dir.path().display();
        let servers: String = replicas.iter().map(|it| format!("    server {};\n", it.addr)).collect();
        let conf = format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  \
             fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  \
             upstream mcpgate {{\n{servers}  }}\n  \
             server {{\n    listen {addr};\n    location / {{\n      proxy_pass http://mcpgate;\n      \
             proxy_http_version 1.1;\n      proxy_set_header Host $host;\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        // Workers drop root for nobody: they must be able to use the temporary folders.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let child = std::process::Command::new(program)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx { child, addr, _dir: dir };
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "nginx did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(nginx)
    }
}

impl Drop for Nginx {
    /// TERM, not KILL: the master then ends its workers too.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// A session opened on A ends on every replica when any of them is asked to end it: A, which
/// opened it, closes it when B is asked; B and C answer 404 for it from then on.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_ended_on_one_replica_ends_on_all() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("session_ends");
    let (a, b, c) = (replica(&url), replica(&url), replica(&url));
    let admin = Admin::new();
    admin.publish_pets(&a).await;
    for replica in [&b, &c] {
        let served =
            within(Duration::from_secs(5), || async { admin.tools(replica, "pets").await == Some(1) });
        assert!(served.await.is_some(), "every replica serves the server");
    }
    let client = reqwest::Client::new();

    for asked in [&b, &a] {
        let session = open_session(&client, &a).await;
        assert_eq!(open_sessions(&a).await, 1);
        for replica in [&a, &b, &c] {
            assert_eq!(in_session(&client, replica, &session).await, StatusCode::OK, "served everywhere");
        }
        let ended = client
            .delete(format!("http://{}/mcp/pets", asked.addr))
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), StatusCode::NO_CONTENT);
        let closed = within(Duration::from_secs(5), || async { open_sessions(&a).await == 0 }).await;
        assert!(closed.is_some(), "the replica that opened it closes it");
        for replica in [&a, &b, &c] {
            let gone = within(Duration::from_secs(5), || async {
                in_session(&client, replica, &session).await == StatusCode::NOT_FOUND
            });
            assert!(gone.await.is_some(), "a session ended is unknown on every replica");
        }
    }
}

/// Opens a session on `gate` as a client does (`initialize`, then `notifications/initialized`).
async fn open_session(client: &reqwest::Client, gate: &Gate) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let response = client
        .post(format!("http://{}/mcp/pets", gate.addr))
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(in_session_sending(client, gate, &session, &initialized).await, StatusCode::ACCEPTED);
    session
}

/// The status of a `tools/list` in `session` sent to `gate`.
async fn in_session(client: &reqwest::Client, gate: &Gate, session: &str) -> StatusCode {
    in_session_sending(client, gate, session, &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await
}

async fn in_session_sending(
    client: &reqwest::Client,
    gate: &Gate,
    session: &str,
    message: &Value,
) -> StatusCode {
    let response = client
        .post(format!("http://{}/mcp/pets", gate.addr))
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .json(message)
        .send()
        .await
        .unwrap();
    response.status()
}

/// The sessions `gate` holds open for `pets`, from its metrics.
async fn open_sessions(gate: &Gate) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", gate.addr)).await.unwrap().text().await.unwrap();
    let line = text.lines().find_map(|it| it.strip_prefix(r#"mcpgate_sessions_open{server="pets"} "#));
    line.and_then(|it| it.parse().ok()).unwrap_or(0)
}

/// `tools/list` without a session (any replica answers it); the tools' names.
async fn list_tools(client: &reqwest::Client, addr: std::net::SocketAddr) -> Result<String, String> {
    let response = client
        .post(format!("http://{addr}/mcp/pets"))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .map_err(|err| err.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|err| err.to_string())?;
    if status != StatusCode::OK {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

/// Waits until `check` holds, at most `within`; how long it took.
async fn within<F, Fut>(within: Duration, check: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_serve_what_any_of_them_publishes() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("replicas");
    let (a, b, c) = (replica(&url), replica(&url), replica(&url));
    let admin = Admin::new();

    admin.publish_pets(&a).await;
    for replica in [&b, &c] {
        let took =
            within(Duration::from_secs(1), || async { admin.tools(replica, "pets").await == Some(1) }).await;
        assert!(took.is_some(), "not served by another replica within 1 s: {}", admin.servers(replica).await);
    }

    // A change published through B reaches A and C.
    assert_eq!(admin.expose(&b, "pets", &["listPets", "getPet"], None).await, StatusCode::NO_CONTENT);
    assert_eq!(admin.publish(&b, "pets").await, StatusCode::OK);
    for replica in [&a, &c] {
        let took =
            within(Duration::from_secs(1), || async { admin.tools(replica, "pets").await == Some(2) }).await;
        assert!(took.is_some(), "the change did not reach every replica within 1 s");
    }

    // Two administrators change the same version on two replicas: one of them is refused.
    let version = admin.version(&a, "pets").await;
    assert_eq!(version, admin.version(&c, "pets").await, "one version, whichever replica is asked");
    let (first, second) = tokio::join!(
        admin.expose(&a, "pets", &["listPets"], Some(&version)),
        admin.expose(&c, "pets", &["getPet"], Some(&version))
    );
    let mut statuses = [first, second];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::CONFLICT]);
    let stale = admin
        .request(&b, reqwest::Method::PATCH, "/servers/pets/settings")
        .header(IF_MATCH, &version)
        .json(&json!({"timeout_secs": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let current = stale.headers()[ETAG].to_str().unwrap().to_owned();
    let body: Value = stale.json().await.unwrap();
    assert_eq!(format!("\"{}\"", body["version"]), current);
    assert_ne!(current, version);

    // Behind nginx, round-robin: every replica serves the same tools.
    let nginx = Nginx::start(&[&a, &b, &c]);
    let client = reqwest::Client::new();
    if let Some(nginx) = &nginx {
        for _ in 0..6 {
            let listed = list_tools(&client, nginx.addr).await.unwrap();
            // Both tools: as B published them (the changes since are drafts).
            assert!(listed.contains("listPets") && listed.contains("getPet"), "{listed}");
        }
    }

    // The database goes away: serving goes on, readiness says so without failing, admin changes
    // answer 503; all resumes when it is back.
    cluster.stop();
    if let Some(nginx) = &nginx {
        let mut answered = 0;
        for _ in 0..60 {
            let listed = list_tools(&client, nginx.addr).await;
            assert!(listed.as_ref().is_ok_and(|it| it.contains("listPets")), "{listed:?}");
            answered += 1;
        }
        assert_eq!(answered, 60, "every call was answered while the database was down");
    }
    let (status, body) = harness::http_get(b.addr, "/readyz").unwrap();
    let down = within(Duration::from_secs(15), || async {
        harness::http_get(b.addr, "/readyz").is_some_and(|(_, body)| body.contains("\"store\":\"down\""))
    })
    .await;
    assert!(down.is_some(), "readyz did not report the store down: {status} {body}");
    assert_eq!(harness::http_get(b.addr, "/readyz").unwrap().0, 200, "MCP traffic stays in rotation");
    assert_eq!(admin.publish(&b, "pets").await, StatusCode::SERVICE_UNAVAILABLE);
    cluster.start_server();
    let back = within(Duration::from_secs(30), || async {
        admin.expose(&b, "pets", &["listPets"], None).await == StatusCode::NO_CONTENT
    })
    .await;
    assert!(back.is_some(), "admin changes did not resume");
    assert_eq!(admin.publish(&b, "pets").await, StatusCode::OK);
    for replica in [&a, &c] {
        let took =
            within(Duration::from_secs(10), || async { admin.tools(replica, "pets").await == Some(1) }).await;
        assert!(took.is_some(), "a publication after the outage did not reach every replica");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_while_publishing_leaves_the_store_consistent() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("killed");
    let (a, b) = (replica(&url), replica(&url));
    let admin = Admin::new();
    let created = admin
        .request(&a, reqwest::Method::POST, "/servers")
        .json(&json!({"slug": "pets", "text": PETSTORE}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let publishing = {
        let admin = Admin::new();
        let a = &a;
        async move {
            let mut acknowledged = 0;
            for round in 0..50 {
                let keys: &[&str] = if round % 2 == 0 { &["listPets"] } else { &["listPets", "getPet"] };
                if admin.expose(a, "pets", keys, None).await != StatusCode::NO_CONTENT {
                    break;
                }
                if admin.publish(a, "pets").await != StatusCode::OK {
                    break;
                }
                acknowledged += 1;
            }
            acknowledged
        }
    };
    let killing = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        a.kill();
    };
    let (acknowledged, ()) = tokio::join!(publishing, killing);
    assert!(acknowledged < 50, "the replica was killed only after every publication");
    // One served copy and at most one draft, each whole; the edition counts every write.
    assert_eq!(cluster.sql("killed", "select count(*) from server_copies where stage = 'live'"), "1");
    let served = admin.tools(&b, "pets").await;
    let stored: i64 =
        cluster.sql("killed", "select generation from server_copies where stage = 'live'").parse().unwrap();
    assert!(stored > 0);
    // B serves the store's last generation, whole: one tool or two, as some publication left it.
    let settled =
        within(Duration::from_secs(10), || async { matches!(admin.tools(&b, "pets").await, Some(1 | 2)) })
            .await;
    assert!(settled.is_some(), "{served:?}");
    // The survivor goes on publishing on the same store.
    assert_eq!(admin.expose(&b, "pets", &["getPet"], None).await, StatusCode::NO_CONTENT);
    assert_eq!(admin.publish(&b, "pets").await, StatusCode::OK);
    assert_eq!(admin.tools(&b, "pets").await, Some(1));
}

/// The TypeScript SDK in one session through nginx, whose round-robin spreads the session's
/// requests over three replicas: it lists, its GET stream (on whichever replica it landed) hears
/// `notifications/tools/list_changed` after a publication through replica A, it lists the new
/// tools, and it ends the session.
#[test]
fn an_sdk_session_spreads_over_the_replicas() {
    let Some(node) = harness::Node::find(&["node_modules/@modelcontextprotocol/sdk/package.json"]) else {
        return;
    };
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("sessions");
    let (a, b, c) = (replica(&url), replica(&url), replica(&url));
    let Some(nginx) = Nginx::start(&[&a, &b, &c]) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let admin = std::sync::Arc::new(Admin::new());
    runtime.block_on(async {
        admin.publish_pets(&a).await;
        for replica in [&b, &c] {
            let took =
                within(Duration::from_secs(5), || async { admin.tools(replica, "pets").await == Some(1) })
                    .await;
            assert!(took.is_some(), "every replica serves the server");
        }
    });
    // The script asks for the change here once it has listed the tools.
    let trigger = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let trigger_url = format!("http://{}/publish", trigger.local_addr().unwrap());
    let (publisher, through) = (admin.clone(), a.addr);
    let router = axum::Router::new().route(
        "/publish",
        axum::routing::post(move || {
            let publisher = publisher.clone();
            async move {
                let client = &publisher.client;
                let changes = json!([{"key": "getPet", "exposed": true}]);
                let base = format!("http://{through}/admin/api/servers/pets");
                let bearer = format!("Bearer {TOKEN}");
                let exposed = client
                    .patch(format!("{base}/operations"))
                    .header(AUTHORIZATION, &bearer)
                    .json(&changes)
                    .send();
                let exposed = exposed.await.map(|it| it.status());
                let published =
                    client.post(format!("{base}/publish")).header(AUTHORIZATION, &bearer).send().await;
                format!("{exposed:?} {:?}", published.map(|it| it.status()))
            }
        }),
    );
    runtime.spawn(async move { axum::serve(trigger, router).await });

    // The replicas follow the store each on its own: the one holding the stream may notify before
    // the one answering the next list has followed, which then answers with the old tools.
    let mcp = format!("http://{}/mcp/pets", nginx.addr);
    let run = node.run(&["sdk-listen.mjs", &mcp, &trigger_url, "--replicas"]);
    assert_eq!(run.code, Some(0), "{run}");
    let summary = run.stdout_json();
    assert!(summary["sessionId"].as_str().is_some_and(|it| !it.is_empty()), "a session: {run}");
    assert_eq!(summary["before"], json!(["listPets"]), "{run}");
    assert!(summary["notifications"].as_u64().is_some_and(|it| it >= 1), "{run}");
    assert_eq!(summary["after"], json!(["listPets", "getPet"]), "{run}");
    assert_eq!(summary["terminated"], true, "{run}");
}
