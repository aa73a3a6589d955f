//! The embedded engine (redb), the default for one node: one file in the data directory.
//!
//! Invariants: after a failed write (a full disk, say) the database is opened again, so the store
//! works once the cause is gone, without a restart; every write to a server bumps its edition in
//! the same transaction.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableTable, TableDefinition};

use super::{
    AuditEntry, Error, GENERATIONS_KEPT, Generation, Publication, Published, Record, Recorded, Stage,
    compress, connection_key, decode_settings, decompress, encode_settings,
};

/// slug → the server's settings, as JSON.
const SERVERS: TableDefinition<&str, &[u8]> = TableDefinition::new("servers");
/// slug → the OpenAPI document's bytes, as imported.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
/// The same for changes an administrator has made but not yet published.
const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("drafts");
const DRAFT_DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("draft_documents");
/// slug → how many times the server was written: the version a change must name.
const EDITIONS: TableDefinition<&str, u64> = TableDefinition::new("editions");
/// sequence number → one administrative change, as JSON.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// session id → when that session would have expired, in seconds since the Unix epoch: the
/// sessions ended before then. Kept until that time only, after which nothing accepts them.
const REVOKED_SESSIONS: TableDefinition<&str, u64> = TableDefinition::new("revoked_sessions");

/// `{server}/{connection id}` → one user's connection to that server's backend, as its owner
/// serialized it (tokens sealed). Listed per server by the `{server}/` prefix.
const CONNECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("connections");

/// slug → the number of its last publication (kept when the server is deleted, so numbers are
/// never reused).
const GENERATION_NUMBERS: TableDefinition<&str, u64> = TableDefinition::new("generation_numbers");
/// (slug, number) → when and by whom, as JSON: the kept publications.
const GENERATIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("generations");
/// (slug, number) → the tools that publication served, compressed.
const GENERATION_TOOLS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("generation_tools");
/// nonce → when it expires: single-use values already used, until nothing accepts them.
const USED_NONCES: TableDefinition<&str, u64> = TableDefinition::new("used_nonces");
/// (when it expires, key) → nothing: the keys of `REVOKED_SESSIONS` and `USED_NONCES` in the order
/// they expire, so that forgetting the expired reads only them. Rebuilt whenever the database is
/// opened (`Expiring::reindex`), so it holds every key of the two tables and nothing else.
const REVOKED_SESSIONS_BY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("revoked_sessions_by_expiry");
const USED_NONCES_BY_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("used_nonces_by_expiry");

/// A table of keys kept until they expire, with its index by expiry.
#[derive(Clone, Copy)]
struct Expiring {
    keys: TableDefinition<'static, &'static str, u64>,
    by_expiry: TableDefinition<'static, (u64, &'static str), ()>,
}
const NONCES: Expiring = Expiring { keys: USED_NONCES, by_expiry: USED_NONCES_BY_EXPIRY };
const SIGNED_OUT: Expiring = Expiring { keys: REVOKED_SESSIONS, by_expiry: REVOKED_SESSIONS_BY_EXPIRY };

/// The stored part of a [`Generation`] besides its key.
#[derive(serde::Serialize, serde::Deserialize)]
struct GenerationMeta {
    published_at: u64,
    published_by: String,
}

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

fn tables(stage: Stage) -> (Table, Table) {
    match stage {
        Stage::Live => (SERVERS, DOCUMENTS),
        Stage::Draft => (DRAFTS, DRAFT_DOCUMENTS),
    }
}

/// A cheap handle to the database.
#[derive(Clone)]
pub struct Redb {
    inner: Arc<Inner>,
}

struct Inner {
    open: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    // A std lock, held for one synchronous transaction: readers and writers share the open
    // database; reopening it takes it alone. `None` while it cannot be opened.
    db: RwLock<Option<Database>>,
}

