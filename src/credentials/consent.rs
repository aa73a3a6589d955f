//! Mode `authorization_code`: the backend has its own authorization server, and each user
//! approves mcpgate there once, in their browser. mcpgate is a confidential OAuth client of that
//! server (client secret or `private_key_jwt`), always with PKCE (S256); its redirect URI is
//! `{public_url}/connect/{slug}/callback`.
//!
//! A call by a user who has not connected never reaches the backend: it fails with a link,
//! `/connect/{slug}/start?ticket=…`, bound to that user ([`flows`](super::flows)). The callback
//! exchanges the code and keeps the tokens in the [`Vault`]. Calls then use the access token,
//! refreshed with the refresh token shortly before it expires (one refresh per user at a time,
//! through the token cache). A refresh the authorization server refuses, or a backend refusing
//! a token just refreshed after it refused the one before, marks the connection as needing
//! consent: the next call asks again rather than failing for ever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::cache::{Key, Token, TokenCache};
use super::flows::{self, Flows, Purpose, Refused};
use super::token_endpoint::{self, Issued, TokenEndpoint};
use super::vault::{Connection, User, Vault, now};
use super::{CACHE_CAPACITY, DEFAULT_LIFETIME, Failure, MAX_LIFETIME, RENEW_MARGIN};
use crate::auth::Caller;
use crate::config::GrantConfig;
use crate::secrets::Keyring;
use crate::store::Store;

/// A backend refusing a token again within this long of refusing the one before it (which was
/// then refreshed) means the grant itself is gone.
const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

pub struct Consent {
    server: String,
    config: GrantConfig,
    endpoints: tokio::sync::Mutex<Option<Arc<Endpoints>>>,
    cache: TokenCache,
    /// Users whose token a backend refused lately, and when.
    // A std lock: held only to look up or insert.
    refused: Mutex<HashMap<User, Instant>>,
    attached: Option<Attached>,
}

/// What serving needs besides the settings: where connections are kept, the keys that seal
/// them and tickets, the authorizations under way, and names for links and pages.
pub struct Attachment {
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub flows: Flows,
    pub public_url: String,
    /// The API's name, for pages and messages.
    pub title: String,
    /// The scopes to ask for when none are configured: every tool's.
    pub scopes: Vec<String>,
    /// The authorization and token endpoints of the document's oauth2 scheme, if it has an
    /// authorization code flow: used where neither the settings nor discovery name them.
    pub document_endpoints: Option<(Url, Url)>,
}

struct Attached {
    document_endpoints: Option<(Url, Url)>,
    vault: Vault,
    keyring: Arc<Keyring>,
    flows: Flows,
    public_url: String,
    title: String,
    scopes: Vec<String>,
}

struct Endpoints {
    authorize: Url,
    token: TokenEndpoint,
    revoke: Option<TokenEndpoint>,
}

/// A connection as lists show it: never a token.
pub struct ConnectionInfo {
    pub issuer: String,
    pub subject: String,
    pub connected_at: u64,
    pub scopes: Vec<String>,
    pub expires_at: Option<u64>,
    pub needs_consent: bool,
}

/// Why a page of the connection flow cannot do what was asked: an HTTP status and words for
/// the user (never a token).
#[derive(Debug)]
pub struct PageError {
    pub status: u16,
    pub message: String,
}

fn page_error(status: u16, message: impl Into<String>) -> PageError {
    PageError { status, message: message.into() }
}

/// What the start of a connection hands the browser.
pub struct Begun {
    /// The authorization server's authorization endpoint, with the request.
    pub redirect: Url,
    /// The value of the cookie that binds the callback to this browser.
    pub cookie: String,
}

/// A connection just made.
pub struct Connected {
    pub user: User,
    /// A ticket for the page where the user sees and revokes the connection.
    pub manage: Option<String>,
}

impl Consent {
    /// The audience (else the resource) its tokens are asked for, as the call audit names it.
    pub fn audience(&self) -> Option<&str> {
        self.config.audience.as_deref().or(self.config.resource.as_deref())
    }

