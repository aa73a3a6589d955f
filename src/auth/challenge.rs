//! What a client is told when it must (re)authenticate: the Protected Resource Metadata document
//! of a hosted server (RFC 9728) and the `WWW-Authenticate: Bearer` challenges (RFC 6750, with
//! MCP's `resource_metadata` and step-up `scope`).

use serde_json::{Value, json};

/// A hosted server as an OAuth protected resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The canonical URL of the server: `{public_url}/mcp/{slug}`.
    pub url: String,
    /// Where its metadata document is served.
    pub metadata_url: String,
    pub name: String,
    pub authorization_servers: Vec<String>,
    /// The scopes a client may ask for, least privilege first.
    pub scopes_supported: Vec<String>,
    /// The scopes every request needs; the first challenge asks for these.
    pub required_scopes: Vec<String>,
}

impl Resource {
    /// The RFC 9728 document; `resource` is exactly the canonical URL clients connect to.
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.url,
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": self.name,
        })
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials: 401 without an error code (RFC 6750 §3.1).
    Missing,
    /// A token was sent and is not acceptable: 401 `invalid_token`.
    InvalidToken { description: String },
    /// The token lacks scopes this request needs: 403 `insufficient_scope`, naming all of them.
    InsufficientScope { scopes: Vec<String>, description: String },
    /// The request carries credentials in a way that is refused (a token in the query string,
    /// two tokens): 400 `invalid_request`.
    InvalidRequest { description: String },
}

impl Challenge {
    pub fn status(&self) -> u16 {
        match self {
            Challenge::Missing | Challenge::InvalidToken { .. } => 401,
            Challenge::InsufficientScope { .. } => 403,
            Challenge::InvalidRequest { .. } => 400,
        }
    }

    /// The `WWW-Authenticate` header value.
    pub fn header(&self, resource: &Resource) -> String {
        let mut params = vec![("resource_metadata", resource.metadata_url.clone())];
        let scopes = |list: &[String]| list.join(" ");
        match self {
            Challenge::Missing => {
                if !resource.required_scopes.is_empty() {
                    params.push(("scope", scopes(&resource.required_scopes)));
                }
            }
            Challenge::InvalidToken { description } => {
                params.insert(0, ("error", "invalid_token".to_owned()));
                params.push(("error_description", description.clone()));
                if !resource.required_scopes.is_empty() {
                    params.push(("scope", scopes(&resource.required_scopes)));
                }
            }
            Challenge::InsufficientScope { scopes: needed, description } => {
                params.insert(0, ("error", "insufficient_scope".to_owned()));
                params.push(("scope", scopes(needed)));
                params.push(("error_description", description.clone()));
            }
            Challenge::InvalidRequest { description } => {
                params.insert(0, ("error", "invalid_request".to_owned()));
                params.push(("error_description", description.clone()));
            }
        }
        let params: Vec<String> =
            params.into_iter().map(|(key, value)| format!("{key}=\"{}\"", quote(&value))).collect();
        format!("Bearer {}", params.join(", "))
    }

    /// The JSON body sent with the challenge (RFC 6750 leaves it open; this mirrors the header).
    pub fn body(&self) -> Value {
        match self {
            Challenge::Missing => {
                json!({"error": "unauthorized", "error_description": "a bearer token is required"})
            }
            Challenge::InvalidToken { description } => {
                json!({"error": "invalid_token", "error_description": description})
            }
            Challenge::InsufficientScope { scopes, description } => {
                json!({"error": "insufficient_scope", "error_description": description, "scope": scopes.join(" ")})
            }
            Challenge::InvalidRequest { description } => {
                json!({"error": "invalid_request", "error_description": description})
            }
        }
    }
}

/// The content of an RFC 9110 quoted-string: `"` and `\` escaped, control characters dropped.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource() -> Resource {
        Resource {
            url: "https://mcp.example.com/mcp/pets".to_owned(),
            metadata_url: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/pets".to_owned(),
            name: "Pets".to_owned(),
            authorization_servers: vec!["https://idp.example.com".to_owned()],
            scopes_supported: vec!["pets:read".to_owned(), "pets:write".to_owned()],
            required_scopes: vec!["pets:read".to_owned()],
        }
    }

    #[test]
    fn metadata_names_the_exact_resource() {
        assert_eq!(
            resource().metadata(),
            json!({
                "resource": "https://mcp.example.com/mcp/pets",
                "authorization_servers": ["https://idp.example.com"],
                "scopes_supported": ["pets:read", "pets:write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Pets"
            })
        );
    }

    #[test]
    fn challenges_follow_rfc_6750_and_mcp() {
        let resource = resource();
        let metadata =
            "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp/pets\"";
        assert_eq!(Challenge::Missing.header(&resource), format!("Bearer {metadata}, scope=\"pets:read\""));
        let invalid = Challenge::InvalidToken { description: "the token \"expired\"".to_owned() };
        assert_eq!(invalid.status(), 401);
        assert_eq!(
            invalid.header(&resource),
            format!(
                "Bearer error=\"invalid_token\", {metadata}, error_description=\"the token \\\"expired\\\"\", scope=\"pets:read\""
            )
        );
        let step_up = Challenge::InsufficientScope {
            scopes: vec!["pets:read".to_owned(), "pets:write".to_owned()],
            description: "addPet needs pets:write".to_owned(),
        };
        assert_eq!(step_up.status(), 403);
        assert_eq!(
            step_up.header(&resource),
            format!(
                "Bearer error=\"insufficient_scope\", {metadata}, scope=\"pets:read pets:write\", error_description=\"addPet needs pets:write\""
            )
        );
        let query =
            Challenge::InvalidRequest { description: "tokens in the query string are refused".to_owned() };
        assert_eq!(query.status(), 400);
    }

    #[test]
    fn quoting_cannot_break_the_header() {
        assert_eq!(quote("a\"b\\c\r\nd"), "a\\\"b\\\\cd");
    }
}
