//! The store: hosted servers' settings and the documents they were made from, so that a restart
//! keeps everything even when a document's URL is unreachable; the audit log; the admin sessions
//! that were signed out before they expired; and users' connections to backends (opaque bytes,
//! sealed by their owner); each server's publications, numbered, with the tools each served; the
//! confirmation states already used. Two engines behind this one handle: redb, embedded, the default for
//! one node (`redb.rs`), and PostgreSQL for several replicas sharing one database
//! (`postgres.rs`), which also tells each replica what the others changed (`Watch`).
//!
//! A leaf: it keeps [`Record`]s, whose settings its callers serialize (with their secrets
//! sealed), and knows nothing of what they mean.
//!
//! Invariants: a server's settings and its document change together, in one transaction, and its
//! users' connections go when it does; every settings value carries the version of its format;
//! every write to a server bumps its edition, and a write naming a stale edition is refused
//! ([`Error::Conflict`]), so two administrators never overwrite each other unknowingly.

mod postgres;
mod redb;
mod tls;

use std::path::Path;

pub use postgres::{Heard, Postgres, SessionEnd, Watch};

/// Which copy of a server: the one served, or the administrator's working copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Live,
    Draft,
}

/// How many publications of each server the store keeps, the newest: an older one is dropped
/// by the publication that makes it the 51st.
pub const GENERATIONS_KEPT: u64 = 50;
/// How far replicas' clocks may differ for a used nonce to be remembered long enough.
const NONCE_CLOCK_SKEW_SECS: u64 = 600;

/// One publication of a server, as its history lists it. Numbers count a server's
/// publications (1, 2, 3…), never go back, and are never reused, even by a server made again
/// under the same slug.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generation {
    pub number: u64,
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    pub published_by: String,
}

/// What a publication records beside the served copy.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    pub published_by: &'a str,
    /// The tools it serves, as their owner serialized them (stored compressed).
    pub tools: &'a [u8],
}

/// A publication made: the server's new edition and the generation's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub edition: u64,
    pub generation: u64,
}

/// What [`Store::record_generation`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The newest kept generation had the same tools: its number.
    Unchanged(u64),
    /// A new generation, numbered.
    New(u64),
}

/// One administrative change, as the audit log keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub actor: String,
    pub action: String,
    pub server: Option<String>,
    pub detail: String,
}

/// A cheap handle to the store, whichever its engine.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Redb(redb::Redb),
    Postgres(postgres::Pg),
}

/// The format of the settings values written now. Values written before versions existed are
/// JSON objects, read as version 1.
const RECORD_VERSION: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the data directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("store: {0}")]
    Database(String),
    /// The storage failed (a full disk, an IO error) or the database cannot be reached; the
    /// store tries again at the next use.
    #[error("the store cannot be used now: {0}")]
    Unavailable(String),
    #[error("stored settings of `{slug}` are unreadable: {reason}")]
    Corrupt { slug: String, reason: String },
    /// The server was changed since the version the change was made on.
    #[error("the server was changed meanwhile (now version {current})")]
    Conflict { current: u64 },
}

/// What the store keeps of one hosted server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The settings as their owner serialized them (version 1 of the format).
    pub settings: Vec<u8>,
    /// The OpenAPI document, as imported.
    pub document: Vec<u8>,
    /// The server's edition when it was read (0 for a record not read from the store): each
    /// write to either copy of the server makes a new one.
    pub version: u64,
}

