//! The parties around mcpgate in `tests/credentials.rs`: the authorization server
//! (`tests/node/authorization-server.mjs` in a Node child process), a backend that checks the
//! tokens it gets against that server's keys and records them, a stand-in for Entra ID's token
//! endpoint, and the keys of mcpgate's `private_key_jwt` client. `tests/consent.rs` uses the
//! authorization server (twice: the users' and the backend's own) and the backend.
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::harness::{self, NODE_DIR, Node, free_port};

/// The backend, as the authorization server names it (`audience`).
pub const BACKEND_AUDIENCE: &str = "https://pets.backend.test";

/// The clients `authorization-server.mjs` registers for mcpgate: `client_secret_basic`,
/// `client_secret_post` (id and secret), and `private_key_jwt` with the keys it is given.
pub const BASIC_CLIENT: (&str, &str) = ("mcpgate-basic", "mcpgate-basic-secret");
pub const POST_CLIENT: (&str, &str) = ("mcpgate-post", "mcpgate-post-secret");
pub const JWT_CLIENT: &str = "mcpgate-jwt";

// ---------------------------------------------------------------------------------------------
// The authorization server

/// `oidc-provider` in a Node child process, killed on drop.
pub struct AuthorizationServer {
    pub url: String,
    pub child: Child,
    pub log: std::path::PathBuf,
    pub _dir: TempDir,
}

impl AuthorizationServer {
    /// Starts `authorization-server.mjs`; with `client_jwks`, the `private_key_jwt` client
    /// `mcpgate-jwt` has those public keys.
    pub fn start(node: &Node, client_jwks: Option<&Value>) -> AuthorizationServer {
        // The port is picked here; another process may take it in between, hence the retries.
        for _ in 0..5 {
            let dir = TempDir::new().unwrap();
            let port = free_port().port();
            let out = dir.path().join("out");
            let log = dir.path().join("log");
            let mut command = Command::new(&node.bin);
            command
                .arg("authorization-server.mjs")
                .arg(port.to_string())
                .current_dir(NODE_DIR)
                .env("HOME", node.home.path())
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(File::create(&out).unwrap())
                .stderr(File::create(&log).unwrap());
            if let Some(jwks) = client_jwks {
                command.env("CLIENT_JWKS", jwks.to_string());
            }
            let child = command.spawn().expect("node runs");
            let url = format!("http://127.0.0.1:{port}");
            let mut server = AuthorizationServer { url, child, log, _dir: dir };
            let ready = format!("listening {}", server.url);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if std::fs::read_to_string(&out).unwrap_or_default().contains(&ready) {
                    return server;
                }
                if server.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = server.log();
            assert!(log.contains("EADDRINUSE"), "the authorization server did not start:\n{log}");
        }
        panic!("no free port for the authorization server after 5 tries");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every token exchange the grant handled, in order.
    pub fn exchanges(&self) -> Vec<Value> {
        let (status, body) = harness::http_get(self.addr(), "/test/exchanges").expect("the AS answers");
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        body["exchanges"].as_array().unwrap().clone()
    }

    /// Every token request the server answered, in order: `grant_type`, `client_id`, `outcome`.
    pub fn grants(&self) -> Vec<Value> {
        let (status, body) = harness::http_get(self.addr(), "/test/grants").expect("the AS answers");
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        body["grants"].as_array().unwrap().clone()
    }

    /// `POST path` to the test controls.
    pub fn control(&self, path: &str) {
        let mut stream = TcpStream::connect(self.addr()).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 204"), "POST {path}: {answer}\n{}", self.log());
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.url.trim_start_matches("http://").parse().unwrap()
    }

    /// An access token for `resource` with `scope` from the `client_credentials` grant of the
    /// test client `step-up-client`: a caller whose `sub` is that client.
    pub async fn client_credentials_token(&self, resource: &str, scope: &str) -> String {
        self.client_token(("step-up-client", "step-up-secret"), resource, scope).await
    }

    /// An access token for `resource` with `scope` from the `client_credentials` grant of
    /// `client` (id and secret), such as `finance-client`, whose tokens carry group and tenant
    /// claims.
    pub async fn client_token(&self, client: (&str, &str), resource: &str, scope: &str) -> String {
        let form = [("grant_type", "client_credentials"), ("scope", scope), ("resource", resource)];
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.url))
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "token endpoint: {answer}\n{}", self.log());
        answer["access_token"].as_str().expect("an access token").to_owned()
    }

    /// The keys the authorization server signs with.
    pub async fn jwks(&self) -> JwkSet {
        let response = reqwest::get(format!("{}/jwks", self.url)).await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

impl Drop for AuthorizationServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys for `private_key_jwt`: the PKCS#8 PEM mcpgate signs with, the JWK the authorization
/// server checks with.
pub struct TestKey {
    pub kid: String,
    pub private_pem: String,
    pub public_jwk: Value,
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der = key.as_der().unwrap();
        let public = key.public_key();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        TestKey {
            kid: kid.to_owned(),
            private_pem: pem(der.as_ref()),
            public_jwk: json!({
                "kty": "RSA",
                "kid": kid,
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            }),
        }
    }

    pub fn p256(kid: &str) -> TestKey {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = key.to_pkcs8v1().unwrap();
        // Uncompressed point: 0x04, x, y.
        let point = key.public_key().as_ref();
        TestKey {
            kid: kid.to_owned(),
            private_pem: pem(der.as_ref()),
            public_jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    pub fn ed25519(kid: &str) -> TestKey {
        let key = Ed25519KeyPair::generate().unwrap();
        let der = key.to_pkcs8v1().unwrap();
        TestKey {
            kid: kid.to_owned(),
            private_pem: pem(der.as_ref()),
            public_jwk: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
            }),
        }
    }

    /// A line of the PEM body: enough of the private key to spot it in a log.
    pub fn secret_line(&self) -> &str {
        self.private_pem.lines().nth(2).unwrap()
    }
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|it| std::str::from_utf8(it).unwrap()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

// ---------------------------------------------------------------------------------------------
// The backend

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Its claims, when the backend checks tokens and this one passed.
    pub claims: Option<Value>,
    /// Why the backend answered 401.
    pub refused: Option<String>,
}

