//! Signing administrators in to the UI: OpenID Connect authorization code with PKCE against the
//! configured identity provider, admitting users whose ID token lists the required role or
//! group; under `serve --dev`, the development user, at once. And signing out, which ends the
//! session for good (`Access::sign_out`).
//!
//! A sign-in may say where to go next (`/admin/login?next=/admin/servers/pets`): only a path under
//! `/admin` is followed, anything else leads to `/admin`, so that no link to mcpgate can send a
//! browser elsewhere after signing in (an open redirect). Through the identity provider, the path
//! rides in the `state`, after the random part that is checked.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::AdminState;
use crate::auth::{self, IssuerConfig, Verifier, VerifierConfig};
use crate::config::{AdminOidc, Config};
use crate::outbound;
use crate::secrets::Secret;

/// A token response with an ID token listing many groups is some kilobytes; this is ample.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Where a sign-in leads unless it says otherwise.
const HOME: &str = "/admin";
/// The longest `next` followed; a page's path and query are far shorter.
const MAX_NEXT_BYTES: usize = 2048;

pub struct SignIn {
    /// `serve --dev`: this user is an administrator without signing in anywhere.
    dev_user: Option<String>,
    oidc: Option<Oidc>,
}

struct Oidc {
    settings: AdminOidc,
    authorization_endpoint: Url,
    token_endpoint: Url,
    redirect_uri: String,
    /// Checks ID tokens: the issuer's keys, and `aud` = our client id.
    verifier: Verifier,
    http: reqwest::Client,
}

impl SignIn {
    /// Reads the identity provider's metadata now, so a wrong issuer stops start-up. Every
    /// request to the identity provider goes through `http.outbound_proxy` when it is set.
    pub async fn new(config: &Config) -> Result<SignIn, String> {
        let dev_user = config.dev.as_ref().map(|it| it.user.clone());
        let Some(settings) = config.admin.oidc.clone() else { return Ok(SignIn { dev_user, oidc: None }) };
        let proxy = &config.http.outbound_proxy;
        let metadata = auth::discover_through(&settings.issuer, proxy.as_ref())
            .await
            .map_err(|err| format!("admin sign-in: {err}"))?;
        let jwks_uri = metadata.signing_keys().map_err(|err| format!("admin sign-in: {err}"))?;
        let issuer =
            IssuerConfig { issuer: settings.issuer.clone(), jwks_uri: Some(jwks_uri), shared_secret: None };
        let mut verifier_config = VerifierConfig::new(vec![issuer], vec![settings.client_id.clone()]);
        verifier_config.jwks.proxy = proxy.clone();
        let verifier = Verifier::new(&verifier_config).map_err(|err| format!("admin sign-in: {err}"))?;
        let policy = outbound::Policy {
            timeout: Some(Duration::from_secs(10)),
            proxy: proxy.clone(),
            ..outbound::Policy::direct()
        };
        let http = outbound::client(&policy).map_err(|err| format!("admin sign-in: {err}"))?;
        let oidc = Oidc {
            redirect_uri: format!("{}/admin/callback", config.public_url()),
            authorization_endpoint: metadata.authorization_endpoint,
            token_endpoint: metadata.token_endpoint,
            settings,
            verifier,
            http,
        };
        Ok(SignIn { dev_user, oidc: Some(oidc) })
    }

    /// Whether anyone can sign in to the UI: `[admin.oidc]` is configured, or `serve --dev`.
    pub fn is_available(&self) -> bool {
        self.dev_user.is_some() || self.oidc.is_some()
    }
}

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/admin/login", get(login))
        .route("/admin/callback", get(callback))
        .route("/admin/logout", post(logout))
}

/// Where to sign in on the way to `path` (a page's path and query), so that the sign-in leads
/// back there.
pub fn login_path(path: &str) -> String {
    match local_next(path) {
        Some(next) if next != HOME => {
            let query =
                url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
            format!("/admin/login?{query}")
        }
        _ => "/admin/login".to_owned(),
    }
}

