//! How a tool call authenticates to its backend. The caller's own token is never sent: the
//! backend gets a fixed credential (`static`), mcpgate's own token (`client_credentials`), or a
//! token issued for the caller and meant for the backend (`token_exchange`, RFC 8693, or
//! `entra_obo`, Microsoft Entra ID's on-behalf-of flow), or the token the user approved at the
//! backend's own authorization server (`authorization_code`, kept per user in a vault).
//!
//! Tokens obtained are cached per subject and scopes (each hosted server has its own
//! [`Credentials`], and so its own audience) until shortly before they expire, and never past
//! the caller's own token. Every grant request is recorded in the audit log
//! (target `mcpgate::audit`), without the tokens.

mod assertion;
mod cache;
mod consent;
mod flows;
mod token_endpoint;
mod vault;

pub use consent::{Attachment, Begun, Connected, ConnectionInfo, Consent, PageError};
pub use flows::{Flows, Purpose};
pub use vault::User;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
// tokio's clock, which tests can pause and advance, decides when a cached token is renewed.
use tokio::time::Instant;
use zeroize::Zeroizing;

use self::cache::{Key, Token, TokenCache};
use self::token_endpoint::TokenEndpoint;
use crate::auth::Caller;
use crate::config::{CredentialsConfig, GrantConfig, StaticCredential, StaticScheme};
use crate::metrics;
use crate::secrets::Secret;

/// Tokens kept per hosted server; beyond it the soonest to expire make room.
const CACHE_CAPACITY: usize = 10_000;
/// A token is renewed when less than this, or a fifth of its lifetime, remains.
const RENEW_MARGIN: Duration = Duration::from_secs(30);
/// For token responses without `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Tokens are kept at most this long, whatever the authorization server says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The backend credentials of one hosted server.
pub struct Credentials {
    server: String,
    kind: Kind,
    metrics: Arc<metrics::ServerSeries>,
}

enum Kind {
    None,
    Static(Applied),
    Grant(Box<Grant>),
    Consent(Box<Consent>),
}

struct Grant {
    flow: Flow,
    endpoint: TokenEndpoint,
    audience: Option<String>,
    resource: Option<String>,
    scopes: Option<Vec<String>>,
    requested_token_type: Option<String>,
    cache: TokenCache,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    ClientCredentials,
    TokenExchange,
    EntraObo,
}

/// What a request to the backend carries. `Debug` shows no value: the header is marked sensitive,
/// and the query value is a [`Secret`].
#[derive(Debug, Clone)]
pub enum Applied {
    /// A header, marked sensitive so that it is never printed.
    Header(HeaderName, HeaderValue),
    Query(String, Secret),
}

/// The credentials of one call: its server's [`Credentials`] and whom the call acts for. The
/// forwarder gets this rather than the caller: its fields are private, so only this module can
/// read the caller's token (to send it to the token endpoint, never to a backend).
pub struct CallCredentials<'a> {
    credentials: &'a Credentials,
    caller: Option<&'a Caller>,
}

impl CallCredentials<'_> {
    /// The credential for a call to a tool needing `tool_scopes`.
    pub async fn authorize(&self, tool_scopes: &[String]) -> Result<Authorization, Failure> {
        self.credentials.authorize(self.caller, tool_scopes).await
    }

    /// Drops the token of `authorization`, which the backend refused.
    pub async fn forget(&self, authorization: &Authorization) {
        self.credentials.forget(authorization).await;
    }
}

/// The credential for one call; see [`CallCredentials::authorize`].
pub struct Authorization {
    pub applied: Option<Applied>,
    /// The cached token it came from, to be forgotten if the backend refuses it.
    cached: Option<(Key, Arc<Token>)>,
}

impl Authorization {
    /// Whether a backend's `401` may be cured by obtaining a new token.
    pub fn renewable(&self) -> bool {
        self.cached.is_some()
    }
}

