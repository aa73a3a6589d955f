//! mcpgate as an OAuth client at a token endpoint: the form POST of a grant, client
//! authentication (`client_secret_basic`, `client_secret_post`, `private_key_jwt`), and the
//! answer read within a size and time limit.
//!
//! No token or secret is ever part of an error: errors carry the OAuth error code and the
//! authorization server's host.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use url::Url;
use url::form_urlencoded::{Serializer, byte_serialize};
use zeroize::Zeroizing;

use super::assertion::AssertionKey;
use crate::config::{ClientAuth, GrantConfig};
use crate::outbound;
use crate::secrets::Secret;

/// Token responses are small; anything larger is not one.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TokenEndpoint {
    url: Url,
    client_id: String,
    authentication: Authentication,
    http: reqwest::Client,
}

enum Authentication {
    Basic(Secret),
    Post(Secret),
    PrivateKeyJwt(AssertionKey),
}

/// A successful token response.
#[derive(Deserialize)]
pub struct Issued {
    pub access_token: Secret,
    /// Seconds; some older endpoints (ADFS, Entra v1) send it as a string.
    #[serde(default, deserialize_with = "seconds")]
    pub expires_in: Option<u64>,
    /// For the authorization code and refresh token grants.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The scopes granted, when they differ from those asked for (RFC 6749 §5.1).
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An OAuth error response (RFC 6749 §5.2), with Entra's `suberror` when present.
    #[error("the authorization server refused: {code}")]
    Refused { code: String, suberror: Option<String> },
    #[error("cannot reach the authorization server {host}: {cause}")]
    Unreachable { host: String, cause: String },
    #[error("the authorization server {host} gave an unusable answer ({status}): {reason}")]
    Unusable { host: String, status: u16, reason: String },
}

impl TokenEndpoint {
    pub fn new(url: Url, config: &GrantConfig) -> Result<TokenEndpoint, String> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!("token endpoint {url} is not an http(s) URL"));
        }
        let secret = |field: &Option<Secret>, name: &str| {
            field
                .clone()
                .filter(|it| it.expose().is_some())
                .ok_or_else(|| format!("client_auth `{name}` needs `client_secret`"))
        };
        let authentication = match config.client_auth {
            ClientAuth::ClientSecretBasic => {
                Authentication::Basic(secret(&config.client_secret, "client_secret_basic")?)
            }
            ClientAuth::ClientSecretPost => {
                Authentication::Post(secret(&config.client_secret, "client_secret_post")?)
            }
            ClientAuth::PrivateKeyJwt => {
                let pem = config
                    .private_key
                    .as_ref()
                    .and_then(Secret::expose)
                    .ok_or("client_auth `private_key_jwt` needs `private_key`")?;
                let algorithm = config.signing_algorithm.as_deref().unwrap_or("RS256");
                Authentication::PrivateKeyJwt(AssertionKey::new(
                    pem,
                    algorithm,
                    config.private_key_id.clone(),
                )?)
            }
        };
        // Direct: `http.outbound_proxy` does not reach here yet, since hosted servers' credentials
        // are built without the `[http]` configuration.
        let policy = outbound::Policy { timeout: Some(TIMEOUT), ..outbound::Policy::direct() };
        let http = outbound::client(&policy).map_err(|err| err.to_string())?;
        Ok(TokenEndpoint { url, client_id: config.client_id.clone(), authentication, http })
    }

    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("(unknown)")
    }

    /// POSTs `grant` (the grant's own parameters) with the client's authentication.
    pub async fn request(&self, grant: &[(&str, &str)]) -> Result<Issued, Error> {
        let mut response = self.prepare(grant)?.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let capped = outbound::read_capped(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|err| self.unreachable(&err))?;
        if capped.cut {
            return Err(self.unusable(status.as_u16(), "the answer is too large"));
        }
        let bytes = capped.body;
        if status.is_success() {
            return serde_json::from_slice::<Issued>(&bytes)
                .map_err(|_| self.unusable(status.as_u16(), "not a token response"));
        }
        #[derive(Deserialize)]
        struct Refusal {
            error: String,
            suberror: Option<String>,
        }
        match serde_json::from_slice::<Refusal>(&bytes) {
            Ok(refusal) => Err(Error::Refused {
                code: code(&refusal.error),
                suberror: refusal.suberror.map(|it| code(&it)),
            }),
            Err(_) => Err(self.unusable(status.as_u16(), "not an OAuth error response")),
        }
    }

    /// POSTs `form` with the client's authentication where no answer but the status matters, as
    /// for RFC 7009 revocation (200 whether or not the token was known).
    pub async fn notify(&self, form: &[(&str, &str)]) -> Result<(), Error> {
        let response = self.prepare(form)?.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(self.unusable(status.as_u16(), "refused"))
    }

    /// The POST of `grant`, authenticated.
    fn prepare(&self, grant: &[(&str, &str)]) -> Result<reqwest::RequestBuilder, Error> {
        let mut form = Serializer::new(String::new());
        form.extend_pairs(grant);
        let mut request = self.http.post(self.url.clone());
        match &self.authentication {
            Authentication::Basic(secret) => {
                // RFC 6749 §2.3.1: both parts are form-encoded before base64.
                let encode = |it: &str| byte_serialize(it.as_bytes()).collect::<String>();
                let pair = Zeroizing::new(format!(
                    "{}:{}",
                    encode(&self.client_id),
                    encode(secret.expose().unwrap_or_default())
                ));
                let value = Zeroizing::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                ));
                let mut header = reqwest::header::HeaderValue::from_str(&value)
                    .map_err(|_| self.unusable(0, "bad client id"))?;
                header.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, header);
            }
            Authentication::Post(secret) => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", secret.expose().unwrap_or_default());
            }
            Authentication::PrivateKeyJwt(key) => {
                // The audience is the token endpoint, which every authorization server accepts.
                let assertion =
                    key.sign(&self.client_id, self.url.as_str()).map_err(|it| self.unusable(0, &it))?;
                form.append_pair("client_id", &self.client_id);
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.append_pair("client_assertion", &assertion);
            }
        }
        Ok(request
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form.finish()))
    }

    fn unreachable(&self, err: &reqwest::Error) -> Error {
        let cause = if err.is_timeout() {
            format!("no answer within {TIMEOUT:?}")
        } else {
            outbound::root_cause(err)
        };
        Error::Unreachable { host: self.host().to_owned(), cause }
    }

    fn unusable(&self, status: u16, reason: &str) -> Error {
        Error::Unusable { host: self.host().to_owned(), status, reason: reason.to_owned() }
    }
}

