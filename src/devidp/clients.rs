//! Registered clients: dynamic registration (RFC 7591) and client authentication at the token
//! endpoint (RFC 6749 §2.3: `none`, `client_secret_basic`, `client_secret_post`).
//!
//! Invariant: a client authenticates only the way it registered; a public client never gets a
//! secret, and a confidential client is never admitted without one. A secret is kept only as its
//! SHA-256, so `saved`'s clients file never holds it; a client read back from that file is
//! admitted only if registration could have made it.

use std::sync::PoisonError;

use aws_lc_rs::digest::{SHA256, digest};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::{
    DevIdp, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, GRANT_TYPES, OAuthError,
    Params, is_scope_token, random_token, same_secret, saved, unix_now,
};

const MAX_REDIRECT_URIS: usize = 20;
const MAX_URI_BYTES: usize = 2048;

#[derive(Clone)]
pub(super) struct Client {
    pub(super) id: String,
    /// The SHA-256 of a confidential client's secret, base64url. The secret is 256 random bits,
    /// so a fast hash suffices: there is nothing to guess.
    secret_digest: Option<String>,
    auth_method: AuthMethod,
    pub(super) redirect_uris: Vec<String>,
    pub(super) grant_types: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AuthMethod {
    None,
    Basic,
    Post,
}

/// The client a token request comes from, once authenticated.
pub(super) struct Authenticated {
    pub(super) client: Client,
    /// Whether it proved itself with a secret, rather than only naming its `client_id`.
    pub(super) confidential: bool,
}

/// The client metadata we read (RFC 7591 §2); other members are ignored.
#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    scope: Option<String>,
}

/// A registered client as `saved` keeps it, in RFC 7591's names; `Client` itself has no serde.
#[derive(Serialize, Deserialize)]
pub(super) struct Record {
    client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret_sha256: Option<String>,
    token_endpoint_auth_method: String,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
}

/// An RFC 7591 §3.2.2 error.
struct RegistrationError {
    code: &'static str,
    description: &'static str,
}

impl Client {
    pub(super) fn allows(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|it| it == grant_type)
    }

    pub(super) fn to_record(&self) -> Record {
        Record {
            client_id: self.id.clone(),
            client_secret_sha256: self.secret_digest.clone(),
            token_endpoint_auth_method: self.auth_method.name().to_owned(),
            redirect_uris: self.redirect_uris.clone(),
            grant_types: self.grant_types.clone(),
        }
    }

    /// The client `record` describes, if registration could have made it; `None` for anything
    /// else, so that an edited or damaged file cannot admit a client the rules would refuse.
    pub(super) fn from_record(record: Record) -> Option<Client> {
        let auth_method = AuthMethod::from_name(&record.token_endpoint_auth_method)?;
        let id_ok = !record.client_id.is_empty() && record.client_id.len() <= 256;
        let secret_ok = match (&record.client_secret_sha256, auth_method) {
            (None, AuthMethod::None) => true,
            (Some(digest), AuthMethod::Basic | AuthMethod::Post) => {
                URL_SAFE_NO_PAD.decode(digest).is_ok_and(|it| it.len() == 32)
            }
            _ => false,
        };
        let code_flow = record.grant_types.iter().any(|it| it == GRANT_AUTHORIZATION_CODE);
        let consistent = check_grant_types(auth_method, &record.grant_types).is_ok()
            && check_redirect_uris(code_flow, &record.redirect_uris).is_ok();
        (id_ok && secret_ok && consistent).then_some(Client {
            id: record.client_id,
            secret_digest: record.client_secret_sha256,
            auth_method,
            redirect_uris: record.redirect_uris,
            grant_types: record.grant_types,
        })
    }
}

impl IntoResponse for RegistrationError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "error_description": self.description});
        let status = if self.code == "server_error" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        (status, super::no_store(), axum::Json(body)).into_response()
    }
}

