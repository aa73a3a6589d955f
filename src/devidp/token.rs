//! `POST /dev-idp/token`: client authentication, then one grant: `authorization_code` (PKCE),
//! `refresh_token` (rotating, with reuse detection), `client_credentials`, or token exchange
//! (in `exchange`).
//!
//! A refresh token is `{family}.{secret}`: every token rotated from one code grant shares its
//! family, which is stored with the secret of its one live token.
//!
//! Invariant: codes and refresh tokens are single-use: a code, or a refresh token's family, is
//! taken out of its store before the request is checked, and only a successful rotation puts the
//! family back, with a new live token. So a second use of a code finds nothing, and a second use
//! of a refresh token either finds nothing or ends its family (RFC 9700 §4.14.2): the tokens
//! rotated from it are refused too.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::authorize::pkce_matches;
use super::clients::{self, Authenticated};
use super::{
    DevIdp, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, GRANT_TOKEN_EXCHANGE,
    OAuthError, Params, exchange, random_token, requested_scope, resource_indicator, same_secret, unix_now,
};

pub(super) const ACCESS_TOKEN_LIFETIME_SECS: u64 = 3600;
const REFRESH_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// What a refresh token stands for; each use replaces it with a new one of the same family.
pub(super) struct RefreshGrant {
    family: String,
    client_id: String,
    subject: String,
    resource: Option<String>,
    scope: Vec<String>,
    expires_at: u64,
}

/// A family's live token (its secret half) and the grant it stands for.
pub(super) struct RefreshFamily {
    secret: String,
    grant: RefreshGrant,
}

/// The claims of an access token that differ between grants.
pub(super) struct Issue<'a> {
    pub(super) subject: &'a str,
    pub(super) client_id: &'a str,
    /// `aud`: one value is written as a string, several as an array.
    pub(super) audience: Vec<String>,
    pub(super) scope: &'a [String],
    /// RFC 8693 §4.1 `act`, for exchanged tokens.
    pub(super) act: Option<Value>,
}

pub(super) async fn token(State(idp): State<DevIdp>, headers: HeaderMap, body: Bytes) -> Response {
    match respond(&idp, &headers, &body) {
        Ok(body) => (super::no_store(), axum::Json(body)).into_response(),
        Err(err) => err.into_response(),
    }
}

fn respond(idp: &DevIdp, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form = headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()).is_some_and(|it| {
        it.split(';')
            .next()
            .is_some_and(|it| it.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !form {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let params = Params::parse(body);
    let grant_type = params.require("grant_type")?;
    if !super::GRANT_TYPES.contains(&grant_type) {
        return Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type is not supported",
        ));
    }
    let caller = clients::authenticate(idp, headers, &params)?;
    if !caller.client.allows(grant_type) {
        return Err(OAuthError::unauthorized_client("the client did not register this grant type"));
    }
    let response = match grant_type {
        GRANT_AUTHORIZATION_CODE => authorization_code(idp, &caller, &params),
        GRANT_REFRESH_TOKEN => refresh_token(idp, &caller, &params),
        GRANT_CLIENT_CREDENTIALS => client_credentials(idp, &caller, &params),
        GRANT_TOKEN_EXCHANGE => exchange::exchange(idp, &caller, &params),
        _ => Err(OAuthError::invalid_request("grant_type is not supported")),
    }?;
    tracing::info!(client_id = %caller.client.id, grant_type, "dev-idp issued an access token");
    Ok(response)
}

fn authorization_code(idp: &DevIdp, caller: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let code = params.require("code")?;
    let verifier = params.require("code_verifier")?;
    let redirect_uri = params.get("redirect_uri")?;
    let resource = params.get("resource")?;
    let grant = idp.inner.lock_codes().remove(code);
    let grant = grant.ok_or_else(|| OAuthError::invalid_grant("the code is unknown or was used already"))?;
    if grant.expires_at <= unix_now() {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if grant.client_id != caller.client.id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    match redirect_uri {
        Some(uri) if uri != grant.redirect_uri => {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request"));
        }
        None if grant.redirect_uri_sent => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri is required, as in the authorization request",
            ));
        }
        _ => {}
    }
    if !pkce_matches(verifier, &grant.code_challenge) {
        return Err(OAuthError::invalid_grant("the code_verifier does not match the code_challenge"));
    }
    if let Some(resource) = resource
        && grant.resource.as_deref() != Some(resource)
    {
        return Err(OAuthError::invalid_target("resource differs from the authorization request"));
    }
    let refresh = RefreshGrant {
        family: random_token()?,
        client_id: grant.client_id,
        subject: grant.subject,
        resource: grant.resource,
        scope: grant.scope,
        expires_at: unix_now() + REFRESH_TOKEN_LIFETIME_SECS,
    };
    user_tokens(idp, caller, refresh, None)
}

