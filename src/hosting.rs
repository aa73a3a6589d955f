//! The hosted servers: provisioned at start-up from the configuration's `[[servers]]` and from the
//! store, and looked up by slug for each request.
//!
//! A server whose document cannot be read falls back to the copy kept in the store; one with
//! neither is left out, counted by `/readyz` and shown with the reason in the admin API, without
//! stopping the others.
//!
//! On a store shared by several replicas, `follow.rs` keeps each replica serving what the store
//! serves: a publication on one is served by all.

mod follow;

pub use follow::follow;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;

use crate::auth::{Guard, Resource, Verifier};
use crate::catalog::{self, Catalog};
use crate::config::{self, Config, ServerSettings};
use crate::credentials::{Attachment, Credentials, Flows};
use crate::mcp::{self, Gateway, ToolVersion};
use crate::policy::Policies;
use crate::secrets::Keyring;
use crate::snapshot::{self, Snapshot};
use crate::source::{self, Limits, Source};
use crate::store::{AuditEntry, Publication, Recorded, SessionEnd, Store};
use crate::upstream::Backend;

/// Who the generations of a server of the configuration file are published by.
pub const CONFIGURATION: &str = "configuration file";

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
    /// Servers being provisioned at start-up.
    loading: Arc<AtomicUsize>,
    /// Set when the process stops.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// The store's generation of each served copy, as this replica serves it: a newer one in the
    /// store is built and served; an older one never replaces a newer.
    generations: Arc<RwLock<BTreeMap<String, u64>>>,
    builder: Arc<Builder>,
}

/// A server's snapshot built and not yet served.
pub struct Prepared(Snapshot);

