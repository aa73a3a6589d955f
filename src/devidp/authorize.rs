//! `GET /dev-idp/authorize`: the authorization code flow with PKCE (S256 required), signing the
//! configured user in without a login page.
//!
//! Invariant (RFC 6749 §4.1.2.1): the user agent is sent back to a redirect URI only once the
//! client is known and the URI is exactly one it registered; before that, errors are 400 JSON.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::{
    DevIdp, GRANT_AUTHORIZATION_CODE, OAuthError, Params, random_token, requested_scope, resource_indicator,
    unix_now,
};

/// How long a code can be exchanged (RFC 6749 §4.1.2 recommends at most ten minutes).
const CODE_LIFETIME_SECS: u64 = 60;

/// What a code stands for, until the token endpoint takes it (once).
pub(super) struct CodeGrant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    /// Whether the authorization request named `redirect_uri`; then the token request must too.
    pub(super) redirect_uri_sent: bool,
    pub(super) code_challenge: String,
    pub(super) resource: Option<String>,
    pub(super) scope: Vec<String>,
    pub(super) subject: String,
    pub(super) expires_at: u64,
}

/// An error to report at the client's redirect URI (RFC 6749 §4.1.2.1).
struct Redirected {
    code: &'static str,
    description: &'static str,
}

pub(super) async fn authorize(State(idp): State<DevIdp>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let (redirect_uri, client_id) = match redirect_target(&idp, &params) {
        Ok(it) => it,
        Err(err) => return err.into_response(),
    };
    // Whatever else is wrong, `state` is sent back; a repeated one is not trusted.
    let state = params.get("state").ok().flatten();
    let location = match grant(&idp, &params, &client_id, &redirect_uri) {
        Ok(code) => {
            tracing::info!(client_id = %client_id, "dev-idp issued an authorization code");
            redirect(&redirect_uri, &[("code", &code)], state, idp.issuer())
        }
        Err(err) => redirect(
            &redirect_uri,
            &[("error", err.code), ("error_description", err.description)],
            state,
            idp.issuer(),
        ),
    };
    match HeaderValue::try_from(location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => OAuthError::server_error("the redirect URI cannot be used").into_response(),
    }
}

/// The client's redirect URI for this request, if the client is known and the URI registered.
fn redirect_target(idp: &DevIdp, params: &Params) -> Result<(String, String), OAuthError> {
    let client_id = params.require("client_id")?;
    let client = idp.inner.lock_clients().get(client_id).cloned();
    let client = client.ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    let redirect_uri = match params.get("redirect_uri")? {
        Some(uri) if client.redirect_uris.iter().any(|it| it == uri) => uri.to_owned(),
        Some(_) => return Err(OAuthError::invalid_request("redirect_uri is not registered for this client")),
        // Without one, the only registered URI is meant; with several, the client must say which.
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => return Err(OAuthError::invalid_request("redirect_uri is missing")),
        },
    };
    Ok((redirect_uri, client.id))
}

/// Checks the rest of the request and stores a code for it.
fn grant(idp: &DevIdp, params: &Params, client_id: &str, redirect_uri: &str) -> Result<String, Redirected> {
    let invalid_request = |description| Redirected { code: "invalid_request", description };
    let repeated = |_| invalid_request("a parameter is repeated");
    let allowed =
        idp.inner.lock_clients().get(client_id).is_some_and(|it| it.allows(GRANT_AUTHORIZATION_CODE));
    if !allowed {
        return Err(Redirected {
            code: "unauthorized_client",
            description: "the client did not register the authorization_code grant",
        });
    }
    match params.get("response_type").map_err(repeated)? {
        Some("code") => {}
        Some(_) => {
            return Err(Redirected {
                code: "unsupported_response_type",
                description: "response_type must be code",
            });
        }
        None => return Err(invalid_request("response_type is missing")),
    }
    let code_challenge = params
        .get("code_challenge")
        .map_err(repeated)?
        .ok_or(invalid_request("code_challenge is required (PKCE)"))?;
    if params.get("code_challenge_method").map_err(repeated)? != Some("S256") {
        return Err(invalid_request("code_challenge_method must be S256"));
    }
    if !is_s256_challenge(code_challenge) {
        return Err(invalid_request("code_challenge is not a base64url SHA-256 digest"));
    }
    let resource = match params.get("resource").map_err(repeated)? {
        Some(value) => Some(resource_indicator(value).map_err(|_| Redirected {
            code: "invalid_target",
            description: "resource must be an absolute URI without a fragment",
        })?),
        None => None,
    };
    let scopes = &idp.inner.scopes;
    let scope = requested_scope(params.get("scope").map_err(repeated)?, scopes, scopes).map_err(|_| {
        Redirected { code: "invalid_scope", description: "a requested scope is not available" }
    })?;
    let code =
        random_token().map_err(|_| Redirected { code: "server_error", description: "no randomness" })?;
    let grant = CodeGrant {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        redirect_uri_sent: params.get("redirect_uri").ok().flatten().is_some(),
        code_challenge: code_challenge.to_owned(),
        resource,
        scope,
        subject: idp.inner.user.clone(),
        expires_at: unix_now() + CODE_LIFETIME_SECS,
    };
    idp.inner.lock_codes().insert(code.clone(), grant);
    Ok(code)
}

/// `redirect_uri` with `pairs`, `state` and `iss` (RFC 9207) added to its query.
fn redirect(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>, issuer: &str) -> String {
    // Registered URIs were parsed at registration; should one not parse now, it is used as is.
    let Ok(mut url) = Url::parse(redirect_uri) else { return redirect_uri.to_owned() };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url.into()
}

/// A S256 challenge is the unpadded base64url of 32 bytes: 43 characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|it| it.len() == 32)
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(code_verifier)) == code_challenge`, for a well-formed verifier.
pub(super) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|it| it.is_ascii_alphanumeric() || matches!(it, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    super::same_secret(&URL_SAFE_NO_PAD.encode(digest), challenge)
}