/// Why no credential could be had, in words for the user; never a token or secret.
#[derive(Debug, Clone)]
pub struct Failure {
    message: Arc<str>,
    /// What connects the user to the backend (mode `authorization_code`).
    connect: Option<Connect>,
    /// The user has no usable connection (before a link is made for them).
    not_connected: bool,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into().into(), connect: None, not_connected: false }
    }

    fn not_connected() -> Failure {
        Failure { not_connected: true, ..Failure::new("not connected") }
    }

    fn asking_to_connect(message: String, connect: Connect) -> Failure {
        Failure { connect: Some(connect), ..Failure::new(message) }
    }

    /// Where the user connects their account, when that is what the call needs.
    pub fn connect(&self) -> Option<&Connect> {
        self.connect.as_ref()
    }
}

/// A call's need for its user to connect their account first: the link, and a way to hear of
/// connections made since the link was.
#[derive(Debug, Clone)]
pub struct Connect {
    link: Arc<str>,
    completions: tokio::sync::watch::Receiver<u64>,
}

impl Connect {
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Waits until some user completes a connection to this server's backend after the link
    /// was made (whose, the caller learns by trying again); `false` if none ever can.
    pub async fn completed(&mut self) -> bool {
        self.completions.changed().await.is_ok()
    }
}

impl std::error::Error for Failure {}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Credentials {
    pub fn new(server: &str, config: &CredentialsConfig) -> Result<Credentials, String> {
        let kind = match config {
            CredentialsConfig::None => Kind::None,
            CredentialsConfig::Static(config) => Kind::Static(fixed(config)?),
            CredentialsConfig::ClientCredentials(config) => {
                Kind::Grant(Box::new(grant(Flow::ClientCredentials, config)?))
            }
            CredentialsConfig::TokenExchange(config) => {
                Kind::Grant(Box::new(grant(Flow::TokenExchange, config)?))
            }
            CredentialsConfig::EntraObo(config) => Kind::Grant(Box::new(grant(Flow::EntraObo, config)?)),
            CredentialsConfig::AuthorizationCode(config) => {
                Kind::Consent(Box::new(Consent::new(server, config)?))
            }
        };
        Ok(Credentials { server: server.to_owned(), kind, metrics: metrics::server(server) })
    }

    /// The audience (else the resource) of the tokens these credentials obtain for the backend,
    /// as the call audit names it; `None` when they obtain none or ask for no audience.
    pub fn audience(&self) -> Option<&str> {
        match &self.kind {
            Kind::Grant(grant) => grant.audience.as_deref().or(grant.resource.as_deref()),
            Kind::Consent(consent) => consent.audience(),
            Kind::None | Kind::Static(_) => None,
        }
    }

    /// Gives mode `authorization_code` what serving needs (its vault, keys and flows); other
    /// modes need nothing.
    pub fn attach(mut self, attachment: Attachment) -> Result<Credentials, String> {
        if let Kind::Consent(consent) = &mut self.kind {
            consent.attach(attachment)?;
        }
        Ok(self)
    }

    /// The users' connections of mode `authorization_code`.
    pub fn consent(&self) -> Option<&Consent> {
        match &self.kind {
            Kind::Consent(consent) => Some(consent),
            _ => None,
        }
    }

    /// The credentials of one call by `caller`.
    pub fn for_call<'a>(&'a self, caller: Option<&'a Caller>) -> CallCredentials<'a> {
        CallCredentials { credentials: self, caller }
    }