/// redb's page cache. Its default (1 GiB) kept every document written at start-up in memory (36 MB
/// for GitHub, Stripe and Microsoft Graph); documents are read back only to publish or curate, and
/// the operating system's page cache serves those reads.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// redb has one error type per operation; the store tells storage failures from the rest.
fn db_error(err: impl Into<redb::Error>) -> Error {
    match err.into() {
        err @ (redb::Error::Io(_) | redb::Error::PreviousIo) => Error::Unavailable(err.to_string()),
        err => Error::Database(err.to_string()),
    }
}

impl Redb {
    /// Opens (or creates) `mcpgate.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Redb, Error> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| Error::Directory { path: data_dir.display().to_string(), source })?;
        let path: PathBuf = data_dir.join("mcpgate.redb");
        Redb::with(Box::new(move || redb::Builder::new().set_cache_size(CACHE_BYTES).create(&path)))
    }

    fn with(
        open: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    ) -> Result<Redb, Error> {
        let store = Redb { inner: Arc::new(Inner { open, db: RwLock::new(None) }) };
        store.reopen()?;
        Ok(store)
    }

    /// Whether the database is open; after a storage failure, until it opens again.
    pub fn is_usable(&self) -> bool {
        self.inner.db.read().is_ok_and(|it| it.is_some())
    }

    /// Runs `op` on the open database. After a storage failure the database is opened again
    /// (redb refuses every transaction after one failed write) and `op` tried once more.
    fn run<T>(&self, op: impl Fn(&Database) -> Result<T, Error>) -> Result<T, Error> {
        let first = match self.inner.db.read().as_deref() {
            Ok(Some(db)) => match op(db) {
                Err(Error::Unavailable(reason)) => reason,
                done => return done,
            },
            Ok(None) => "the database is not open".to_owned(),
            Err(_) => "the database lock is poisoned".to_owned(),
        };
        tracing::warn!(reason = %first, "store: opening the database again");
        self.reopen()?;
        match self.inner.db.read().as_deref() {
            Ok(Some(db)) => op(db),
            _ => Err(Error::Unavailable(first)),
        }
    }

    fn reopen(&self) -> Result<(), Error> {
        let mut slot = self.inner.db.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The old handle holds the file's lock: it goes first.
        *slot = None;
        let db = (self.inner.open)().map_err(db_error)?;
        // Creating the tables up front lets readers assume they exist.
        let tx = db.begin_write().map_err(db_error)?;
        for table in [SERVERS, DOCUMENTS, DRAFTS, DRAFT_DOCUMENTS] {
            tx.open_table(table).map_err(db_error)?;
        }
        tx.open_table(EDITIONS).map_err(db_error)?;
        tx.open_table(AUDIT).map_err(db_error)?;
        tx.open_table(CONNECTIONS).map_err(db_error)?;
        tx.open_table(GENERATION_NUMBERS).map_err(db_error)?;
        tx.open_table(GENERATIONS).map_err(db_error)?;
        tx.open_table(GENERATION_TOOLS).map_err(db_error)?;
        SIGNED_OUT.reindex(&tx)?;
        NONCES.reindex(&tx)?;
        tx.commit().map_err(db_error)?;
        *slot = Some(db);
        Ok(())
    }

    /// Writes both parts of a copy of the server and bumps its edition, refusing the write when
    /// `expected` is given and is not the current edition; the new edition.
    pub fn put(
        &self,
        stage: Stage,
        slug: &str,
        record: &Record,
        expected: Option<u64>,
    ) -> Result<u64, Error> {
        let settings = encode_settings(&record.settings);
        let (servers, documents) = tables(stage);
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            let edition = {
                let edition = bump(&tx, slug, expected)?;
                let mut servers = tx.open_table(servers).map_err(db_error)?;
                servers.insert(slug, settings.as_slice()).map_err(db_error)?;
                let mut documents = tx.open_table(documents).map_err(db_error)?;
                documents.insert(slug, record.document.as_slice()).map_err(db_error)?;
                edition
            };
            tx.commit().map_err(db_error)?;
            Ok(edition)
        })
    }

    pub fn get(&self, stage: Stage, slug: &str) -> Result<Option<Record>, Error> {
        let (servers, documents) = tables(stage);
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let servers = tx.open_table(servers).map_err(db_error)?;
            let documents = tx.open_table(documents).map_err(db_error)?;
            let Some(stored) = servers.get(slug).map_err(db_error)? else {
                return Ok(None);
            };
            let settings = decode_settings(slug, stored.value())?;
            let document =
                documents.get(slug).map_err(db_error)?.map(|it| it.value().to_vec()).unwrap_or_default();
            let version = tx.open_table(EDITIONS).map_err(db_error)?.get(slug).map_err(db_error)?;
            Ok(Some(Record { settings, document, version: version.map_or(0, |it| it.value()) }))
        })
    }

    pub fn list(&self, stage: Stage) -> Result<Vec<String>, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let servers = tx.open_table(tables(stage).0).map_err(db_error)?;
            let mut slugs = Vec::new();
            for entry in servers.iter().map_err(db_error)? {
                let (slug, _) = entry.map_err(db_error)?;
                slugs.push(slug.value().to_owned());
            }
            Ok(slugs)
        })
    }

    /// Removes both copies of the server; whether there was one.
    pub fn delete_server(&self, slug: &str) -> Result<bool, Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            let mut existed = false;
            for (servers, documents) in [tables(Stage::Live), tables(Stage::Draft)] {
                let mut servers = tx.open_table(servers).map_err(db_error)?;
                let mut documents = tx.open_table(documents).map_err(db_error)?;
                documents.remove(slug).map_err(db_error)?;
                existed |= servers.remove(slug).map_err(db_error)?.is_some();
            }
            // Editions only grow, so a server made again under the same slug is never taken for
            // the one deleted.
            bump(&tx, slug, None)?;
            // Users' connections to its backend go with it.
            let prefix = connection_key(slug, "");
            tx.open_table(CONNECTIONS)
                .map_err(db_error)?
                .retain(|key, _| !key.starts_with(prefix.as_str()))
                .map_err(db_error)?;
            // So does its history (its numbers stay taken).
            for table in [GENERATIONS, GENERATION_TOOLS] {
                tx.open_table(table)
                    .map_err(db_error)?
                    .retain_in((slug, 0)..=(slug, u64::MAX), |_, _| false)
                    .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(existed)
        })
    }

    pub fn edition(&self, slug: &str) -> Result<u64, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let editions = tx.open_table(EDITIONS).map_err(db_error)?;
            Ok(editions.get(slug).map_err(db_error)?.map_or(0, |it| it.value()))
        })
    }

    /// Makes the draft the served copy and records the publication, in one transaction, refusing
    /// when `expected` is not the current edition; `None` when there was no draft.
    pub fn publish(
        &self,
        slug: &str,
        expected: u64,
        publication: &Publication<'_>,
    ) -> Result<Option<Published>, Error> {
        let tools = compress(publication.tools)?;
        let meta = generation_meta(publication)?;
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            let published = {
                let mut drafts = tx.open_table(DRAFTS).map_err(db_error)?;
                let mut draft_documents = tx.open_table(DRAFT_DOCUMENTS).map_err(db_error)?;
                let Some(settings) = drafts.remove(slug).map_err(db_error)?.map(|it| it.value().to_vec())
                else {
                    return Ok(None);
                };
                let document = draft_documents
                    .remove(slug)
                    .map_err(db_error)?
                    .map(|it| it.value().to_vec())
                    .unwrap_or_default();
                tx.open_table(SERVERS)
                    .map_err(db_error)?
                    .insert(slug, settings.as_slice())
                    .map_err(db_error)?;
                tx.open_table(DOCUMENTS)
                    .map_err(db_error)?
                    .insert(slug, document.as_slice())
                    .map_err(db_error)?;
                let edition = bump(&tx, slug, Some(expected))?;
                let generation = append_generation(&tx, slug, &meta, &tools)?;
                Published { edition, generation }
            };
            tx.commit().map_err(db_error)?;
            Ok(Some(published))
        })
    }

    /// Records the next generation unless the newest kept one has the same tools.
    pub fn record_generation(&self, slug: &str, publication: &Publication<'_>) -> Result<Recorded, Error> {
        let tools = compress(publication.tools)?;
        let meta = generation_meta(publication)?;
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            let newest = {
                let stored = tx.open_table(GENERATION_TOOLS).map_err(db_error)?;
                let mut range = stored.range((slug, 0)..=(slug, u64::MAX)).map_err(db_error)?;
                match range.next_back() {
                    Some(entry) => {
                        let (key, value) = entry.map_err(db_error)?;
                        Some((key.value().1, decompress(slug, value.value())?))
                    }
                    None => None,
                }
            };
            if let Some((number, newest)) = newest
                && newest == publication.tools
            {
                // Dropped uncommitted: nothing was written.
                return Ok(Recorded::Unchanged(number));
            }
            let generation = append_generation(&tx, slug, &meta, &tools)?;
            tx.commit().map_err(db_error)?;
            Ok(Recorded::New(generation))
        })
    }

    pub fn history(&self, slug: &str) -> Result<Vec<Generation>, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let generations = tx.open_table(GENERATIONS).map_err(db_error)?;
            let mut found = Vec::new();
            for entry in generations.range((slug, 0)..=(slug, u64::MAX)).map_err(db_error)?.rev() {
                let (key, value) = entry.map_err(db_error)?;
                let meta: GenerationMeta = serde_json::from_slice(value.value()).map_err(|err| {
                    Error::Corrupt { slug: slug.to_owned(), reason: format!("generation: {err}") }
                })?;
                found.push(Generation {
                    number: key.value().1,
                    published_at: meta.published_at,
                    published_by: meta.published_by,
                });
            }
            Ok(found)
        })
    }

    pub fn generation_tools(&self, slug: &str, number: u64) -> Result<Option<Vec<u8>>, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let stored = tx.open_table(GENERATION_TOOLS).map_err(db_error)?;
            match stored.get((slug, number)).map_err(db_error)? {
                Some(it) => Ok(Some(decompress(slug, it.value())?)),
                None => Ok(None),
            }
        })
    }

    pub fn take_nonce(&self, nonce: &str, expires: u64, now: u64) -> Result<bool, Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            NONCES.forget_expired(&tx, now)?;
            let fresh = NONCES.insert_new(&tx, nonce, expires)?;
            tx.commit().map_err(db_error)?;
            Ok(fresh)
        })
    }

    /// Drops the draft of `slug`, keeping the served copy.
    pub fn discard_draft(&self, slug: &str) -> Result<(), Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            tx.open_table(DRAFTS).map_err(db_error)?.remove(slug).map_err(db_error)?;
            tx.open_table(DRAFT_DOCUMENTS).map_err(db_error)?.remove(slug).map_err(db_error)?;
            bump(&tx, slug, None)?;
            tx.commit().map_err(db_error)
        })
    }

    /// Appends `entry` to the audit log.
    pub fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        let json = serde_json::to_vec(entry).map_err(|err| Error::Database(err.to_string()))?;
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            {
                let mut audit = tx.open_table(AUDIT).map_err(db_error)?;
                let next = audit.last().map_err(db_error)?.map_or(0, |(key, _)| key.value() + 1);
                audit.insert(next, json.as_slice()).map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
    }

    pub fn revoke_session(&self, id: &str, expires: u64, now: u64) -> Result<(), Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            SIGNED_OUT.forget_expired(&tx, now)?;
            SIGNED_OUT.insert(&tx, id, expires)?;
            tx.commit().map_err(db_error)
        })
    }

    pub fn is_session_revoked(&self, id: &str) -> Result<bool, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let revoked = tx.open_table(REVOKED_SESSIONS).map_err(db_error)?;
            Ok(revoked.get(id).map_err(db_error)?.is_some())
        })
    }

    pub fn put_connection(&self, slug: &str, id: &str, value: &[u8]) -> Result<(), Error> {
        let key = connection_key(slug, id);
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            tx.open_table(CONNECTIONS).map_err(db_error)?.insert(key.as_str(), value).map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
    }

    pub fn connection(&self, slug: &str, id: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = connection_key(slug, id);
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let connections = tx.open_table(CONNECTIONS).map_err(db_error)?;
            Ok(connections.get(key.as_str()).map_err(db_error)?.map(|it| it.value().to_vec()))
        })
    }

    pub fn connections(&self, slug: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let prefix = connection_key(slug, "");
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let connections = tx.open_table(CONNECTIONS).map_err(db_error)?;
            let mut found = Vec::new();
            for entry in connections.range(prefix.as_str()..).map_err(db_error)? {
                let (key, value) = entry.map_err(db_error)?;
                let Some(id) = key.value().strip_prefix(prefix.as_str()) else { break };
                found.push((id.to_owned(), value.value().to_vec()));
            }
            Ok(found)
        })
    }

    pub fn delete_connection(&self, slug: &str, id: &str) -> Result<bool, Error> {
        let key = connection_key(slug, id);
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            let existed = tx
                .open_table(CONNECTIONS)
                .map_err(db_error)?
                .remove(key.as_str())
                .map_err(db_error)?
                .is_some();
            tx.commit().map_err(db_error)?;
            Ok(existed)
        })
    }

    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let audit = tx.open_table(AUDIT).map_err(db_error)?;
            let mut entries = Vec::new();
            for entry in audit.iter().map_err(db_error)?.rev().take(limit) {
                let (_, value) = entry.map_err(db_error)?;
                if let Ok(entry) = serde_json::from_slice(value.value()) {
                    entries.push(entry);
                }
            }
            Ok(entries)
        })
    }
}

