//! The embedded store (redb): hosted servers' settings and the documents they were made from,
//! so that a restart keeps everything even when a document's URL is unreachable.
//!
//! Invariants: a server's settings and its document change together, in one transaction; secrets
//! are written sealed by the [`Keyring`], never in clear.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use crate::config::ServerConfig;
use crate::secrets::Keyring;

/// slug → the server's settings, as JSON.
const SERVERS: TableDefinition<&str, &[u8]> = TableDefinition::new("servers");
/// slug → the OpenAPI document's bytes, as imported.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
/// The same for changes an administrator has made but not yet published.
const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("drafts");
const DRAFT_DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("draft_documents");
/// sequence number → one administrative change, as JSON.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

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
    db: Arc<Database>,
    keyring: Arc<Keyring>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the data directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("store: {0}")]
    Database(String),
    #[error("stored settings of `{slug}` are unreadable: {reason}")]
    Corrupt { slug: String, reason: String },
    #[error("secrets of `{slug}`: {source}")]
    Secret { slug: String, source: crate::secrets::Error },
}

/// redb has one error type per operation; the store reports them all alike.
fn db_error(err: impl std::fmt::Display) -> Error {
    Error::Database(err.to_string())
}

/// A stored hosted server.
pub struct StoredServer {
    pub settings: ServerConfig,
    pub document: Vec<u8>,
}