impl Store {
    /// Opens (or creates) `mcpgate.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, Error> {
        Ok(Store { engine: Engine::Redb(redb::Redb::open(data_dir)?) })
    }

    /// Connects to PostgreSQL and brings its schema up to date; fails when the database cannot
    /// be reached, since a replica that never saw the catalog has nothing to serve.
    pub async fn connect(settings: Postgres) -> Result<Store, Error> {
        Ok(Store { engine: Engine::Postgres(postgres::Pg::connect(settings).await?) })
    }

    /// Whether the store answers now: false after a storage failure or while the database
    /// cannot be reached, until it works again.
    pub fn is_usable(&self) -> bool {
        match &self.engine {
            Engine::Redb(it) => it.is_usable(),
            Engine::Postgres(it) => it.is_usable(),
        }
    }

    /// Whether replicas share this store (and follow each other's changes).
    pub fn is_shared(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// The changes other replicas make, for the one follower of a shared store; `None` for the
    /// embedded store, or once taken.
    pub fn watch(&self) -> Option<Watch> {
        match &self.engine {
            Engine::Redb(_) => None,
            Engine::Postgres(it) => it.watch(),
        }
    }

    /// The edition of every served server: what a follower compares with what it serves.
    pub async fn generations(&self) -> Result<Vec<(String, u64)>, Error> {
        match &self.engine {
            Engine::Redb(it) => {
                let mut found = Vec::new();
                for slug in it.list(Stage::Live)? {
                    if let Some(record) = it.get(Stage::Live, &slug)? {
                        found.push((slug, record.version));
                    }
                }
                Ok(found)
            }
            Engine::Postgres(it) => it.generations().await,
        }
    }

    /// Writes the served copy unconditionally (a server of the configuration file); its edition.
    pub async fn put_server(&self, slug: &str, record: &Record) -> Result<u64, Error> {
        self.put(Stage::Live, slug, record).await
    }

    pub async fn server(&self, slug: &str) -> Result<Option<Record>, Error> {
        self.get(Stage::Live, slug).await
    }

    /// The slugs of every served server, in order.
    pub async fn slugs(&self) -> Result<Vec<String>, Error> {
        self.list(Stage::Live).await
    }

    /// Writes a copy of the server, whatever its edition; the new edition.
    pub async fn put(&self, stage: Stage, slug: &str, record: &Record) -> Result<u64, Error> {
        match &self.engine {
            Engine::Redb(it) => it.put(stage, slug, record, None),
            Engine::Postgres(it) => it.put(stage, slug, record, None).await,
        }
    }

    /// Writes the draft if the server is still at edition `expected` (0: never written), else
    /// [`Error::Conflict`]; the new edition.
    pub async fn put_draft(&self, slug: &str, record: &Record, expected: u64) -> Result<u64, Error> {
        match &self.engine {
            Engine::Redb(it) => it.put(Stage::Draft, slug, record, Some(expected)),
            Engine::Postgres(it) => it.put(Stage::Draft, slug, record, Some(expected)).await,
        }
    }

    /// The server's edition now: what a change to a server not yet stored must name.
    pub async fn edition(&self, slug: &str) -> Result<u64, Error> {
        match &self.engine {
            Engine::Redb(it) => it.edition(slug),
            Engine::Postgres(it) => it.edition(slug).await,
        }
    }

    pub async fn get(&self, stage: Stage, slug: &str) -> Result<Option<Record>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.get(stage, slug),
            Engine::Postgres(it) => it.get(stage, slug).await,
        }
    }

    pub async fn list(&self, stage: Stage) -> Result<Vec<String>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.list(stage),
            Engine::Postgres(it) => it.list(stage).await,
        }
    }

    /// Removes both copies of the server and its users' connections; whether there was one.
    pub async fn delete_server(&self, slug: &str) -> Result<bool, Error> {
        match &self.engine {
            Engine::Redb(it) => it.delete_server(slug),
            Engine::Postgres(it) => it.delete_server(slug).await,
        }
    }

    /// Makes the draft the served copy and records the publication as the server's next
    /// generation, in one transaction, if the server is still at edition `expected` (dropping
    /// generations beyond [`GENERATIONS_KEPT`]); `None` when there was no draft.
    pub async fn publish(
        &self,
        slug: &str,
        expected: u64,
        publication: &Publication<'_>,
    ) -> Result<Option<Published>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.publish(slug, expected, publication),
            Engine::Postgres(it) => it.publish(slug, expected, publication).await,
        }
    }

    /// Records `publication` as the next generation of `slug` unless the newest kept generation
    /// has the same tools, byte for byte: for a server of the configuration file, whose served
    /// copy is written at every start rather than published, so that a start with changed tools
    /// is a generation and a start with the same ones is not. Replicas starting at once record
    /// one generation.
    pub async fn record_generation(
        &self,
        slug: &str,
        publication: &Publication<'_>,
    ) -> Result<Recorded, Error> {
        match &self.engine {
            Engine::Redb(it) => it.record_generation(slug, publication),
            Engine::Postgres(it) => it.record_generation(slug, publication).await,
        }
    }

    /// The kept generations of `slug`, newest first.
    pub async fn history(&self, slug: &str) -> Result<Vec<Generation>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.history(slug),
            Engine::Postgres(it) => it.history(slug).await,
        }
    }

    /// The tools generation `number` of `slug` served, as they were given to
    /// [`Store::publish`]; `None` when it is not kept.
    pub async fn generation_tools(&self, slug: &str, number: u64) -> Result<Option<Vec<u8>>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.generation_tools(slug, number),
            Engine::Postgres(it) => it.generation_tools(slug, number).await,
        }
    }

    /// Takes the single-use `nonce`, valid until `expires` (seconds since the Unix epoch):
    /// whether it was not taken before, by this process or any other sharing the store. Forgets
    /// the nonces expired well before `now`: replicas' clocks differ, and a nonce forgotten while
    /// a slower replica still accepts its state could be used twice.
    pub async fn take_nonce(&self, nonce: &str, expires: u64, now: u64) -> Result<bool, Error> {
        let now = now.saturating_sub(NONCE_CLOCK_SKEW_SECS);
        match &self.engine {
            Engine::Redb(it) => it.take_nonce(nonce, expires, now),
            Engine::Postgres(it) => it.take_nonce(nonce, expires, now).await,
        }
    }

    /// Drops the draft of `slug`, keeping the served copy.
    pub async fn discard_draft(&self, slug: &str) -> Result<(), Error> {
        match &self.engine {
            Engine::Redb(it) => it.discard_draft(slug),
            Engine::Postgres(it) => it.discard_draft(slug).await,
        }
    }

    /// Appends `entry` to the audit log.
    pub async fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        match &self.engine {
            Engine::Redb(it) => it.record(entry),
            Engine::Postgres(it) => it.record(entry).await,
        }
    }

    /// Tells the other replicas sharing the store that the MCP sessions `sessions` (local ids) of
    /// `server` have ended, so that they end them too if they opened them, and answer 404 for
    /// them otherwise. The embedded store has no other replica to tell.
    pub async fn end_session(&self, server: &str, sessions: &[String]) -> Result<(), Error> {
        match &self.engine {
            Engine::Redb(_) => Ok(()),
            Engine::Postgres(it) => it.end_session(server, sessions).await,
        }
    }

    /// Ends the session `id`, which would be valid until `expires` (seconds since the Unix
    /// epoch), and forgets the sessions ended before that had expired by `now`.
    pub async fn revoke_session(&self, id: &str, expires: u64, now: u64) -> Result<(), Error> {
        match &self.engine {
            Engine::Redb(it) => it.revoke_session(id, expires, now),
            Engine::Postgres(it) => it.revoke_session(id, expires, now).await,
        }
    }

    /// Whether the session `id` was ended (and has not expired since).
    pub async fn is_session_revoked(&self, id: &str) -> Result<bool, Error> {
        match &self.engine {
            Engine::Redb(it) => it.is_session_revoked(id),
            Engine::Postgres(it) => it.is_session_revoked(id).await,
        }
    }

    /// Keeps `value` as the connection `id` of the server `slug`, replacing any.
    pub async fn put_connection(&self, slug: &str, id: &str, value: &[u8]) -> Result<(), Error> {
        match &self.engine {
            Engine::Redb(it) => it.put_connection(slug, id, value),
            Engine::Postgres(it) => it.put_connection(slug, id, value).await,
        }
    }

    pub async fn connection(&self, slug: &str, id: &str) -> Result<Option<Vec<u8>>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.connection(slug, id),
            Engine::Postgres(it) => it.connection(slug, id).await,
        }
    }

    /// Every connection of the server `slug`: id and value, in the order of their ids.
    pub async fn connections(&self, slug: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.connections(slug),
            Engine::Postgres(it) => it.connections(slug).await,
        }
    }

    /// Forgets the connection `id` of the server `slug`; whether there was one.
    pub async fn delete_connection(&self, slug: &str, id: &str) -> Result<bool, Error> {
        match &self.engine {
            Engine::Redb(it) => it.delete_connection(slug, id),
            Engine::Postgres(it) => it.delete_connection(slug, id).await,
        }
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        match &self.engine {
            Engine::Redb(it) => it.audit_log(limit),
            Engine::Postgres(it) => it.audit_log(limit).await,
        }
    }
}

