//! The door of one hosted server: every MCP request must carry a bearer token in the
//! `Authorization` header that the server's [`Verifier`] accepts and whose scopes cover the
//! server's. [`Guard::authenticate`] reads only the request's head; the MCP edge, which reads
//! the JSON-RPC envelope, asks [`Guard::step_up`] whether a tool needs more scopes.
//!
//! Invariant: no request reaches rmcp, and so no tool, without passing here (auth mode `jwt`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{StatusCode, header, request};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::verified::Verified;
use super::{Challenge, Claims, Resource, Verifier, VerifyError};
use crate::secrets::Secret;

/// Who is calling: the verified claims of the request's token, and the token itself, which
/// only token exchange uses (as the subject token it is sent to the authorization server, never
/// to a backend).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Shared with [`Verified`], which may hand the same claims to the token's next request.
    pub claims: Arc<Claims>,
    pub token: Secret,
}

impl Caller {
    pub fn has_scopes(&self, scopes: &[String]) -> bool {
        scopes.iter().all(|it| self.claims.scopes.contains(it))
    }
}

#[derive(Clone)]
pub struct Guard {
    verifier: Verifier,
    /// Tokens this server verified recently; shared by the guard's clones.
    verified: Arc<Verified>,
    pub resource: Resource,
    /// Whether `tools/list` hides the tools the caller's scopes do not allow.
    pub filter_tools: bool,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum Refusal {
    Challenge(Challenge),
    /// The issuer's keys could not be fetched yet: not the client's fault.
    KeysUnavailable,
}

impl Guard {
    pub fn new(verifier: Verifier, resource: Resource, filter_tools: bool) -> Guard {
        Guard { verifier, verified: Arc::default(), resource, filter_tools }
    }

    /// The caller whose bearer token `request` carries, if it is accepted and has the server's
    /// scopes.
    pub async fn authenticate(&self, request: &request::Parts) -> Result<Caller, Refusal> {
        let refuse = |challenge| Err(Refusal::Challenge(challenge));
        // RFC 6750 §2.3 allows `access_token` in the query; MCP forbids it, and a token in a URL
        // ends up in logs.
        let query = request.uri.query().unwrap_or_default();
        if query.split('&').any(|pair| pair.split('=').next() == Some("access_token")) {
            return refuse(Challenge::InvalidRequest {
                description: "tokens in the query string are refused; send an Authorization header"
                    .to_owned(),
            });
        }
        let mut values = request.headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if request.headers.contains_key(header::AUTHORIZATION) {
                refuse(Challenge::InvalidRequest {
                    description: "more than one Authorization header".to_owned(),
                })
            } else {
                refuse(Challenge::Missing)
            };
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|it| it.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(token) = token.filter(|it| !it.is_empty()) else {
            return refuse(Challenge::Missing);
        };
        let claims = match self.verified.get(token) {
            Some(claims) => Ok(claims),
            // Boxed: verifying (and fetching keys) is what the cache spares most calls.
            None => Box::pin(self.verifier.verify(token)).await.map(|claims| {
                let claims = Arc::new(claims);
                self.verified.put(token, claims.clone());
                claims
            }),
        };
        let claims = match claims {
            Ok(claims) => claims,
            Err(VerifyError::KeysUnavailable) => return Err(Refusal::KeysUnavailable),
            Err(err) => return refuse(Challenge::InvalidToken { description: err.to_string() }),
        };
        let caller = Caller { claims, token: Secret::new(token) };
        if !caller.has_scopes(&self.resource.required_scopes) {
            return refuse(Challenge::InsufficientScope {
                scopes: self.resource.required_scopes.clone(),
                description: "this server needs more scopes".to_owned(),
            });
        }
        Ok(caller)
    }

    /// The challenge for a call of `tool`, which needs `scopes`, when `caller` lacks some.
    pub fn step_up(&self, caller: &Caller, tool: &str, scopes: &[String]) -> Option<Refusal> {
        if caller.has_scopes(scopes) {
            return None;
        }
        // The scopes the token has are asked for again with the missing ones: clients such as
        // the TypeScript SDK request exactly the challenge's scopes on step-up, and would
        // otherwise trade the scopes they had for the new ones.
        let needed: BTreeSet<String> = self
            .resource
            .required_scopes
            .iter()
            .chain(scopes)
            .chain(&caller.claims.scopes)
            .cloned()
            .collect();
        Some(Refusal::Challenge(Challenge::InsufficientScope {
            scopes: needed.into_iter().collect(),
            description: format!("{tool} needs more scopes"),
        }))
    }

    /// The answer to a refused request: a challenge naming this server's metadata, or 503.
    pub fn refuse(&self, refusal: Refusal) -> Response {
        match refusal {
            Refusal::Challenge(challenge) => {
                let status = StatusCode::from_u16(challenge.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                let header = challenge.header(&self.resource);
                (status, [(header::WWW_AUTHENTICATE, header)], axum::Json(challenge.body())).into_response()
            }
            Refusal::KeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "error": "temporarily_unavailable",
                    "error_description": "the authorization server's keys cannot be fetched",
                })),
            )
                .into_response(),
        }
    }
}
