//! A development identity provider, FOR LOCAL DEVELOPMENT ONLY: an OAuth 2.1 authorization
//! server that signs every request in as one configured user, without a login page or consent.
//! `mcpgate serve --dev` mounts it beside the gateway on the same loopback port, with issuer
//! `{public_url}/dev-idp`, so an MCP client can sign in with no external authorization server.
//!
//! Invariant: only the signing key (Ed25519) and the registered clients outlive the process, in
//! the folder given to `DevIdp::new` (`saved`), so that cached registrations and tokens survive
//! a restart; codes and refresh tokens live in memory only. Every store is bounded, and the
//! saved clients are a copy of their store. A replayed refresh token revokes its whole family.
//! `clients` is dynamic registration (RFC 7591) and client authentication, `authorize` the code
//! flow with PKCE, `token` the token endpoint (authorization code, refresh, client credentials),
//! `exchange` RFC 8693 token exchange, `keys` the signing key, `saved` the folder, `bounded` the
//! stores. No token, code or secret is logged.

mod authorize;
mod bounded;
mod clients;
mod exchange;
mod keys;
mod saved;
mod token;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use url::Url;

use self::authorize::CodeGrant;
use self::bounded::Bounded;
use self::clients::Client;
use self::keys::SigningKey;
use self::token::RefreshFamily;

/// The path every route of the IdP lives under; the issuer's path must end with it.
const BASE_PATH: &str = "/dev-idp";

/// At most this many clients, codes and refresh token families each; the oldest are dropped
/// first.
const MAX_ENTRIES: usize = 1_000;

/// Registration and token requests are small; anything larger is refused unread.
const MAX_BODY_BYTES: usize = 64 * 1024;

const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
const GRANT_REFRESH_TOKEN: &str = "refresh_token";
const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const GRANT_TYPES: [&str; 4] =
    [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE];

/// A cheap handle to one development identity provider; clones share its key and stores.
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dev-idp issuer {issuer}: {reason}")]
    Issuer { issuer: String, reason: &'static str },
    #[error("dev-idp user must not be empty")]
    User,
    #[error("dev-idp scope {0:?} is not a valid scope token")]
    Scope(String),
    #[error("the dev-idp signing key could not be generated")]
    Key,
}

struct Inner {
    issuer: String,
    user: String,
    scopes: Vec<String>,
    key: SigningKey,
    /// Where `saved` keeps the key and the clients.
    dir: PathBuf,
    // Std mutexes: each is held for one map operation and never across an await.
    clients: Mutex<Bounded<Client>>,
    codes: Mutex<Bounded<CodeGrant>>,
    /// By family id (see `token`).
    refresh_families: Mutex<Bounded<RefreshFamily>>,
    /// Held while the clients file is written (in a blocking task), so writes come in order.
    saving: Mutex<()>,
}

/// An OAuth error response (RFC 6749 §5.2 shape), for the token, registration and authorization
/// endpoints. The description never repeats a token, code or secret.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

/// Form or query parameters. RFC 6749 §3.1: a parameter without a value counts as absent, and
/// none may be repeated; repetition is detected when the parameter is read.
struct Params(Vec<(String, String)>);

impl DevIdp {
    /// A provider for `issuer` (an absolute http(s) URL whose path ends with `/dev-idp`, as
    /// tokens will carry it in `iss`) that signs everyone in as `user` and offers `scopes`, and
    /// keeps its key and registered clients in `dir`: those of an earlier start are read back,
    /// and a missing or unreadable folder means a fresh start, not an error.
    pub fn new(issuer: String, user: String, scopes: Vec<String>, dir: PathBuf) -> Result<DevIdp, Error> {
        check_issuer(&issuer)?;
        if user.is_empty() {
            return Err(Error::User);
        }
        if let Some(bad) = scopes.iter().find(|it| !is_scope_token(it)) {
            return Err(Error::Scope(bad.clone()));
        }
        let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
        for it in scopes {
            if !unique.contains(&it) {
                unique.push(it);
            }
        }
        let key = saved::signing_key(&dir).ok_or(Error::Key)?;
        // Oldest first, so that a file with more than the store holds keeps the newest.
        let mut clients = Bounded::new(MAX_ENTRIES);
        for client in saved::clients(&dir) {
            clients.insert(client.id.clone(), client);
        }
        let inner = Inner {
            issuer,
            user,
            scopes: unique,
            key,
            dir,
            clients: Mutex::new(clients),
            codes: Mutex::new(Bounded::new(MAX_ENTRIES)),
            refresh_families: Mutex::new(Bounded::new(MAX_ENTRIES)),
            saving: Mutex::new(()),
        };
        Ok(DevIdp { inner: Arc::new(inner) })
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn jwks_uri(&self) -> String {
        self.endpoint("jwks")
    }

    /// The routes to merge into mcpgate's router, at absolute paths: RFC 8414 metadata at
    /// `/.well-known/oauth-authorization-server/dev-idp` and OpenID Connect style at
    /// `/dev-idp/.well-known/openid-configuration`; `/dev-idp/{jwks,register,authorize,token}`.
    pub fn router(&self) -> Router {
        tracing::warn!(
            issuer = %self.inner.issuer,
            user = %self.inner.user,
            "the development identity provider is enabled: it signs anyone who can reach it in \
             as this user without a password; use it on loopback only, never in production"
        );
        Router::new()
            .route(&format!("/.well-known/oauth-authorization-server{BASE_PATH}"), get(metadata))
            .route(&format!("{BASE_PATH}/.well-known/openid-configuration"), get(openid_configuration))
            .route(&format!("{BASE_PATH}/jwks"), get(jwks))
            .route(&format!("{BASE_PATH}/register"), post(clients::register))
            .route(&format!("{BASE_PATH}/authorize"), get(authorize::authorize))
            .route(&format!("{BASE_PATH}/token"), post(token::token))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn(cors))
            .with_state(self.clone())
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.inner.issuer)
    }

    /// RFC 8414 §2 metadata.
    fn metadata(&self) -> Value {
        json!({
            "issuer": self.inner.issuer,
            "authorization_endpoint": self.endpoint("authorize"),
            "token_endpoint": self.endpoint("token"),
            "registration_endpoint": self.endpoint("register"),
            "jwks_uri": self.jwks_uri(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": GRANT_TYPES,
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "scopes_supported": self.inner.scopes,
            "authorization_response_iss_parameter_supported": true,
            "mcpgate_dev_only": true,
        })
    }
}