/// `POST /dev-idp/register`: 201 with the client's id, its secret unless it is public, and the
/// metadata as registered.
pub(super) async fn register(State(idp): State<DevIdp>, body: Bytes) -> Response {
    let metadata = match serde_json::from_slice::<Metadata>(&body) {
        Ok(it) => it,
        Err(_) => {
            return invalid_metadata("the body is not a JSON object of client metadata").into_response();
        }
    };
    let registered = match registration(&idp, metadata) {
        Ok(it) => it,
        Err(err) => return err.into_response(),
    };
    let (client, mut response) = registered;
    tracing::info!(client_id = %client.id, "dev-idp registered a client");
    if let Value::Object(map) = &mut response {
        map.insert("client_id_issued_at".to_owned(), json!(unix_now()));
    }
    // Saving writes a file and flushes it to disk, which blocks: not on the async workers.
    let saving = idp.clone();
    if tokio::task::spawn_blocking(move || remember(&saving, client)).await.is_err() {
        let err =
            RegistrationError { code: "server_error", description: "the client could not be registered" };
        return err.into_response();
    }
    (StatusCode::CREATED, super::no_store(), axum::Json(response)).into_response()
}

/// Adds `client` to the registered clients and rewrites the clients file with all of them, so
/// that a client with a cached registration is still known after a restart.
fn remember(idp: &DevIdp, client: Client) {
    // Held from the insertion to the end of the write: files are written in the order of the
    // registrations, so an older list never replaces a newer one.
    let _saving = idp.inner.saving.lock().unwrap_or_else(PoisonError::into_inner);
    let records: Vec<Record> = {
        let mut clients = idp.inner.lock_clients();
        clients.insert(client.id.clone(), client);
        clients.values().map(Client::to_record).collect()
    };
    saved::save_clients(&idp.inner.dir, records);
}