impl Store {
    /// Opens (or creates) `mcpgate.redb` in `data_dir`; `keyring` seals and opens secrets.
    pub fn open(data_dir: &Path, keyring: Arc<Keyring>) -> Result<Store, Error> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| Error::Directory { path: data_dir.display().to_string(), source })?;
        let db = Database::create(data_dir.join("mcpgate.redb")).map_err(db_error)?;
        // Creating the tables up front lets readers assume they exist.
        let tx = db.begin_write().map_err(db_error)?;
        for table in [SERVERS, DOCUMENTS, DRAFTS, DRAFT_DOCUMENTS] {
            tx.open_table(table).map_err(db_error)?;
        }
        tx.open_table(AUDIT).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(Store { db: Arc::new(db), keyring })
    }

    /// The keys secrets are sealed with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn put_server(&self, settings: &ServerConfig, document: &[u8]) -> Result<(), Error> {
        self.put(Stage::Live, settings, document)
    }

    pub fn server(&self, slug: &str) -> Result<Option<StoredServer>, Error> {
        self.get(Stage::Live, slug)
    }

    /// The slugs of every served server, in order.
    pub fn slugs(&self) -> Result<Vec<String>, Error> {
        self.list(Stage::Live)
    }

    pub fn put(&self, stage: Stage, settings: &ServerConfig, document: &[u8]) -> Result<(), Error> {
        let slug = &settings.slug;
        let mut sealed = settings.clone();
        sealed
            .credentials
            .seal(&self.keyring, slug)
            .map_err(|source| Error::Secret { slug: slug.clone(), source })?;
        let json = serde_json::to_vec(&sealed).map_err(db_error)?;
        let (servers, documents) = stage.tables();
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let mut servers = tx.open_table(servers).map_err(db_error)?;
            servers.insert(settings.slug.as_str(), json.as_slice()).map_err(db_error)?;
            let mut documents = tx.open_table(documents).map_err(db_error)?;
            documents.insert(settings.slug.as_str(), document).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    pub fn get(&self, stage: Stage, slug: &str) -> Result<Option<StoredServer>, Error> {
        let (servers, documents) = stage.tables();
        let tx = self.db.begin_read().map_err(db_error)?;
        let servers = tx.open_table(servers).map_err(db_error)?;
        let documents = tx.open_table(documents).map_err(db_error)?;
        let Some(settings) = servers.get(slug).map_err(db_error)? else {
            return Ok(None);
        };
        let mut settings: ServerConfig = serde_json::from_slice(settings.value())
            .map_err(|err| Error::Corrupt { slug: slug.to_owned(), reason: err.to_string() })?;
        settings
            .credentials
            .open(&self.keyring, slug)
            .map_err(|source| Error::Secret { slug: slug.to_owned(), source })?;
        let document =
            documents.get(slug).map_err(db_error)?.map(|it| it.value().to_vec()).unwrap_or_default();
        Ok(Some(StoredServer { settings, document }))
    }

    pub fn list(&self, stage: Stage) -> Result<Vec<String>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let servers = tx.open_table(stage.tables().0).map_err(db_error)?;
        let mut slugs = Vec::new();
        for entry in servers.iter().map_err(db_error)? {
            let (slug, _) = entry.map_err(db_error)?;
            slugs.push(slug.value().to_owned());
        }
        Ok(slugs)
    }

    /// Removes both copies of the server; whether there was one.
    pub fn delete_server(&self, slug: &str) -> Result<bool, Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        let mut existed = false;
        for (servers, documents) in [Stage::Live.tables(), Stage::Draft.tables()] {
            let mut servers = tx.open_table(servers).map_err(db_error)?;
            let mut documents = tx.open_table(documents).map_err(db_error)?;
            documents.remove(slug).map_err(db_error)?;
            existed |= servers.remove(slug).map_err(db_error)?.is_some();
        }
        tx.commit().map_err(db_error)?;
        Ok(existed)
    }

    /// Makes the draft the served copy, in one transaction; whether there was a draft.
    pub fn publish(&self, slug: &str) -> Result<bool, Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let mut drafts = tx.open_table(DRAFTS).map_err(db_error)?;
            let mut draft_documents = tx.open_table(DRAFT_DOCUMENTS).map_err(db_error)?;
            let Some(settings) = drafts.remove(slug).map_err(db_error)?.map(|it| it.value().to_vec()) else {
                return Ok(false);
            };
            let document = draft_documents
                .remove(slug)
                .map_err(db_error)?
                .map(|it| it.value().to_vec())
                .unwrap_or_default();
            tx.open_table(SERVERS).map_err(db_error)?.insert(slug, settings.as_slice()).map_err(db_error)?;
            tx.open_table(DOCUMENTS)
                .map_err(db_error)?
                .insert(slug, document.as_slice())
                .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
        Ok(true)
    }

    /// Drops the draft of `slug`, keeping the served copy.
    pub fn discard_draft(&self, slug: &str) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        tx.open_table(DRAFTS).map_err(db_error)?.remove(slug).map_err(db_error)?;
        tx.open_table(DRAFT_DOCUMENTS).map_err(db_error)?.remove(slug).map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    /// Appends `entry` to the audit log.
    pub fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        let json = serde_json::to_vec(entry).map_err(db_error)?;
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let mut audit = tx.open_table(AUDIT).map_err(db_error)?;
            let next = audit.last().map_err(db_error)?.map_or(0, |(key, _)| key.value() + 1);
            audit.insert(next, json.as_slice()).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let audit = tx.open_table(AUDIT).map_err(db_error)?;
        let mut entries = Vec::new();
        for entry in audit.iter().map_err(db_error)?.rev().take(limit) {
            let (_, value) = entry.map_err(db_error)?;
            if let Ok(entry) = serde_json::from_slice(value.value()) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings(slug: &str) -> ServerConfig {
        let text = format!(
            "[http]\n[store]\n[auth]\nmode = \"none\"\n[[servers]]\nslug = \"{slug}\"\nspec = \"x.yaml\"\n\
             [servers.credentials]\nmode = \"static\"\nscheme = \"bearer\"\nvalue = \"backend-key-{slug}\"\n"
        );
        Config::parse(&text, &[]).unwrap().servers.remove(0)
    }

    fn open(dir: &Path) -> Store {
        Store::open(dir, Arc::new(Keyring::configured_or_local(&[], dir).unwrap())).unwrap()
    }

    #[test]
    fn keeps_servers_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.put_server(&settings("pets"), b"openapi: 3.0.0").unwrap();
            store.put_server(&settings("apps"), b"{}").unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.slugs().unwrap(), ["apps", "pets"]);
        let pets = store.server("pets").unwrap().unwrap();
        assert_eq!(pets.settings.slug, "pets");
        assert_eq!(pets.document, b"openapi: 3.0.0");
        let crate::config::CredentialsConfig::Static(credential) = &pets.settings.credentials else {
            panic!("credentials lost: {:?}", pets.settings.credentials)
        };
        assert_eq!(credential.value.as_ref().and_then(|it| it.expose()), Some("backend-key-pets"));
        assert!(store.delete_server("pets").unwrap());
        assert!(!store.delete_server("pets").unwrap());
        assert!(store.server("pets").unwrap().is_none());
    }

    #[test]
    fn writes_secrets_sealed() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path()).put_server(&settings("pets"), b"{}").unwrap();
        let file = std::fs::read(dir.path().join("mcpgate.redb")).unwrap();
        let clear = b"backend-key-pets";
        assert!(!file.windows(clear.len()).any(|it| it == clear), "a secret is stored in clear");
        // Without the key, the server is unreadable rather than silently without credentials.
        let other = tempfile::tempdir().unwrap();
        let keyring = Keyring::configured_or_local(&[], other.path()).unwrap();
        let stranger = Store::open(dir.path(), Arc::new(keyring)).unwrap();
        assert!(matches!(stranger.server("pets"), Err(Error::Secret { .. })));
    }

    #[test]
    fn drafts_publish_in_one_step_and_audit_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(Stage::Draft, &settings("pets"), b"draft").unwrap();
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
}