/// The pets backend: `GET /pets` lists the caller's pets, `POST /pets` adds one. When it knows an
/// authorization server, it accepts only tokens that server signed for [`BACKEND_AUDIENCE`], and
/// the caller is the token's `sub`; it can be told to refuse valid tokens too.
pub struct Backend {
    pub url: String,
    state: Arc<BackendState>,
}

struct BackendState {
    check: Option<TokenCheck>,
    seen: Mutex<Vec<Seen>>,
    refuse: Mutex<Refuse>,
}

/// Which valid tokens the backend refuses anyway, as if revoked.
enum Refuse {
    Nothing,
    /// The next `n` requests.
    Next(usize),
    Every,
    /// Every request with the first token seen from now on (`None` until then).
    FirstToken(Option<String>),
}

struct TokenCheck {
    issuer: String,
    keys: JwkSet,
}

impl Backend {
    pub fn start(runtime: &tokio::runtime::Runtime, issuer: Option<&AuthorizationServer>) -> Backend {
        let check = issuer.map(|it| TokenCheck { issuer: it.url.clone(), keys: runtime.block_on(it.jwks()) });
        let state = Arc::new(BackendState {
            check,
            seen: Mutex::new(Vec::new()),
            refuse: Mutex::new(Refuse::Nothing),
        });
        let listener = runtime.block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(answer).with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Backend { url, state }
    }

    /// The requests seen since the last call.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.seen.lock().unwrap())
    }

    /// Refuse the next `n` requests with 401, whatever their tokens.
    pub fn refuse_next(&self, n: usize) {
        *self.state.refuse.lock().unwrap() = Refuse::Next(n);
    }

    /// Refuse every request with 401.
    pub fn refuse_every_token(&self) {
        *self.state.refuse.lock().unwrap() = Refuse::Every;
    }

    /// Refuse, with 401, every request carrying the first token seen from now on.
    pub fn refuse_first_token(&self) {
        *self.state.refuse.lock().unwrap() = Refuse::FirstToken(None);
    }
}

impl TokenCheck {
    /// The claims of `token` if it is the authorization server's, for this backend, and current
    /// (no leeway: a token used after its expiry is refused).
    fn verify(&self, token: &str) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| format!("not a JWT: {err}"))?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = self.keys.find(&kid).ok_or_else(|| format!("unknown key {kid}"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|err| err.to_string())?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[BACKEND_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|err| err.to_string())?;
        Ok(data.claims)
    }
}