/// The client described by `metadata`, and the metadata to answer with, its secret included: the
/// one time the secret is told.
fn registration(idp: &DevIdp, metadata: Metadata) -> Result<(Client, Value), RegistrationError> {
    let auth_method = match metadata.token_endpoint_auth_method.as_deref() {
        Some("none") => AuthMethod::None,
        // RFC 7591 §2: the default is `client_secret_basic`.
        Some("client_secret_basic") | None => AuthMethod::Basic,
        Some("client_secret_post") => AuthMethod::Post,
        Some(_) => {
            return Err(invalid_metadata("token_endpoint_auth_method must be none or client_secret_*"));
        }
    };
    // RFC 7591 defaults to `authorization_code` alone; MCP clients expect to refresh, so we add it.
    let grant_types = metadata
        .grant_types
        .unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned(), GRANT_REFRESH_TOKEN.to_owned()]);
    check_grant_types(auth_method, &grant_types)?;
    let code_flow = grant_types.iter().any(|it| it == GRANT_AUTHORIZATION_CODE);
    let response_types = metadata
        .response_types
        .unwrap_or_else(|| if code_flow { vec!["code".to_owned()] } else { Vec::new() });
    if response_types.iter().any(|it| it != "code")
        || code_flow != response_types.iter().any(|it| it == "code")
    {
        return Err(invalid_metadata(
            "response_types must be [\"code\"] exactly when authorization_code is used",
        ));
    }
    check_redirect_uris(code_flow, &metadata.redirect_uris)?;
    // The registered scope is informative only; what a client may request is checked per request.
    let scope = metadata.scope.map(|scope| {
        scope
            .split(' ')
            .filter(|it| is_scope_token(it) && idp.inner.scopes.iter().any(|known| known == it))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let client_name = metadata.client_name.filter(|it| it.len() <= 256);
    let secret = match auth_method {
        AuthMethod::None => None,
        AuthMethod::Basic | AuthMethod::Post => Some(random_token().map_err(|_| unavailable())?),
    };
    let client = Client {
        id: random_token().map_err(|_| unavailable())?,
        secret_digest: secret.as_deref().map(secret_digest),
        auth_method,
        redirect_uris: metadata.redirect_uris,
        grant_types,
    };
    let mut response = json!({
        "client_id": client.id,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": auth_method.name(),
    });
    if let Value::Object(map) = &mut response {
        if let Some(name) = client_name {
            map.insert("client_name".to_owned(), json!(name));
        }
        if let Some(scope) = scope {
            map.insert("scope".to_owned(), json!(scope));
        }
        // Only the secret's digest is kept.
        if let Some(secret) = secret {
            map.insert("client_secret".to_owned(), json!(secret));
            map.insert("client_secret_expires_at".to_owned(), json!(0));
        }
    }
    Ok((client, response))
}

/// Every grant type is one we serve, and a public client cannot use client credentials.
fn check_grant_types(auth_method: AuthMethod, grant_types: &[String]) -> Result<(), RegistrationError> {
    if grant_types.iter().any(|it| !GRANT_TYPES.contains(&it.as_str())) {
        return Err(invalid_metadata("a grant type is not supported"));
    }
    if auth_method == AuthMethod::None && grant_types.iter().any(|it| it == GRANT_CLIENT_CREDENTIALS) {
        return Err(invalid_metadata("client_credentials needs a confidential client"));
    }
    Ok(())
}

/// The redirect URIs are few and well formed, and present if the client uses the code flow.
fn check_redirect_uris(code_flow: bool, redirect_uris: &[String]) -> Result<(), RegistrationError> {
    let invalid = |description| Err(RegistrationError { code: "invalid_redirect_uri", description });
    if code_flow && redirect_uris.is_empty() {
        return invalid("redirect_uris is required for the authorization_code grant");
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return invalid("too many redirect_uris");
    }
    if !redirect_uris.iter().all(|it| is_redirect_uri(it)) {
        return invalid("each redirect URI must be an absolute URI without a fragment");
    }
    Ok(())
}

/// The client making a token request (RFC 6749 §2.3.1), from the `Authorization: Basic` header
/// or the `client_id` / `client_secret` body parameters, never both.
pub(super) fn authenticate(
    idp: &DevIdp,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Authenticated, OAuthError> {
    let body_id = params.get("client_id")?;
    let body_secret = params.get("client_secret")?;
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(basic_credentials(value.to_str().ok())?),
    };
    let (id, secret, method) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|it| it != id) {
                return Err(OAuthError::invalid_client("client_id differs from the authenticated client"));
            }
            (id, Some(secret), AuthMethod::Basic)
        }
        (None, Some(secret)) => {
            let id = body_id.ok_or_else(|| OAuthError::invalid_client("client_secret without client_id"))?;
            (id.to_owned(), Some(secret.to_owned()), AuthMethod::Post)
        }
        (None, None) => {
            let id = body_id.ok_or_else(|| OAuthError::invalid_client("no client authentication"))?;
            (id.to_owned(), None, AuthMethod::None)
        }
    };
    let client = idp.inner.lock_clients().get(&id).cloned();
    let client = client.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    let authenticated = match (&client.secret_digest, secret) {
        (None, None) => method == AuthMethod::None,
        (Some(expected), Some(given)) => {
            client.auth_method == method && same_secret(expected, &secret_digest(&given))
        }
        _ => false,
    };
    if !authenticated {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    let confidential = client.secret_digest.is_some();
    Ok(Authenticated { client, confidential })
}

impl AuthMethod {
    fn name(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
        }
    }

    fn from_name(name: &str) -> Option<AuthMethod> {
        [AuthMethod::None, AuthMethod::Basic, AuthMethod::Post].into_iter().find(|it| it.name() == name)
    }
}

fn secret_digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, secret.as_bytes()))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(value: Option<&str>) -> Result<(String, String), OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed Basic credentials");
    let value = value.ok_or_else(malformed)?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client("only Basic client authentication is supported"));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok((form_decode(id), form_decode(secret)))
}

fn form_decode(value: &str) -> String {
    let plus_as_space = value.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy().into_owned()
}

fn is_redirect_uri(value: &str) -> bool {
    value.len() <= MAX_URI_BYTES && Url::parse(value).is_ok_and(|it| it.fragment().is_none())
}

fn invalid_metadata(description: &'static str) -> RegistrationError {
    RegistrationError { code: "invalid_client_metadata", description }
}

fn unavailable() -> RegistrationError {
    RegistrationError { code: "server_error", description: "no randomness available" }
}
