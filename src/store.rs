//! The embedded store (redb): hosted servers' settings and the documents they were made from,
//! so that a restart keeps everything even when a document's URL is unreachable; the audit log;
//! the admin sessions that were signed out before they expired; and users' connections to
//! backends (opaque bytes, sealed by their owner).
//!
//! A leaf: it keeps [`Record`]s, whose settings its callers serialize (with their secrets
//! sealed), and knows nothing of what they mean.
//!
//! Invariants: a server's settings and its document change together, in one transaction, and its
//! users' connections go when it does; every settings value carries the version of its format;
//! after a failed write (a full disk, say) the database is opened again, so the store works once
//! the cause is gone, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableTable, TableDefinition};

/// slug → the server's settings, as JSON.
const SERVERS: TableDefinition<&str, &[u8]> = TableDefinition::new("servers");
/// slug → the OpenAPI document's bytes, as imported.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
/// The same for changes an administrator has made but not yet published.
const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("drafts");
const DRAFT_DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("draft_documents");
/// sequence number → one administrative change, as JSON.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// session id → when that session would have expired, in seconds since the Unix epoch: the
/// sessions ended before then. Kept until that time only, after which nothing accepts them.
const REVOKED_SESSIONS: TableDefinition<&str, u64> = TableDefinition::new("revoked_sessions");

/// `{server}/{connection id}` → one user's connection to that server's backend, as its owner
/// serialized it (tokens sealed). Listed per server by the `{server}/` prefix.
const CONNECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("connections");

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

/// Which copy of a server: the one served, or the administrator's working copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Live,
    Draft,
}

impl Stage {
    fn tables(self) -> (Table, Table) {
        match self {
            Stage::Live => (SERVERS, DOCUMENTS),
            Stage::Draft => (DRAFTS, DRAFT_DOCUMENTS),
        }
    }
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

/// A cheap handle to the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    open: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    // A std lock, held for one synchronous transaction: readers and writers share the open
    // database; reopening it takes it alone. `None` while it cannot be opened.
    db: RwLock<Option<Database>>,
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
    /// The storage failed (a full disk, an IO error); the store opens the database again at the
    /// next use.
    #[error("the store cannot be used now: {0}")]
    Unavailable(String),
    #[error("stored settings of `{slug}` are unreadable: {reason}")]
    Corrupt { slug: String, reason: String },
}

/// redb has one error type per operation; the store tells storage failures from the rest.
fn db_error(err: impl Into<redb::Error>) -> Error {
    match err.into() {
        err @ (redb::Error::Io(_) | redb::Error::PreviousIo) => Error::Unavailable(err.to_string()),
        err => Error::Database(err.to_string()),
    }
}

/// What the store keeps of one hosted server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The settings as their owner serialized them (version 1 of the format).
    pub settings: Vec<u8>,
    /// The OpenAPI document, as imported.
    pub document: Vec<u8>,
}

