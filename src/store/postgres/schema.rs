//! The schema, as numbered migrations applied at start-up. Replicas starting at once take turns:
//! each applies what is missing under one advisory lock, in one transaction, so a migration is
//! applied once, whole or not at all.

use tokio_postgres::Client;

use super::super::Error;
use super::classify;

/// The lock's key: any number other applications on the database are unlikely to take.
const LOCK: i64 = 0x6d63_7067_6174_6531;

/// In order; a released migration never changes, a new one is appended.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "create table server_copies (
         slug text not null,
         stage text not null check (stage in ('live', 'draft')),
         settings bytea not null,
         document bytea not null,
         generation bigint not null,
         primary key (slug, stage)
     );
     create table editions (slug text primary key, version bigint not null);
     create table audit (seq bigserial primary key, entry text not null);
     create table revoked_sessions (id text primary key, expires bigint not null);
     create table connections (
         server text not null,
         id text not null,
         value bytea not null,
         primary key (server, id)
     );",
    ),
    (
        2,
        "create table generation_numbers (slug text primary key, last bigint not null);
         create table generations (
             slug text not null,
             number bigint not null,
             published_at bigint not null,
             published_by text not null,
             tools bytea not null,
             primary key (slug, number)
         );
         create table used_nonces (nonce text primary key, expires bigint not null);
         create index used_nonces_expires on used_nonces (expires);",
    ),
];

pub async fn migrate(client: &mut Client) -> Result<(), Error> {
    let tx = client.transaction().await.map_err(classify)?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(classify)?;
    tx.batch_execute(
        "create table if not exists mcpgate_schema (
             version integer primary key,
             applied_at timestamptz not null default now()
         )",
    )
    .await
    .map_err(classify)?;
    let applied: i32 = tx
        .query_one("select coalesce(max(version), 0) from mcpgate_schema", &[])
        .await
        .map_err(classify)?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if applied > known {
        return Err(Error::Database(format!(
            "the database's schema is version {applied}, newer than this mcpgate knows ({known}): upgrade mcpgate"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        tx.batch_execute(sql).await.map_err(classify)?;
        tx.execute("insert into mcpgate_schema (version) values ($1)", &[version]).await.map_err(classify)?;
        tracing::info!(version, "store: schema migrated");
    }
    tx.commit().await.map_err(classify)
}