    /// The credential for a call by `caller` to a tool needing `tool_scopes`.
    async fn authorize(
        &self,
        caller: Option<&Caller>,
        tool_scopes: &[String],
    ) -> Result<Authorization, Failure> {
        let grant = match &self.kind {
            Kind::None => return Ok(Authorization { applied: None, cached: None }),
            Kind::Static(applied) => {
                return Ok(Authorization { applied: Some(applied.clone()), cached: None });
            }
            Kind::Grant(grant) => grant,
            Kind::Consent(consent) => {
                let caller = caller.ok_or_else(|| {
                    Failure::new(
                        "This server acts for the signed-in user, but the call carries no user: mcpgate's \
                         configuration needs auth mode `jwt`.",
                    )
                })?;
                let (key, token) = Box::pin(consent.authorize(caller)).await?;
                return bearer(&self.server, key, token);
            }
        };
        let mut scopes = grant.scopes.clone().unwrap_or_else(|| tool_scopes.to_vec());
        scopes.sort();
        scopes.dedup();
        let subject = match (grant.flow, caller) {
            (Flow::ClientCredentials, _) => None,
            (_, Some(caller)) => Some(caller),
            (_, None) => {
                return Err(Failure::new(
                    "This server acts for the signed-in user, but the call carries no user: mcpgate's \
                     configuration needs auth mode `jwt`.",
                ));
            }
        };
        // What the token depends on: who, through which client (two clients of one user hold
        // two grants, and revoking one must not leave its tokens working through the other),
        // and for which scopes.
        let key = Key {
            subject: subject
                .map(|it| {
                    let client = it.claims.client_id.as_deref().unwrap_or_default();
                    format!("{}\n{}\n{client}", it.claims.issuer, it.claims.subject)
                })
                .unwrap_or_default(),
            scopes,
        };
        let mut fetched = false;
        let token = grant
            .cache
            .get_or_fetch(&key, || {
                fetched = true;
                self.fetch(grant, subject, &key.scopes)
            })
            .await;
        if fetched {
            self.metrics.token_cache_miss()
        } else {
            self.metrics.token_cache_hit()
        }
        bearer(&self.server, key, token?)
    }

    /// Drops the token of `authorization`, which the backend refused.
    async fn forget(&self, authorization: &Authorization) {
        match (&self.kind, &authorization.cached) {
            (Kind::Grant(grant), Some((key, token))) => grant.cache.forget(key, token).await,
            (Kind::Consent(consent), Some((key, token))) => consent.forget(key, token).await,
            _ => {}
        }
    }

    async fn fetch(
        &self,
        grant: &Grant,
        caller: Option<&Caller>,
        scopes: &[String],
    ) -> Result<Token, Failure> {
        let scope = scopes.join(" ");
        let subject_token = caller.and_then(|it| it.token.expose()).unwrap_or_default();
        let mut form: Vec<(&str, &str)> = match grant.flow {
            Flow::ClientCredentials => vec![("grant_type", "client_credentials")],
            Flow::TokenExchange => vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
            ],
            Flow::EntraObo => vec![
                ("grant_type", JWT_BEARER),
                ("assertion", subject_token),
                ("requested_token_use", "on_behalf_of"),
            ],
        };
        let optional = [
            ("audience", grant.audience.as_deref()),
            ("resource", grant.resource.as_deref()),
            ("scope", Some(scope.as_str()).filter(|it| !it.is_empty())),
            ("requested_token_type", grant.requested_token_type.as_deref()),
        ];
        form.extend(optional.into_iter().filter_map(|(name, value)| Some((name, value?))));
        let started = Instant::now();
        let result = grant.endpoint.request(&form).await;
        let outcome = match &result {
            Ok(_) => {
                self.metrics.token_issued();
                "issued".to_owned()
            }
            Err(err) => {
                self.metrics.token_failed();
                err.to_string()
            }
        };
        tracing::info!(
            target: "mcpgate::audit",
            event = grant.flow.event(),
            subject = caller.map_or("(mcpgate)", |it| it.claims.subject.as_str()),
            server = %self.server,
            audience = grant.audience.as_deref().or(grant.resource.as_deref()).unwrap_or("(default)"),
            scopes = %scope,
            outcome = %outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "backend token requested"
        );
        let issued = result.map_err(|err| explain(grant, &err))?;
        let lifetime = issued.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs).min(MAX_LIFETIME);
        let mut refresh_at = Instant::now() + lifetime - RENEW_MARGIN.min(lifetime / 5);
        // A token obtained for the caller is not used past the caller's own token.
        if let Some(caller) = caller.filter(|_| grant.flow != Flow::ClientCredentials) {
            let left = caller.claims.expires_at.duration_since(SystemTime::now()).unwrap_or_default();
            refresh_at = refresh_at.min(Instant::now() + left);
        }
        Ok(Token { value: issued.access_token, refresh_at })
    }
}

