//! The PostgreSQL engine, for several replicas sharing one database: a small pool of
//! connections, the schema brought up to date at start-up (`schema.rs`), and one more connection
//! that `LISTEN`s, so each replica hears of a publication on another within a moment.
//!
//! Invariants: every write is one transaction (a replica killed in the middle of a publication
//! leaves the old or the new copy, never a mix); a change to a served copy notifies in that
//! transaction, so the notification comes only once it is visible; documents are stored
//! compressed; a lost database makes the store unusable (`is_usable`), never the process: every
//! use tries again, and the listener reconnects with backoff.

mod schema;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_postgres::{AsyncMessage, Client, GenericClient};

use super::tls::MakeRustls;
use super::{
    AuditEntry, Error, GENERATIONS_KEPT, Generation, Publication, Published, Record, Recorded, Stage,
    decode_settings, encode_settings,
};

/// The channel a change to a served copy is announced on; the payload is the server's slug.
const CHANNEL: &str = "mcpgate_servers";
/// The channel the end of MCP sessions is announced on; the payload is the server's slug and the
/// sessions' local ids, separated by spaces.
const SESSIONS_CHANNEL: &str = "mcpgate_sessions";
/// The longest payload PostgreSQL takes is 8,000 bytes: more ids go in several notifications.
const MAX_PAYLOAD: usize = 7_000;
/// Ends heard and not yet taken by the follower; beyond, they are dropped and counted in the log
/// (each replica still ends its own sessions, and a session id expires within a day).
const ENDS_HEARD: usize = 1024;
/// The longest a store operation may take, connecting included, before the store counts as
/// unreachable: admin requests answer 503 rather than hang.
const OPERATION_DEADLINE: Duration = Duration::from_secs(10);
/// Documents inflate to at most this (the largest accepted upload is far smaller).
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;
/// The listener's wait before connecting again, doubling up to the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(15));

/// How to reach the database (`[store] url = "postgres://..."` and its companions).
#[derive(Clone)]
pub struct Postgres {
    /// A libpq-style URL or key-value string; `sslmode=require` insists on TLS, `prefer` (the
    /// default) uses it when the server offers it.
    pub url: String,
    /// Where the listening connection goes, when `url` names a transaction pooler (PgBouncer in
    /// transaction mode keeps no `LISTEN` across transactions): the database itself.
    pub listen_url: Option<String>,
    pub pool_size: usize,
    /// The password, when neither the URL nor `password_file` gives it (read from the variable
    /// `[store] password_env` names).
    pub password: Option<String>,
    /// A file holding the password, read at each new connection (so a rotated secret is used).
    pub password_file: Option<PathBuf>,
    /// PEM certificates to trust besides the system's roots.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for Postgres {
    /// The URL may hold a password: neither is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("pool_size", &self.pool_size).finish_non_exhaustive()
    }
}

/// The changes other replicas make: one signal per batch of them (and one each time the
/// listener connects again, since notifications may have been missed meanwhile). The follower
/// compares [`super::Store::generations`] with what it serves.
pub struct Watch {
    changes: mpsc::Receiver<()>,
    ended: mpsc::Receiver<SessionEnd>,
}

/// MCP sessions another replica ended (or was asked to end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub server: String,
    /// The sessions' local ids (rmcp's), which every replica's sealed ids carry.
    pub sessions: Vec<String>,
}

/// What a [`Watch`] hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Some served copy changed (or may have, while the listener was reconnecting).
    Changed,
    SessionEnded(SessionEnd),
}

impl Watch {
    /// The next thing heard; `None` once the store is gone.
    pub async fn heard(&mut self) -> Option<Heard> {
        tokio::select! {
            changed = self.changes.recv() => changed.map(|()| Heard::Changed),
            ended = self.ended.recv() => ended.map(Heard::SessionEnded),
        }
    }
}

#[derive(Clone)]
pub(super) struct Pg {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Postgres,
    tls: MakeRustls,
    // A std lock, held only to push or pop a connection.
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    usable: AtomicBool,
    watch: Mutex<Option<Watch>>,
}