async fn answer(
    State(state): State<Arc<BackendState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|it| it.to_str().ok())
        .and_then(|it| it.strip_prefix("Bearer "))
        .map(str::to_owned);
    let verdict = match (&state.check, &token) {
        (None, _) => Ok(None),
        (Some(_), None) => Err("no bearer token".to_owned()),
        (Some(check), Some(token)) => check.verify(token).map(Some),
    };
    let refused = match &verdict {
        Err(err) => Some(err.clone()),
        Ok(_) => match &mut *state.refuse.lock().unwrap() {
            Refuse::Nothing | Refuse::Next(0) => None,
            Refuse::Next(n) => {
                *n -= 1;
                Some("told to refuse this request".to_owned())
            }
            Refuse::Every => Some("told to refuse every token".to_owned()),
            Refuse::FirstToken(first) => {
                let first = first.get_or_insert_with(|| token.clone().unwrap_or_default());
                (token.as_ref() == Some(first)).then(|| "told to refuse this token".to_owned())
            }
        },
    };
    let claims = verdict.ok().flatten();
    let headers = headers
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let path = uri.path().to_owned();
    state.seen.lock().unwrap().push(Seen {
        line: format!("{method} {uri}"),
        headers,
        token,
        claims: claims.clone(),
        refused: refused.clone(),
    });
    if refused.is_some() {
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer error=\"invalid_token\"")])
            .into_response();
    }
    let owner = claims.as_ref().and_then(|it| it["sub"].as_str()).map(str::to_owned);
    match (method, path.ends_with("/pets")) {
        (Method::GET, true) => {
            let pets = match owner.as_deref() {
                Some("alice") => json!([{"id": 1, "name": "Tom"}]),
                Some("bob") => json!([{"id": 2, "name": "Rex"}]),
                _ => json!([]),
            };
            let mut answer = json!({"owner": owner, "pets": pets});
            if owner.is_none() {
                answer.as_object_mut().unwrap().remove("owner");
            }
            Json(answer).into_response()
        }
        (Method::POST, true) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut pet = json!({"id": 100, "name": body["name"], "owner": owner});
            if owner.is_none() {
                pet.as_object_mut().unwrap().remove("owner");
            }
            (StatusCode::CREATED, Json(pet)).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "not found"}))).into_response(),
    }
}

/// No request carried a token a client sent to mcpgate, in any header or in the URL.
#[track_caller]
pub fn assert_never_forwarded(seen: &[Seen], mcp_tokens: &[String]) {
    for request in seen {
        for token in mcp_tokens {
            assert!(
                !request.line.contains(token.as_str())
                    && request.headers.iter().all(|(_, value)| !value.contains(token.as_str())),
                "the backend got a token sent to mcpgate: {request:#?}"
            );
        }
        if let Some(claims) = &request.claims {
            assert_eq!(claims["aud"], BACKEND_AUDIENCE, "{request:#?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Entra ID stand-in

/// One request to the stand-in token endpoint.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub path: String,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

/// A token endpoint that records each request and answers `obo-token-N`, as Entra ID answers an
/// on-behalf-of request. Below `/consent/` it refuses as Entra ID does when the user has not
/// consented (echoing the assertion in its description), below `/broken/` it answers an HTML
/// error page, below `/forever/` a token that never expires (`expires_in` 2^64 - 1).
pub struct StandIn {
    pub url: String,
    state: Arc<StandInState>,
}

struct StandInState {
    requests: Mutex<Vec<TokenRequest>>,
    issued: AtomicUsize,
}

impl StandIn {
    pub fn start(runtime: &tokio::runtime::Runtime) -> StandIn {
        let state = Arc::new(StandInState { requests: Mutex::new(Vec::new()), issued: AtomicUsize::new(0) });
        let listener = runtime.block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(token_endpoint).with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        StandIn { url, state }
    }

    pub fn take(&self) -> Vec<TokenRequest> {
        std::mem::take(&mut self.state.requests.lock().unwrap())
    }
}

async fn token_endpoint(
    State(state): State<Arc<StandInState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers.get("authorization").map(|it| it.to_str().unwrap().to_owned());
    let assertion = form.iter().find(|(name, _)| name == "assertion").map(|(_, value)| value.clone());
    state.requests.lock().unwrap().push(TokenRequest { path: uri.path().to_owned(), authorization, form });
    if uri.path().starts_with("/consent/") {
        let description = format!(
            "AADSTS65001: The user or administrator has not consented to use the application. Assertion: {}",
            assertion.unwrap_or_default()
        );
        let refusal = json!({
            "error": "invalid_grant",
            "error_description": description,
            "error_codes": [65001],
            "suberror": "consent_required",
        });
        return (StatusCode::BAD_REQUEST, Json(refusal)).into_response();
    }
    if uri.path().starts_with("/broken/") {
        let page = "<html><body>502 Bad Gateway</body></html>";
        return (StatusCode::BAD_GATEWAY, [("content-type", "text/html")], page).into_response();
    }
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    if uri.path().starts_with("/forever/") {
        let answer = format!(
            r#"{{"token_type": "Bearer", "access_token": "obo-token-{n}", "expires_in": {}}}"#,
            u64::MAX
        );
        return ([("content-type", "application/json")], answer).into_response();
    }
    Json(json!({
        "token_type": "Bearer",
        "scope": "api://backend/.default",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": format!("obo-token-{n}"),
    }))
    .into_response()
}
