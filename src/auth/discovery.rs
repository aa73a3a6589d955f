//! Issuer metadata discovery: RFC 8414, then OpenID Connect discovery, in the order the MCP
//! authorization spec gives.
//!
//! Invariant: metadata is used only when its `issuer` equals the configured issuer exactly.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::jwks::{Error, fetch_json, http_client};

const TIMEOUT: Duration = Duration::from_secs(10);

/// An authorization server's metadata (RFC 8414 §2), the parts the gateway uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IssuerMetadata {
    pub issuer: String,
    /// Optional in RFC 8414: a server that signs no tokens anyone verifies (a backend's own
    /// authorization server, to mcpgate) may leave it out. [`IssuerMetadata::signing_keys`] is
    /// where a verifier asks for it.
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
    #[serde(default)]
    pub registration_endpoint: Option<Url>,
    /// RFC 7009 token revocation.
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// MCP clients refuse an authorization server that does not list `S256` here.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

impl IssuerMetadata {
    /// The URL of the issuer's signing keys, which verifying its tokens needs.
    pub fn signing_keys(&self) -> Result<Url, Error> {
        self.jwks_uri.clone().ok_or_else(|| Error::Invalid {
            url: self.issuer.clone(),
            reason: "its metadata names no `jwks_uri`, so its tokens cannot be verified".to_owned(),
        })
    }
}

/// Reads the metadata of `issuer`, given exactly as tokens carry it in `iss` (a string, since
/// `https://h` and `https://h/` are different issuers but the same `Url`), connecting directly.
///
/// Candidates are tried in order while they answer with an error status; a transport failure, a
/// document that does not parse, or one naming another issuer ends the search.
pub async fn discover(issuer: &str) -> Result<IssuerMetadata, Error> {
    discover_through(issuer, None).await
}

/// As [`discover`], through `proxy` (`http.outbound_proxy`) when there is one.
pub async fn discover_through(issuer: &str, proxy: Option<&Url>) -> Result<IssuerMetadata, Error> {
    let urls = metadata_urls(issuer)?;
    let client = http_client(proxy.cloned())?;
    for url in &urls {
        let document = match fetch_json(&client, url, TIMEOUT).await {
            Ok(document) => document,
            Err(Error::Status { .. }) => continue,
            Err(err) => return Err(err),
        };
        return parse(document, url, issuer);
    }
    let tried = urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ");
    Err(Error::NoMetadata { tried })
}

fn parse(document: Value, url: &Url, issuer: &str) -> Result<IssuerMetadata, Error> {
    // The issuer is compared before the rest is read, so a foreign document is named as such.
    let found = document.get("issuer").and_then(Value::as_str).unwrap_or_default();
    if found != issuer {
        return Err(Error::IssuerMismatch {
            url: url.to_string(),
            expected: issuer.to_owned(),
            found: found.to_owned(),
        });
    }
    serde_json::from_value(document)
        .map_err(|err| Error::Invalid { url: url.to_string(), reason: err.to_string() })
}

/// Where the metadata of `issuer` may be. With a path (`https://h/tenant`): RFC 8414 with the
/// well-known segment inserted before the path, OpenID Connect the same way, then OpenID Connect
/// appended to the path. Without a path: the two well-known documents at the root.
fn metadata_urls(issuer: &str) -> Result<Vec<Url>, Error> {
    let invalid = |reason: &str| Error::Config(format!("issuer {issuer}: {reason}"));
    let url = Url::parse(issuer).map_err(|err| invalid(&err.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(invalid("not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("an issuer has no query or fragment (RFC 8414 §2)"));
    }
    // RFC 8414 §3.1: a terminating slash is removed before the path goes behind the well-known part.
    let path = url.path().trim_end_matches('/');
    let at = |path: String| {
        let mut it = url.clone();
        it.set_path(&path);
        it
    };
    Ok(if path.is_empty() {
        vec![
            at("/.well-known/oauth-authorization-server".to_owned()),
            at("/.well-known/openid-configuration".to_owned()),
        ]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    })
}

#[cfg(test)]
mod tests;