/// A connection taken from the pool, given back when dropped unless it broke.
struct Pooled<'a> {
    inner: &'a Inner,
    client: Option<Client>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Set from creation until drop.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|it| !it.is_closed()) {
            lock(&self.inner.idle).push(client);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pg {
    pub async fn connect(settings: Postgres) -> Result<Pg, Error> {
        let ca = match &settings.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|err| Error::Database(format!("store.ca_file {}: {err}", path.display())))?,
            ),
            None => None,
        };
        let tls = MakeRustls::new(ca.as_deref()).map_err(Error::Database)?;
        let (tx, rx) = mpsc::channel(1);
        let (ends, ended) = mpsc::channel(ENDS_HEARD);
        let pg = Pg {
            inner: Arc::new(Inner {
                permits: Semaphore::new(settings.pool_size.max(1)),
                settings,
                tls,
                idle: Mutex::new(Vec::new()),
                usable: AtomicBool::new(false),
                watch: Mutex::new(Some(Watch { changes: rx, ended })),
            }),
        };
        {
            let mut client = pg.client().await?;
            schema::migrate(&mut client).await?;
        }
        pg.inner.usable.store(true, Ordering::Release);
        tokio::spawn(listen(Arc::downgrade(&pg.inner), tx, ends));
        Ok(pg)
    }

    pub fn is_usable(&self) -> bool {
        self.inner.usable.load(Ordering::Acquire)
    }

    pub fn watch(&self) -> Option<Watch> {
        lock(&self.inner.watch).take()
    }

    async fn client(&self) -> Result<Pooled<'_>, Error> {
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the pool is closed".into()))?;
        let idle = lock(&self.inner.idle).pop();
        let client = match idle {
            Some(client) => client,
            None => self.inner.open(&self.inner.settings.url).await.map(|(client, connection)| {
                // The connection's IO runs beside it; it ends when the client is dropped.
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(%err, "store: a pooled connection ended");
                    }
                });
                client
            })?,
        };
        Ok(Pooled { inner: &self.inner, client: Some(client), _permit: permit })
    }

    /// Runs `op` within the deadline, and keeps [`Pg::is_usable`] current.
    async fn run<T>(&self, op: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let done = match tokio::time::timeout(OPERATION_DEADLINE, op).await {
            Ok(done) => done,
            Err(_) => {
                Err(Error::Unavailable(format!("the database did not answer within {OPERATION_DEADLINE:?}")))
            }
        };
        match &done {
            Err(Error::Unavailable(_)) => self.inner.usable.store(false, Ordering::Release),
            _ => self.inner.usable.store(true, Ordering::Release),
        }
        done
    }

    pub async fn generations(&self) -> Result<Vec<(String, u64)>, Error> {
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query("select slug, generation from server_copies where stage = 'live' order by slug collate \"C\"", &[])
                .await
                .map_err(classify)?;
            Ok(rows.iter().map(|row| (row.get::<_, String>(0), unsigned(row.get(1)))).collect())
        })
        .await
    }

    pub async fn put(
        &self,
        stage: Stage,
        slug: &str,
        record: &Record,
        expected: Option<u64>,
    ) -> Result<u64, Error> {
        let settings = encode_settings(&record.settings);
        let document = compress(&record.document)?;
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            let edition = bump(&tx, slug, expected).await?;
            tx.execute(
                "insert into server_copies (slug, stage, settings, document, generation) values ($1, $2, $3, $4, $5) \
                 on conflict (slug, stage) do update set settings = excluded.settings, \
                 document = excluded.document, generation = excluded.generation",
                &[&slug, &stage_name(stage), &settings, &document, &signed(edition)],
            )
            .await
            .map_err(classify)?;
            if stage == Stage::Live {
                notify(&tx, slug).await?;
            }
            tx.commit().await.map_err(classify)?;
            Ok(edition)
        })
        .await
    }

    pub async fn get(&self, stage: Stage, slug: &str) -> Result<Option<Record>, Error> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "select c.settings, c.document, coalesce(e.version, 0) from server_copies c \
                     left join editions e on e.slug = c.slug where c.slug = $1 and c.stage = $2",
                    &[&slug, &stage_name(stage)],
                )
                .await
                .map_err(classify)?;
            let Some(row) = row else { return Ok(None) };
            let settings = decode_settings(slug, row.get::<_, &[u8]>(0))?;
            let document = decompress(slug, row.get::<_, &[u8]>(1))?;
            Ok(Some(Record { settings, document, version: unsigned(row.get(2)) }))
        })
        .await
    }

    pub async fn list(&self, stage: Stage) -> Result<Vec<String>, Error> {
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "select slug from server_copies where stage = $1 order by slug collate \"C\"",
                    &[&stage_name(stage)],
                )
                .await
                .map_err(classify)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
    }

    pub async fn delete_server(&self, slug: &str) -> Result<bool, Error> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            // Editions only grow, so a server made again under the same slug is never taken for
            // the one deleted. Taken first, as every write takes it (see `publish`).
            bump(&tx, slug, None).await?;
            let removed =
                tx.execute("delete from server_copies where slug = $1", &[&slug]).await.map_err(classify)?;
            // Users' connections to its backend go with it.
            tx.execute("delete from connections where server = $1", &[&slug]).await.map_err(classify)?;
            // So does its history (its numbers stay taken).
            tx.execute("delete from generations where slug = $1", &[&slug]).await.map_err(classify)?;
            notify(&tx, slug).await?;
            tx.commit().await.map_err(classify)?;
            Ok(removed > 0)
        })
        .await
    }

    pub async fn edition(&self, slug: &str) -> Result<u64, Error> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt("select version from editions where slug = $1", &[&slug])
                .await
                .map_err(classify)?;
            Ok(row.map_or(0, |row| unsigned(row.get(0))))
        })
        .await
    }

    pub async fn publish(
        &self,
        slug: &str,
        expected: u64,
        publication: &Publication<'_>,
    ) -> Result<Option<Published>, Error> {
        let tools = compress(publication.tools)?;
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            // The edition's row first, as every write takes it: taking the draft's row first
            // would deadlock with a draft written meanwhile, which takes them the other way.
            let edition = bump(&tx, slug, Some(expected)).await?;
            let draft = tx
                .query_opt(
                    "delete from server_copies where slug = $1 and stage = 'draft' returning settings, document",
                    &[&slug],
                )
                .await
                .map_err(classify)?;
            // Dropping the transaction rolls it back.
            let Some(draft) = draft else { return Ok(None) };
            tx.execute(
                "insert into server_copies (slug, stage, settings, document, generation) values ($1, 'live', $2, $3, $4) \
                 on conflict (slug, stage) do update set settings = excluded.settings, \
                 document = excluded.document, generation = excluded.generation",
                &[&slug, &draft.get::<_, &[u8]>(0), &draft.get::<_, &[u8]>(1), &signed(edition)],
            )
            .await
            .map_err(classify)?;
            let generation = append_generation(&tx, slug, publication, &tools).await?;
            notify(&tx, slug).await?;
            tx.commit().await.map_err(classify)?;
            Ok(Some(Published { edition, generation }))
        })
        .await
    }

    /// Records the next generation unless the newest kept one has the same tools.
    pub async fn record_generation(
        &self,
        slug: &str,
        publication: &Publication<'_>,
    ) -> Result<Recorded, Error> {
        let tools = compress(publication.tools)?;
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            // The row lock orders replicas recording at once: the second compares with the
            // generation the first recorded.
            tx.execute(
                "insert into generation_numbers (slug, last) values ($1, 0) on conflict (slug) do nothing",
                &[&slug],
            )
            .await
            .map_err(classify)?;
            tx.execute("select last from generation_numbers where slug = $1 for update", &[&slug])
                .await
                .map_err(classify)?;
            let newest = tx
                .query_opt(
                    "select number, tools from generations where slug = $1 order by number desc limit 1",
                    &[&slug],
                )
                .await
                .map_err(classify)?;
            if let Some(newest) = newest
                && decompress(slug, newest.get::<_, &[u8]>(1))? == publication.tools
            {
                // Dropping the transaction rolls it back.
                return Ok(Recorded::Unchanged(unsigned(newest.get(0))));
            }
            let generation = append_generation(&tx, slug, publication, &tools).await?;
            tx.commit().await.map_err(classify)?;
            Ok(Recorded::New(generation))
        })
        .await
    }

    pub async fn history(&self, slug: &str) -> Result<Vec<Generation>, Error> {
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "select number, published_at, published_by from generations where slug = $1 \
                     order by number desc",
                    &[&slug],
                )
                .await
                .map_err(classify)?;
            Ok(rows
                .iter()
                .map(|row| Generation {
                    number: unsigned(row.get(0)),
                    published_at: unsigned(row.get(1)),
                    published_by: row.get(2),
                })
                .collect())
        })
        .await
    }

    pub async fn generation_tools(&self, slug: &str, number: u64) -> Result<Option<Vec<u8>>, Error> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "select tools from generations where slug = $1 and number = $2",
                    &[&slug, &signed(number)],
                )
                .await
                .map_err(classify)?;
            row.map(|row| decompress(slug, row.get::<_, &[u8]>(0))).transpose()
        })
        .await
    }

    pub async fn take_nonce(&self, nonce: &str, expires: u64, now: u64) -> Result<bool, Error> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            tx.execute("delete from used_nonces where expires <= $1", &[&signed(now)])
                .await
                .map_err(classify)?;
            // The primary key decides between two replicas taking the same nonce at once: one
            // inserts, the other waits for it and inserts nothing.
            let inserted = tx
                .execute(
                    "insert into used_nonces (nonce, expires) values ($1, $2) on conflict (nonce) do nothing",
                    &[&nonce, &signed(expires)],
                )
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            Ok(inserted == 1)
        })
        .await
    }

    pub async fn discard_draft(&self, slug: &str) -> Result<(), Error> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            // The edition's row first, as every write takes it (see `publish`).
            bump(&tx, slug, None).await?;
            tx.execute("delete from server_copies where slug = $1 and stage = 'draft'", &[&slug])
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)
        })
        .await
    }

    pub async fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        let json = serde_json::to_string(entry).map_err(|err| Error::Database(err.to_string()))?;
        self.run(async {
            let client = self.client().await?;
            client.execute("insert into audit (entry) values ($1)", &[&json]).await.map_err(classify)?;
            Ok(())
        })
        .await
    }

    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query("select entry from audit order by seq desc limit $1", &[&limit])
                .await
                .map_err(classify)?;
            Ok(rows.iter().filter_map(|row| serde_json::from_str(row.get::<_, &str>(0)).ok()).collect())
        })
        .await
    }

    /// Tells every replica listening that `sessions` (local ids) of `server` have ended.
    pub async fn end_session(&self, server: &str, sessions: &[String]) -> Result<(), Error> {
        let mut payloads: Vec<String> = Vec::new();
        for session in sessions {
            match payloads.last_mut() {
                Some(last) if last.len() + 1 + session.len() <= MAX_PAYLOAD => {
                    last.push(' ');
                    last.push_str(session);
                }
                _ => payloads.push(format!("{server} {session}")),
            }
        }
        self.run(async {
            let client = self.client().await?;
            for payload in &payloads {
                client
                    .execute("select pg_notify($1, $2)", &[&SESSIONS_CHANNEL, payload])
                    .await
                    .map_err(classify)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn revoke_session(&self, id: &str, expires: u64, now: u64) -> Result<(), Error> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            tx.execute("delete from revoked_sessions where expires <= $1", &[&signed(now)])
                .await
                .map_err(classify)?;
            tx.execute(
                "insert into revoked_sessions (id, expires) values ($1, $2) \
                 on conflict (id) do update set expires = excluded.expires",
                &[&id, &signed(expires)],
            )
            .await
            .map_err(classify)?;
            tx.commit().await.map_err(classify)
        })
        .await
    }

    pub async fn is_session_revoked(&self, id: &str) -> Result<bool, Error> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt("select 1 from revoked_sessions where id = $1", &[&id])
                .await
                .map_err(classify)?;
            Ok(row.is_some())
        })
        .await
    }

    pub async fn put_connection(&self, slug: &str, id: &str, value: &[u8]) -> Result<(), Error> {
        self.run(async {
            let client = self.client().await?;
            client
                .execute(
                    "insert into connections (server, id, value) values ($1, $2, $3) \
                     on conflict (server, id) do update set value = excluded.value",
                    &[&slug, &id, &value],
                )
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    pub async fn connection(&self, slug: &str, id: &str) -> Result<Option<Vec<u8>>, Error> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt("select value from connections where server = $1 and id = $2", &[&slug, &id])
                .await
                .map_err(classify)?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })
        .await
    }

    pub async fn connections(&self, slug: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "select id, value from connections where server = $1 order by id collate \"C\"",
                    &[&slug],
                )
                .await
                .map_err(classify)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
        .await
    }

    pub async fn delete_connection(&self, slug: &str, id: &str) -> Result<bool, Error> {
        self.run(async {
            let client = self.client().await?;
            let removed = client
                .execute("delete from connections where server = $1 and id = $2", &[&slug, &id])
                .await
                .map_err(classify)?;
            Ok(removed > 0)
        })
        .await
    }
}