    pub fn new(server: &str, config: &GrantConfig) -> Result<Consent, String> {
        if let Some(issuer) = &config.issuer {
            Url::parse(issuer).map_err(|_| format!("issuer `{issuer}` is not a URL"))?;
        }
        // Without an issuer or both endpoints, the document's oauth2 scheme must give them
        // (checked when the server is built, with its document).
        let probe = config
            .token_endpoint
            .clone()
            .or_else(|| Url::parse("https://authorization-server.invalid/token").ok())
            .ok_or("no token endpoint")?;
        for url in [&config.authorization_endpoint, &config.revocation_endpoint].into_iter().flatten() {
            if !matches!(url.scheme(), "https" | "http") {
                return Err(format!("{url} is not an http(s) URL"));
            }
        }
        // Checks the client's authentication settings.
        TokenEndpoint::new(probe, config)?;
        Ok(Consent {
            server: server.to_owned(),
            config: config.clone(),
            endpoints: tokio::sync::Mutex::new(None),
            cache: TokenCache::new(CACHE_CAPACITY),
            refused: Mutex::new(HashMap::new()),
            attached: None,
        })
    }

    pub fn attach(&mut self, attachment: Attachment) -> Result<(), String> {
        let Attachment { store, keyring, flows, public_url, title, scopes, document_endpoints } = attachment;
        let config = &self.config;
        let configured = config.authorization_endpoint.is_some() && config.token_endpoint.is_some();
        if config.issuer.is_none() && !configured && document_endpoints.is_none() {
            return Err("authorization_code needs `issuer` (its endpoints are discovered), or \
                        `authorization_endpoint` and `token_endpoint`, or a document whose oauth2 scheme \
                        has an authorization code flow"
                .to_owned());
        }
        let scopes = self.config.scopes.clone().unwrap_or(scopes);
        self.attached = Some(Attached {
            document_endpoints,
            vault: Vault::new(store, keyring.clone(), &self.server),
            keyring,
            flows,
            public_url,
            title,
            scopes,
        });
        Ok(())
    }

    fn attached(&self) -> Result<&Attached, Failure> {
        self.attached.as_ref().ok_or_else(|| Failure::new("this server's connections are not set up"))
    }

    fn redirect_uri(&self, attached: &Attached) -> String {
        format!("{}/connect/{}/callback", attached.public_url, self.server)
    }

    pub fn title(&self) -> &str {
        self.attached.as_ref().map_or(self.server.as_str(), |it| it.title.as_str())
    }

    /// The access token for a call by `caller`, or a failure carrying the link that connects them.
    pub async fn authorize(&self, caller: &Caller) -> Result<(Key, Arc<Token>), Failure> {
        let attached = self.attached()?;
        let user = User { issuer: caller.claims.issuer.clone(), subject: caller.claims.subject.clone() };
        let key = cache_key(&user);
        match self.cache.get_or_fetch(&key, || self.load(attached, &user)).await {
            Ok(token) => Ok((key, token)),
            Err(failure) if failure.not_connected => Err(self.ask(attached, &user)),
            Err(failure) => Err(failure),
        }
    }

    /// The failure that asks `user` to connect, with a link of their own.
    fn ask(&self, attached: &Attached, user: &User) -> Failure {
        let Some(ticket) = flows::ticket(&attached.keyring, Purpose::Connect, &self.server, user) else {
            return Failure::new("mcpgate cannot make a connection link now. Try again later.");
        };
        let query =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("ticket", &ticket).finish();
        let link = format!("{}/connect/{}/start?{query}", attached.public_url, self.server);
        let message = format!(
            "To use {title}, connect your {title} account first: open {link} in your browser and approve \
             access, then call this tool again. The link is yours alone and works for 10 minutes.",
            title = attached.title
        );
        Failure::asking_to_connect(
            message,
            super::Connect { link: link.into(), completions: attached.flows.completions() },
        )
    }