fn generation_meta(publication: &Publication<'_>) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&GenerationMeta {
        published_at: publication.published_at,
        published_by: publication.published_by.to_owned(),
    })
    .map_err(|err| Error::Database(err.to_string()))
}

/// Writes the next generation of `slug` in `tx` (its `meta` and compressed `tools`), dropping
/// those beyond [`GENERATIONS_KEPT`]; its number.
fn append_generation(
    tx: &redb::WriteTransaction,
    slug: &str,
    meta: &[u8],
    tools: &[u8],
) -> Result<u64, Error> {
    let generation = {
        let mut numbers = tx.open_table(GENERATION_NUMBERS).map_err(db_error)?;
        let last = numbers.get(slug).map_err(db_error)?.map_or(0, |it| it.value());
        numbers.insert(slug, last + 1).map_err(db_error)?;
        last + 1
    };
    let oldest_kept = generation.saturating_sub(GENERATIONS_KEPT - 1);
    let mut generations = tx.open_table(GENERATIONS).map_err(db_error)?;
    generations.insert((slug, generation), meta).map_err(db_error)?;
    generations.retain_in((slug, 0)..(slug, oldest_kept), |_, _| false).map_err(db_error)?;
    let mut stored = tx.open_table(GENERATION_TOOLS).map_err(db_error)?;
    stored.insert((slug, generation), tools).map_err(db_error)?;
    stored.retain_in((slug, 0)..(slug, oldest_kept), |_, _| false).map_err(db_error)?;
    Ok(generation)
}