/// `Authorization: Bearer` with a cached token, which a refusal can make forgotten.
fn bearer(server: &str, key: Key, token: Arc<Token>) -> Result<Authorization, Failure> {
    let value = Zeroizing::new(format!("Bearer {}", token.value.expose().unwrap_or_default()));
    let header = sensitive(&value).ok_or_else(|| {
        Failure::new(format!("The token issued for the backend of {server} is not usable in a header."))
    })?;
    Ok(Authorization { applied: Some(Applied::Header(AUTHORIZATION, header)), cached: Some((key, token)) })
}

impl Flow {
    fn event(self) -> &'static str {
        match self {
            Flow::ClientCredentials => "client_credentials",
            Flow::TokenExchange => "token_exchange",
            Flow::EntraObo => "entra_obo",
        }
    }
}

/// What the user is told when the authorization server does not issue a token.
fn explain(grant: &Grant, err: &token_endpoint::Error) -> Failure {
    use token_endpoint::Error;
    let host = grant.endpoint.host();
    let message = match err {
        Error::Refused { code, suberror } => {
            let code = suberror.as_deref().filter(|it| it.contains("consent")).unwrap_or(code);
            match code {
                "consent_required" | "interaction_required" | "login_required" => format!(
                    "The authorization server {host} needs you to sign in or consent before mcpgate may act \
                     for you ({code}). Sign in to {host} again, grant access to the API, then retry."
                ),
                "invalid_grant" => format!(
                    "The authorization server {host} would not issue a token for the API from your sign-in \
                     (invalid_grant): it may have expired or been revoked. Sign in again, then retry."
                ),
                "invalid_target" => format!(
                    "The authorization server {host} does not issue tokens for this API to mcpgate \
                     (invalid_target). Tell the administrator of this MCP server: the audience or resource \
                     is not set up."
                ),
                "invalid_scope" => format!(
                    "The authorization server {host} refused the scopes this tool needs (invalid_scope). \
                     Tell the administrator of this MCP server."
                ),
                "invalid_client" | "unauthorized_client" | "unsupported_grant_type" => format!(
                    "The authorization server {host} refused mcpgate's own client ({code}). Tell the \
                     administrator of this MCP server: its credentials for {host} need fixing."
                ),
                other => {
                    format!("The authorization server {host} did not issue a token for the API ({other}).")
                }
            }
        }
        Error::Unreachable { .. } => format!("{err}. Try again later."),
        Error::Unusable { .. } => {
            format!("{err}. Try again later, or tell the administrator of this MCP server.")
        }
    };
    if grant.flow == Flow::ClientCredentials && matches!(err, Error::Refused { .. }) {
        return Failure::new(format!("{message} (mcpgate's own access to the API)"));
    }
    Failure::new(message)
}