    /// The token of `user`'s connection, refreshed if it expires soon.
    async fn load(&self, attached: &Attached, user: &User) -> Result<Token, Failure> {
        let Some(mut connection) = attached.vault.get(user).await? else {
            return Err(Failure::not_connected());
        };
        if connection.needs_consent {
            return Err(Failure::not_connected());
        }
        if let Some(token) = usable(&connection) {
            return Ok(token);
        }
        let Some(refresh_token) = connection.refresh_token.clone() else {
            self.needs_consent(attached, connection, "expired, no refresh token").await?;
            return Err(Failure::not_connected());
        };
        let endpoints = self.endpoints().await?;
        let refresh = refresh_token.expose().unwrap_or_default();
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh)];
        form.extend(self.config.resource.as_deref().map(|it| ("resource", it)));
        let result = endpoints.token.request(&form).await;
        self.audit("refresh_token", user, &result);
        match result {
            Ok(issued) => {
                renew(&mut connection, issued);
                attached.vault.put(&connection).await?;
                usable(&connection).ok_or_else(|| Failure::new("the refreshed token is already expired"))
            }
            // The grant is gone (revoked, expired) or no longer this client's: ask again.
            Err(token_endpoint::Error::Refused { code, .. })
                if matches!(code.as_str(), "invalid_grant" | "unauthorized_client" | "invalid_scope") =>
            {
                self.needs_consent(attached, connection, &code).await?;
                Err(Failure::not_connected())
            }
            Err(err) => Err(Failure::new(format!(
                "mcpgate could not renew your access to {}: {err}. Try again later.",
                attached.title
            ))),
        }
    }

    /// Drops `token`, which the backend refused: the next call refreshes it, unless the token
    /// refused was itself the one refreshed after the last refusal, when the user must approve
    /// again.
    pub async fn forget(&self, key: &Key, token: &Arc<Token>) {
        self.cache.forget(key, token).await;
        let Ok(attached) = self.attached() else { return };
        let Some((issuer, subject)) = key.subject.split_once('\n') else { return };
        let user = User { issuer: issuer.to_owned(), subject: subject.to_owned() };
        let again = {
            let mut refused = self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            refused.retain(|_, at| now.duration_since(*at) < REFUSAL_WINDOW);
            refused.insert(user.clone(), now).is_some()
        };
        let Ok(Some(mut connection)) = attached.vault.get(&user).await else { return };
        let result = if again {
            self.needs_consent(attached, connection, "the backend refused a renewed token").await
        } else {
            connection.access_token = None;
            attached.vault.put(&connection).await
        };
        if let Err(err) = result {
            tracing::warn!(server = %self.server, %err, "a refused token was not dropped from the vault");
        }
    }

    async fn needs_consent(
        &self,
        attached: &Attached,
        mut connection: Connection,
        why: &str,
    ) -> Result<(), Failure> {
        tracing::info!(
            target: "mcpgate::audit",
            event = "consent_required",
            subject = %connection.user.subject,
            server = %self.server,
            outcome = %why,
            "backend connection needs the user's approval again"
        );
        connection.needs_consent = true;
        connection.access_token = None;
        connection.refresh_token = None;
        attached.vault.put(&connection).await
    }

    fn audit(&self, event: &str, user: &User, result: &Result<Issued, token_endpoint::Error>) {
        let outcome = match result {
            Ok(_) => "issued".to_owned(),
            Err(err) => err.to_string(),
        };
        tracing::info!(
            target: "mcpgate::audit",
            event,
            subject = %user.subject,
            server = %self.server,
            outcome = %outcome,
            "backend token requested"
        );
    }

    /// The authorization server's endpoints: configured, or discovered once (a failed discovery
    /// is tried again at the next use).
    async fn endpoints(&self) -> Result<Arc<Endpoints>, Failure> {
        let mut slot = self.endpoints.lock().await;
        if let Some(endpoints) = slot.as_ref() {
            return Ok(endpoints.clone());
        }
        let config = &self.config;
        let discovered = match (&config.authorization_endpoint, &config.token_endpoint, &config.issuer) {
            (Some(_), Some(_), _) | (_, _, None) => None,
            (_, _, Some(issuer)) => Some(crate::auth::discover(issuer).await.map_err(|err| {
                tracing::warn!(server = %self.server, %err, "the backend's authorization server is not discoverable");
                Failure::new(format!(
                    "mcpgate cannot read the metadata of the authorization server of {} now. Try again later.",
                    self.title()
                ))
            })?),
        };
        // Configured, else discovered, else the document's.
        let document = self.attached.as_ref().and_then(|it| it.document_endpoints.clone());
        let pick = |configured: &Option<Url>, found: Option<Url>, written: Option<Url>| {
            configured.clone().or(found).or(written)
        };
        let authorize = pick(
            &config.authorization_endpoint,
            discovered.as_ref().map(|it| it.authorization_endpoint.clone()),
            document.as_ref().map(|it| it.0.clone()),
        );
        let token = pick(
            &config.token_endpoint,
            discovered.as_ref().map(|it| it.token_endpoint.clone()),
            document.map(|it| it.1),
        );
        let revoke = config.revocation_endpoint.clone().or(discovered.and_then(|it| it.revocation_endpoint));
        let (Some(authorize), Some(token)) = (authorize, token) else {
            return Err(Failure::new(
                "the backend's authorization server has no authorization or token endpoint",
            ));
        };
        let unusable = |err: String| Failure::new(format!("the backend's authorization server: {err}"));
        let endpoints = Arc::new(Endpoints {
            authorize,
            token: TokenEndpoint::new(token, config).map_err(unusable)?,
            revoke: revoke.map(|it| TokenEndpoint::new(it, config)).transpose().map_err(unusable)?,
        });
        *slot = Some(endpoints.clone());
        Ok(endpoints)
    }

    /// Whom a connect link was made for, if it is valid here.
    pub fn ticket_user(&self, purpose: Purpose, ticket: &str) -> Result<User, PageError> {
        let attached = self.attached().map_err(|it| page_error(503, it.to_string()))?;
        flows::open_ticket(&attached.keyring, purpose, &self.server, ticket).ok_or_else(|| {
            page_error(
                400,
                "This link is not valid: it has expired (links work for 10 minutes), or it was made for \
                 another server. Call the tool again from your MCP client for a new one.",
            )
        })
    }

    /// Starts connecting the user of `ticket`: where to send their browser.
    pub async fn begin(&self, ticket: &str) -> Result<Begun, PageError> {
        let user = self.ticket_user(Purpose::Connect, ticket)?;
        let attached = self.attached().map_err(|it| page_error(503, it.to_string()))?;
        let endpoints = self.endpoints().await.map_err(|it| page_error(502, it.to_string()))?;
        let busy = || page_error(503, "mcpgate cannot start a connection now. Try again shortly.");
        let verifier = Zeroizing::new(flows::random_token().ok_or_else(busy)?);
        let cookie = flows::random_token().ok_or_else(busy)?;
        let challenge = flows::challenge(&verifier);
        let state = attached.flows.begin(&self.server, user, verifier, &cookie).ok_or_else(busy)?;
        let mut redirect = endpoints.authorize.clone();
        {
            let mut query = redirect.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.redirect_uri(attached))
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if !attached.scopes.is_empty() {
                query.append_pair("scope", &attached.scopes.join(" "));
            }
            if let Some(resource) = &self.config.resource {
                query.append_pair("resource", resource);
            }
        }
        Ok(Begun { redirect, cookie })
    }

    /// The callback: checks `state` against the browser's `cookie`, exchanges `code`, keeps the
    /// tokens.
    pub async fn complete(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<Connected, PageError> {
        let attached = self.attached().map_err(|it| page_error(503, it.to_string()))?;
        let pending = attached.flows.finish(&self.server, state, cookie).map_err(|refused| {
            let why = match refused {
                Refused::Unknown => "it was used already, has expired, or was not issued by mcpgate",
                Refused::OtherServer => "it was issued for another server",
                Refused::OtherBrowser => "it was started in another browser",
            };
            tracing::warn!(server = %self.server, reason = why, "a connection callback was refused");
            page_error(
                400,
                format!("This connection attempt is not valid: {why}. Start again from your MCP client."),
            )
        })?;
        if let Some(error) = error {
            let code: String =
                error.chars().filter(|it| it.is_ascii_alphanumeric() || *it == '_').take(64).collect();
            return Err(page_error(
                400,
                format!(
                    "The authorization server did not approve the connection ({code}). Nothing was connected."
                ),
            ));
        }
        let code = code
            .filter(|it| !it.is_empty() && it.len() <= 4096)
            .ok_or_else(|| page_error(400, "The callback carries no authorization code."))?;
        let endpoints = self.endpoints().await.map_err(|it| page_error(502, it.to_string()))?;
        let redirect_uri = self.redirect_uri(attached);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        form.extend(self.config.resource.as_deref().map(|it| ("resource", it)));
        let result = endpoints.token.request(&form).await;
        self.audit("authorization_code", &pending.user, &result);
        let issued = result.map_err(|err| {
            page_error(
                502,
                format!(
                    "The authorization server did not issue a token: {err}. Start again from your MCP client."
                ),
            )
        })?;
        let mut connection = Connection {
            user: pending.user.clone(),
            connected_at: now(),
            scopes: attached.scopes.clone(),
            issued_at: 0,
            expires_at: None,
            access_token: None,
            refresh_token: None,
            needs_consent: false,
        };
        renew(&mut connection, issued);
        attached.vault.put(&connection).await.map_err(|it| page_error(503, it.to_string()))?;
        self.cache.clear(&cache_key(&pending.user)).await;
        self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&pending.user);
        attached.flows.completed();
        let manage = flows::ticket(&attached.keyring, Purpose::Manage, &self.server, &pending.user);
        Ok(Connected { user: pending.user, manage })
    }

    /// The connection of `user`, without tokens.
    pub async fn status(&self, user: &User) -> Result<Option<ConnectionInfo>, PageError> {
        let attached = self.attached().map_err(|it| page_error(503, it.to_string()))?;
        let connection = attached.vault.get(user).await.map_err(|it| page_error(503, it.to_string()))?;
        Ok(connection.as_ref().map(info))
    }

    /// Every connection of this server, without tokens.
    pub async fn connections(&self) -> Result<Vec<ConnectionInfo>, String> {
        let attached = self.attached().map_err(|it| it.to_string())?;
        Ok(attached.vault.list().await.map_err(|it| it.to_string())?.iter().map(info).collect())
    }

    /// Ends `user`'s connection: forgotten here, and revoked at the authorization server when it
    /// has a revocation endpoint. Whether there was one.
    pub async fn revoke(&self, user: &User, actor: &str) -> Result<bool, String> {
        let attached = self.attached().map_err(|it| it.to_string())?;
        let connection = attached.vault.get(user).await.map_err(|it| it.to_string())?;
        let existed = attached.vault.delete(user).await.map_err(|it| it.to_string())?;
        self.cache.clear(&cache_key(user)).await;
        let mut outcome = "forgotten".to_owned();
        let token = connection.as_ref().and_then(|it| {
            let (token, hint) = match (&it.refresh_token, &it.access_token) {
                (Some(token), _) => (token, "refresh_token"),
                (None, Some(token)) => (token, "access_token"),
                (None, None) => return None,
            };
            Some((token.clone(), hint))
        });
        if let Some((token, hint)) = token {
            match self.endpoints().await {
                Ok(endpoints) => match &endpoints.revoke {
                    Some(revoke) => {
                        let form = [("token", token.expose().unwrap_or_default()), ("token_type_hint", hint)];
                        outcome = match revoke.notify(&form).await {
                            Ok(()) => "revoked".to_owned(),
                            Err(err) => format!("forgotten; revocation failed: {err}"),
                        };
                    }
                    None => outcome = "forgotten; no revocation endpoint".to_owned(),
                },
                Err(err) => outcome = format!("forgotten; revocation failed: {err}"),
            }
        }
        tracing::info!(
            target: "mcpgate::audit",
            event = "disconnect",
            subject = %user.subject,
            server = %self.server,
            actor,
            outcome = %outcome,
            "backend connection ended"
        );
        Ok(existed)
    }
}