/// `next` when it is a path under `/admin` that every browser reads as one: printable ASCII
/// without `//`, `\` or dot segments (`..`, `%2e%2e`).
fn local_next(next: &str) -> Option<&str> {
    let under_admin = next == HOME
        || next.strip_prefix(HOME).is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'));
    let dots = |segment: &str| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        !segment.is_empty() && segment.bytes().all(|it| it == b'.')
    };
    let plain = next.len() <= MAX_NEXT_BYTES
        && next.bytes().all(|it| it.is_ascii_graphic() && it != b'\\')
        && !next.contains("//")
        && !next.split(['/', '?', '#', '&', '=']).any(dots);
    (under_admin && plain).then_some(next)
}

/// The `next` of a sign-in's query, if it may be followed.
fn next_of(query: Option<&str>) -> Option<String> {
    let query = query?;
    let (_, next) = url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "next")?;
    local_next(&next).map(str::to_owned)
}

/// The OpenID Connect `state` of a sign-in: its random part, and `next` after a `.` (the random
/// part is unpadded base64url, which has none).
fn carry(state: &str, next: Option<&str>) -> String {
    match next {
        Some(next) => format!("{state}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next)),
        None => state.to_owned(),
    }
}

/// The random part of a returned `state`, and the `next` it carries if that may be followed.
fn carried(returned: &str) -> (&str, Option<String>) {
    let Some((state, next)) = returned.split_once('.') else { return (returned, None) };
    let next = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(next).ok();
    let next = next.and_then(|it| String::from_utf8(it).ok());
    (state, next.filter(|it| local_next(it).is_some()))
}

async fn login(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    let next = next_of(query.as_deref());
    if let Some(user) = &state.signin.dev_user {
        let to = next.as_deref().unwrap_or(HOME);
        return match state.access.sign_in(user) {
            Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response(),
            Err(err) => refused(StatusCode::INTERNAL_SERVER_ERROR, &err),
        };
    }
    let Some(oidc) = &state.signin.oidc else { return not_configured() };
    let (login, cookie) = match state.access.begin_login() {
        Ok(it) => it,
        Err(err) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &err),
    };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, login.verifier.as_bytes()));
    let mut url = oidc.authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.settings.client_id)
        .append_pair("redirect_uri", &oidc.redirect_uri)
        .append_pair("scope", "openid profile")
        .append_pair("state", &carry(&login.state, next.as_deref()))
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    ([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response()
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let Some(oidc) = &state.signin.oidc else {
        return refused(StatusCode::NOT_FOUND, "sign-in is not configured");
    };
    if let Some(error) = callback.error {
        let error: String =
            error.chars().filter(|it| it.is_ascii_alphanumeric() || *it == '_').take(64).collect();
        return refused(
            StatusCode::FORBIDDEN,
            &format!("the identity provider refused the sign-in ({error})"),
        );
    }
    let Some(login) = state.access.login(&headers) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "no sign-in in progress in this browser, or it expired: start again",
        );
    };
    let (Some(code), Some(returned)) = (callback.code, callback.state) else {
        return refused(StatusCode::BAD_REQUEST, "the callback lacks `code` or `state`");
    };
    let (returned, next) = carried(&returned);
    if aws_lc_rs::constant_time::verify_slices_are_equal(returned.as_bytes(), login.state.as_bytes()).is_err()
    {
        return refused(StatusCode::BAD_REQUEST, "the sign-in state does not match: start again");
    }
    let name = match redeem(oidc, &code, &login.verifier, &login.nonce).await {
        Ok(name) => name,
        Err(reason) => return refused(StatusCode::FORBIDDEN, &reason),
    };
    match state.access.sign_in(&name) {
        Ok(cookie) => {
            tracing::info!(target: "mcpgate::audit", actor = %name, action = "sign-in", "admin signed in");
            let mut response = Redirect::to(next.as_deref().unwrap_or(HOME)).into_response();
            for cookie in [cookie, state.access.end_login()] {
                if let Ok(value) = cookie.parse() {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(err) => refused(StatusCode::INTERNAL_SERVER_ERROR, &err),
    }
}

/// Trades the code for an ID token, checks it and the role; the user's name.
async fn redeem(oidc: &Oidc, code: &str, verifier: &str, nonce: &str) -> Result<String, String> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &oidc.redirect_uri)
            .append_pair("code_verifier", verifier)
            .append_pair("client_id", &oidc.settings.client_id);
        if let Some(secret) = oidc.settings.client_secret.as_ref().and_then(Secret::expose) {
            form.append_pair("client_secret", secret);
        }
        form.finish()
    };
    let mut response = oidc
        .http
        .post(oidc.token_endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(|_| "cannot reach the identity provider's token endpoint".to_owned())?;
    let status = response.status();
    let answer = outbound::read_capped(&mut response, MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(|_| "the token endpoint's answer was cut short".to_owned())?;
    if answer.cut {
        return Err("the token endpoint's answer is too large".to_owned());
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|_| "the token endpoint's answer is not JSON".to_owned())?;
    let Some(id_token) = body.get("id_token").and_then(Value::as_str) else {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("no id_token");
        let error: String =
            error.chars().filter(|it| it.is_ascii_alphanumeric() || *it == '_').take(64).collect();
        return Err(format!("the identity provider did not sign you in ({error}, HTTP {})", status.as_u16()));
    };
    let claims =
        oidc.verifier.verify(id_token).await.map_err(|err| format!("the ID token is not valid: {err}"))?;
    if claims.raw.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err("the ID token's nonce does not match this sign-in".to_owned());
    }
    let role = &oidc.settings.required_role;
    let has_role = match claims.raw.get(&oidc.settings.role_claim) {
        Some(Value::Array(items)) => items.iter().any(|it| it.as_str() == Some(role)),
        Some(Value::String(text)) => text.split(' ').any(|it| it == role),
        _ => false,
    };
    if !has_role {
        return Err(format!(
            "you are signed in as {} but not an administrator: `{role}` is missing from `{}`",
            claims.subject, oidc.settings.role_claim
        ));
    }
    let name = claims.raw.get("preferred_username").or(claims.raw.get("email")).and_then(Value::as_str);
    Ok(name.unwrap_or(&claims.subject).to_owned())
}

