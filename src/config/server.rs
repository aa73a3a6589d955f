//! [`ServerSettings`]: one hosted server's settings, whatever brought them (a `[[servers]]`
//! entry, the admin API, a restored export). The newtypes check each value where it is read;
//! [`ServerSettings::validated`] checks how they fit together, and every way in calls it.
//!
//! Invariant: settings a hosted server is built from have passed [`ServerSettings::validated`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use super::credentials::CredentialsConfig;
use super::curation::ToolOverride;
use super::rate_limits::RateLimits;
use super::{AuthMode, Error};
use crate::secrets::Keyring;
use crate::store::Record;

/// One hosted server, as configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The path segment of `/mcp/{slug}`.
    pub slug: Slug,
    /// The OpenAPI document: a file path (relative to the configuration file) or an http(s) URL.
    pub spec: String,
    /// The backend's base URL. Default: the document's first server, with its variables.
    pub backend_url: Option<BackendUrl>,
    /// Values for the document's server variables.
    #[serde(default)]
    pub server_variables: BTreeMap<String, String>,
    /// Operations to expose, by operationId, `METHOD /path` or tool name. Default: all.
    pub expose: Option<Vec<String>>,
    /// Headers sent with every backend request (credentials belong in `credentials`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How mcpgate authenticates to the backend. Default: it does not.
    #[serde(default)]
    pub credentials: CredentialsConfig,
    #[serde(default = "default_timeout")]
    pub timeout_secs: TimeoutSecs,
    /// Tool calls in flight at once for this server; calls beyond it are refused as busy.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: MaxConcurrency,
    /// Backend responses larger than this are cut, with a marker.
    #[serde(default = "default_response_bytes")]
    pub max_response_bytes: MaxResponseBytes,
    /// How often tools may be called, per user and per tool; over it a call is a tool error.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Whether the document URL may point at a loopback or private address.
    #[serde(default)]
    pub allow_private_spec_url: bool,
    /// Scopes every request to this server needs (auth mode `jwt`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes per tool (by tool name or operationId), replacing those the document's
    /// `security` requirements give.
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, Vec<String>>,
    /// Names, descriptions and annotations changed by operation (operationId, else
    /// `METHOD /path`).
    #[serde(default)]
    pub tools: BTreeMap<String, ToolOverride>,
    /// Served as three meta-tools (search the operations, describe one, call one) rather than
    /// one tool per operation: for APIs too large to list in a model's context.
    #[serde(default)]
    pub catalog_mode: bool,
    /// How much of a model's context each tool may take; per tool in `tools."op".budget`.
    #[serde(default)]
    pub budget: super::Budget,
    /// Cedar policies for this server's tools, besides the configuration file's `[policy]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<String>,
    /// Whether a tool (by name, operationId or `METHOD /path`) waits for the user's confirmation
    /// before each call. Default: DELETE operations do.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub confirm: BTreeMap<String, bool>,
}

impl ServerSettings {
    /// Settings for a document just imported under `slug` from `spec`: defaults, nothing exposed.
    pub fn new(slug: Slug, spec: String) -> ServerSettings {
        ServerSettings {
            slug,
            spec,
            backend_url: None,
            server_variables: BTreeMap::new(),
            expose: Some(Vec::new()),
            headers: BTreeMap::new(),
            credentials: CredentialsConfig::None,
            timeout_secs: default_timeout(),
            max_concurrency: default_concurrency(),
            max_response_bytes: default_response_bytes(),
            rate_limits: RateLimits::default(),
            allow_private_spec_url: false,
            scopes: Vec::new(),
            tool_scopes: BTreeMap::new(),
            tools: BTreeMap::new(),
            catalog_mode: false,
            budget: super::Budget::default(),
            policies: None,
            confirm: BTreeMap::new(),
        }
    }

