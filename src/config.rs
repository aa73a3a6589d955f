//! Configuration: one TOML file, every key overridable by an `MCPGATE_...` environment variable,
//! read once at start-up. Nothing else reads the environment.
//!
//! `MCPGATE_HTTP__LISTEN=0.0.0.0:8080` sets `http.listen`; `MCPGATE_SERVERS__0__BACKEND_URL`
//! sets `backend_url` of the first `[[servers]]` entry. Values are read as TOML when they parse
//! (`true`, `30`, `["a", "b"]`), else as strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

mod budget;
mod credentials;
mod curation;
mod rate_limits;
mod server;

pub use budget::{Budget, LEAN as LEAN_BUDGET, Resolved as ResolvedBudget};
pub use credentials::{ClientAuth, CredentialsConfig, GrantConfig, StaticCredential, StaticScheme};
pub use curation::{ANNOTATIONS, ToolOverride};
pub use rate_limits::{CallsPerMinute, RateLimits, ToolRateLimits};
pub use server::{
    BackendUrl, Bounded, MaxConcurrency, MaxResponseBytes, ServerSettings, Slug, TimeoutSecs, from_record,
    to_record,
};

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "MCPGATE_";

/// The top-level sections of the configuration; `MCPGATE_{SECTION}__...` overrides their keys.
const SECTIONS: [&str; 7] = ["http", "store", "auth", "admin", "telemetry", "servers", "policy"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub servers: Vec<ServerSettings>,
    /// Cedar policies for every hosted server, and the claims they read.
    #[serde(default)]
    pub policy: crate::policy::PolicyConfig,
    /// Set by `serve --dev` only: run the development identity provider and sample backend.
    #[serde(skip)]
    pub dev: Option<DevConfig>,
}

/// Development mode: everything on one loopback port, nothing to install.
#[derive(Debug, Clone)]
pub struct DevConfig {
    /// The subject the development identity provider signs in without asking.
    pub user: String,
    /// Where the development identity provider keeps its signing key and registered clients, so
    /// that clients with a cached registration still work after a restart.
    pub idp_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The address to listen on; loopback unless said otherwise.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL clients reach mcpgate at; hosted servers live at `{public_url}/mcp/{slug}`.
    /// Default: `http://{listen}`.
    pub public_url: Option<Url>,
    /// `Host` header values accepted (DNS-rebinding protection). Default: the host of
    /// `public_url` plus the loopback names.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted; requests carrying any other `Origin` are refused with 403.
    /// Default: none (requests with an `Origin` header are refused unless listed).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The largest MCP request body accepted, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// The http(s) proxy identity providers are reached through (the issuers' metadata and keys,
    /// the admin sign-in), such as
    /// `http://proxy.internal:3128` (it may carry `user:password@`). Default: none. The
    /// environment's `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are never used.
    #[serde(default)]
    pub outbound_proxy: Option<Url>,
    /// A second address that serves `/metrics` alone (such as `0.0.0.0:9464`), for scrapers that
    /// reach mcpgate by an address the `Host` check does not accept. When set, the main address
    /// does not serve `/metrics`. Default: none, `/metrics` on the main address.
    pub metrics_listen: Option<SocketAddr>,
}

/// How many MCP sessions each hosted server keeps open. A session holds a task and buffers until
/// it ends; a new one beyond a cap ends the least recently used (see `mcp::SessionLimits`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Sessions of one subject: the caller in auth mode `jwt`, the client's address in mode `none`.
    #[serde(default = "default_sessions_per_subject")]
    pub per_subject: SessionCount,
    /// Sessions of one hosted server, whoever opened them.
    #[serde(default = "default_sessions_per_server")]
    pub per_server: SessionCount,
}

/// A cap on open sessions.
pub type SessionCount = Bounded<1, 1_000_000>;

impl Default for SessionsConfig {
    fn default() -> SessionsConfig {
        SessionsConfig {
            per_subject: default_sessions_per_subject(),
            per_server: default_sessions_per_server(),
        }
    }
}

fn default_sessions_per_subject() -> SessionCount {
    SessionCount::const_new::<20>()
}

fn default_sessions_per_server() -> SessionCount {
    SessionCount::const_new::<1000>()
}