impl Store {
    /// Opens (or creates) `mcpgate.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| Error::Directory { path: data_dir.display().to_string(), source })?;
        let path: PathBuf = data_dir.join("mcpgate.redb");
        Store::with(Box::new(move || Database::create(&path)))
    }

    fn with(
        open: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    ) -> Result<Store, Error> {
        let store = Store { inner: Arc::new(Inner { open, db: RwLock::new(None) }) };
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
        tx.open_table(AUDIT).map_err(db_error)?;
        tx.open_table(REVOKED_SESSIONS).map_err(db_error)?;
        tx.open_table(CONNECTIONS).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        *slot = Some(db);
        Ok(())
    }

    pub fn put_server(&self, slug: &str, record: &Record) -> Result<(), Error> {
        self.put(Stage::Live, slug, record)
    }

    pub fn server(&self, slug: &str) -> Result<Option<Record>, Error> {
        self.get(Stage::Live, slug)
    }

    /// The slugs of every served server, in order.
    pub fn slugs(&self) -> Result<Vec<String>, Error> {
        self.list(Stage::Live)
    }

    pub fn put(&self, stage: Stage, slug: &str, record: &Record) -> Result<(), Error> {
        let mut settings = Vec::with_capacity(record.settings.len() + 1);
        settings.push(RECORD_VERSION);
        settings.extend_from_slice(&record.settings);
        let (servers, documents) = stage.tables();
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            {
                let mut servers = tx.open_table(servers).map_err(db_error)?;
                servers.insert(slug, settings.as_slice()).map_err(db_error)?;
                let mut documents = tx.open_table(documents).map_err(db_error)?;
                documents.insert(slug, record.document.as_slice()).map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
    }

    pub fn get(&self, stage: Stage, slug: &str) -> Result<Option<Record>, Error> {
        let (servers, documents) = stage.tables();
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let servers = tx.open_table(servers).map_err(db_error)?;
            let documents = tx.open_table(documents).map_err(db_error)?;
            let Some(stored) = servers.get(slug).map_err(db_error)? else {
                return Ok(None);
            };
            let settings = match stored.value() {
                [RECORD_VERSION, rest @ ..] => rest.to_vec(),
                legacy @ [b'{', ..] => legacy.to_vec(),
                _ => {
                    let reason = "written by a newer mcpgate, or damaged".to_owned();
                    return Err(Error::Corrupt { slug: slug.to_owned(), reason });
                }
            };
            let document =
                documents.get(slug).map_err(db_error)?.map(|it| it.value().to_vec()).unwrap_or_default();
            Ok(Some(Record { settings, document }))
        })
    }

    pub fn list(&self, stage: Stage) -> Result<Vec<String>, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let servers = tx.open_table(stage.tables().0).map_err(db_error)?;
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
            for (servers, documents) in [Stage::Live.tables(), Stage::Draft.tables()] {
                let mut servers = tx.open_table(servers).map_err(db_error)?;
                let mut documents = tx.open_table(documents).map_err(db_error)?;
                documents.remove(slug).map_err(db_error)?;
                existed |= servers.remove(slug).map_err(db_error)?.is_some();
            }
            // Users' connections to its backend go with it.
            let prefix = connection_key(slug, "");
            tx.open_table(CONNECTIONS)
                .map_err(db_error)?
                .retain(|key, _| !key.starts_with(prefix.as_str()))
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(existed)
        })
    }

    /// Makes the draft the served copy, in one transaction; whether there was a draft.
    pub fn publish(&self, slug: &str) -> Result<bool, Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            {
                let mut drafts = tx.open_table(DRAFTS).map_err(db_error)?;
                let mut draft_documents = tx.open_table(DRAFT_DOCUMENTS).map_err(db_error)?;
                let Some(settings) = drafts.remove(slug).map_err(db_error)?.map(|it| it.value().to_vec())
                else {
                    return Ok(false);
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
            }
            tx.commit().map_err(db_error)?;
            Ok(true)
        })
    }

    /// Drops the draft of `slug`, keeping the served copy.
    pub fn discard_draft(&self, slug: &str) -> Result<(), Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            tx.open_table(DRAFTS).map_err(db_error)?.remove(slug).map_err(db_error)?;
            tx.open_table(DRAFT_DOCUMENTS).map_err(db_error)?.remove(slug).map_err(db_error)?;
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

    /// Ends the session `id`, which would be valid until `expires` (seconds since the Unix
    /// epoch), and forgets the sessions ended before that had expired by `now`.
    pub fn revoke_session(&self, id: &str, expires: u64, now: u64) -> Result<(), Error> {
        self.run(|db| {
            let tx = db.begin_write().map_err(db_error)?;
            {
                let mut revoked = tx.open_table(REVOKED_SESSIONS).map_err(db_error)?;
                revoked.retain(|_, expires| expires > now).map_err(db_error)?;
                revoked.insert(id, expires).map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
    }

    /// Whether the session `id` was ended (and has not expired since).
    pub fn is_session_revoked(&self, id: &str) -> Result<bool, Error> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_error)?;
            let revoked = tx.open_table(REVOKED_SESSIONS).map_err(db_error)?;
            Ok(revoked.get(id).map_err(db_error)?.is_some())
        })
    }

    /// Keeps `value` as the connection `id` of the server `slug`, replacing any.
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

    /// Every connection of the server `slug`: id and value, in the order of their ids.
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

    /// Forgets the connection `id` of the server `slug`; whether there was one.
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

    /// The newest `limit` audit entries, newest first.
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

/// Slugs hold no `/`, so `{slug}/` prefixes exactly the connections of one server.
fn connection_key(slug: &str, id: &str) -> String {
    format!("{slug}/{id}")
}