    /// The rules that relate settings to each other and to the rest of the configuration: the one
    /// check the configuration file, the admin API and a restored export all pass.
    pub fn validated(self, auth: AuthMode) -> Result<ServerSettings, Error> {
        let invalid = |reason: String| Err(Error::Invalid(format!("server `{}`: {reason}", self.slug)));
        if self.credentials.per_user() && auth != AuthMode::Jwt {
            return invalid("credentials acting for the caller need auth mode `jwt`".to_owned());
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return invalid(format!("`{name}` is not a header name"));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return invalid(format!("the value of header `{name}` is not a valid header value"));
            }
        }
        if let Some(problem) = self.rate_limits.problem() {
            return invalid(problem);
        }
        if let Some(problem) = self.budget.problem() {
            return invalid(problem);
        }
        if let Some((key, problem)) =
            self.tools.iter().find_map(|(key, it)| Some((key, it.budget.problem()?)))
        {
            return invalid(format!("tools.`{key}`: {problem}"));
        }
        // Whether the policies fit the tools is checked when they are published, with the tools.
        if let Some(text) = &self.policies
            && let Err(problem) = crate::policy::check(text)
        {
            return invalid(problem);
        }
        // The credentials module owns what makes credentials usable; building them is the check.
        if let Err(reason) = crate::credentials::Credentials::new(self.slug.as_str(), &self.credentials) {
            return invalid(format!("credentials: {reason}"));
        }
        Ok(self)
    }
}

/// The settings and document of one server as the store keeps them: JSON with every secret
/// sealed for this server (a sealed value moved to another server does not open).
pub fn to_record(settings: &ServerSettings, document: Vec<u8>, keyring: &Keyring) -> Result<Record, Error> {
    let mut sealed = settings.clone();
    let stored = |reason: String| Error::Stored { slug: settings.slug.to_string(), reason };
    sealed.credentials.seal(keyring, settings.slug.as_str()).map_err(|err| stored(err.to_string()))?;
    let json = serde_json::to_vec(&sealed).map_err(|err| stored(err.to_string()))?;
    Ok(Record { settings: json, document, version: 0 })
}

/// What [`to_record`] stored for `slug`, secrets opened.
pub fn from_record(
    slug: &str,
    record: Record,
    keyring: &Keyring,
) -> Result<(ServerSettings, Vec<u8>), Error> {
    let stored = |reason: String| Error::Stored { slug: slug.to_owned(), reason };
    let mut settings: ServerSettings =
        serde_json::from_slice(&record.settings).map_err(|err| stored(err.to_string()))?;
    settings.credentials.open(keyring, slug).map_err(|err| stored(err.to_string()))?;
    Ok((settings, record.document))
}