impl Inner {
    fn lock_clients(&self) -> MutexGuard<'_, Bounded<Client>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_codes(&self) -> MutexGuard<'_, Bounded<CodeGrant>> {
        self.codes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_refresh_families(&self) -> MutexGuard<'_, Bounded<RefreshFamily>> {
        self.refresh_families.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { status, code, description: description.into() }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 with a Basic challenge (RFC 6749 §5.2).
    fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn invalid_scope(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    fn invalid_target(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    fn unauthorized_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    fn server_error(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({"error": self.code, "error_description": self.description}));
        let mut response = (self.status, no_store(), body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"dev-idp\""));
        }
        response
    }
}

impl Params {
    fn parse(input: &[u8]) -> Params {
        let pairs = url::form_urlencoded::parse(input)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Params(pairs)
    }

    fn get(&self, name: &'static str) -> Result<Option<&str>, OAuthError> {
        let mut found = self.0.iter().filter(|(it, _)| it == name).map(|(_, value)| value.as_str());
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(OAuthError::invalid_request(format!("the {name} parameter is repeated"))),
            (value, None) => Ok(value),
        }
    }

    fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)?.ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
    }
}

async fn metadata(State(idp): State<DevIdp>) -> Response {
    axum::Json(idp.metadata()).into_response()
}

/// The same document for clients that only try OpenID Connect discovery, with the fields that
/// OpenID Connect makes required (no ID tokens are issued, but the values are truthful).
async fn openid_configuration(State(idp): State<DevIdp>) -> Response {
    let mut document = idp.metadata();
    if let Value::Object(map) = &mut document {
        map.insert("subject_types_supported".to_owned(), json!(["public"]));
        map.insert("id_token_signing_alg_values_supported".to_owned(), json!(["EdDSA"]));
    }
    axum::Json(document).into_response()
}

async fn jwks(State(idp): State<DevIdp>) -> Response {
    axum::Json(json!({"keys": [idp.inner.key.jwk()]})).into_response()
}

/// Browser-based MCP clients (such as the MCP Inspector) call these endpoints cross-origin. None
/// of them reads cookies, so allowing any origin grants nothing a non-browser client lacks.
async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        let mut it = StatusCode::NO_CONTENT.into_response();
        let headers = it.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        it
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

fn check_issuer(issuer: &str) -> Result<(), Error> {
    let invalid = |reason| Err(Error::Issuer { issuer: issuer.to_owned(), reason });
    let Ok(url) = Url::parse(issuer) else { return invalid("not an absolute URL") };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return invalid("not an http(s) URL");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return invalid("an issuer has no query or fragment (RFC 8414 §2)");
    }
    if !issuer.ends_with(BASE_PATH) || !url.path().ends_with(BASE_PATH) {
        // The routes are mounted at fixed paths; an issuer elsewhere would name URLs nobody serves.
        return invalid("the path must end with /dev-idp, where the routes are mounted");
    }
    Ok(())
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty() && scope.bytes().all(|it| matches!(it, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// A requested scope: every token must be in `allowed`; an absent scope means all of `default`.
fn requested_scope(
    requested: Option<&str>,
    allowed: &[String],
    default: &[String],
) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else { return Ok(default.to_vec()) };
    let mut scope: Vec<String> = Vec::new();
    for it in requested.split(' ').filter(|it| !it.is_empty()) {
        if !allowed.iter().any(|allowed| allowed == it) {
            return Err(OAuthError::invalid_scope("a requested scope is not available"));
        }
        if !scope.iter().any(|seen| seen == it) {
            scope.push(it.to_owned());
        }
    }
    Ok(scope)
}

/// An RFC 8707 resource indicator: an absolute URI without a fragment, kept exactly as sent,
/// since the resource server compares `aud` as a string.
fn resource_indicator(value: &str) -> Result<String, OAuthError> {
    match Url::parse(value) {
        Ok(url) if url.fragment().is_none() && value.len() <= 2048 => Ok(value.to_owned()),
        _ => Err(OAuthError::invalid_target("resource must be an absolute URI without a fragment")),
    }
}

/// 256 random bits, base64url: client ids and secrets, codes, refresh token families and
/// secrets, `jti`s.
fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| OAuthError::server_error("no randomness available"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs())
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