/// Bumps the edition of `slug` in `tx`, refusing when `expected` is given and differs; the new
/// edition. A server never written has edition 0.
fn bump(tx: &redb::WriteTransaction, slug: &str, expected: Option<u64>) -> Result<u64, Error> {
    let mut editions = tx.open_table(EDITIONS).map_err(db_error)?;
    let current = editions.get(slug).map_err(db_error)?.map_or(0, |it| it.value());
    if expected.is_some_and(|it| it != current) {
        return Err(Error::Conflict { current });
    }
    editions.insert(slug, current + 1).map_err(db_error)?;
    Ok(current + 1)
}

impl Expiring {
    /// Forgets the keys expired by `now`, reading only them, through the index.
    fn forget_expired(self, tx: &redb::WriteTransaction, now: u64) -> Result<(), Error> {
        let mut keys = tx.open_table(self.keys).map_err(db_error)?;
        let mut by_expiry = tx.open_table(self.by_expiry).map_err(db_error)?;
        // Expired: `expires <= now`, the entries before `(now + 1, "")`.
        let expired: Vec<(u64, String)> = by_expiry
            .range(..(now.saturating_add(1), ""))
            .map_err(db_error)?
            .map(|entry| entry.map(|(key, _)| (key.value().0, key.value().1.to_owned())))
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        for (expires, key) in &expired {
            by_expiry.remove((*expires, key.as_str())).map_err(db_error)?;
            // Only a key that expires then: an index entry that outlived its key's change (never
            // written so, but a key forgotten early would be a nonce taken twice) forgets nothing.
            if keys.get(key.as_str()).map_err(db_error)?.is_some_and(|it| it.value() == *expires) {
                keys.remove(key.as_str()).map_err(db_error)?;
            }
        }
        Ok(())
    }

