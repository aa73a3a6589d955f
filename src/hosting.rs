//! The hosted servers: provisioned at start-up from the configuration's `[[servers]]` and from the
//! store, and looked up by slug for each request.
//!
//! A server whose document cannot be read falls back to the copy kept in the store; one with
//! neither is left out and reported by `/readyz`, without stopping the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use url::Url;

use crate::auth::{Guard, Resource, Verifier};
use crate::catalog::{Catalog, CatalogHost};
use crate::config::{Config, ServerConfig};
use crate::credentials::Credentials;
use crate::mcp::{self, Gateway};
use crate::source::{self, Limits, Source};
use crate::store::Store;
use crate::upstream::Forwarder;

#[derive(Clone)]
pub struct Hosted {
    pub catalog: CatalogHost,
    pub service: StreamableHttpService<Gateway, NeverSessionManager>,
    /// The server's resource-server checks; `None` in auth mode `none`.
    pub guard: Option<Guard>,
}

/// Every hosted server, by slug. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hosting {
    servers: Arc<BTreeMap<String, Hosted>>,
    /// Servers that could not be provisioned, with the reason.
    pub failed: Arc<Vec<(String, String)>>,
}

impl Hosting {
    pub fn get(&self, slug: &str) -> Option<&Hosted> {
        self.servers.get(slug)
    }

    pub fn slugs(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }
}

/// What every hosted server shares: the rmcp settings and, in auth mode `jwt`, the verifier.
struct Shared<'a> {
    config: &'a Config,
    http: StreamableHttpServerConfig,
    verifier: Option<&'a Verifier>,
}

/// Provisions the servers of `config`, then those only the store knows.
pub async fn provision(config: &Config, store: &Store, verifier: Option<&Verifier>) -> Hosting {
    let shared = Shared { config, http: rmcp_config(config), verifier };
    let mut servers = BTreeMap::new();
    let mut failed = Vec::new();
    for settings in &config.servers {
        match provision_one(settings.clone(), store, &shared).await {
            Ok(hosted) => {
                servers.insert(settings.slug.clone(), hosted);
            }
            Err(reason) => {
                tracing::error!(server = %settings.slug, %reason, "server not provisioned");
                failed.push((settings.slug.clone(), reason));
            }
        }
    }
    let stored = store.slugs().unwrap_or_else(|err| {
        tracing::error!(%err, "cannot list stored servers");
        Vec::new()
    });
    let only_stored: Vec<String> = stored.into_iter().filter(|it| !servers.contains_key(it)).collect();
    for slug in only_stored {
        match store.server(&slug) {
            Ok(Some(stored)) => match from_document(stored.settings, &stored.document, None, &shared) {
                Ok(hosted) => {
                    servers.insert(slug, hosted);
                }
                Err(reason) => failed.push((slug, reason)),
            },
            Ok(None) => {}
            Err(err) => failed.push((slug, err.to_string())),
        }
    }
    Hosting { servers: Arc::new(servers), failed: Arc::new(failed) }
}

async fn provision_one(settings: ServerConfig, store: &Store, http: &Shared<'_>) -> Result<Hosted, String> {
    let source = Source::parse(&settings.spec);
    let limits = Limits { allow_private_url: settings.allow_private_spec_url, ..Limits::default() };
    let document_url = match &source {
        Source::Url(url) => Some(url.clone()),
        _ => None,
    };
    match source::load(&source, &limits).await {
        Ok(loaded) => {
            if let Err(err) = store.put_server(&settings, &loaded.document) {
                tracing::warn!(server = %settings.slug, %err, "document not stored");
            }
            build(settings, loaded.spec, document_url.as_ref(), http)
        }
        Err(err) => match store.server(&settings.slug) {
            Ok(Some(stored)) if !stored.document.is_empty() => {
                tracing::warn!(server = %settings.slug, %err, "document unreadable; serving the stored copy");
                from_document(settings, &stored.document, document_url.as_ref(), http)
            }
            _ => Err(err.to_string()),
        },
    }
}

fn from_document(
    settings: ServerConfig,
    document: &[u8],
    document_url: Option<&Url>,
    http: &Shared<'_>,
) -> Result<Hosted, String> {
    let spec = source::ingest(&settings.spec, document).map_err(|err| err.to_string())?;
    build(settings, spec, document_url, http)
}

fn build(
    settings: ServerConfig,
    spec: crate::openapi::Spec,
    document_url: Option<&Url>,
    shared: &Shared<'_>,
) -> Result<Hosted, String> {
    let credentials = Credentials::new(&settings.slug, &settings.credentials)
        .map_err(|err| format!("credentials: {err}"))?;
    let forwarder = Forwarder::new(settings.max_concurrency, credentials).map_err(|err| err.to_string())?;
    let slug = settings.slug.clone();
    let catalog = Catalog::build(settings, spec, document_url).map_err(|err| err.to_string())?;
    tracing::info!(server = %slug, tools = catalog.tools.len(), backend = %catalog.backend, "server provisioned");
    let guard = match shared.verifier {
        Some(verifier) => Some(guard(shared.config, verifier, &catalog)?),
        None => None,
    };
    let catalog = CatalogHost::new(catalog);
    let gateway = Gateway::new(catalog.clone(), forwarder, guard.as_ref().is_some_and(|it| it.filter_tools));
    let service = mcp::service(gateway, shared.http.clone());
    Ok(Hosted { catalog, service, guard })
}

/// The server as an OAuth protected resource: its canonical URL is the audience its tokens
/// must carry.
fn guard(config: &Config, verifier: &Verifier, catalog: &Catalog) -> Result<Guard, String> {
    let public = config.public_url();
    let slug = &catalog.settings.slug;
    let url = format!("{public}/mcp/{slug}");
    let mut audiences = vec![url.clone()];
    audiences.extend(config.auth.audiences.iter().cloned());
    let verifier = verifier.with_audiences(&audiences).map_err(|err| err.to_string())?;
    let mut scopes: Vec<String> = catalog.settings.scopes.clone();
    for tool in &catalog.tools {
        for scope in &tool.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
    }
    let resource = Resource {
        metadata_url: format!("{public}/.well-known/oauth-protected-resource/mcp/{slug}"),
        url,
        name: catalog.title.clone(),
        authorization_servers: config.auth.issuers.iter().map(|it| it.issuer.clone()).collect(),
        scopes_supported: scopes,
        required_scopes: catalog.settings.scopes.clone(),
    };
    Ok(Guard::new(verifier, resource, config.auth.filter_tools_by_scope))
}

/// Host and Origin checks (DNS-rebinding protection) and the request size limit.
fn rmcp_config(config: &Config) -> StreamableHttpServerConfig {
    let public = config.http.public_url.as_ref();
    let mut hosts = config.http.allowed_hosts.clone();
    if hosts.is_empty() {
        hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Some(host) = public.and_then(Url::host_str) {
            hosts.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
        }
    }
    let mut origins = config.http.allowed_origins.clone();
    if origins.is_empty()
        && let Some(url) = public
    {
        origins.push(url.origin().ascii_serialization());
    }
    StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(config.http.max_request_bytes)
}