impl Inner {
    async fn open(
        &self,
        url: &str,
    ) -> Result<
        (
            Client,
            tokio_postgres::Connection<tokio_postgres::Socket, super::tls::Stream<tokio_postgres::Socket>>,
        ),
        Error,
    > {
        // The URL is never quoted in an error: it may hold a password.
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| Error::Database("store.url is not a PostgreSQL connection string".into()))?;
        if config.get_password().is_none() {
            if let Some(path) = &self.settings.password_file {
                config.password(read_password(path)?);
            } else if let Some(password) = &self.settings.password {
                config.password(password.as_bytes());
            }
        }
        config
            .application_name("mcpgate")
            .connect_timeout(self.settings.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .tcp_user_timeout(OPERATION_DEADLINE);
        config.connect(self.tls.clone()).await.map_err(classify)
    }
}

fn read_password(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_end(&mut bytes))
        .map_err(|err| Error::Database(format!("store.password_file {}: {err}", path.display())))?;
    while bytes.last().is_some_and(|it| matches!(it, b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

fn classify(err: tokio_postgres::Error) -> Error {
    match err.as_db_error() {
        // The server refused (a constraint, a missing table, a wrong password): not a matter of
        // reaching it.
        Some(db) if !db.code().code().starts_with("08") && !db.code().code().starts_with("57") => {
            Error::Database(db.message().to_owned())
        }
        _ => Error::Unavailable(format!("cannot reach PostgreSQL: {err}")),
    }
}

/// Writes the next generation of `slug` in `tx` (`tools` compressed), dropping those beyond
/// [`GENERATIONS_KEPT`]; its number.
async fn append_generation(
    tx: &impl GenericClient,
    slug: &str,
    publication: &Publication<'_>,
    tools: &[u8],
) -> Result<u64, Error> {
    // The row lock of the upsert orders publications on several replicas: each takes the next
    // number.
    let generation: i64 = tx
        .query_one(
            "insert into generation_numbers (slug, last) values ($1, 1) \
             on conflict (slug) do update set last = generation_numbers.last + 1 returning last",
            &[&slug],
        )
        .await
        .map_err(classify)?
        .get(0);
    tx.execute(
        "insert into generations (slug, number, published_at, published_by, tools) \
         values ($1, $2, $3, $4, $5)",
        &[&slug, &generation, &signed(publication.published_at), &publication.published_by, &tools],
    )
    .await
    .map_err(classify)?;
    tx.execute(
        "delete from generations where slug = $1 and number <= $2",
        &[&slug, &(generation - signed(GENERATIONS_KEPT))],
    )
    .await
    .map_err(classify)?;
    Ok(unsigned(generation))
}

/// Bumps the edition of `slug` in `tx`, refusing when `expected` is given and differs; the new
/// edition. A server never written has edition 0.
async fn bump(tx: &impl GenericClient, slug: &str, expected: Option<u64>) -> Result<u64, Error> {
    let row = match expected {
        None => tx
            .query_opt(
                "insert into editions (slug, version) values ($1, 1) \
                 on conflict (slug) do update set version = editions.version + 1 returning version",
                &[&slug],
            )
            .await
            .map_err(classify)?,
        Some(0) => tx
            .query_opt(
                "insert into editions (slug, version) values ($1, 1) on conflict (slug) do nothing returning version",
                &[&slug],
            )
            .await
            .map_err(classify)?,
        Some(expected) => tx
            .query_opt(
                "update editions set version = version + 1 where slug = $1 and version = $2 returning version",
                &[&slug, &signed(expected)],
            )
            .await
            .map_err(classify)?,
    };
    if let Some(row) = row {
        return Ok(unsigned(row.get(0)));
    }
    let current = tx
        .query_opt("select version from editions where slug = $1", &[&slug])
        .await
        .map_err(classify)?
        .map_or(0, |row| unsigned(row.get(0)));
    Err(Error::Conflict { current })
}

async fn notify(tx: &impl GenericClient, slug: &str) -> Result<(), Error> {
    tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &slug]).await.map_err(classify)?;
    Ok(())
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Live => "live",
        Stage::Draft => "draft",
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A format byte, then the document: 0 as it is, 1 zlib-compressed (OpenAPI documents, JSON or
/// YAML, shrink about tenfold, and every replica reads each one it serves).
pub(super) fn compress(document: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(vec![1u8], flate2::Compression::fast());
    encoder.write_all(document).map_err(|err| Error::Database(format!("compressing: {err}")))?;
    encoder.finish().map_err(|err| Error::Database(format!("compressing: {err}")))
}

pub(super) fn decompress(slug: &str, stored: &[u8]) -> Result<Vec<u8>, Error> {
    let corrupt = |reason: String| Error::Corrupt { slug: slug.to_owned(), reason };
    match stored {
        [] => Ok(Vec::new()),
        [0, rest @ ..] => Ok(rest.to_vec()),
        [1, rest @ ..] => {
            let mut document = Vec::new();
            flate2::read::ZlibDecoder::new(rest)
                .take(MAX_DOCUMENT_BYTES + 1)
                .read_to_end(&mut document)
                .map_err(|err| corrupt(format!("document: {err}")))?;
            if document.len() as u64 > MAX_DOCUMENT_BYTES {
                return Err(corrupt("document larger than 256 MiB".to_owned()));
            }
            Ok(document)
        }
        _ => Err(corrupt("document in an unknown format".to_owned())),
    }
}

/// Keeps one connection listening on [`CHANNEL`] and signals each notification, and on
/// [`SESSIONS_CHANNEL`], passing on each session's end; connects again with backoff when it is
/// lost, and signals then too (what changed meanwhile was not heard). Ends when the [`Watch`] is
/// dropped, or the store.
async fn listen(store: Weak<Inner>, changes: mpsc::Sender<()>, ends: mpsc::Sender<SessionEnd>) {
    let mut backoff = BACKOFF.0;
    loop {
        // Held only to connect and to say whether the store is usable: the task must not keep
        // a dropped store alive.
        let Some(inner) = store.upgrade() else { return };
        let url = inner.settings.listen_url.as_ref().unwrap_or(&inner.settings.url);
        let opened = inner.open(url).await;
        drop(inner);
        match opened {
            Err(err) => tracing::warn!(%err, "store: the listening connection cannot connect"),
            Ok((client, mut connection)) => {
                let sql = format!("listen {CHANNEL}; listen {SESSIONS_CHANNEL}");
                let listening = client.batch_execute(&sql);
                tokio::pin!(listening);
                let mut heard = false;
                loop {
                    tokio::select! {
                        message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                            Some(Ok(AsyncMessage::Notification(heard))) if heard.channel() == SESSIONS_CHANNEL => {
                                let mut words = heard.payload().split(' ');
                                let server = words.next().unwrap_or_default().to_owned();
                                let sessions = words.filter(|it| !it.is_empty()).map(str::to_owned).collect();
                                if ends.try_send(SessionEnd { server, sessions }).is_err() {
                                    tracing::warn!("store: a session's end was heard and dropped: too many at once");
                                }
                            }
                            Some(Ok(AsyncMessage::Notification(_))) => {
                                // A full channel has a signal pending already.
                                let _ = changes.try_send(());
                            }
                            Some(Ok(_)) => {}
                            Some(Err(err)) => {
                                tracing::warn!(%err, "store: the listening connection was lost");
                                break;
                            }
                            None => break,
                        },
                        done = &mut listening, if !heard => match done {
                            Ok(()) => {
                                heard = true;
                                backoff = BACKOFF.0;
                                set_usable(&store, true);
                                let _ = changes.try_send(());
                            }
                            Err(err) => {
                                tracing::warn!(%err, "store: LISTEN failed");
                                break;
                            }
                        },
                        () = changes.closed() => return,
                    }
                }
            }
        }
        set_usable(&store, false);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = changes.closed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

fn set_usable(store: &Weak<Inner>, usable: bool) {
    if let Some(inner) = store.upgrade() {
        inner.usable.store(usable, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_compressed() {
        let document = "openapi: 3.0.0\npaths: {}\n".repeat(1000).into_bytes();
        let stored = compress(&document).unwrap();
        assert!(stored.len() < document.len() / 10, "{} bytes", stored.len());
        assert_eq!(decompress("pets", &stored).unwrap(), document);
        assert_eq!(decompress("pets", &compress(b"").unwrap()).unwrap(), b"");
        assert!(matches!(decompress("pets", b"\x07"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn settings_never_show_the_url() {
        let settings = Postgres {
            url: "postgres://u:hunter2@db/x".into(),
            listen_url: None,
            pool_size: 4,
            password: Some("hunter2".into()),
            password_file: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