    /// Keeps `key` until `expires`, unless it is kept already: whether it was not.
    fn insert_new(self, tx: &redb::WriteTransaction, key: &str, expires: u64) -> Result<bool, Error> {
        let mut keys = tx.open_table(self.keys).map_err(db_error)?;
        if keys.get(key).map_err(db_error)?.is_some() {
            return Ok(false);
        }
        keys.insert(key, expires).map_err(db_error)?;
        tx.open_table(self.by_expiry).map_err(db_error)?.insert((expires, key), ()).map_err(db_error)?;
        Ok(true)
    }

    /// Keeps `key` until `expires`, whether it was kept before or not.
    fn insert(self, tx: &redb::WriteTransaction, key: &str, expires: u64) -> Result<(), Error> {
        let mut keys = tx.open_table(self.keys).map_err(db_error)?;
        let mut by_expiry = tx.open_table(self.by_expiry).map_err(db_error)?;
        if let Some(before) = keys.insert(key, expires).map_err(db_error)? {
            by_expiry.remove((before.value(), key)).map_err(db_error)?;
        }
        by_expiry.insert((expires, key), ()).map_err(db_error)?;
        Ok(())
    }

    /// Makes the index hold exactly the keys by when they expire: databases written before the
    /// index existed had none. Done at every opening (after a storage failure too), in time
    /// linear in the keys, which are those of the last minutes.
    fn reindex(self, tx: &redb::WriteTransaction) -> Result<(), Error> {
        let keys = tx.open_table(self.keys).map_err(db_error)?;
        let mut by_expiry = tx.open_table(self.by_expiry).map_err(db_error)?;
        by_expiry.retain(|_, _| false).map_err(db_error)?;
        for entry in keys.iter().map_err(db_error)? {
            let (key, expires) = entry.map_err(db_error)?;
            by_expiry.insert((expires.value(), key.value()), ()).map_err(db_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
impl Redb {
    /// A database that could not be opened again after a storage failure.
    pub(super) fn unusable() -> Redb {
        let open = Box::new(|| {
            let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(full)))
        });
        Redb { inner: Arc::new(Inner { open, db: RwLock::new(None) }) }
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    fn record(settings: &str, document: &[u8]) -> Record {
        Record { settings: settings.as_bytes().to_vec(), document: document.to_vec(), version: 0 }
    }

    #[test]
    fn reads_unversioned_values_and_refuses_unknown_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Redb::open(dir.path()).unwrap();
        let write = |value: &[u8]| {
            store
                .run(|db| {
                    let tx = db.begin_write().map_err(db_error)?;
                    tx.open_table(SERVERS).map_err(db_error)?.insert("pets", value).map_err(db_error)?;
                    tx.commit().map_err(db_error)
                })
                .unwrap();
        };
        write(br#"{"slug":"pets"}"#);
        assert_eq!(store.get(Stage::Live, "pets").unwrap().unwrap().settings, br#"{"slug":"pets"}"#);
        write(b"\x09{}");
        assert!(matches!(store.get(Stage::Live, "pets"), Err(Error::Corrupt { .. })));
    }

    /// Expired keys are forgotten through the index, which a database written without it gets
    /// when it is opened.
    #[test]
    fn expired_keys_are_forgotten_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Redb::open(dir.path()).unwrap();
        let count = |table: TableDefinition<(u64, &str), ()>| {
            store
                .run(|db| {
                    db.begin_read()
                        .map_err(db_error)?
                        .open_table(table)
                        .map_err(db_error)?
                        .len()
                        .map_err(db_error)
                })
                .unwrap()
        };
        assert!(store.take_nonce("a", 100, 10).unwrap());
        assert!(store.take_nonce("b", 200, 10).unwrap());
        assert_eq!(count(USED_NONCES_BY_EXPIRY), 2);
        // At 150 `a` has expired: it is forgotten, from both tables, and may be taken again.
        assert!(store.take_nonce("c", 300, 150).unwrap());
        assert_eq!(count(USED_NONCES_BY_EXPIRY), 2);
        assert!(!store.take_nonce("b", 300, 150).unwrap());
        assert!(store.take_nonce("a", 400, 150).unwrap());

        // A session signed out again is indexed once, by its new expiry.
        store.revoke_session("s", 100, 10).unwrap();
        store.revoke_session("s", 500, 20).unwrap();
        assert_eq!(count(REVOKED_SESSIONS_BY_EXPIRY), 1);
        store.revoke_session("t", 600, 150).unwrap();
        assert!(store.is_session_revoked("s").unwrap(), "expires at 500, not 100");

        // Keys written before the index existed.
        store
            .run(|db| {
                let tx = db.begin_write().map_err(db_error)?;
                tx.open_table(USED_NONCES).map_err(db_error)?.insert("old", 160).map_err(db_error)?;
                tx.delete_table(USED_NONCES_BY_EXPIRY).map_err(db_error)?;
                tx.commit().map_err(db_error)
            })
            .unwrap();
        drop(store);
        let store = Redb::open(dir.path()).unwrap();
        assert!(!store.take_nonce("old", 500, 150).unwrap());
        assert!(store.take_nonce("d", 500, 170).unwrap());
        assert!(store.take_nonce("old", 500, 170).unwrap(), "expired at 160, forgotten at 170");
    }

    /// A file whose writes fail while `full` is set, as on a full disk.
    #[derive(Debug)]
    struct Disk {
        file: redb::backends::FileBackend,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl redb::StorageBackend for Disk {
        fn len(&self) -> std::io::Result<u64> {
            self.file.len()
        }
        fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.file.read(offset, len)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.file.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
            self.check()?;
            self.file.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.file.write(offset, data)
        }
    }

    impl Disk {
        fn check(&self) -> std::io::Result<()> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"));
            }
            Ok(())
        }
    }

    #[test]
    fn works_again_once_a_full_disk_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcpgate.redb");
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let disk = full.clone();
        let store = Redb::with(Box::new(move || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let file = redb::backends::FileBackend::new(file)?;
            redb::Builder::new().create_with_backend(Disk { file, full: disk.clone() })
        }))
        .unwrap();
        store.put(Stage::Live, "pets", &record("{}", b"v1"), None).unwrap();

        full.store(true, std::sync::atomic::Ordering::SeqCst);
        let refused = store.put(Stage::Live, "pets", &record("{}", b"v2"), None);
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        assert!(!store.is_usable() || store.get(Stage::Live, "pets").is_ok());

        full.store(false, std::sync::atomic::Ordering::SeqCst);
        store.put(Stage::Live, "apps", &record("{}", b"a"), None).unwrap();
        assert!(store.is_usable());
        assert_eq!(
            store.get(Stage::Live, "pets").unwrap().unwrap().document,
            b"v1",
            "the refused write left nothing"
        );
        assert_eq!(store.list(Stage::Live).unwrap(), ["apps", "pets"]);
    }
}