#[cfg(test)]
impl Store {
    /// A store whose database could not be opened again after a storage failure, for the tests
    /// of what reads [`Store::is_usable`].
    pub(crate) fn unusable() -> Store {
        let open = Box::new(|| {
            let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(full)))
        });
        Store { inner: Arc::new(Inner { open, db: RwLock::new(None) }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(settings: &str, document: &[u8]) -> Record {
        Record { settings: settings.as_bytes().to_vec(), document: document.to_vec() }
    }

    #[test]
    fn keeps_servers_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_server("pets", &record(r#"{"slug":"pets"}"#, b"openapi: 3.0.0")).unwrap();
            store.put_server("apps", &record(r#"{"slug":"apps"}"#, b"{}")).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.slugs().unwrap(), ["apps", "pets"]);
        assert_eq!(store.server("pets").unwrap(), Some(record(r#"{"slug":"pets"}"#, b"openapi: 3.0.0")));
        assert!(store.delete_server("pets").unwrap());
        assert!(!store.delete_server("pets").unwrap());
        assert!(store.server("pets").unwrap().is_none());
    }

    #[test]
    fn reads_unversioned_values_and_refuses_unknown_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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
        assert_eq!(store.server("pets").unwrap().unwrap().settings, br#"{"slug":"pets"}"#);
        write(b"\x09{}");
        assert!(matches!(store.server("pets"), Err(Error::Corrupt { .. })));
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
        let store = Store::with(Box::new(move || {
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
        store.put_server("pets", &record("{}", b"v1")).unwrap();

        full.store(true, std::sync::atomic::Ordering::SeqCst);
        let refused = store.put_server("pets", &record("{}", b"v2"));
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        assert!(!store.is_usable() || store.server("pets").is_ok());

        full.store(false, std::sync::atomic::Ordering::SeqCst);
        store.put_server("apps", &record("{}", b"a")).unwrap();
        assert!(store.is_usable());
        assert_eq!(store.server("pets").unwrap().unwrap().document, b"v1", "the refused write left nothing");
        assert_eq!(store.slugs().unwrap(), ["apps", "pets"]);
    }

    #[test]
    fn drafts_publish_in_one_step_and_audit_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put(Stage::Draft, "pets", &record("{}", b"draft")).unwrap();
        assert!(store.server("pets").unwrap().is_none());
        assert_eq!(store.list(Stage::Draft).unwrap(), ["pets"]);
        assert!(store.publish("pets").unwrap());
        assert_eq!(store.server("pets").unwrap().unwrap().document, b"draft");
        assert!(store.get(Stage::Draft, "pets").unwrap().is_none());
        assert!(!store.publish("pets").unwrap());
        for action in ["create", "publish"] {
            let entry = AuditEntry {
                at: 1,
                actor: "admin".into(),
                action: action.into(),
                server: Some("pets".into()),
                detail: String::new(),
            };
            store.record(&entry).unwrap();
        }
        let log = store.audit_log(10).unwrap();
        assert_eq!(log.iter().map(|it| it.action.as_str()).collect::<Vec<_>>(), ["publish", "create"]);
    }

    #[test]
    fn connections_are_kept_and_listed_per_server() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_connection("pets", "b", b"2").unwrap();
        store.put_connection("pets", "a", b"1").unwrap();
        store.put_connection("pets-2", "c", b"3").unwrap();
        store.put_connection("pet", "d", b"4").unwrap();
        assert_eq!(
            store.connections("pets").unwrap(),
            [("a".to_owned(), b"1".to_vec()), ("b".to_owned(), b"2".to_vec())]
        );
        assert_eq!(store.connection("pets", "a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.delete_connection("pets", "a").unwrap());
        assert!(!store.delete_connection("pets", "a").unwrap());
        assert_eq!(store.connections("pets").unwrap().len(), 1);
        // Deleting a server forgets its connections, and only its.
        store.delete_server("pets").unwrap();
        assert!(store.connections("pets").unwrap().is_empty());
        assert_eq!(store.connections("pets-2").unwrap().len(), 1);
    }

    #[test]
    fn revoked_sessions_are_kept_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(!store.is_session_revoked("a").unwrap());
            store.revoke_session("a", 100, 10).unwrap();
            store.revoke_session("b", 500, 20).unwrap();
        }
        // Across a restart: a configured session key keeps the cookies valid.
        let store = Store::open(dir.path()).unwrap();
        assert!(store.is_session_revoked("a").unwrap() && store.is_session_revoked("b").unwrap());
        assert!(!store.is_session_revoked("c").unwrap());
        // Each revocation drops the records of sessions expired since.
        store.revoke_session("c", 900, 100).unwrap();
        assert!(!store.is_session_revoked("a").unwrap(), "expired at 100: its record is dropped");
        assert!(store.is_session_revoked("b").unwrap() && store.is_session_revoked("c").unwrap());
    }
}
