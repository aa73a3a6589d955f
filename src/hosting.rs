//! The hosted servers: provisioned at start-up from the configuration's `[[servers]]` and from the
//! store, and looked up by slug for each request.
//!
//! A server whose document cannot be read falls back to the copy kept in the store; one with
//! neither is left out, counted by `/readyz` and shown with the reason in the admin API, without
//! stopping the others.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;

use crate::auth::{Guard, Resource, Verifier};
use crate::catalog::{self, Catalog};
use crate::config::{self, Config, ServerSettings};
use crate::credentials::{Attachment, Credentials, Flows};
use crate::mcp::{self, Gateway};
use crate::policy::Policies;
use crate::secrets::Keyring;
use crate::snapshot::{self, Snapshot};
use crate::source::{self, Limits, Source};
use crate::store::Store;
use crate::upstream::Backend;

pub struct Hosted {
    /// What requests read: replaced whole by each publication.
    pub host: snapshot::Host,
    pub service: mcp::Endpoint,
    /// Whether the configuration file declares the server (which the admin UI cannot change).
    pub provisioned: bool,
}

/// Every hosted server, by slug. Cheap to clone; servers are added, replaced and removed while
/// requests are served.
#[derive(Clone)]
pub struct Hosting {
    // std locks: held only to look up, clone or replace an `Arc`, never across an await.
    servers: Arc<RwLock<BTreeMap<String, Arc<Hosted>>>>,
    /// Servers that could not be provisioned, with the reason.
    failed: Arc<RwLock<BTreeMap<String, String>>>,
    builder: Arc<Builder>,
}

/// What building a hosted server needs besides its own settings.
struct Builder {
    config: Config,
    http: StreamableHttpServerConfig,
    verifier: Option<Verifier>,
    /// Seals and opens the secrets of stored settings, users' connections and their links.
    keyring: Arc<Keyring>,
    /// Where users' connections to backends are kept (credentials mode `authorization_code`).
    store: Store,
    /// Connections being approved, kept across publications.
    flows: Flows,
}

impl Hosting {
    pub fn get(&self, slug: &str) -> Option<Arc<Hosted>> {
        read(&self.servers).get(slug).cloned()
    }

    pub fn slugs(&self) -> Vec<String> {
        read(&self.servers).keys().cloned().collect()
    }

    pub fn failed(&self) -> Vec<(String, String)> {
        read(&self.failed).iter().map(|(slug, reason)| (slug.clone(), reason.clone())).collect()
    }

    pub fn config(&self) -> &Config {
        &self.builder.config
    }

    /// The keys that seal the secrets of stored settings.
    pub fn keyring(&self) -> &Keyring {
        &self.builder.keyring
    }

    /// Serves `spec` under `settings` from now on. A server already hosted keeps its sessions,
    /// which are told that the tool list changed.
    pub fn publish(&self, settings: ServerSettings, spec: crate::openapi::Spec) -> Result<(), String> {
        let snapshot = snapshot(settings, spec, &self.builder)?;
        let slug = snapshot.slug.clone();
        match self.get(&slug) {
            // One step: requests under way keep the snapshot they took.
            Some(existing) => existing.host.replace(snapshot),
            None => {
                let hosted = assemble(snapshot, &self.builder, false);
                write(&self.servers).insert(slug.clone(), Arc::new(hosted));
            }
        }
        write(&self.failed).remove(&slug);
        Ok(())
    }