/// The path segment of `/mcp/{slug}`: 1 to 63 lowercase letters, digits and `-`, not starting
/// with `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub fn parse(text: &str) -> Result<Slug, Error> {
        let valid = (1..=63).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-');
        if !valid {
            return Err(Error::Value(format!(
                "`{text}` is not a valid slug: 1 to 63 lowercase letters, digits or `-`"
            )));
        }
        Ok(Slug(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = Error;
    fn try_from(text: String) -> Result<Slug, Error> {
        Slug::parse(&text)
    }
}

impl From<Slug> for String {
    fn from(slug: Slug) -> String {
        slug.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Slug {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Slug {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A backend's base URL: absolute http(s), with a host. Every request's scheme, host and port
/// come from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Url", into = "Url")]
pub struct BackendUrl(Url);

impl BackendUrl {
    pub fn parse(url: Url) -> Result<BackendUrl, Error> {
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.cannot_be_a_base() {
            return Err(Error::Value(format!("backend URL `{url}` must be an http(s) URL with a host")));
        }
        Ok(BackendUrl(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl TryFrom<Url> for BackendUrl {
    type Error = Error;
    fn try_from(url: Url) -> Result<BackendUrl, Error> {
        BackendUrl::parse(url)
    }
}

impl From<BackendUrl> for Url {
    fn from(url: BackendUrl) -> Url {
        url.0
    }
}

impl std::fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A limit between `MIN` and `MAX`, checked wherever it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

/// Seconds a backend call may take, answer included.
pub type TimeoutSecs = Bounded<1, 600>;
/// Calls in flight at once for one server.
pub type MaxConcurrency = Bounded<1, 100_000>;
/// The largest backend answer kept (1 GiB at most).
pub type MaxResponseBytes = Bounded<1, { 1 << 30 }>;

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub fn new(value: u64) -> Result<Self, Error> {
        if !(MIN..=MAX).contains(&value) {
            return Err(Error::Value(format!("must be between {MIN} and {MAX}, not {value}")));
        }
        Ok(Bounded(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// `VALUE`, checked when compiled: for defaults.
    pub(super) const fn const_new<const VALUE: u64>() -> Self {
        const { assert!(MIN <= VALUE && VALUE <= MAX) };
        Bounded(VALUE)
    }

    /// The value as a size or count (the bounds fit any `usize` mcpgate runs on).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<u64> for Bounded<MIN, MAX> {
    type Error = Error;
    fn try_from(value: u64) -> Result<Self, Error> {
        Bounded::new(value)
    }
}

impl<const MIN: u64, const MAX: u64> From<Bounded<MIN, MAX>> for u64 {
    fn from(value: Bounded<MIN, MAX>) -> u64 {
        value.0
    }
}

fn default_timeout() -> TimeoutSecs {
    Bounded(30)
}

fn default_concurrency() -> MaxConcurrency {
    Bounded(64)
}

fn default_response_bytes() -> MaxResponseBytes {
    Bounded(1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_path_segments() {
        for good in ["pets", "a", "github-v3", "x1"] {
            assert_eq!(Slug::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "-x", "Pets", "../x", "a/b", "a b", &"x".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Slug>("\"../etc\"").is_err());
    }

    #[test]
    fn backend_urls_are_absolute_http() {
        let parse = |text: &str| BackendUrl::parse(Url::parse(text).unwrap());
        assert!(parse("https://api.example.com/v1").is_ok());
        assert!(parse("http://127.0.0.1:9000").is_ok());
        for bad in ["file:///etc/passwd", "data:text/plain,x", "mailto:a@b.c"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded_where_read() {
        assert_eq!(serde_json::from_str::<TimeoutSecs>("30").unwrap().get(), 30);
        assert!(serde_json::from_str::<TimeoutSecs>("0").is_err());
        assert!(serde_json::from_str::<TimeoutSecs>("601").is_err());
        assert!(serde_json::from_str::<MaxConcurrency>("0").is_err());
        assert!(serde_json::from_str::<MaxResponseBytes>("-1").is_err());
    }

    #[test]
    fn records_hold_secrets_sealed_for_their_server() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::configured_or_local(&[], dir.path()).unwrap();
        let text = "slug = 'pets'\nspec = 'p.yaml'\n[credentials]\nmode = 'static'\nscheme = 'bearer'\n\
                    value = 'backend-key-pets'";
        let settings: ServerSettings = toml::from_str(text).unwrap();
        let record = to_record(&settings, b"{}".to_vec(), &keyring).unwrap();
        let clear = b"backend-key-pets";
        assert!(!record.settings.windows(clear.len()).any(|it| it == clear), "a secret in clear");
        let (opened, document) = from_record("pets", record.clone(), &keyring).unwrap();
        let CredentialsConfig::Static(credential) = &opened.credentials else { panic!() };
        assert_eq!(credential.value.as_ref().and_then(|it| it.expose()), Some("backend-key-pets"));
        assert_eq!(document, b"{}");
        // Not under another server's name, and not without the key: unreadable rather than
        // silently without credentials.
        assert!(from_record("other", record.clone(), &keyring).is_err());
        let stranger = Keyring::configured_or_local(&[], tempfile::tempdir().unwrap().path()).unwrap();
        assert!(from_record("pets", record, &stranger).is_err());
    }

    #[test]
    fn validation_relates_settings() {
        let settings = |extra: &str| -> ServerSettings {
            toml::from_str(&format!("slug = 'pets'\nspec = 'p.yaml'\n{extra}")).unwrap()
        };
        assert!(settings("").validated(AuthMode::None).is_ok());
        let exchange = "[credentials]\nmode = 'token_exchange'\nclient_id = 'c'\nclient_secret = 's'\n\
                        token_endpoint = 'https://idp/token'";
        let err = settings(exchange).validated(AuthMode::None).unwrap_err().to_string();
        assert!(err.contains("auth mode `jwt`"), "{err}");
        assert!(settings(exchange).validated(AuthMode::Jwt).is_ok());
        let err = settings("headers = { 'bad name' = 'x' }").validated(AuthMode::None).unwrap_err();
        assert!(err.to_string().contains("not a header name"), "{err}");
        let err = settings("[rate_limits.tools]\naddPet = {}").validated(AuthMode::None).unwrap_err();
        assert!(err.to_string().contains("sets neither per_user nor per_tool"), "{err}");
        let err = settings("[credentials]\nmode = 'static'\nscheme = 'header'\nvalue = 'k'")
            .validated(AuthMode::None)
            .unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }
}