/// Ends the session: a change like any other, so it needs the session's CSRF token (the form's
/// `csrf` field, or `X-CSRF-Token`) and no foreign `Origin`; another site cannot sign an
/// administrator out. The session is recorded as ended, so its cookie, wherever a copy of it
/// is, no longer signs anyone in.
async fn logout(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    let admin = match state.access.admin(&headers).await {
        Ok(Some(admin)) => admin,
        // Nothing to end: an expired or ended session, or none.
        Ok(None) => return signed_out(&state),
        Err(err) => {
            tracing::error!(%err, "admin: store");
            return refused(StatusCode::SERVICE_UNAVAILABLE, "the store failed; see the log");
        }
    };
    let Some(session) = &admin.session else {
        return refused(StatusCode::BAD_REQUEST, "the bootstrap token has no session to end");
    };
    let form_token = url::form_urlencoded::parse(&body).find(|(name, _)| name == "csrf").map(|(_, it)| it);
    let header_token = headers.get("x-csrf-token").and_then(|it| it.to_str().ok());
    let token = form_token.as_deref().or(header_token);
    if let Err(reason) = super::may_change(&state, &admin, &headers, token) {
        return refused(StatusCode::FORBIDDEN, &format!("not signed out: {reason}"));
    }
    if let Err(err) = state.access.sign_out(session).await {
        tracing::error!(%err, "admin: store");
        return refused(StatusCode::SERVICE_UNAVAILABLE, "not signed out: the store failed; see the log");
    }
    tracing::info!(target: "mcpgate::audit", actor = %admin.name, action = "sign-out", "admin signed out");
    signed_out(&state)
}