fn seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Seconds>::deserialize(deserializer)? {
        Some(Seconds::Number(it)) => Some(it),
        Some(Seconds::Text(it)) => it.trim().parse().ok(),
        Some(Seconds::Other(_)) | None => None,
    })
}

/// An error code as sent, if it looks like one (RFC 6749 allows only printable ASCII); it is
/// shown to users, so nothing else of the answer is.
fn code(raw: &str) -> String {
    let clean: String = raw.chars().filter(|it| it.is_ascii_alphanumeric() || *it == '_').take(64).collect();
    if clean.is_empty() { "unknown_error".to_owned() } else { clean }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::outbound::testing::{Stub, assert_passes_ignoring_env_proxy, json};

    #[tokio::test]
    async fn posts_the_grant_to_the_endpoint_itself() {
        let server = Stub::start(|_| json(200, &json!({"access_token": "t0k3n", "expires_in": 60}))).await;
        let config: GrantConfig = toml::from_str(
            "client_id = \"mcpgate\"\nclient_auth = \"client_secret_post\"\nclient_secret = \"s3cret\"",
        )
        .unwrap();
        let endpoint = TokenEndpoint::new(server.url("/token"), &config).unwrap();
        let issued = endpoint.request(&[("grant_type", "client_credentials")]).await.unwrap();
        assert_eq!((issued.access_token.expose(), issued.expires_in), (Some("t0k3n"), Some(60)));
        assert_eq!(server.seen(), ["POST /token HTTP/1.1"]);
    }

    #[tokio::test]
    async fn ignores_proxies_named_by_the_environment() {
        let test = "credentials::token_endpoint::tests::posts_the_grant_to_the_endpoint_itself";
        assert_passes_ignoring_env_proxy(test).await;
    }

    #[tokio::test]
    async fn refuses_an_answer_larger_than_a_token_response() {
        let token = "x".repeat(MAX_RESPONSE_BYTES as usize);
        let server = Stub::start(move |_| json(200, &json!({"access_token": token}))).await;
        let config: GrantConfig =
            toml::from_str("client_id = \"mcpgate\"\nclient_secret = \"s3cret\"").unwrap();
        let endpoint = TokenEndpoint::new(server.url("/token"), &config).unwrap();
        match endpoint.request(&[("grant_type", "client_credentials")]).await {
            Err(Error::Unusable { status: 200, reason, .. }) => assert_eq!(reason, "the answer is too large"),
            Err(other) => panic!("expected Unusable, got {other}"),
            Ok(_) => panic!("expected Unusable, got a token"),
        }
    }

    #[test]
    fn reads_expires_in_as_number_or_text() {
        let read = |json: &str| serde_json::from_str::<super::Issued>(json).unwrap().expires_in;
        assert_eq!(read(r#"{"access_token":"t","expires_in":3599}"#), Some(3599));
        assert_eq!(read(r#"{"access_token":"t","expires_in":"3599"}"#), Some(3599));
        assert_eq!(read(r#"{"access_token":"t","expires_in":-1}"#), None);
        assert_eq!(read(r#"{"access_token":"t"}"#), None);
    }

    #[test]
    fn error_codes_are_cleaned() {
        assert_eq!(code("invalid_grant"), "invalid_grant");
        assert_eq!(code("<script>alert(1)</script>"), "scriptalert1script");
        assert_eq!(code(""), "unknown_error");
        assert_eq!(code(&"x".repeat(500)).len(), 64);
    }
}