impl Prepared {
    /// The tools it would serve.
    pub fn tools(&self) -> &[catalog::Tool] {
        &self.0.catalog.tools
    }
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
    /// Sessions of a hosted server that another replica ended, or was asked to end.
    pub async fn session_ended(&self, end: &SessionEnd) {
        if let Some(hosted) = self.get(&end.server) {
            hosted.service.ended_elsewhere(&end.sessions).await;
        }
    }

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
        let prepared = self.prepare(settings, spec)?;
        self.install(prepared, None);
        Ok(())
    }

    /// Builds what `spec` under `settings` would serve, without serving it: whatever fails, fails
    /// here, before the store makes it the served copy.
    pub fn prepare(&self, settings: ServerSettings, spec: crate::openapi::Spec) -> Result<Prepared, String> {
        snapshot(settings, spec, &self.builder).map(Prepared)
    }

    /// Serves `prepared`, the store's `generation` of the server when it is known, unless a newer
    /// generation is served already.
    pub fn install(&self, prepared: Prepared, generation: Option<u64>) {
        let snapshot = prepared.0;
        let slug = snapshot.slug.clone();
        // Held across the swap: two followers of one server install in generation order.
        let mut generations = write(&self.generations);
        if let Some(generation) = generation {
            if generations.get(&slug).is_some_and(|served| *served >= generation) {
                return;
            }
            generations.insert(slug.clone(), generation);
        }
        match self.get(&slug) {
            // One step: requests under way keep the snapshot they took.
            Some(existing) => existing.host.replace(snapshot),
            None => {
                let hosted = assemble(snapshot, &self.builder, false);
                write(&self.servers).insert(slug.clone(), Arc::new(hosted));
            }
        }
        write(&self.failed).remove(&slug);
    }

    /// Stops serving `slug`; whether it was served.
    pub fn remove(&self, slug: &str) -> bool {
        write(&self.generations).remove(slug);
        write(&self.failed).remove(slug);
        write(&self.servers).remove(slug).is_some()
    }

    /// The store's generation of the copy served, when known.
    fn generation(&self, slug: &str) -> Option<u64> {
        read(&self.generations).get(slug).copied()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Provisions the servers of `config`, then those only the store knows, and returns once every
/// one is served or has failed.
pub async fn provision(
    config: &Config,
    store: &Store,
    keyring: Arc<Keyring>,
    verifier: Option<&Verifier>,
) -> Hosting {
    let hosting = Hosting::new(config, store, keyring, verifier);
    hosting.load().await;
    hosting
}

impl Hosting {
    /// No server yet: [`Hosting::load`] provisions them, while requests are already served.
    pub fn new(
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
        Hosting {
            servers: Arc::default(),
            failed: Arc::default(),
            // Counted from the start, so that `/readyz` never says ready before loading begins.
            loading: Arc::new(AtomicUsize::new(config.servers.len())),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            generations: Arc::default(),
            builder: Arc::new(builder),
        }
    }

    /// Servers not yet provisioned (`/readyz` counts them).
    pub fn loading(&self) -> usize {
        self.loading.load(Ordering::Relaxed)
    }

    /// Says that the process is stopping: a publication under way gives up rather than hold the
    /// shutdown until it is built.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Completes once [`Hosting::stop`] is called.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // The sender lives as long as `self`.
        let _ = stopping.wait_for(|it| *it).await;
    }

    /// Provisions the servers of the configuration, then those only the store knows; each is
    /// served as soon as it is built, off the async workers, a few at a time.
    pub async fn load(&self) {
        let builder = &self.builder;
        let configured: Vec<ServerSettings> = builder.config.servers.clone();
        let stored = builder.store.generations().await.unwrap_or_else(|err| {
            tracing::error!(%err, "cannot list stored servers");
            Vec::new()
        });
        let only_stored: Vec<(String, u64)> =
            stored.into_iter().filter(|(it, _)| !configured.iter().any(|c| c.slug.as_str() == it)).collect();
        self.loading.fetch_add(only_stored.len(), Ordering::Relaxed);
        let parallel = std::thread::available_parallelism().map_or(1, usize::from);
        let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut loads = tokio::task::JoinSet::new();
        for settings in configured {
            let (hosting, permits) = (self.clone(), permits.clone());
            loads.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let slug = settings.slug.to_string();
                let outcome = provision_one(settings, &hosting.builder).await;
                hosting.loaded(slug, outcome);
            });
        }
        for (slug, generation) in only_stored {
            let (hosting, permits) = (self.clone(), permits.clone());
            loads.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = provision_stored(&slug, &hosting.builder).await;
                match outcome {
                    Some(outcome) => {
                        if outcome.is_ok() {
                            write(&hosting.generations).insert(slug.clone(), generation);
                        }
                        hosting.loaded(slug, outcome);
                    }
                    None => {
                        hosting.loading.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while loads.join_next().await.is_some() {}
        // Loading peaks well above what serving holds (documents, OpenAPI models, servers built
        // side by side); give what was freed back to the system rather than keep it resident.
        let _ = tokio::task::spawn_blocking(release_freed_memory).await;
    }

    fn loaded(&self, slug: String, outcome: Result<Hosted, String>) {
        match outcome {
            Ok(hosted) => {
                write(&self.servers).insert(slug, Arc::new(hosted));
            }
            Err(reason) => {
                tracing::error!(server = %slug, %reason, "server not provisioned");
                write(&self.failed).insert(slug, reason);
            }
        }
        self.loading.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Returns the heap's free pages to the operating system. An allocator keeps what a thread
/// freed for that thread's next allocations: after loading Microsoft Graph, GitHub and Stripe
/// side by side, about 250 MB resident that nothing uses, until the building threads exit.
/// Called on the thread that freed.
fn release_freed_memory() {
    // SAFETY: takes no pointer; mimalloc (the binary's allocator, `main.rs`) only releases the
    // calling thread's free pages and those of threads that ended.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    // What C code allocates (aws-lc), and everything in builds that keep the system allocator.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: `malloc_trim` takes no pointer and only releases pages the allocator holds free.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// The served copy of `slug` in the store, its settings checked.
async fn stored_settings(
    store: &Store,
    slug: &str,
    builder: &Builder,
) -> Result<Option<(ServerSettings, Vec<u8>)>, String> {
    let Some(record) = store.server(slug).await.map_err(|err| err.to_string())? else { return Ok(None) };
    let (settings, document) =
        config::from_record(slug, record, &builder.keyring).map_err(|err| err.to_string())?;
    let settings = settings.validated(builder.config.auth.mode).map_err(|err| err.to_string())?;
    Ok(Some((settings, document)))
}

/// A server only the store knows, from its stored settings and document; `None` when the store
/// has it no longer.
async fn provision_stored(slug: &str, builder: &Arc<Builder>) -> Option<Result<Hosted, String>> {
    match stored_settings(&builder.store, slug, builder).await {
        Ok(Some((settings, document))) => {
            Some(from_document(settings, document, builder.clone(), false).await)
        }
        Ok(None) => None,
        Err(reason) => Some(Err(reason)),
    }
}

async fn provision_one(settings: ServerSettings, builder: &Arc<Builder>) -> Result<Hosted, String> {
    let source = Source::parse(&settings.spec);
    let limits = Limits { allow_private_url: settings.allow_private_spec_url, ..Limits::default() };
    let store = &builder.store;
    match source::load(&source, &limits).await {
        Ok(loaded) => {
            let stored = match config::to_record(&settings, loaded.document, &builder.keyring) {
                Ok(record) => {
                    store.put_server(settings.slug.as_str(), &record).await.map_err(|err| err.to_string())
                }
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = stored {
                tracing::warn!(server = %settings.slug, %err, "document not stored");
            }
            let built = builder.clone();
            let hosted =
                off_workers(move || Ok(assemble(snapshot(settings, loaded.spec, &built)?, &built, true)))
                    .await?;
            record_generation(&hosted, store).await;
            Ok(hosted)
        }
        Err(err) => match store.server(settings.slug.as_str()).await {
            Ok(Some(stored)) if !stored.document.is_empty() => {
                tracing::warn!(server = %settings.slug, %err, "document unreadable; serving the stored copy");
                let hosted = from_document(settings, stored.document, builder.clone(), true).await?;
                record_generation(&hosted, store).await;
                Ok(hosted)
            }
            _ => Err(err.to_string()),
        },
    }
}

/// A server of the configuration file is not published: its tools become a generation when it is
/// loaded with tools other than its newest generation's, so that its history and the admin's
/// Changes page show what a changed document or configuration changed.
async fn record_generation(hosted: &Hosted, store: &Store) {
    let snapshot = hosted.host.current();
    let slug = snapshot.slug.clone();
    // Hashing every definition takes a while for the largest documents.
    let encoded = off_workers(move || {
        let tools: Vec<ToolVersion> =
            snapshot.catalog.tools.iter().map(|it| ToolVersion::of(&it.spec)).collect();
        Ok((ToolVersion::encode(&tools), tools.len()))
    })
    .await;
    let Ok((tools, count)) = encoded else { return };
    let published_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |it| it.as_secs());
    let publication = Publication { published_at, published_by: CONFIGURATION, tools: &tools };
    match store.record_generation(&slug, &publication).await {
        Ok(Recorded::New(generation)) => {
            tracing::info!(server = %slug, generation, "tools changed since the last start: a new generation");
            let entry = AuditEntry {
                at: published_at,
                actor: CONFIGURATION.to_owned(),
                action: "publish".to_owned(),
                server: Some(slug.clone()),
                detail: format!("generation {generation}, {count} tool{}", if count == 1 { "" } else { "s" }),
            };
            if let Err(err) = store.record(&entry).await {
                tracing::warn!(server = %slug, %err, "audit entry not written");
            }
        }
        Ok(Recorded::Unchanged(_)) => {}
        Err(err) => tracing::warn!(server = %slug, %err, "generation not recorded"),
    }
}

/// Building a catalog compiles a validator per tool: seconds for the largest documents, which
/// would hold an async worker and every request queued behind it.
async fn off_workers<T: Send + 'static>(
    build: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let built = tokio::task::spawn_blocking(|| {
        let built = build();
        // The document's model and the building's scratch were freed on this thread.
        release_freed_memory();
        built
    });
    built.await.map_err(|err| format!("building the server failed: {err}"))?
}

async fn from_document(
    settings: ServerSettings,
    document: Vec<u8>,
    builder: Arc<Builder>,
    provisioned: bool,
) -> Result<Hosted, String> {
    off_workers(move || {
        let spec = source::ingest(&settings.spec, &document).map_err(|err| err.to_string())?;
        Ok(assemble(snapshot(settings, spec, &builder)?, &builder, provisioned))
    })
    .await
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
    let shared = builder.store.is_shared().then(|| builder.store.clone());
    let service = mcp::Endpoint::new(
        Gateway::new(host.clone()).with_store(builder.store.clone()),
        builder.http.clone(),
        builder.keyring.clone(),
        shared,
    );
    let sessions = builder.config.sessions;
    let count = |it: config::SessionCount| usize::try_from(it.get()).unwrap_or(usize::MAX);
    service.set_session_limits(mcp::SessionLimits {
        per_subject: count(sessions.per_subject),
        per_server: count(sessions.per_server),
        ..mcp::SessionLimits::DEFAULT
    });
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