fn cache_key(user: &User) -> Key {
    Key { subject: format!("{}\n{}", user.issuer, user.subject), scopes: Vec::new() }
}

fn info(connection: &Connection) -> ConnectionInfo {
    ConnectionInfo {
        issuer: connection.user.issuer.clone(),
        subject: connection.user.subject.clone(),
        connected_at: connection.connected_at,
        scopes: connection.scopes.clone(),
        expires_at: connection.expires_at,
        needs_consent: connection.needs_consent,
    }
}

/// Puts a token response into `connection`: a refresh token is kept unless a new one came.
fn renew(connection: &mut Connection, issued: Issued) {
    let now = now();
    let lifetime = issued.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs).min(MAX_LIFETIME);
    connection.issued_at = now;
    connection.expires_at = Some(now + lifetime.as_secs());
    connection.access_token = Some(issued.access_token);
    if let Some(refresh) = issued.refresh_token {
        connection.refresh_token = Some(refresh);
    }
    if let Some(scope) = issued.scope {
        connection.scopes = scope.split_whitespace().map(str::to_owned).collect();
    }
    connection.needs_consent = false;
}

/// The connection's access token while more than a fifth of its lifetime, or 30 s, is left.
fn usable(connection: &Connection) -> Option<Token> {
    let value = connection.access_token.clone()?;
    let expires_at = connection.expires_at?;
    let lifetime = expires_at.saturating_sub(connection.issued_at);
    let margin = RENEW_MARGIN.as_secs().min(lifetime / 5);
    let left = expires_at.checked_sub(now() + margin).filter(|it| *it > 0)?;
    Some(Token { value, refresh_at: Instant::now() + Duration::from_secs(left) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;

    fn connection(issued_at: u64, expires_at: u64) -> Connection {
        Connection {
            user: User { issuer: "https://idp".into(), subject: "alice".into() },
            connected_at: issued_at,
            scopes: vec!["read".into()],
            issued_at,
            expires_at: Some(expires_at),
            access_token: Some(Secret::new("access")),
            refresh_token: Some(Secret::new("refresh")),
            needs_consent: false,
        }
    }

    #[test]
    fn a_token_is_used_while_more_than_a_fifth_of_its_life_or_30_seconds_is_left() {
        let now = now();
        assert!(usable(&connection(now, now + 10)).is_some());
        assert!(usable(&connection(now - 9, now + 1)).is_none(), "a 10 s token with 1 s left");
        assert!(usable(&connection(now - 3560, now + 40)).is_some());
        assert!(usable(&connection(now - 3580, now + 20)).is_none(), "a 1 h token with 20 s left");
        let mut dropped = connection(now, now + 3600);
        dropped.access_token = None;
        assert!(usable(&dropped).is_none(), "a token a backend refused is not used again");
    }

    #[test]
    fn renewing_keeps_the_refresh_token_unless_a_new_one_comes() {
        let mut kept = connection(0, 1);
        kept.needs_consent = true;
        let issued: Issued = serde_json::from_str(r#"{"access_token": "a2", "expires_in": 60}"#).unwrap();
        renew(&mut kept, issued);
        assert_eq!(kept.refresh_token.as_ref().and_then(Secret::expose), Some("refresh"));
        assert_eq!(kept.access_token.as_ref().and_then(Secret::expose), Some("a2"));
        assert_eq!(kept.expires_at, Some(kept.issued_at + 60));
        assert!(!kept.needs_consent);
        let issued: Issued =
            serde_json::from_str(r#"{"access_token": "a3", "refresh_token": "r2", "scope": "read write"}"#)
                .unwrap();
        renew(&mut kept, issued);
        assert_eq!(kept.refresh_token.as_ref().and_then(Secret::expose), Some("r2"));
        assert_eq!(kept.scopes, ["read", "write"]);
        assert_eq!(kept.expires_at, Some(kept.issued_at + DEFAULT_LIFETIME.as_secs()));
    }

    #[test]
    fn settings_must_lead_to_an_authorization_server() {
        let config = |text: &str| -> GrantConfig { toml::from_str(text).unwrap() };
        let bare = config("client_id = 'c'\nclient_secret = 's'");
        assert!(
            Consent::new("pets", &config("client_id = 'c'\nclient_secret = 's'\nissuer = 'not a url'"))
                .is_err()
        );
        let no_key = config("client_id = 'c'\nclient_auth = 'private_key_jwt'\nissuer = 'https://as'");
        assert!(Consent::new("pets", &no_key).err().unwrap().contains("private_key"));
        let dir = tempfile::tempdir().unwrap();
        let attachment = |document_endpoints| Attachment {
            store: Store::open(dir.path()).unwrap(),
            keyring: Arc::new(Keyring::configured_or_local(&[], dir.path()).unwrap()),
            flows: Flows::default(),
            public_url: "https://mcp.example".into(),
            title: "Pets".into(),
            scopes: Vec::new(),
            document_endpoints,
        };
        let mut consent = Consent::new("pets", &bare).unwrap();
        assert!(consent.attach(attachment(None)).unwrap_err().contains("issuer"));
        let written =
            Some((Url::parse("https://as/authorize").unwrap(), Url::parse("https://as/token").unwrap()));
        let mut consent = Consent::new("pets", &bare).unwrap();
        assert!(consent.attach(attachment(written)).is_ok());
    }
}