    /// Stops serving `slug`; whether it was served.
    pub fn remove(&self, slug: &str) -> bool {
        write(&self.failed).remove(slug);
        write(&self.servers).remove(slug).is_some()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Provisions the servers of `config`, then those only the store knows.
pub async fn provision(
    config: &Config,
    store: &Store,
    keyring: Arc<Keyring>,
    verifier: Option<&Verifier>,
) -> Hosting {
    let builder = Builder {
        config: config.clone(),
        http: rmcp_config(config),
        verifier: verifier.cloned(),
        keyring,
        store: store.clone(),
        flows: Flows::default(),
    };
    let mut servers = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for settings in &config.servers {
        match provision_one(settings.clone(), store, &builder).await {
            Ok(hosted) => {
                servers.insert(settings.slug.to_string(), Arc::new(hosted));
            }
            Err(reason) => {
                tracing::error!(server = %settings.slug, %reason, "server not provisioned");
                failed.insert(settings.slug.to_string(), reason);
            }
        }
    }
    let stored = store.slugs().unwrap_or_else(|err| {
        tracing::error!(%err, "cannot list stored servers");
        Vec::new()
    });
    let only_stored: Vec<String> = stored.into_iter().filter(|it| !servers.contains_key(it)).collect();
    for slug in only_stored {
        let stored = store.server(&slug).map_err(|err| err.to_string()).and_then(|it| {
            let Some(record) = it else { return Ok(None) };
            let (settings, document) =
                config::from_record(&slug, record, &builder.keyring).map_err(|err| err.to_string())?;
            let settings = settings.validated(config.auth.mode).map_err(|err| err.to_string())?;
            Ok(Some((settings, document)))
        });
        match stored {
            Ok(Some((settings, document))) => match from_document(settings, &document, &builder, false) {
                Ok(hosted) => {
                    servers.insert(slug, Arc::new(hosted));
                }
                Err(reason) => {
                    failed.insert(slug, reason);
                }
            },
            Ok(None) => {}
            Err(reason) => {
                failed.insert(slug, reason);
            }
        }
    }
    Hosting {
        servers: Arc::new(RwLock::new(servers)),
        failed: Arc::new(RwLock::new(failed)),
        builder: Arc::new(builder),
    }
}

async fn provision_one(settings: ServerSettings, store: &Store, builder: &Builder) -> Result<Hosted, String> {
    let source = Source::parse(&settings.spec);
    let limits = Limits { allow_private_url: settings.allow_private_spec_url, ..Limits::default() };
    match source::load(&source, &limits).await {
        Ok(loaded) => {
            let stored = config::to_record(&settings, loaded.document, &builder.keyring)
                .map_err(|err| err.to_string())
                .and_then(|record| {
                    store.put_server(settings.slug.as_str(), &record).map_err(|err| err.to_string())
                });
            if let Err(err) = stored {
                tracing::warn!(server = %settings.slug, %err, "document not stored");
            }
            Ok(assemble(snapshot(settings, loaded.spec, builder)?, builder, true))
        }
        Err(err) => match store.server(settings.slug.as_str()) {
            Ok(Some(stored)) if !stored.document.is_empty() => {
                tracing::warn!(server = %settings.slug, %err, "document unreadable; serving the stored copy");
                from_document(settings, &stored.document, builder, true)
            }
            _ => Err(err.to_string()),
        },
    }
}

fn from_document(
    settings: ServerSettings,
    document: &[u8],
    builder: &Builder,
    provisioned: bool,
) -> Result<Hosted, String> {
    let spec = source::ingest(&settings.spec, document).map_err(|err| err.to_string())?;
    Ok(assemble(snapshot(settings, spec, builder)?, builder, provisioned))
}

/// Everything requests to the server read, built from its settings and document.
fn snapshot(
    settings: ServerSettings,
    spec: crate::openapi::Spec,
    builder: &Builder,
) -> Result<Snapshot, String> {
    let credentials = Credentials::new(settings.slug.as_str(), &settings.credentials)
        .map_err(|err| format!("credentials: {err}"))?;
    // Relative server URLs in a fetched document are relative to the document's URL.
    let document_url = match Source::parse(&settings.spec) {
        Source::Url(url) => Some(url),
        _ => None,
    };
    let backend_url =
        catalog::backend_url(&settings, &spec, document_url.as_ref()).map_err(|err| err.to_string())?;
    let backend = Backend::new(backend_url, &settings)?;
    let document_endpoints = authorization_code_flow(&spec);
    let catalog = Catalog::build(&settings, spec).map_err(|err| err.to_string())?;
    let mut scopes: Vec<String> = catalog.tools.iter().flat_map(|it| it.scopes.iter().cloned()).collect();
    scopes.sort();
    scopes.dedup();
    let credentials = credentials
        .attach(Attachment {
            store: builder.store.clone(),
            keyring: builder.keyring.clone(),
            flows: builder.flows.clone(),
            public_url: builder.config.public_url().to_owned(),
            title: catalog.title.clone(),
            scopes,
            document_endpoints,
        })
        .map_err(|err| format!("credentials: {err}"))?;
    let access = match &builder.verifier {
        Some(verifier) => Some(guard(&builder.config, verifier, &settings, &catalog)?),
        None => None,
    };
    let policies = Policies::build(&builder.config.policy, settings.policies.as_deref(), &catalog.tools)?;
    let keyring = builder.keyring.clone();
    Ok(Snapshot { slug: settings.slug.to_string(), catalog, access, backend, credentials, policies, keyring })
}

/// The authorization and token endpoints of the document's first oauth2 scheme with an
/// authorization code flow whose URLs are absolute http(s) URLs.
fn authorization_code_flow(spec: &crate::openapi::Spec) -> Option<(url::Url, url::Url)> {
    let absolute = |text: &Option<String>| {
        url::Url::parse(text.as_deref()?).ok().filter(|it| matches!(it.scheme(), "https" | "http"))
    };
    spec.security_schemes.iter().find_map(|scheme| match &scheme.kind {
        crate::openapi::SecurityKind::OAuth2 { authorization_url, token_url } => {
            Some((absolute(authorization_url)?, absolute(token_url)?))
        }
        _ => None,
    })
}

fn assemble(snapshot: Snapshot, builder: &Builder, provisioned: bool) -> Hosted {
    tracing::info!(
        server = %snapshot.slug, tools = snapshot.catalog.tools.len(), backend = %snapshot.backend.url(), "server provisioned"
    );
    let host = snapshot::Host::new(snapshot);
    let service = mcp::Endpoint::new(Gateway::new(host.clone()), builder.http.clone());
    Hosted { host, service, provisioned }
}

/// The server as an OAuth protected resource: its canonical URL is the audience its tokens
/// must carry.
fn guard(
    config: &Config,
    verifier: &Verifier,
    settings: &ServerSettings,
    catalog: &Catalog,
) -> Result<Guard, String> {
    let public = config.public_url();
    let slug = &settings.slug;
    let url = format!("{public}/mcp/{slug}");
    let mut audiences = vec![url.clone()];
    audiences.extend(config.auth.audiences.iter().cloned());
    let verifier = verifier.with_audiences(&audiences).map_err(|err| err.to_string())?;
    let mut scopes: Vec<String> = settings.scopes.clone();
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
        required_scopes: settings.scopes.clone(),
    };
    Ok(Guard::new(verifier, resource, config.auth.filter_tools_by_scope))
}

/// Host and Origin checks (DNS-rebinding protection) and the request size limit.
fn rmcp_config(config: &Config) -> StreamableHttpServerConfig {
    let public = config.http.public_url.as_ref();
    // The router checks `Host` on every route already; rmcp checks the same list again.
    let hosts = config.http.accepted_hosts();
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