/// The page after signing out, which also removes the cookie. Not a redirect to the sign-in:
/// under `serve --dev` that would sign the user in again at once.
fn signed_out(state: &AdminState) -> Response {
    let mut response =
        page(StatusCode::OK, "Signed out", &format!("<p>You are signed out.</p>{SIGN_IN_AGAIN}"));
    if let Ok(value) = state.access.forget_session().parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// What `/admin` and `/admin/login` answer when nobody can sign in: neither `[admin.oidc]` nor
/// `serve --dev`. A page rather than a bare 404, since the log names `/admin` at start.
pub fn not_configured() -> Response {
    let body = "<p>Nobody can sign in to the admin UI: sign-in is not configured.</p>\
                <p>To enable it, add an <code>[admin.oidc]</code> section to the configuration file \
                (<code>issuer</code>, <code>client_id</code>, <code>required_role</code>) and restart \
                mcpgate. Automation can use the admin API, <code>/admin/api</code>, with the \
                <code>admin.bootstrap_token</code> of the configuration as a bearer token.</p>";
    page(StatusCode::OK, "Sign-in is not configured", body)
}

const SIGN_IN_AGAIN: &str = "<p><a href=\"/admin/login\">Sign in again</a></p>";

/// A plain page saying why the sign-in did not happen.
fn refused(status: StatusCode, reason: &str) -> Response {
    page(status, "Sign-in", &format!("<p>{}</p>{SIGN_IN_AGAIN}", escape(reason)))
}

/// A plain page: a heading and `body`, HTML its callers have escaped.
fn page(status: StatusCode, heading: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{heading} — mcpgate</title></head>\
         <body><h1>{heading}</h1>{body}</body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use serde_json::json;

    use super::*;
    use crate::outbound::testing::{Reply, Stub, assert_passes_ignoring_env_proxy, json};

    /// The identity provider at `base`, by the path of a request line: its metadata, a token
    /// endpoint answering `token`, and an empty key set.
    fn identity_provider(base: &str, line: &str, token: &Value) -> Reply {
        let path = line.split(' ').nth(1).unwrap_or_default().trim_start_matches(base);
        match path {
            "/.well-known/oauth-authorization-server" => json(
                200,
                &json!({
                    "issuer": base,
                    "jwks_uri": format!("{base}/jwks"),
                    "authorization_endpoint": format!("{base}/authorize"),
                    "token_endpoint": format!("{base}/token"),
                }),
            ),
            "/token" => json(200, token),
            "/jwks" => json(200, &json!({"keys": []})),
            _ => json(404, &json!({})),
        }
    }

    fn config(issuer: &str, http: &str) -> Config {
        let text = format!(
            "[http]\n{http}\n[store]\n[auth]\nmode = \"none\"\n\
             [admin.oidc]\nissuer = \"{issuer}\"\nclient_id = \"mcpgate-admin\"\nrequired_role = \"admin\""
        );
        Config::parse(&text, &[]).unwrap()
    }

    #[test]
    fn a_sign_in_leads_only_to_paths_under_admin() {
        for good in
            ["/admin", "/admin/servers/pets", "/admin/audit", "/admin?x=1", "/admin/servers/a-b?q=%2F%2F"]
        {
            assert_eq!(local_next(good), Some(good), "{good}");
        }
        let bad = [
            "//evil.example",
            "https://evil.example",
            "https://evil.example/admin",
            "/\\evil.example",
            "/admin\\evil.example",
            "/admin//evil.example",
            "/admin/../evil",
            "/admin/./x",
            "/administrator",
            "/adminx",
            "admin",
            "",
            "/admin/servers/a b",
            "/admin/\r\nSet-Cookie:x",
            "/admin/%2e%2E/evil",
            "/admin/.%2e",
            "/admin/é",
            "javascript:alert(1)",
        ];
        for bad in bad {
            assert_eq!(local_next(bad), None, "{bad}");
        }
        assert_eq!(local_next(&format!("/admin/{}", "a".repeat(MAX_NEXT_BYTES))), None);
        assert_eq!(next_of(Some("next=%2F%2Fevil.example")), None);
        assert_eq!(next_of(Some("next=https%3A%2F%2Fevil.example")), None);
        assert_eq!(next_of(Some("next=%2Fadmin%2Fservers%2Fpets")).as_deref(), Some("/admin/servers/pets"));
        assert_eq!(next_of(Some("x=1")), None);
        assert_eq!(next_of(None), None);
    }

    #[test]
    fn the_login_path_carries_the_page() {
        assert_eq!(login_path("/admin"), "/admin/login");
        assert_eq!(login_path("/admin/servers/pets"), "/admin/login?next=%2Fadmin%2Fservers%2Fpets");
        assert_eq!(login_path("/admin/audit?limit=5"), "/admin/login?next=%2Fadmin%2Faudit%3Flimit%3D5");
        assert_eq!(login_path("/admin//evil.example"), "/admin/login");
        assert_eq!(
            next_of(Some(&login_path("/admin/audit?limit=5")[13..])).as_deref(),
            Some("/admin/audit?limit=5")
        );
    }

    #[test]
    fn the_state_carries_the_page_through_the_identity_provider() {
        assert_eq!(carried(&carry("r4nd0m", None)), ("r4nd0m", None));
        let state = carry("r4nd0m", Some("/admin/servers/pets"));
        assert_eq!(carried(&state), ("r4nd0m", Some("/admin/servers/pets".to_owned())));
        // A `next` put in the state elsewhere is not followed.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for forged in ["//evil.example", "https://evil.example"] {
            assert_eq!(carried(&format!("r4nd0m.{}", b64.encode(forged))), ("r4nd0m", None));
        }
        assert_eq!(carried("r4nd0m.%%%"), ("r4nd0m", None));
    }

    #[tokio::test]
    async fn redeems_the_code_at_the_identity_provider_itself() {
        let base: Arc<OnceLock<String>> = Arc::default();
        let known = base.clone();
        let refused = json!({"error": "invalid_grant"});
        let idp = Stub::start(move |line| identity_provider(known.get().unwrap(), line, &refused)).await;
        base.set(format!("http://{}", idp.addr)).unwrap();
        let signin = SignIn::new(&config(base.get().unwrap(), "")).await.unwrap();
        let err = redeem(signin.oidc.as_ref().unwrap(), "code", "verifier", "nonce").await.unwrap_err();
        assert!(err.contains("(invalid_grant, HTTP 200)"), "{err}");
        assert_eq!(
            idp.seen(),
            ["GET /.well-known/oauth-authorization-server HTTP/1.1", "POST /token HTTP/1.1"]
        );
    }

    #[tokio::test]
    async fn refuses_a_token_answer_larger_than_the_cap() {
        let base: Arc<OnceLock<String>> = Arc::default();
        let known = base.clone();
        let huge = json!({"id_token": "x".repeat(MAX_TOKEN_RESPONSE_BYTES as usize)});
        let idp = Stub::start(move |line| identity_provider(known.get().unwrap(), line, &huge)).await;
        base.set(format!("http://{}", idp.addr)).unwrap();
        let signin = SignIn::new(&config(base.get().unwrap(), "")).await.unwrap();
        let err = redeem(signin.oidc.as_ref().unwrap(), "code", "verifier", "nonce").await.unwrap_err();
        assert_eq!(err, "the token endpoint's answer is too large");
    }

    #[tokio::test]
    async fn ignores_proxies_named_by_the_environment() {
        let test = "admin::signin::tests::redeems_the_code_at_the_identity_provider_itself";
        assert_passes_ignoring_env_proxy(test).await;
    }

    #[tokio::test]
    async fn reaches_the_identity_provider_through_the_configured_proxy() {
        // A token the verifier looks up the key of, which the empty key set lacks.
        let part = |it: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(it.to_string());
        let id_token = format!(
            "{}.{}.c2ln",
            part(json!({"alg": "RS256", "kid": "k1"})),
            part(json!({"iss": "http://idp.invalid", "aud": "mcpgate-admin", "sub": "ada"}))
        );
        let issued = json!({"id_token": id_token});
        // `idp.invalid` never resolves (RFC 6761): only the proxy can answer for it.
        let proxy = Stub::start(move |line| identity_provider("http://idp.invalid", line, &issued)).await;
        let http = format!("outbound_proxy = \"http://{}\"", proxy.addr);
        let signin = SignIn::new(&config("http://idp.invalid", &http)).await.unwrap();
        let err = redeem(signin.oidc.as_ref().unwrap(), "code", "verifier", "nonce").await.unwrap_err();
        assert!(err.starts_with("the ID token is not valid"), "{err}");
        assert_eq!(
            proxy.seen(),
            [
                "GET http://idp.invalid/.well-known/oauth-authorization-server HTTP/1.1",
                "POST http://idp.invalid/token HTTP/1.1",
                "GET http://idp.invalid/jwks HTTP/1.1",
            ]
        );
    }
}