/// The stored form of settings: the format's version, then the bytes.
fn encode_settings(settings: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(settings.len() + 1);
    encoded.push(RECORD_VERSION);
    encoded.extend_from_slice(settings);
    encoded
}

fn decode_settings(slug: &str, stored: &[u8]) -> Result<Vec<u8>, Error> {
    match stored {
        [RECORD_VERSION, rest @ ..] => Ok(rest.to_vec()),
        legacy @ [b'{', ..] => Ok(legacy.to_vec()),
        _ => {
            let reason = "written by a newer mcpgate, or damaged".to_owned();
            Err(Error::Corrupt { slug: slug.to_owned(), reason })
        }
    }
}

/// The stored form of a generation's tools: compressed, as PostgreSQL stores documents (tool
/// definitions shrink about tenfold, and fifty of them are kept per server).
fn compress(tools: &[u8]) -> Result<Vec<u8>, Error> {
    postgres::compress(tools)
}

fn decompress(slug: &str, stored: &[u8]) -> Result<Vec<u8>, Error> {
    postgres::decompress(slug, stored)
}

/// Slugs hold no `/`, so `{slug}/` prefixes exactly the connections of one server.
fn connection_key(slug: &str, id: &str) -> String {
    format!("{slug}/{id}")
}

#[cfg(test)]
impl Store {
    /// A store whose database could not be opened again after a storage failure, for the tests
    /// of what reads [`Store::is_usable`].
    pub(crate) fn unusable() -> Store {
        Store { engine: Engine::Redb(redb::Redb::unusable()) }
    }
}
