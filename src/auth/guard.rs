//! The door of one hosted server: every MCP request must carry a bearer token in the
//! `Authorization` header that the server's [`Verifier`] accepts and whose scopes cover the
//! server's and, for `tools/call`, the tool's. The admitted request carries a [`Caller`].
//!
//! Invariant: no request reaches rmcp, and so no tool, without passing here (auth mode `jwt`).

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, header};

use super::{Challenge, Claims, Resource, Verifier, VerifyError};
use crate::catalog::Catalog;
use crate::secrets::Secret;

/// Who is calling: the verified claims of the request's token, and the token itself, which
/// only token exchange uses (as the subject token it is sent to the authorization server, never
/// to a backend).
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
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
    TooLarge,
}

impl Guard {
    pub fn new(verifier: Verifier, resource: Resource, filter_tools: bool) -> Guard {
        Guard { verifier, resource, filter_tools }
    }

    /// Checks the request and returns it with its [`Caller`] attached.
    pub async fn admit(
        &self,
        request: Request<Body>,
        catalog: &Catalog,
        max_body_bytes: usize,
    ) -> Result<Request<Body>, Refusal> {
        let refuse = |challenge| Err(Refusal::Challenge(challenge));
        // RFC 6750 §2.3 allows `access_token` in the query; MCP forbids it, and a token in a URL
        // ends up in logs.
        let query = request.uri().query().unwrap_or_default();
        if query.split('&').any(|pair| pair.split('=').next() == Some("access_token")) {
            return refuse(Challenge::InvalidRequest {
                description: "tokens in the query string are refused; send an Authorization header"
                    .to_owned(),
            });
        }
        let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if request.headers().contains_key(header::AUTHORIZATION) {
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
        let claims = match self.verifier.verify(token).await {
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
        let (mut parts, body) = request.into_parts();
        // A tool call's scopes depend on the tool, so the body is read here; it is handed on
        // unchanged.
        let bytes = axum::body::to_bytes(body, max_body_bytes).await.map_err(|_| Refusal::TooLarge)?;
        if let Some(tool) = called_tool(&bytes).and_then(|name| catalog.tool(&name))
            && !caller.has_scopes(&tool.scopes)
        {
            // The scopes the token has are asked for again with the missing ones: clients such as
            // the TypeScript SDK request exactly the challenge's scopes on step-up, and would
            // otherwise trade the scopes they had for the new ones.
            let needed: BTreeSet<String> = self
                .resource
                .required_scopes
                .iter()
                .chain(&tool.scopes)
                .chain(&caller.claims.scopes)
                .cloned()
                .collect();
            return refuse(Challenge::InsufficientScope {
                scopes: needed.into_iter().collect(),
                description: format!("{} needs more scopes", tool.spec.name),
            });
        }
        parts.extensions.insert(caller);
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// The tool a JSON-RPC `tools/call` request names; `None` for anything else (rmcp judges it).
fn called_tool(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Message {
        method: String,
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        name: String,
    }
    let message: Message = serde_json::from_slice(body).ok()?;
    (message.method == "tools/call").then_some(message.params?.name)
}

#[cfg(test)]
mod tests {
    use super::called_tool;

    #[test]
    fn finds_the_called_tool_only_in_tool_calls() {
        let call =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"addPet","arguments":{}}}"#;
        assert_eq!(called_tool(call).as_deref(), Some("addPet"));
        assert_eq!(called_tool(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#), None);
        assert_eq!(called_tool(b"not json"), None);
        assert_eq!(called_tool(br#"{"method":"tools/call","params":{"name":7}}"#), None);
    }
}