fn grant(flow: Flow, config: &GrantConfig) -> Result<Grant, String> {
    let url = match (&config.token_endpoint, &config.tenant, flow) {
        (Some(url), _, _) => url.clone(),
        (None, Some(tenant), Flow::EntraObo) => {
            if tenant.is_empty()
                || !tenant.chars().all(|it| it.is_ascii_alphanumeric() || it == '-' || it == '.')
            {
                return Err(format!("tenant `{tenant}` is not an Entra tenant id or domain"));
            }
            url::Url::parse(&format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"))
                .map_err(|err| err.to_string())?
        }
        (None, _, Flow::EntraObo) => return Err("entra_obo needs `tenant` or `token_endpoint`".to_owned()),
        (None, _, _) => return Err("credentials need `token_endpoint`".to_owned()),
    };
    if flow == Flow::EntraObo && config.scopes.as_ref().is_none_or(Vec::is_empty) {
        return Err("entra_obo needs `scopes`, such as [\"api://<backend app id>/.default\"]".to_owned());
    }
    Ok(Grant {
        flow,
        endpoint: TokenEndpoint::new(url, config)?,
        audience: config.audience.clone(),
        resource: config.resource.clone(),
        scopes: config.scopes.clone(),
        requested_token_type: config.requested_token_type.clone(),
        cache: TokenCache::new(CACHE_CAPACITY),
    })
}

/// The fixed credential of mode `static`.
fn fixed(config: &StaticCredential) -> Result<Applied, String> {
    let value = || config.value.as_ref().and_then(Secret::expose).ok_or("static credentials need `value`");
    let name = || config.name.clone().filter(|it| !it.is_empty()).ok_or("static credentials need `name`");
    let header = |name: HeaderName, value: &str| {
        sensitive(value)
            .map(|value| Applied::Header(name, value))
            .ok_or("the credential is not a valid header value")
    };
    Ok(match config.scheme {
        StaticScheme::Header => {
            let name =
                HeaderName::from_bytes(name()?.as_bytes()).map_err(|_| "`name` is not a header name")?;
            header(name, value()?)?
        }
        StaticScheme::Query => Applied::Query(name()?, Secret::new(value()?)),
        StaticScheme::Bearer => header(AUTHORIZATION, &Zeroizing::new(format!("Bearer {}", value()?)))?,
        StaticScheme::Basic => {
            let username = config.username.as_deref().ok_or("scheme `basic` needs `username`")?;
            let password =
                config.password.as_ref().and_then(Secret::expose).ok_or("scheme `basic` needs `password`")?;
            let pair = Zeroizing::new(format!("{username}:{password}"));
            let encoded = Zeroizing::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            ));
            header(AUTHORIZATION, &encoded)?
        }
    })
}

fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(applied: &Applied) -> (String, String) {
        match applied {
            Applied::Header(name, value) => (name.to_string(), value.to_str().unwrap().to_owned()),
            Applied::Query(name, value) => (format!("?{name}"), value.expose().unwrap().to_owned()),
        }
    }

    fn static_credential(text: &str) -> Result<Applied, String> {
        let config: StaticCredential = toml::from_str(text).unwrap();
        fixed(&config)
    }

    #[test]
    fn static_credentials_take_every_scheme() {
        let key = static_credential("scheme = 'header'\nname = 'X-Api-Key'\nvalue = 'k1'").unwrap();
        assert_eq!(header(&key), ("x-api-key".to_owned(), "k1".to_owned()));
        let query = static_credential("scheme = 'query'\nname = 'api_key'\nvalue = 'k2'").unwrap();
        assert_eq!(header(&query), ("?api_key".to_owned(), "k2".to_owned()));
        let bearer = static_credential("scheme = 'bearer'\nvalue = 'k3'").unwrap();
        assert_eq!(header(&bearer), ("authorization".to_owned(), "Bearer k3".to_owned()));
        let basic = static_credential("scheme = 'basic'\nusername = 'u'\npassword = 'p'").unwrap();
        assert_eq!(header(&basic), ("authorization".to_owned(), "Basic dTpw".to_owned()));
        let Applied::Header(_, value) = &basic else { panic!() };
        assert!(value.is_sensitive());
        assert!(static_credential("scheme = 'header'\nvalue = 'k'").unwrap_err().contains("name"));
        assert!(static_credential("scheme = 'basic'\nusername = 'u'").unwrap_err().contains("password"));
        assert!(static_credential("scheme = 'bearer'\nvalue = \"a\\nb\"").is_err());
    }

    #[test]
    fn grants_need_an_endpoint_and_obo_needs_scopes() {
        let grant = |text: &str| -> GrantConfig { toml::from_str(text).unwrap() };
        let no_endpoint = grant("client_id = 'c'\nclient_secret = 's'");
        assert!(super::grant(Flow::TokenExchange, &no_endpoint).err().unwrap().contains("token_endpoint"));
        let obo = grant("client_id = 'c'\nclient_secret = 's'\ntenant = 'contoso.onmicrosoft.com'");
        assert!(super::grant(Flow::EntraObo, &obo).err().unwrap().contains("scopes"));
        let obo =
            grant("client_id = 'c'\nclient_secret = 's'\ntenant = 'contoso'\nscopes = ['api://b/.default']");
        let built = super::grant(Flow::EntraObo, &obo).unwrap();
        assert_eq!(built.endpoint.host(), "login.microsoftonline.com");
        let bad_tenant = grant("client_id = 'c'\nclient_secret = 's'\ntenant = '../x'\nscopes = ['s']");
        assert!(super::grant(Flow::EntraObo, &bad_tenant).is_err());
        let no_secret = grant("client_id = 'c'\ntoken_endpoint = 'https://idp/token'");
        assert!(super::grant(Flow::ClientCredentials, &no_secret).err().unwrap().contains("client_secret"));
    }

    #[tokio::test]
    async fn tokens_are_kept_per_user_and_client() {
        use crate::outbound::testing::{Stub, json};
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = issued.clone();
        let server = Stub::start(move |_| {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            json(200, &serde_json::json!({"access_token": format!("backend-{n}"), "expires_in": 300}))
        })
        .await;
        let config: CredentialsConfig = toml::from_str(&format!(
            "mode = 'token_exchange'\nclient_id = 'c'\nclient_secret = 's'\ntoken_endpoint = '{}'",
            server.url("/token")
        ))
        .unwrap();
        let credentials = Credentials::new("pets", &config).unwrap();
        let caller = |subject: &str, client: &str| Caller {
            claims: std::sync::Arc::new(crate::auth::Claims {
                subject: subject.to_owned(),
                issuer: "https://idp".to_owned(),
                audience: Vec::new(),
                scopes: Default::default(),
                expires_at: SystemTime::now() + Duration::from_secs(600),
                client_id: Some(client.to_owned()),
                raw: Default::default(),
            }),
            token: Secret::new(format!("{subject}-{client}")),
        };
        let header = |authorization: Authorization| match authorization.applied {
            Some(Applied::Header(_, value)) => value.to_str().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        let (alice_vscode, alice_inspector) = (caller("alice", "vscode"), caller("alice", "inspector"));
        let first = header(credentials.for_call(Some(&alice_vscode)).authorize(&[]).await.unwrap());
        let again = header(credentials.for_call(Some(&alice_vscode)).authorize(&[]).await.unwrap());
        let other = header(credentials.for_call(Some(&alice_inspector)).authorize(&[]).await.unwrap());
        assert_eq!(first, again, "one client's calls share its token");
        assert_ne!(first, other, "another client of the same user gets a token of its own");
        assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn per_user_grants_refuse_calls_without_a_caller() {
        let config: CredentialsConfig = toml::from_str(
            "mode = 'token_exchange'\nclient_id = 'c'\nclient_secret = 's'\ntoken_endpoint = 'http://127.0.0.1:9/t'",
        )
        .unwrap();
        let credentials = Credentials::new("pets", &config).unwrap();
        let failure = credentials.for_call(None).authorize(&[]).await.err().unwrap();
        assert!(failure.to_string().contains("auth mode `jwt`"), "{failure}");
    }

    #[test]
    fn refusals_tell_the_user_what_to_do() {
        let config: GrantConfig =
            toml::from_str("client_id = 'c'\nclient_secret = 's'\ntoken_endpoint = 'https://idp.example/t'")
                .unwrap();
        let grant = super::grant(Flow::TokenExchange, &config).unwrap();
        let refused = |code: &str, suberror: Option<&str>| {
            let err = token_endpoint::Error::Refused {
                code: code.to_owned(),
                suberror: suberror.map(str::to_owned),
            };
            explain(&grant, &err).to_string()
        };
        assert!(refused("invalid_grant", None).contains("Sign in again"));
        assert!(refused("invalid_grant", Some("consent_required")).contains("consent"));
        assert!(refused("interaction_required", None).contains("idp.example"));
        assert!(refused("invalid_target", None).contains("administrator"));
        assert!(refused("invalid_client", None).contains("mcpgate's own client"));
    }
}