/// Traces. Off unless an OTLP endpoint is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector that traces are sent to (protobuf), such as
    /// `http://otel-collector:4318`; `/v1/traces` is added unless the path already ends with it.
    /// Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else
    /// none: no traces. `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn traces off.
    pub otlp_endpoint: Option<Url>,
    /// Headers sent to the collector, such as an API key. Default: `OTEL_EXPORTER_OTLP_HEADERS`
    /// (`name=value,name=value`).
    #[serde(default)]
    pub otlp_headers: std::collections::BTreeMap<String, crate::secrets::Secret>,
    /// `service.name` of the traces. Default: `OTEL_SERVICE_NAME`, else `mcpgate`.
    pub service_name: Option<String>,
    /// The fraction of traces recorded when the client's `traceparent` does not decide (a sampled
    /// parent is always followed), from 0 to 1. Default: 1.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_headers: std::collections::BTreeMap::new(),
            service_name: None,
            sample_ratio: default_sample_ratio(),
        }
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl TelemetryConfig {
    /// The URL spans are posted to, if traces are on.
    pub fn traces_url(&self) -> Option<Url> {
        let mut url = self.otlp_endpoint.clone()?;
        if !url.path().ends_with("/v1/traces") {
            let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        Some(url)
    }

    /// The standard `OTEL_…` variables, for what the file leaves unset.
    fn apply_otel_env(&mut self, env: &[(String, String)]) -> Result<(), Error> {
        let var = |name: &str| env.iter().find(|(it, _)| it == name).map(|(_, value)| value.trim());
        if var("OTEL_SDK_DISABLED").is_some_and(|it| it.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|it| it.eq_ignore_ascii_case("none"))
        {
            self.otlp_endpoint = None;
            return Ok(());
        }
        if self.otlp_endpoint.is_none() {
            let parse = |name: &str, value: &str| {
                Url::parse(value).map_err(|err| Error::Invalid(format!("{name}: {err}")))
            };
            let named = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
                .into_iter()
                .find_map(|name| var(name).filter(|it| !it.is_empty()).map(|value| (name, value)));
            if let Some((name, value)) = named {
                self.otlp_endpoint = Some(parse(name, value)?);
            }
        }
        if self.otlp_headers.is_empty()
            && let Some(value) = var("OTEL_EXPORTER_OTLP_HEADERS")
        {
            for pair in value.split(',').filter(|it| !it.trim().is_empty()) {
                let Some((name, value)) = pair.split_once('=') else {
                    return Err(Error::Invalid(
                        "OTEL_EXPORTER_OTLP_HEADERS: expected name=value pairs".to_owned(),
                    ));
                };
                let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
                self.otlp_headers
                    .insert(name.trim().to_owned(), crate::secrets::Secret::new(value.into_owned()));
            }
        }
        if self.service_name.is_none() {
            self.service_name = var("OTEL_SERVICE_NAME").filter(|it| !it.is_empty()).map(str::to_owned);
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(Error::Invalid("telemetry.sample_ratio must be between 0 and 1".to_owned()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Where the embedded store keeps its file; a relative path is relative to the configuration
    /// file's folder (as `spec` paths are).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The keys that seal stored secrets, `[{ id = "2026-11", key = "<base64 of 32 bytes>" }]`:
    /// the first seals, all open. Default: a key kept in `{data_dir}/secret.key`.
    #[serde(default)]
    pub secret_keys: Vec<crate::secrets::KeyConfig>,
    /// PostgreSQL, shared by several replicas (`postgres://user@host/db?sslmode=require`);
    /// without it, the embedded store in `data_dir`. Never logged: it may hold a password.
    #[serde(default)]
    pub url: Option<crate::secrets::Secret>,
    /// Where the connection that listens for other replicas' changes goes, when `url` names a
    /// pooler in transaction mode (PgBouncer), which keeps no `LISTEN`: the database itself, or
    /// a pooler in session mode.
    #[serde(default)]
    pub listen_url: Option<crate::secrets::Secret>,
    /// Connections to PostgreSQL each replica keeps at most (the listener aside).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// The environment variable holding the database password, when the URL has none.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the database password, read at each new connection.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted for the database's TLS, besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_store_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Whether `/readyz` fails while the store cannot be used. Default: yes for the embedded
    /// store (a full disk is this node's own trouble), no for PostgreSQL (every replica shares
    /// the outage, and each serves on from memory).
    #[serde(default)]
    pub required_for_readiness: Option<bool>,
    /// The password `password_env` named, read with the rest of the configuration.
    #[serde(skip)]
    password: Option<crate::secrets::Secret>,
}

fn default_pool_size() -> usize {
    8
}

fn default_store_connect_timeout_secs() -> u64 {
    5
}

impl StoreConfig {
    /// The PostgreSQL settings when `url` is set.
    pub fn postgres(&self) -> Option<crate::store::Postgres> {
        // Sealed values are refused when the configuration is read.
        let url = self.url.as_ref()?.expose()?;
        Some(crate::store::Postgres {
            url: url.to_owned(),
            listen_url: self.listen_url.as_ref().and_then(|it| it.expose()).map(str::to_owned),
            pool_size: self.pool_size,
            password: self.password.as_ref().and_then(|it| it.expose()).map(str::to_owned),
            password_file: self.password_file.clone(),
            ca_file: self.ca_file.clone(),
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout_secs),
        })
    }

    /// Whether `/readyz` fails while the store is unusable.
    pub fn required_for_readiness(&self) -> bool {
        self.required_for_readiness.unwrap_or(self.url.is_none())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How callers authenticate. Must be set: nothing is open by accident.
    pub mode: AuthMode,
    /// The authorization servers whose tokens are accepted (mode `jwt`).
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
    /// Audiences accepted besides each hosted server's own URL (Entra ID, for one, puts the
    /// API's client id in `aud`).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accepted JWT algorithms. Default: RS256/384/512, PS256/384/512, ES256/384, EdDSA.
    /// `none` is never accepted; HMAC algorithms are refused (no shared secret is configurable).
    #[serde(default)]
    pub algorithms: Vec<String>,
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// The JWT `typ` tokens must carry, such as `at+jwt` (RFC 9068). Default: not checked.
    pub required_token_type: Option<String>,
    /// Whether `tools/list` shows only the tools the caller's scopes allow.
    #[serde(default = "default_true")]
    pub filter_tools_by_scope: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication at all: anyone who can reach mcpgate can call every tool.
    None,
    /// Bearer JWTs from the configured issuers, checked against their keys (OAuth 2.1
    /// resource server).
    Jwt,
}

/// Who may use the admin UI and API at `/admin`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// A token for automation: `Authorization: Bearer <token>` on `/admin/api`. Not for the UI.
    pub bootstrap_token: Option<crate::secrets::Secret>,
    /// Sign-in to the UI with the identity provider.
    pub oidc: Option<AdminOidc>,
    /// The key that signs admin session cookies (at least 32 bytes). Default: one made at start,
    /// so a restart signs administrators out; replicas behind one address need the same key.
    pub session_key: Option<crate::secrets::Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminOidc {
    pub issuer: String,
    pub client_id: String,
    /// For a confidential client; a public client relies on PKCE alone.
    pub client_secret: Option<crate::secrets::Secret>,
    /// The ID token claim that lists roles or groups (`roles` for Entra ID, `groups` for Okta
    /// and Keycloak setups).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The role or group that makes a user an administrator.
    pub required_role: String,
}

fn default_role_claim() -> String {
    "roles".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The issuer identifier, exactly as it appears in `iss`.
    pub issuer: String,
    /// Where its signing keys are. Default: discovered from the issuer's metadata (RFC 8414 or
    /// OpenID Connect discovery).
    pub jwks_uri: Option<Url>,
}

fn default_clock_skew_secs() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_request_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A value that breaks its own rule, in words that name the rule.
    #[error("{0}")]
    Value(String),
    #[error("stored settings of `{slug}` are unreadable: {reason}")]
    Stored { slug: String, reason: String },
}

impl Config {
    /// Reads `path` and applies the `MCPGATE_...` variables of the process environment.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        #[allow(clippy::disallowed_methods)] // The one place the environment is read.
        let env: Vec<(String, String)> = std::env::vars().collect();
        let mut config = Config::parse(&text, &env)?;
        // Relative paths in the file are relative to the file, wherever mcpgate is started.
        let base = path.parent().unwrap_or(Path::new("."));
        for server in &mut config.servers {
            server.resolve_spec_path(base);
        }
        if config.store.data_dir.is_relative() {
            config.store.data_dir = base.join(&config.store.data_dir);
        }
        Ok(config)
    }

    /// Parses configuration text with the given environment overrides applied.
    pub fn parse(text: &str, env: &[(String, String)]) -> Result<Config, Error> {
        let mut value: toml::Table =
            text.parse().map_err(|err: toml::de::Error| Error::Invalid(err.to_string()))?;
        for (name, raw) in env {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
            let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            // Only variables naming a section are configuration; others that share the prefix
            // (`MCPGATE_PORT`, which Kubernetes sets for a Service called mcpgate) are not ours.
            if !SECTIONS.contains(&keys[0].as_str()) {
                continue;
            }
            set_path(&mut value, &keys, parse_env_value(raw))
                .map_err(|reason| Error::Invalid(format!("{name}: {reason}")))?;
        }
        let mut config: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|err: toml::de::Error| Error::Invalid(err.to_string()))?;
        if config.http.public_url.is_none() {
            let url = Url::parse(&format!("http://{}", config.http.listen))
                .map_err(|err| Error::Invalid(format!("http.listen: {err}")))?;
            config.http.public_url = Some(url);
        }
        config.telemetry.apply_otel_env(env)?;
        if let Some(name) = &config.store.password_env {
            let value = env.iter().find(|(it, _)| it == name).map(|(_, value)| value.clone());
            let Some(value) = value else {
                return Err(Error::Invalid(format!("store.password_env: the variable {name} is not set")));
            };
            config.store.password = Some(crate::secrets::Secret::new(value));
        }
        if [&config.store.url, &config.store.listen_url].into_iter().flatten().any(|it| it.is_sealed()) {
            return Err(Error::Invalid("store.url and store.listen_url cannot be sealed values".to_owned()));
        }
        if !(1..=256).contains(&config.store.pool_size) {
            return Err(Error::Invalid("store.pool_size must be between 1 and 256".to_owned()));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&mut self) -> Result<(), Error> {
        if self.auth.mode == AuthMode::Jwt && self.auth.issuers.is_empty() {
            return Err(Error::Invalid(
                "auth mode `jwt` needs at least one [[auth.issuers]] entry".to_owned(),
            ));
        }
        if let Some(text) = &self.policy.policies {
            crate::policy::check(text).map_err(Error::Invalid)?;
        }
        let mut seen = std::collections::HashSet::new();
        for server in &mut self.servers {
            if !seen.insert(server.slug.clone()) {
                return Err(Error::Invalid(format!("server slug `{}` is used twice", server.slug)));
            }
            *server = server.clone().validated(self.auth.mode)?;
        }
        Ok(())
    }

    /// The configuration of `serve --dev`: loopback only, the development identity provider as
    /// the one issuer, and the petstore sample in front of the built-in sample backend. The
    /// sample document is written into `data_dir`, so it works from any directory.
    pub fn for_dev(port: u16, data_dir: &Path, user: &str) -> Result<Config, Error> {
        let samples = data_dir.join("samples");
        std::fs::create_dir_all(&samples)
            .map_err(|source| Error::Read { path: samples.display().to_string(), source })?;
        let spec = samples.join("petstore.yaml");
        std::fs::write(&spec, PETSTORE_SAMPLE)
            .map_err(|source| Error::Read { path: spec.display().to_string(), source })?;
        let travel = samples.join("train-travel.yaml");
        std::fs::write(&travel, TRAIN_TRAVEL_SAMPLE)
            .map_err(|source| Error::Read { path: travel.display().to_string(), source })?;
        let public = format!("http://127.0.0.1:{port}");
        let text = format!(
            r#"
[http]
listen = "127.0.0.1:{port}"
[store]
data_dir = {store:?}
[auth]
mode = "jwt"
[[auth.issuers]]
issuer = "{public}/dev-idp"
jwks_uri = "{public}/dev-idp/jwks"
[[servers]]
slug = "petstore"
spec = {spec:?}
backend_url = "{public}{backend}"
# An OpenAPI 3.1 sample to browse; no backend stands behind it, and its calls say so.
[[servers]]
slug = "train-travel"
spec = {travel:?}
backend_url = "{public}{train_travel}"
"#,
            travel = travel.display().to_string(),
            store = data_dir.join("store").display().to_string(),
            spec = spec.display().to_string(),
            backend = crate::sample_backend::PREFIX,
            train_travel = crate::sample_backend::TRAIN_TRAVEL,
        );
        let mut config = Config::parse(&text, &[])?;
        config.dev = Some(DevConfig { user: user.to_owned(), idp_dir: data_dir.join("dev-idp") });
        Ok(config)
    }

    /// The URL clients reach mcpgate at (`http.public_url`, else `http://{listen}`).
    pub fn public_url(&self) -> &str {
        self.http.public_url.as_ref().map_or("", Url::as_str).trim_end_matches('/')
    }
}

impl HttpConfig {
    /// The `Host` values every route accepts (DNS-rebinding protection): `allowed_hosts`, else
    /// the loopback names and the public URL's host. An entry without a port accepts any port.
    /// The one computation of it: the router's host check and rmcp's both use it.
    pub fn accepted_hosts(&self) -> Vec<String> {
        if !self.allowed_hosts.is_empty() {
            return self.allowed_hosts.clone();
        }
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Some(host) = self.public_url.as_ref().and_then(Url::host_str) {
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts
    }
}

impl ServerSettings {
    fn resolve_spec_path(&mut self, base: &Path) {
        let is_url = self.spec.starts_with("http://") || self.spec.starts_with("https://");
        if !is_url && Path::new(&self.spec).is_relative() {
            self.spec = base.join(&self.spec).display().to_string();
        }
    }
}

/// The sample document `serve --dev` hosts.
const PETSTORE_SAMPLE: &str = include_str!("../openapi-samples/swagger-petstore-v3.yaml");
const TRAIN_TRAVEL_SAMPLE: &str = include_str!("../openapi-samples/readme-train-travel.yaml");

fn parse_env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut table) => table.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

/// Sets `keys` (table keys, or array indices for arrays) in `table`, creating tables as needed.
fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Err("empty key".to_owned());
    };
    let mut current = table;
    let mut iter = parents.iter().peekable();
    while let Some(key) = iter.next() {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(next) => next,
            toml::Value::Array(items) => {
                let idx_key = iter.next().ok_or_else(|| format!("`{key}` is a list: give an index"))?;
                let idx: usize =
                    idx_key.parse().map_err(|_| format!("`{idx_key}` is not an index of `{key}`"))?;
                let item = items.get_mut(idx).ok_or_else(|| format!("`{key}` has no entry {idx}"))?;
                match item {
                    toml::Value::Table(next) => next,
                    _ => return Err(format!("`{key}.{idx}` is not a table")),
                }
            }
            _ => return Err(format!("`{key}` is not a table")),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[http]
[store]
[auth]
mode = "none"

[[servers]]
slug = "pets"
spec = "pets.yaml"
"#;

    #[test]
    fn defaults_are_safe() {
        let config = Config::parse(MINIMAL, &[]).unwrap();
        assert_eq!(config.http.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        let server = &config.servers[0];
        assert_eq!((server.timeout_secs.get(), server.max_concurrency.get()), (30, 64));
        assert!(server.expose.is_none() && !server.allow_private_spec_url);
    }

    #[test]
    fn relative_paths_are_relative_to_the_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcpgate.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&path).unwrap()
        };
        let config = load(&MINIMAL.replace("[store]", "[store]\ndata_dir = \"state/db\""));
        assert_eq!(config.store.data_dir, dir.path().join("state/db"));
        assert_eq!(Path::new(&config.servers[0].spec), dir.path().join("pets.yaml"));
        assert_eq!(load(MINIMAL).store.data_dir, dir.path().join("data"), "the default too");
        let elsewhere = std::env::temp_dir().join("mcpgate-data");
        let absolute = format!("[store]\ndata_dir = {:?}", elsewhere.display().to_string());
        assert_eq!(load(&MINIMAL.replace("[store]", &absolute)).store.data_dir, elsewhere);
    }

    #[test]
    fn traces_come_from_the_file_else_the_otel_variables() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
        };
        assert_eq!(Config::parse(MINIMAL, &[]).unwrap().telemetry.traces_url(), None, "off by default");
        let otel = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SERVICE_NAME", "gate"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b, other=c"),
        ]);
        let telemetry = Config::parse(MINIMAL, &otel).unwrap().telemetry;
        assert_eq!(telemetry.traces_url().unwrap().as_str(), "http://collector:4318/v1/traces");
        assert_eq!(telemetry.service_name.as_deref(), Some("gate"));
        assert_eq!(telemetry.otlp_headers["x-api-key"].expose(), Some("a b"));
        assert_eq!(format!("{:?}", telemetry.otlp_headers["other"]), "[redacted]");
        let file = format!("{MINIMAL}\n[telemetry]\notlp_endpoint = \"http://file:4318/v1/traces\"\n");
        let telemetry = Config::parse(&file, &otel).unwrap().telemetry;
        assert_eq!(telemetry.traces_url().unwrap().as_str(), "http://file:4318/v1/traces", "the file wins");
        let disabled = [otel.clone(), env(&[("OTEL_SDK_DISABLED", "true")])].concat();
        assert_eq!(Config::parse(&file, &disabled).unwrap().telemetry.traces_url(), None);
        let ratio = format!("{MINIMAL}\n[telemetry]\nsample_ratio = 2.0\n");
        assert!(Config::parse(&ratio, &[]).unwrap_err().to_string().contains("sample_ratio"));
        let metrics = MINIMAL.replace("[http]", "[http]\nmetrics_listen = \"0.0.0.0:9464\"");
        assert_eq!(Config::parse(&metrics, &[]).unwrap().http.metrics_listen.map(|it| it.port()), Some(9464));
    }

    #[test]
    fn auth_mode_must_be_explicit() {
        let err = Config::parse("[http]\n[store]\n[auth]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("mode"), "{err}");
    }

    #[test]
    fn environment_overrides_any_key() {
        let env = [
            ("MCPGATE_HTTP__LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            ("MCPGATE_SERVERS__0__TIMEOUT_SECS".to_owned(), "5".to_owned()),
            ("MCPGATE_SERVERS__0__EXPOSE".to_owned(), r#"["listPets"]"#.to_owned()),
            ("MCPGATE_SERVERS__0__BACKEND_URL".to_owned(), "http://127.0.0.1:9/v1".to_owned()),
            ("OTHER".to_owned(), "ignored".to_owned()),
            ("MCPGATE_PORT".to_owned(), "tcp://10.0.0.1:80".to_owned()),
            ("MCPGATE_REQUIRE_CORPUS".to_owned(), "1".to_owned()),
        ];
        let config = Config::parse(MINIMAL, &env).unwrap();
        assert_eq!(config.http.listen.port(), 9000);
        assert_eq!(config.servers[0].timeout_secs.get(), 5);
        assert_eq!(config.servers[0].expose.as_deref(), Some(&["listPets".to_owned()][..]));
        assert_eq!(
            config.servers[0].backend_url.as_ref().map(|it| it.url().as_str()),
            Some("http://127.0.0.1:9/v1")
        );
        let err =
            Config::parse(MINIMAL, &[("MCPGATE_SERVERS__3__SLUG".to_owned(), "x".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("no entry 3"), "{err}");
    }

    #[test]
    fn refuses_bad_slugs_unknown_keys_and_duplicates() {
        let bad = MINIMAL.replace("slug = \"pets\"", "slug = \"../x\"");
        assert!(Config::parse(&bad, &[]).is_err());
        let unknown = MINIMAL.replace("[store]", "[store]\ncolour = 1");
        assert!(Config::parse(&unknown, &[]).unwrap_err().to_string().contains("colour"));
        let twice = format!("{MINIMAL}\n[[servers]]\nslug = \"pets\"\nspec = \"b.yaml\"\n");
        assert!(Config::parse(&twice, &[]).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn reads_credentials_and_refuses_inconsistent_ones() {
        let exchange = format!(
            "{MINIMAL}[servers.credentials]\nmode = \"token_exchange\"\ntoken_endpoint = \"https://idp/token\"\n\
             client_id = \"mcpgate\"\nclient_secret = \"s\"\naudience = \"https://api\"\n"
        );
        let err = Config::parse(&exchange, &[]).unwrap_err().to_string();
        assert!(err.contains("auth mode `jwt`"), "{err}");
        let jwt =
            exchange.replace("mode = \"none\"", "mode = \"jwt\"\n[[auth.issuers]]\nissuer = \"https://idp\"");
        let config = Config::parse(&jwt, &[]).unwrap();
        let CredentialsConfig::TokenExchange(grant) = &config.servers[0].credentials else { panic!() };
        assert_eq!(
            (grant.client_auth, grant.audience.as_deref()),
            (ClientAuth::ClientSecretBasic, Some("https://api"))
        );
        assert_eq!(format!("{:?}", grant.client_secret), "Some([redacted])");
        let typo = jwt.replace("audience", "audiense");
        assert!(Config::parse(&typo, &[]).unwrap_err().to_string().contains("audiense"));
        let secret = [("MCPGATE_SERVERS__0__CREDENTIALS__CLIENT_SECRET".to_owned(), "from-env".to_owned())];
        let config = Config::parse(&jwt, &secret).unwrap();
        let CredentialsConfig::TokenExchange(grant) = &config.servers[0].credentials else { panic!() };
        assert_eq!(grant.client_secret.as_ref().and_then(|it| it.expose()), Some("from-env"));
    }
}
