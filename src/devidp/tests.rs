//! The dev IdP over real HTTP on a loopback port: metadata, registration, the code flow with PKCE
//! (its token checked by `auth::Verifier` against the live JWKS), refresh rotation and reuse
//! detection, client credentials and token exchange, each with the refusals a client can run
//! into; and what its folder keeps across a restart.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use url::Url;

use super::bounded::Bounded;
use super::keys::SigningKey;
use super::*;
use crate::auth::{Claims, IssuerConfig, Verifier, VerifierConfig};

const RESOURCE: &str = "https://mcp.example.com/mcp/pets";
const BACKEND: &str = "https://backend.example.com/api";
const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct TestIdp {
    idp: DevIdp,
    origin: String,
    http: reqwest::Client,
    /// Holds the IdP's folder (`dev-idp/`), removed when the test ends.
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

/// A registered client: its id and, for a confidential one, its secret.
struct TestClient {
    id: String,
    secret: Option<String>,
}

impl TestIdp {
    async fn spawn() -> TestIdp {
        TestIdp::spawn_in(tempfile::tempdir().unwrap()).await
    }

    /// An IdP keeping its state in `dir/dev-idp`.
    async fn spawn_in(dir: tempfile::TempDir) -> TestIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestIdp::serve(listener, dir)
    }

    /// The IdP after a restart: a new `DevIdp` on the same folder, at the same address (so with
    /// the same issuer), reached by a new HTTP client, as nothing of the old one may be reused.
    async fn restart(self) -> TestIdp {
        let addr = self.origin.trim_start_matches("http://").to_owned();
        self.server.abort();
        let _ = self.server.await; // The listener is closed once the task is gone.
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        TestIdp::serve(listener, self.dir)
    }

    fn serve(listener: tokio::net::TcpListener, dir: tempfile::TempDir) -> TestIdp {
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let idp = new_idp(&origin, &dir).unwrap();
        let router = idp.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        TestIdp { idp, origin, http, dir, server }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.http.get(format!("{}{path}", self.origin)).send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        (status, res.json().await.unwrap())
    }

    async fn register(&self, metadata: Value) -> (StatusCode, Value) {
        let res = self.http.post(self.idp.endpoint("register")).json(&metadata).send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        (status, res.json().await.unwrap())
    }

    /// A public client with `REDIRECT_URI`, as MCP clients register.
    async fn public_client(&self) -> TestClient {
        let (status, body) = self
            .register(json!({
                "client_name": "test",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestClient { id: body["client_id"].as_str().unwrap().to_owned(), secret: None }
    }

    /// A confidential client for client credentials and token exchange, like the gateway.
    async fn gateway_client(&self) -> TestClient {
        let (status, body) = self
            .register(json!({
                "client_name": "gateway",
                "grant_types": ["client_credentials", GRANT_TOKEN_EXCHANGE],
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestClient {
            id: body["client_id"].as_str().unwrap().to_owned(),
            secret: Some(body["client_secret"].as_str().unwrap().to_owned()),
        }
    }

    /// The authorization endpoint's redirect: its status and `Location` (if any).
    async fn authorize(&self, params: &[(&str, &str)]) -> (StatusCode, Option<Url>) {
        let mut url = Url::parse(&self.idp.endpoint("authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        let res = self.http.get(url).send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let location = res.headers().get("location").map(|it| Url::parse(it.to_str().unwrap()).unwrap());
        (status, location)
    }

    /// A code for `client`, with PKCE for `VERIFIER` and `resource` = `RESOURCE`.
    async fn code(&self, client: &TestClient) -> String {
        let challenge = challenge(VERIFIER);
        let (status, location) = self
            .authorize(&[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", RESOURCE),
                ("state", "xyz"),
            ])
            .await;
        assert_eq!(status, StatusCode::FOUND);
        let location = location.unwrap();
        assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
        let query = query(&location);
        assert_eq!(query.get("state").map(String::as_str), Some("xyz"));
        assert_eq!(query.get("iss").map(String::as_str), Some(self.idp.issuer()));
        query.get("code").cloned().unwrap_or_else(|| panic!("no code: {location}"))
    }

    async fn token(&self, client: &TestClient, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let mut req = self
            .http
            .post(self.idp.endpoint("token"))
            .header("content-type", "application/x-www-form-urlencoded");
        req = match &client.secret {
            Some(secret) => req.basic_auth(&client.id, Some(secret)),
            None => req,
        };
        let body = match &client.secret {
            Some(_) => body,
            None => format!("{body}&client_id={}", client.id),
        };
        let res = req.body(body).send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        (status, res.json().await.unwrap())
    }

    /// The tokens of a complete code flow for `client`.
    async fn sign_in(&self, client: &TestClient) -> Value {
        let code = self.code(client).await;
        let (status, body) = self
            .token(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", VERIFIER),
                    ("resource", RESOURCE),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// What mcpgate would make of `token` as the resource server for `audience`.
    async fn verify(&self, token: &str, audience: &str) -> Result<Claims, crate::auth::VerifyError> {
        let issuer = IssuerConfig {
            issuer: self.idp.issuer().to_owned(),
            jwks_uri: Some(Url::parse(&self.idp.jwks_uri()).unwrap()),
            shared_secret: None,
        };
        let mut config = VerifierConfig::new(vec![issuer], vec![audience.to_owned()]);
        config.required_type = Some("at+jwt".to_owned());
        Verifier::new(&config).unwrap().verify(token).await
    }
}

fn new_idp(origin: &str, dir: &tempfile::TempDir) -> Result<DevIdp, Error> {
    let scopes = vec!["pets:read".to_owned(), "pets:write".to_owned()];
    DevIdp::new(format!("{origin}/dev-idp"), "dev-user".to_owned(), scopes, idp_dir(dir))
}

fn idp_dir(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("dev-idp")
}

/// `f`'s result and what it logged.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::default());
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (result, text)
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

fn query(url: &Url) -> std::collections::HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn access_token(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn metadata_names_endpoints_and_capabilities() {
    let t = TestIdp::spawn().await;
    let issuer = t.idp.issuer();
    for path in
        ["/.well-known/oauth-authorization-server/dev-idp", "/dev-idp/.well-known/openid-configuration"]
    {
        let (status, metadata) = t.get(path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(metadata["issuer"], issuer);
        assert_eq!(metadata["authorization_endpoint"], format!("{issuer}/authorize"));
        assert_eq!(metadata["token_endpoint"], format!("{issuer}/token"));
        assert_eq!(metadata["registration_endpoint"], format!("{issuer}/register"));
        assert_eq!(metadata["jwks_uri"], format!("{issuer}/jwks"));
        assert_eq!(metadata["response_types_supported"], json!(["code"]));
        assert_eq!(
            metadata["grant_types_supported"],
            json!(["authorization_code", "refresh_token", "client_credentials", GRANT_TOKEN_EXCHANGE])
        );
        assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            metadata["token_endpoint_auth_methods_supported"],
            json!(["none", "client_secret_basic", "client_secret_post"])
        );
        assert_eq!(metadata["scopes_supported"], json!(["pets:read", "pets:write"]));
        assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
        assert_eq!(metadata["mcpgate_dev_only"], true);
    }
    // mcpgate's own discovery reads it.
    let discovered = crate::auth::discover(issuer).await.unwrap();
    assert_eq!(discovered.jwks_uri.as_ref().map(Url::as_str), Some(t.idp.jwks_uri().as_str()));

    let (status, jwks) = t.get("/dev-idp/jwks").await;
    assert_eq!(status, StatusCode::OK);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "the private key is not published");
}

#[test]
fn new_refuses_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let new = |issuer: &str, user: &str, scopes: &[&str]| {
        let scopes = scopes.iter().map(|it| (*it).to_owned()).collect();
        DevIdp::new(issuer.to_owned(), user.to_owned(), scopes, idp_dir(&dir))
    };
    assert!(new("http://127.0.0.1:8080/dev-idp", "dev-user", &["a"]).is_ok());
    assert!(matches!(new("127.0.0.1:8080/dev-idp", "u", &[]), Err(Error::Issuer { .. })));
    assert!(matches!(new("http://127.0.0.1:8080/other", "u", &[]), Err(Error::Issuer { .. })));
    assert!(matches!(new("http://127.0.0.1:8080/dev-idp?x=1", "u", &[]), Err(Error::Issuer { .. })));
    assert!(matches!(new("http://127.0.0.1:8080/dev-idp", "", &[]), Err(Error::User)));
    assert!(matches!(new("http://127.0.0.1:8080/dev-idp", "u", &["a b"]), Err(Error::Scope(_))));
}

#[tokio::test]
async fn registration_returns_the_client_and_its_metadata() {
    let t = TestIdp::spawn().await;
    let (status, public) = t
        .register(json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none", "scope": "pets:read"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{public}");
    assert!(public["client_id"].as_str().is_some_and(|it| it.len() >= 32));
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["redirect_uris"], json!([REDIRECT_URI]));
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert_eq!(public["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(public["response_types"], json!(["code"]));
    assert_eq!(public["scope"], "pets:read");

    let (status, confidential) = t
        .register(
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "client_secret_post"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(confidential["client_secret"].as_str().is_some_and(|it| it.len() >= 32));
    assert_ne!(confidential["client_id"], public["client_id"]);

    let (status, err) = t.register(json!({"token_endpoint_auth_method": "none"})).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")));
    let (status, err) = t.register(json!({"redirect_uris": ["/relative"]})).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")));
    let (status, err) = t
        .register(json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"}))
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")));
    let (status, err) = t
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")));
    let (status, err) = t.register(json!({"grant_types": ["password"]})).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")));
}

#[tokio::test]
async fn code_flow_gives_a_token_the_verifier_accepts() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let tokens = t.sign_in(&client).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "pets:read pets:write");
    assert!(tokens["refresh_token"].is_string());

    let claims = t.verify(access_token(&tokens), RESOURCE).await.unwrap();
    assert_eq!(claims.subject, "dev-user");
    assert_eq!(claims.issuer, t.idp.issuer());
    assert_eq!(claims.audience, vec![RESOURCE.to_owned()]);
    assert_eq!(claims.scopes.iter().map(String::as_str).collect::<Vec<_>>(), ["pets:read", "pets:write"]);
    assert_eq!(claims.client_id.as_deref(), Some(client.id.as_str()));
    assert!(claims.raw["jti"].is_string() && claims.raw["iat"].is_u64());
    // Another resource server refuses it.
    assert_eq!(t.verify(access_token(&tokens), BACKEND).await, Err(crate::auth::VerifyError::WrongAudience));
}

#[tokio::test]
async fn without_a_resource_the_audience_is_the_issuer_and_scope_can_be_narrowed() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let (status, location) = t
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("scope", "pets:read"),
        ])
        .await;
    assert_eq!(status, StatusCode::FOUND);
    let code = query(&location.unwrap())["code"].clone();
    let (status, tokens) = t
        .token(&client, &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", VERIFIER)])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "pets:read");
    let claims = t.verify(access_token(&tokens), t.idp.issuer()).await.unwrap();
    assert_eq!(claims.raw["scope"], "pets:read");
}

#[tokio::test]
async fn a_wrong_verifier_is_invalid_grant() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let code = t.code(&client).await;
    let wrong = "x".repeat(43);
    let (status, err) = t
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &wrong),
            ],
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn a_code_is_used_once() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let code = t.code(&client).await;
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let (status, _) = t.token(&client, &params).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = t.token(&client, &params).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn redirect_uris_must_match() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    // Unregistered: refused on the spot, never redirected to.
    let (status, location) = t
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", "http://evil.example/callback"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    // Unknown client: the same.
    let (status, location) = t.authorize(&[("response_type", "code"), ("client_id", "nobody")]).await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    // At the token endpoint, a different redirect_uri is invalid_grant.
    let code = t.code(&client).await;
    let (status, err) = t
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:1/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn pkce_is_required() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let challenge = challenge(VERIFIER);
    let cases: [&[(&str, &str)]; 3] = [
        &[],
        &[("code_challenge", &challenge)],
        &[("code_challenge", VERIFIER), ("code_challenge_method", "plain")],
    ];
    for extra in cases {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s1"),
        ];
        params.extend_from_slice(extra);
        let (status, location) = t.authorize(&params).await;
        assert_eq!(status, StatusCode::FOUND);
        let query = query(&location.unwrap());
        assert_eq!(query["error"], "invalid_request");
        assert_eq!(query["state"], "s1");
        assert_eq!(query["iss"], t.idp.issuer());
        assert!(!query.contains_key("code"));
    }
}

#[tokio::test]
async fn bad_scope_and_resource_are_redirected_errors() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let challenge = challenge(VERIFIER);
    for (name, value, error) in
        [("scope", "admin", "invalid_scope"), ("resource", "not a uri", "invalid_target")]
    {
        let (_, location) = t
            .authorize(&[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                (name, value),
            ])
            .await;
        assert_eq!(query(&location.unwrap())["error"], error);
    }
}

#[tokio::test]
async fn refresh_tokens_rotate() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let first = t.sign_in(&client).await;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    let (status, second) = t
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", first_refresh), ("scope", "pets:read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "pets:read");
    let claims = t.verify(access_token(&second), RESOURCE).await.unwrap();
    assert_eq!((claims.subject.as_str(), claims.raw["scope"].as_str()), ("dev-user", Some("pets:read")));
    let second_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);

    // The new one still carries the original scope, not wider.
    let (status, err) = t
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", second_refresh), ("scope", "admin")],
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    // The old one is spent.
    let (status, err) =
        t.token(&client, &[("grant_type", "refresh_token"), ("refresh_token", first_refresh)]).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // A refused request spent it too (taken before it was checked), so a third sign-in is needed.
    let third = t.sign_in(&client).await;
    let (status, fourth) = t
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", third["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fourth["scope"], "pets:read pets:write");
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_its_family() {
    let t = TestIdp::spawn().await;
    let client = t.public_client().await;
    let refresh = |refresh_token: String| {
        let (t, client) = (&t, &client);
        async move {
            let (status, body) =
                t.token(client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
            match status {
                StatusCode::OK => Ok(body["refresh_token"].as_str().unwrap().to_owned()),
                _ => Err((status, body["error"].as_str().map(str::to_owned))),
            }
        }
    };
    let revoked = Err((StatusCode::BAD_REQUEST, Some("invalid_grant".to_owned())));
    let r1 = t.sign_in(&client).await["refresh_token"].as_str().unwrap().to_owned();
    // Another sign-in of the same client: another family.
    let other = t.sign_in(&client).await["refresh_token"].as_str().unwrap().to_owned();

    let r2 = refresh(r1.clone()).await.unwrap();
    assert_eq!(refresh(r1).await, revoked, "a used refresh token is refused");
    assert_eq!(refresh(r2).await, revoked, "and the tokens rotated from it are revoked with it");
    // The other family is untouched, and rotates on.
    let other = refresh(other).await.unwrap();
    assert!(refresh(other).await.is_ok());
    // A token of no family, or of one that ended, is refused alike.
    assert_eq!(refresh("no-such-family.secret".to_owned()).await, revoked);
    assert_eq!(refresh("no-dot".to_owned()).await, revoked);
}

#[tokio::test]
async fn client_credentials_for_confidential_clients() {
    let t = TestIdp::spawn().await;
    let gateway = t.gateway_client().await;
    let (status, tokens) = t
        .token(
            &gateway,
            &[("grant_type", "client_credentials"), ("resource", BACKEND), ("scope", "pets:read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens.get("refresh_token").is_none());
    let claims = t.verify(access_token(&tokens), BACKEND).await.unwrap();
    assert_eq!(claims.subject, gateway.id);
    assert_eq!(claims.client_id.as_deref(), Some(gateway.id.as_str()));

    // A wrong secret is invalid_client, 401 with a Basic challenge.
    let impostor = TestClient { id: gateway.id.clone(), secret: Some("wrong".to_owned()) };
    let res = t
        .http
        .post(t.idp.endpoint("token"))
        .basic_auth(&impostor.id, impostor.secret.as_ref())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers().get("www-authenticate").is_some());
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_client");

    // A public client did not register it (and could not have).
    let public = t.public_client().await;
    let (status, err) = t.token(&public, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    // An unknown grant type.
    let (status, err) = t.token(&public, &[("grant_type", "password")]).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn token_exchange_retargets_a_user_token() {
    let t = TestIdp::spawn().await;
    let user_tokens = t.sign_in(&t.public_client().await).await;
    let gateway = t.gateway_client().await;
    let subject_token = access_token(&user_tokens);
    let (status, exchanged) = t
        .token(
            &gateway,
            &[
                ("grant_type", GRANT_TOKEN_EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ("resource", BACKEND),
                ("scope", "pets:read"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{exchanged}");
    assert_eq!(exchanged["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(exchanged["token_type"], "Bearer");
    assert_eq!(exchanged["expires_in"], 3600);
    assert_eq!(exchanged["scope"], "pets:read");
    let claims = t.verify(access_token(&exchanged), BACKEND).await.unwrap();
    assert_eq!(claims.subject, "dev-user");
    assert_eq!(claims.raw["act"], json!({"sub": gateway.id}));
    assert_eq!(claims.client_id.as_deref(), Some(gateway.id.as_str()));
    // Not for the MCP server any more.
    assert!(t.verify(access_token(&exchanged), RESOURCE).await.is_err());

    // A logical audience instead of a resource; the scope defaults to the subject token's.
    let (status, by_name) = t
        .token(
            &gateway,
            &[
                ("grant_type", GRANT_TOKEN_EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ("audience", "pets-backend"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_name}");
    assert_eq!(by_name["scope"], "pets:read pets:write");
    assert!(t.verify(access_token(&by_name), "pets-backend").await.is_ok());
}

#[tokio::test]
async fn token_exchange_refusals() {
    let t = TestIdp::spawn().await;
    let gateway = t.gateway_client().await;
    let subject_token = access_token(&t.sign_in(&t.public_client().await).await).to_owned();
    let exchange =
        |subject_token: String, target: Option<(&'static str, &'static str)>, scope: Option<&'static str>| {
            let t = &t;
            let gateway = &gateway;
            async move {
                let mut params = vec![
                    ("grant_type", GRANT_TOKEN_EXCHANGE),
                    ("subject_token", subject_token.as_str()),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ];
                params.extend(target);
                params.extend(scope.map(|it| ("scope", it)));
                let (status, body) = t.token(gateway, &params).await;
                (status, body["error"].as_str().map(str::to_owned))
            }
        };
    let target = Some(("resource", BACKEND));
    let invalid = |code: &str| (StatusCode::BAD_REQUEST, Some(code.to_owned()));

    assert_eq!(exchange(subject_token.clone(), None, None).await, invalid("invalid_target"));
    assert_eq!(
        exchange(subject_token.clone(), Some(("resource", "relative/path")), None).await,
        invalid("invalid_target")
    );
    assert_eq!(exchange(subject_token.clone(), target, Some("admin")).await, invalid("invalid_scope"));
    assert_eq!(exchange("not.a.token".to_owned(), target, None).await, invalid("invalid_grant"));

    let now = unix_now();
    let claims = |exp: u64| -> Map<String, Value> {
        let value = json!({
            "iss": t.idp.issuer(), "sub": "mallory", "aud": RESOURCE, "scope": "pets:read",
            "client_id": "x", "iat": now - 7200, "exp": exp,
        });
        value.as_object().unwrap().clone()
    };
    // Signed by somebody else's key, claiming our issuer.
    let foreign = SigningKey::generate().unwrap().sign(&claims(now + 600)).unwrap();
    assert_eq!(exchange(foreign, target, None).await, invalid("invalid_grant"));
    // Ours, but expired.
    let expired = t.idp.inner.key.sign(&claims(now - 3600)).unwrap();
    assert_eq!(exchange(expired, target, None).await, invalid("invalid_grant"));
    // Ours and valid: accepted (the same claims with a future `exp`).
    let valid = t.idp.inner.key.sign(&claims(now + 600)).unwrap();
    assert_eq!(exchange(valid, target, None).await, (StatusCode::OK, None));

    // A client that did not register token exchange.
    let public = t.public_client().await;
    let (status, err) = t
        .token(
            &public,
            &[
                ("grant_type", GRANT_TOKEN_EXCHANGE),
                ("subject_token", &subject_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ("resource", BACKEND),
            ],
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
}

#[tokio::test]
async fn token_requests_must_be_forms() {
    let t = TestIdp::spawn().await;
    let res = t
        .http
        .post(t.idp.endpoint("token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_request");
}

#[tokio::test]
async fn clients_and_the_key_survive_a_restart() {
    let t = TestIdp::spawn().await;
    let public = t.public_client().await;
    let gateway = t.gateway_client().await;
    let tokens = t.sign_in(&public).await;
    let (_, jwks_before) = t.get("/dev-idp/jwks").await;

    let t = t.restart().await;
    // The same key, with the same `kid`: a token signed before the restart verifies after it.
    let (_, jwks_after) = t.get("/dev-idp/jwks").await;
    assert_eq!(jwks_after, jwks_before);
    let claims = t.verify(access_token(&tokens), RESOURCE).await.unwrap();
    assert_eq!(claims.subject, "dev-user");
    // Both clients are still known: the public one signs in again, the confidential one
    // authenticates with the secret it was given before.
    t.sign_in(&public).await;
    let (status, body) = t.token(&gateway, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A client registered now is kept beside the others.
    let later = t.public_client().await;
    let t = t.restart().await;
    for client in [&public, &later] {
        t.sign_in(client).await;
    }

    // The files are the owner's only, and hold no client secret in clear.
    let dir = idp_dir(&t.dir);
    let saved = std::fs::read_to_string(dir.join("clients.json")).unwrap();
    assert!(!saved.contains(gateway.secret.as_deref().unwrap()), "{saved}");
    assert_eq!(serde_json::from_str::<Value>(&saved).unwrap()["clients"].as_array().unwrap().len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("signing-key.der"), mode("clients.json")), (0o600, 0o600));
    }
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|it| it.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["clients.json", "signing-key.der"], "no temporary file is left");
}

#[tokio::test]
async fn unreadable_files_mean_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(idp_dir(&dir)).unwrap();
    std::fs::write(idp_dir(&dir).join("signing-key.der"), "not a key").unwrap();
    std::fs::write(idp_dir(&dir).join("clients.json"), "{\"clients\": [").unwrap();
    let (idp, logs) = logged(|| new_idp("http://127.0.0.1:1", &dir));
    assert!(idp.is_ok());
    assert!(
        logs.contains("WARN") && logs.contains("signing key file is not an Ed25519 PKCS#8 key"),
        "{logs}"
    );
    assert!(logs.contains("registered clients") && logs.contains("must register again"), "{logs}");

    // It works from scratch, and what it makes now is kept.
    let t = TestIdp::spawn_in(dir).await;
    let client = t.public_client().await;
    t.sign_in(&client).await;
    let t = t.restart().await;
    t.sign_in(&client).await;

    // Saved clients that registration could not have made are left out; the others are kept.
    let mut file: Value =
        serde_json::from_slice(&std::fs::read(idp_dir(&t.dir).join("clients.json")).unwrap()).unwrap();
    let clients = file["clients"].as_array_mut().unwrap();
    let mut public_with_client_credentials = clients[0].clone();
    public_with_client_credentials["client_id"] = json!("forged");
    public_with_client_credentials["grant_types"] = json!(["client_credentials"]);
    clients.insert(0, public_with_client_credentials);
    std::fs::write(idp_dir(&t.dir).join("clients.json"), file.to_string()).unwrap();
    let (idp, logs) = logged(|| new_idp("http://127.0.0.1:1", &t.dir));
    let idp = idp.unwrap();
    assert!(logs.contains("not valid registrations") && logs.contains("n_left_out=1"), "{logs}");
    let clients = idp.inner.lock_clients();
    assert!(clients.get("forged").is_none() && clients.get(&client.id).is_some());
}

#[test]
fn a_folder_that_cannot_be_made_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the folder should be.
    std::fs::write(idp_dir(&dir), "").unwrap();
    let (idp, logs) = logged(|| new_idp("http://127.0.0.1:1", &dir));
    assert!(idp.is_ok());
    assert!(logs.contains("cannot read the dev-idp's registered clients"), "{logs}");
    assert!(logs.contains("cannot keep the dev-idp signing key"), "{logs}");
}

#[tokio::test]
async fn the_saved_clients_are_bounded_as_the_store_is() {
    let dir = tempfile::tempdir().unwrap();
    let record = |n: usize| {
        json!({
            "client_id": format!("c{n}"),
            "token_endpoint_auth_method": "none",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
        })
    };
    let records: Vec<Value> = (0..MAX_ENTRIES + 5).map(record).collect();
    std::fs::create_dir(idp_dir(&dir)).unwrap();
    std::fs::write(idp_dir(&dir).join("clients.json"), json!({"clients": records}).to_string()).unwrap();
    let t = TestIdp::spawn_in(dir).await;
    {
        let clients = t.idp.inner.lock_clients();
        // The newest are kept, as if registered in the order of the file.
        assert_eq!(clients.len(), MAX_ENTRIES);
        assert!(clients.get("c4").is_none() && clients.get("c5").is_some());
    }
    // A new registration drops the oldest, in memory and in the file alike.
    let newest = t.public_client().await;
    let file: Value =
        serde_json::from_slice(&std::fs::read(idp_dir(&t.dir).join("clients.json")).unwrap()).unwrap();
    let ids: Vec<&str> =
        file["clients"].as_array().unwrap().iter().map(|it| it["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), MAX_ENTRIES);
    assert_eq!((ids[0], ids[MAX_ENTRIES - 1]), ("c6", newest.id.as_str()));
}

#[test]
fn pkce_uses_s256() {
    // RFC 7636 Appendix B.
    assert!(authorize::pkce_matches(VERIFIER, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    assert!(!authorize::pkce_matches(VERIFIER, VERIFIER));
    assert!(!authorize::pkce_matches("short", &challenge("short")));
}

#[test]
fn bounded_stores_drop_the_oldest() {
    let mut store = Bounded::new(2);
    store.insert("a".to_owned(), 1);
    store.insert("b".to_owned(), 2);
    store.insert("c".to_owned(), 3);
    assert_eq!((store.get("a"), store.get("b"), store.get("c")), (None, Some(&2), Some(&3)));
    assert_eq!(store.remove("b"), Some(2));
    store.insert("d".to_owned(), 4);
    assert_eq!(store.len(), 2);
    store.insert("c".to_owned(), 5);
    store.insert("e".to_owned(), 6);
    assert_eq!((store.get("c"), store.get("d"), store.get("e")), (Some(&5), None, Some(&6)));
}
