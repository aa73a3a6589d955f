//! `[servers.credentials]`: how mcpgate authenticates to a hosted server's backend. The caller's
//! own token is never one of the choices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::openapi::ParamLocation;
use crate::secrets::{self, Keyring, Secret};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CredentialsConfig {
    /// The backend needs no credentials.
    #[default]
    None,
    /// One fixed credential for every caller: an API key, a bearer token or a user and password.
    Static(StaticCredential),
    /// A token for mcpgate itself (OAuth client credentials grant), the same for every caller.
    ClientCredentials(GrantConfig),
    /// A token for the caller, obtained with the caller's token (RFC 8693 token exchange).
    TokenExchange(GrantConfig),
    /// A token for the caller from Microsoft Entra ID's on-behalf-of flow.
    EntraObo(GrantConfig),
    /// A token for the caller from the backend's own authorization server, which the user
    /// approves once in their browser (authorization code with PKCE); kept per user and
    /// refreshed.
    AuthorizationCode(GrantConfig),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredential {
    pub scheme: StaticScheme,
    /// The header or query parameter that carries `value` (schemes `header` and `query`).
    pub name: Option<String>,
    /// The key or token (schemes `header`, `query` and `bearer`).
    pub value: Option<Secret>,
    /// Scheme `basic`.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticScheme {
    Header,
    Query,
    Bearer,
    Basic,
}

/// mcpgate as an OAuth client of the backend's authorization server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// The authorization server (`authorization_code`): its endpoints are discovered from its
    /// metadata (RFC 8414, then OpenID Connect discovery) unless configured below.
    pub issuer: Option<String>,
    /// Where users approve mcpgate (`authorization_code`).
    pub authorization_endpoint: Option<Url>,
    /// The authorization server's token endpoint. For `entra_obo`, derived from `tenant` when
    /// absent.
    pub token_endpoint: Option<Url>,
    /// RFC 7009 token revocation (`authorization_code`): told when a user disconnects.
    pub revocation_endpoint: Option<Url>,
    /// The Entra ID tenant (`entra_obo`).
    pub tenant: Option<String>,
    pub client_id: String,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// For `client_secret_basic` and `client_secret_post`.
    pub client_secret: Option<Secret>,
    /// A PKCS#8 PEM private key, for `private_key_jwt`.
    pub private_key: Option<Secret>,
    /// The `kid` of client assertions.
    pub private_key_id: Option<String>,
    /// The algorithm of client assertions: RS256 (default), PS256, ES256 or EdDSA.
    pub signing_algorithm: Option<String>,
    /// RFC 8693 `audience`: the backend, as the authorization server names it.
    pub audience: Option<String>,
    /// RFC 8707 `resource`: the backend's URL.
    pub resource: Option<String>,
    /// Scopes to ask for. Default: the called tool's scopes (from the document's `security`).
    pub scopes: Option<Vec<String>>,
    /// RFC 8693 `requested_token_type`.
    pub requested_token_type: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl CredentialsConfig {
    /// Whether the mode acts for the caller, and so needs an authenticated caller.
    pub fn per_user(&self) -> bool {
        matches!(
            self,
            CredentialsConfig::TokenExchange(_)
                | CredentialsConfig::EntraObo(_)
                | CredentialsConfig::AuthorizationCode(_)
        )
    }

    /// The header or query parameter the credential occupies in backend requests.
    pub fn parameter(&self) -> Option<(ParamLocation, &str)> {
        match self {
            CredentialsConfig::None => None,
            CredentialsConfig::Static(it) => match it.scheme {
                StaticScheme::Header => Some((ParamLocation::Header, it.name.as_deref()?)),
                StaticScheme::Query => Some((ParamLocation::Query, it.name.as_deref()?)),
                StaticScheme::Bearer | StaticScheme::Basic => Some((ParamLocation::Header, "authorization")),
            },
            _ => Some((ParamLocation::Header, "authorization")),
        }
    }

    /// Every secret field, set or not, with its name.
    fn slots(&mut self) -> Vec<(&'static str, &mut Option<Secret>)> {
        match self {
            CredentialsConfig::None => Vec::new(),
            CredentialsConfig::Static(it) => vec![("value", &mut it.value), ("password", &mut it.password)],
            CredentialsConfig::ClientCredentials(it)
            | CredentialsConfig::TokenExchange(it)
            | CredentialsConfig::EntraObo(it)
            | CredentialsConfig::AuthorizationCode(it) => {
                vec![("client_secret", &mut it.client_secret), ("private_key", &mut it.private_key)]
            }
        }
    }

    /// Every secret that is set, with the name of its field.
    fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)> {
        self.slots().into_iter().filter_map(|(name, secret)| Some((name, secret.as_mut()?))).collect()
    }

    /// Replaces every secret that is set with `placeholder` (for showing the settings).
    pub fn replace_secrets(&mut self, placeholder: &Secret) {
        for (_, secret) in self.secrets_mut() {
            *secret = placeholder.clone();
        }
    }

    /// Takes the secrets of `current` for the fields `keep` names and this leaves unset: secrets
    /// are write-only, so a change that does not mention one keeps it.
    pub fn keep_secrets_from(&mut self, current: &CredentialsConfig, keep: impl Fn(&str) -> bool) {
        let mut current = current.clone();
        let current: BTreeMap<&str, Option<Secret>> =
            current.slots().into_iter().map(|(name, secret)| (name, secret.take())).collect();
        for (name, slot) in self.slots() {
            if slot.is_none() && keep(name) {
                *slot = current.get(name).cloned().flatten();
            }
        }
    }

    /// Seals every secret for the server `slug` (for the store).
    pub fn seal(&mut self, keyring: &Keyring, slug: &str) -> Result<(), secrets::Error> {
        for (field, secret) in self.secrets_mut() {
            *secret = keyring.seal(secret, &format!("{slug}/{field}"))?;
        }
        Ok(())
    }

    /// Opens every sealed secret of the server `slug`.
    pub fn open(&mut self, keyring: &Keyring, slug: &str) -> Result<(), secrets::Error> {
        for (field, secret) in self.secrets_mut() {
            *secret = keyring.open(secret, &format!("{slug}/{field}"))?;
        }
        Ok(())
    }
}