fn refresh_token(idp: &DevIdp, caller: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let token = params.require("refresh_token")?;
    let scope = params.get("scope")?;
    let resource = params.get("resource")?;
    let unknown = || OAuthError::invalid_grant("the refresh token is unknown or was used already");
    let (family, secret) = token.split_once('.').ok_or_else(unknown)?;
    let live = idp.inner.lock_refresh_families().remove(family).ok_or_else(unknown)?;
    if !same_secret(&live.secret, secret) {
        // A token of a live family that is not its newest: one used already, so two parties
        // hold the family's tokens. Which one is the legitimate client cannot be told, so the
        // family stays out of the store, and the newest token dies with it.
        tracing::warn!(
            client_id = %caller.client.id,
            "dev-idp revoked a refresh token family: a refresh token was used a second time"
        );
        return Err(OAuthError::invalid_grant("the refresh token was used already; its family is revoked"));
    }
    let grant = live.grant;
    if grant.expires_at <= unix_now() {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    if grant.client_id != caller.client.id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    if let Some(resource) = resource
        && grant.resource.as_deref() != Some(resource)
    {
        return Err(OAuthError::invalid_target("resource differs from the original grant"));
    }
    // RFC 6749 §6: a narrower scope applies to this access token; the new refresh token keeps
    // the original grant's.
    let narrowed = requested_scope(scope, &grant.scope, &grant.scope)?;
    let refresh = RefreshGrant { expires_at: unix_now() + REFRESH_TOKEN_LIFETIME_SECS, ..grant };
    user_tokens(idp, caller, refresh, Some(narrowed))
}

/// An access token for the user of `grant` and a new refresh token standing for `grant`, the live
/// token of its family from now on.
fn user_tokens(
    idp: &DevIdp,
    caller: &Authenticated,
    grant: RefreshGrant,
    narrowed: Option<Vec<String>>,
) -> Result<Value, OAuthError> {
    let scope = narrowed.as_deref().unwrap_or(&grant.scope);
    let audience = vec![grant.resource.clone().unwrap_or_else(|| idp.issuer().to_owned())];
    let access_token = sign(
        idp,
        Issue { subject: &grant.subject, client_id: &caller.client.id, audience, scope, act: None },
    )?;
    let mut response = bearer(access_token, scope);
    if caller.client.allows(GRANT_REFRESH_TOKEN) {
        let secret = random_token()?;
        // Base64url has no `.`, so the token splits back into its two halves unambiguously.
        let refresh_token = format!("{}.{secret}", grant.family);
        if let Value::Object(map) = &mut response {
            map.insert("refresh_token".to_owned(), json!(refresh_token));
        }
        idp.inner.lock_refresh_families().insert(grant.family.clone(), RefreshFamily { secret, grant });
    }
    Ok(response)
}

fn client_credentials(idp: &DevIdp, caller: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    if !caller.confidential {
        return Err(OAuthError::unauthorized_client("client_credentials needs a confidential client"));
    }
    let scopes = &idp.inner.scopes;
    let scope = requested_scope(params.get("scope")?, scopes, scopes)?;
    let audience = match params.get("resource")? {
        Some(resource) => resource_indicator(resource)?,
        None => idp.issuer().to_owned(),
    };
    let client_id = &caller.client.id;
    let access_token = sign(
        idp,
        Issue { subject: client_id, client_id, audience: vec![audience], scope: &scope, act: None },
    )?;
    Ok(bearer(access_token, &scope))
}

/// Signs an access token valid for `ACCESS_TOKEN_LIFETIME_SECS` from now.
pub(super) fn sign(idp: &DevIdp, issue: Issue<'_>) -> Result<String, OAuthError> {
    let now = unix_now();
    let mut claims = Map::new();
    claims.insert("iss".to_owned(), json!(idp.issuer()));
    claims.insert("sub".to_owned(), json!(issue.subject));
    claims.insert(
        "aud".to_owned(),
        match issue.audience.as_slice() {
            [one] => json!(one),
            many => json!(many),
        },
    );
    if !issue.scope.is_empty() {
        claims.insert("scope".to_owned(), json!(issue.scope.join(" ")));
    }
    claims.insert("client_id".to_owned(), json!(issue.client_id));
    claims.insert("iat".to_owned(), json!(now));
    claims.insert("exp".to_owned(), json!(now + ACCESS_TOKEN_LIFETIME_SECS));
    claims.insert("jti".to_owned(), json!(random_token()?));
    if let Some(act) = issue.act {
        claims.insert("act".to_owned(), act);
    }
    idp.inner.key.sign(&claims).ok_or_else(|| OAuthError::server_error("the token could not be signed"))
}

/// The RFC 6749 §5.1 response for an access token.
pub(super) fn bearer(access_token: String, scope: &[String]) -> Value {
    json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME_SECS,
        "scope": scope.join(" "),
    })
}
