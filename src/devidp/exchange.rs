//! RFC 8693 token exchange: an access token this IdP issued becomes one for another audience,
//! for the same user, with an `act` claim naming the client that asked.
//!
//! Invariant: only tokens this IdP signed, still valid, are exchanged; the new token's scope is
//! never wider than the subject token's.

use serde_json::{Map, Value, json};

use super::clients::Authenticated;
use super::token::{Issue, bearer, sign};
use super::{DevIdp, OAuthError, Params, requested_scope, resource_indicator};

const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

pub(super) fn exchange(idp: &DevIdp, caller: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let subject_token = params.require("subject_token")?;
    match params.require("subject_token_type")? {
        TOKEN_TYPE_ACCESS_TOKEN | TOKEN_TYPE_JWT => {}
        _ => return Err(OAuthError::invalid_request("subject_token_type must be an access token")),
    }
    if params.get("actor_token")?.is_some() || params.get("actor_token_type")?.is_some() {
        return Err(OAuthError::invalid_request("actor tokens are not supported"));
    }
    match params.get("requested_token_type")? {
        None | Some(TOKEN_TYPE_ACCESS_TOKEN) | Some(TOKEN_TYPE_JWT) => {}
        Some(_) => return Err(OAuthError::invalid_request("only access tokens can be requested")),
    }
    let mut audience = Vec::new();
    if let Some(resource) = params.get("resource")? {
        audience.push(resource_indicator(resource)?);
    }
    if let Some(name) = params.get("audience")?
        && !audience.iter().any(|it| it == name)
    {
        audience.push(name.to_owned());
    }
    if audience.is_empty() {
        return Err(OAuthError::invalid_target("resource or audience is required"));
    }
    let claims =
        idp.inner.key.verify(subject_token, idp.issuer()).ok_or_else(|| {
            OAuthError::invalid_grant("the subject token is not a valid token of this issuer")
        })?;
    let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    if subject.is_empty() {
        return Err(OAuthError::invalid_grant("the subject token has no subject"));
    }
    let granted: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(' ')
        .filter(|it| !it.is_empty())
        .map(str::to_owned)
        .collect();
    let scope = requested_scope(params.get("scope")?, &granted, &granted)?;
    let access_token = sign(
        idp,
        Issue {
            subject,
            client_id: &caller.client.id,
            audience,
            scope: &scope,
            act: Some(actor(&caller.client.id, &claims)),
        },
    )?;
    let mut response = bearer(access_token, &scope);
    if let Value::Object(map) = &mut response {
        map.insert("issued_token_type".to_owned(), json!(TOKEN_TYPE_ACCESS_TOKEN));
    }
    Ok(response)
}

/// `{"sub": client_id}`, with the subject token's own `act` nested as the prior actor (§4.1).
fn actor(client_id: &str, subject_claims: &Map<String, Value>) -> Value {
    let mut act = Map::new();
    act.insert("sub".to_owned(), json!(client_id));
    if let Some(prior) = subject_claims.get("act") {
        act.insert("act".to_owned(), prior.clone());
    }
    Value::Object(act)
}
