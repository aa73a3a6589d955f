//! The store's behaviour, the same for both engines: the embedded one (redb) and PostgreSQL on a
//! throwaway cluster (skipped and listed when PostgreSQL is not installed, unless
//! `MCPGATE_REQUIRE_POSTGRES` is set).

use std::time::Duration;

use mcpgate::store::{
    AuditEntry, Error, GENERATIONS_KEPT, Heard, Postgres, Publication, Record, SessionEnd, Stage, Store,
};

#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "support/postgres.rs"]
mod postgres;

fn record(settings: &str, document: &[u8]) -> Record {
    Record { settings: settings.as_bytes().to_vec(), document: document.to_vec(), version: 0 }
}

/// A publication by `by` of `tools`.
fn publication<'a>(by: &'a str, tools: &'a [u8]) -> Publication<'a> {
    Publication { published_at: 1_700_000_000, published_by: by, tools }
}

fn settings(url: String) -> Postgres {
    Postgres {
        url,
        listen_url: None,
        pool_size: 4,
        password: None,
        password_file: None,
        ca_file: None,
        connect_timeout: Duration::from_secs(5),
    }
}

/// Runs `check` on a new store of each engine; `reopen` gives another handle on the same data.
async fn each_engine<F, Fut>(check: F)
where
    F: Fn(Store, Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Store>>>>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let store = Store::open(&path).unwrap();
    check(
        store,
        Box::new(move || {
            let path = path.clone();
            Box::pin(async move { Store::open(&path).unwrap() })
        }),
    )
    .await;
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("store");
    let store = Store::connect(settings(url.clone())).await.unwrap();
    check(
        store,
        Box::new(move || {
            let url = url.clone();
            Box::pin(async move { Store::connect(settings(url)).await.unwrap() })
        }),
    )
    .await;
}

#[tokio::test]
async fn keeps_servers_across_reopening() {
    each_engine(|store, reopen| async move {
        store.put_server("pets", &record(r#"{"slug":"pets"}"#, b"openapi: 3.0.0")).await.unwrap();
        store.put_server("apps", &record(r#"{"slug":"apps"}"#, b"{}")).await.unwrap();
        drop(store);
        let store = reopen().await;
        assert_eq!(store.slugs().await.unwrap(), ["apps", "pets"]);
        let pets = store.server("pets").await.unwrap().unwrap();
        assert_eq!(
            (pets.settings.as_slice(), pets.document.as_slice()),
            (&br#"{"slug":"pets"}"#[..], &b"openapi: 3.0.0"[..])
        );
        assert!(store.delete_server("pets").await.unwrap());
        assert!(!store.delete_server("pets").await.unwrap());
        assert!(store.server("pets").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn drafts_publish_in_one_step_and_audit_appends() {
    each_engine(|store, _| async move {
        let version = store.put(Stage::Draft, "pets", &record("{}", b"draft")).await.unwrap();
        assert!(store.server("pets").await.unwrap().is_none());
        assert_eq!(store.list(Stage::Draft).await.unwrap(), ["pets"]);
        let generation =
            store.publish("pets", version, &publication("ada", b"[]")).await.unwrap().unwrap().edition;
        assert_eq!(store.server("pets").await.unwrap().unwrap().document, b"draft");
        assert_eq!(store.generations().await.unwrap(), [("pets".to_owned(), generation)]);
        assert!(store.get(Stage::Draft, "pets").await.unwrap().is_none());
        assert!(store.publish("pets", generation, &publication("ada", b"[]")).await.unwrap().is_none());
        for action in ["create", "publish"] {
            let entry = AuditEntry {
                at: 1,
                actor: "admin".into(),
                action: action.into(),
                server: Some("pets".into()),
                detail: String::new(),
            };
            store.record(&entry).await.unwrap();
        }
        let log = store.audit_log(10).await.unwrap();
        assert_eq!(log.iter().map(|it| it.action.as_str()).collect::<Vec<_>>(), ["publish", "create"]);
    })
    .await;
}

#[tokio::test]
async fn a_change_to_a_stale_version_is_refused() {
    each_engine(|store, _| async move {
        assert_eq!(store.edition("pets").await.unwrap(), 0);
        let first = store.put_draft("pets", &record("{}", b"a"), 0).await.unwrap();
        assert!(matches!(
            store.put_draft("pets", &record("{}", b"b"), 0).await,
            Err(Error::Conflict { current }) if current == first
        ));
        let second = store.put_draft("pets", &record("{}", b"b"), first).await.unwrap();
        assert_eq!(store.get(Stage::Draft, "pets").await.unwrap().unwrap().version, second);
        assert!(matches!(
            store.publish("pets", first, &publication("ada", b"")).await,
            Err(Error::Conflict { .. })
        ));
        assert_eq!(store.get(Stage::Draft, "pets").await.unwrap().unwrap().document, b"b", "nothing changed");
        let published =
            store.publish("pets", second, &publication("ada", b"")).await.unwrap().unwrap().edition;
        // Editions only grow: a server made again is not taken for the one deleted.
        store.delete_server("pets").await.unwrap();
        assert!(store.edition("pets").await.unwrap() > published);
    })
    .await;
}

/// Each publication is the server's next numbered generation, with when, by whom and its tools
/// (any size, kept compressed); the newest [`GENERATIONS_KEPT`] are kept; a deleted server's
/// history goes with it, and its numbers are never used again.
#[tokio::test]
async fn publications_are_numbered_and_the_newest_kept() {
    each_engine(|store, reopen| async move {
        let tools =
            |n: u64| format!("[{}]", format!("{{\"name\":\"tool{n}\"}},").repeat(2000) + "{}").into_bytes();
        let total = GENERATIONS_KEPT + 5;
        for n in 1..=total {
            let edition = store.edition("pets").await.unwrap();
            let version = store.put_draft("pets", &record("{}", b"doc"), edition).await.unwrap();
            let by = format!("admin{n}");
            let published =
                store.publish("pets", version, &publication(&by, &tools(n))).await.unwrap().unwrap();
            assert_eq!(published.generation, n);
            assert!(published.edition > version);
        }
        drop(store);
        let store = reopen().await;
        let history = store.history("pets").await.unwrap();
        assert_eq!(history.len() as u64, GENERATIONS_KEPT);
        assert_eq!((history[0].number, history[0].published_by.as_str()), (total, "admin55"));
        assert_eq!(history[0].published_at, 1_700_000_000);
        assert_eq!(
            history.last().unwrap().number,
            total - GENERATIONS_KEPT + 1,
            "newest first, oldest dropped"
        );
        assert_eq!(store.generation_tools("pets", total).await.unwrap().unwrap(), tools(total));
        assert_eq!(store.generation_tools("pets", 6).await.unwrap().unwrap(), tools(6));
        assert!(store.generation_tools("pets", 5).await.unwrap().is_none(), "dropped");
        assert!(store.history("apps").await.unwrap().is_empty());

        assert!(store.delete_server("pets").await.unwrap());
        assert!(store.history("pets").await.unwrap().is_empty());
        assert!(store.generation_tools("pets", total).await.unwrap().is_none());
        let edition = store.edition("pets").await.unwrap();
        let version = store.put_draft("pets", &record("{}", b"again"), edition).await.unwrap();
        let again = store.publish("pets", version, &publication("ada", b"[]")).await.unwrap().unwrap();
        assert_eq!(again.generation, total + 1, "numbers are never used again");
    })
    .await;
}

/// Replicas publishing the same server at once on PostgreSQL: each publication gets the next
/// number, none twice, none skipped (a publication on a stale edition is refused and retried).
#[tokio::test]
async fn replicas_number_publications_without_gaps_or_repeats() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("numbers");
    let replica = |url: String| async move {
        let store = Store::connect(settings(url)).await.unwrap();
        let mut numbers = Vec::new();
        while numbers.len() < 10 {
            let edition = store.edition("pets").await.unwrap();
            let Ok(version) = store.put_draft("pets", &record("{}", b"doc"), edition).await else { continue };
            match store.publish("pets", version, &publication("replica", b"[]")).await {
                Ok(Some(published)) => numbers.push(published.generation),
                // Another replica wrote meanwhile (its draft, or its publication of this one).
                Err(Error::Conflict { .. }) | Ok(None) => {}
                Err(err) => panic!("{err}"),
            }
        }
        numbers
    };
    let (a, b) = tokio::join!(replica(url.clone()), replica(url.clone()));
    assert!(a.is_sorted() && b.is_sorted(), "{a:?} {b:?}");
    let mut all: Vec<u64> = a.into_iter().chain(b).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=20).collect::<Vec<u64>>());
}

/// A nonce is taken once, whichever handle takes it (on PostgreSQL, whichever replica); an
/// expired one is forgotten.
#[tokio::test]
async fn nonces_are_taken_once() {
    each_engine(|store, reopen| async move {
        assert!(store.take_nonce("n1", 100, 10).await.unwrap());
        assert!(!store.take_nonce("n1", 100, 10).await.unwrap());
        drop(store);
        let store = reopen().await;
        assert!(!store.take_nonce("n1", 100, 20).await.unwrap(), "taken through another handle");
        assert!(store.take_nonce("n2", 100, 20).await.unwrap());
        // Expired at 100, they are still remembered while a replica whose clock is slow by up to
        // ten minutes could accept them; after that they are forgotten.
        assert!(!store.take_nonce("n2", 2000, 100 + 599).await.unwrap(), "clocks differ");
        assert!(store.take_nonce("n3", 2000, 100 + 600).await.unwrap());
        assert!(store.take_nonce("n1", 2000, 100 + 600).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn connections_are_kept_and_listed_per_server() {
    each_engine(|store, _| async move {
        store.put_connection("pets", "b", b"2").await.unwrap();
        store.put_connection("pets", "a", b"1").await.unwrap();
        store.put_connection("pets-2", "c", b"3").await.unwrap();
        store.put_connection("pet", "d", b"4").await.unwrap();
        assert_eq!(
            store.connections("pets").await.unwrap(),
            [("a".to_owned(), b"1".to_vec()), ("b".to_owned(), b"2".to_vec())]
        );
        assert_eq!(store.connection("pets", "a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.delete_connection("pets", "a").await.unwrap());
        assert!(!store.delete_connection("pets", "a").await.unwrap());
        assert_eq!(store.connections("pets").await.unwrap().len(), 1);
        // Deleting a server forgets its connections, and only its.
        store.delete_server("pets").await.unwrap();
        assert!(store.connections("pets").await.unwrap().is_empty());
        assert_eq!(store.connections("pets-2").await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn revoked_sessions_are_kept_until_they_expire() {
    each_engine(|store, reopen| async move {
        assert!(!store.is_session_revoked("a").await.unwrap());
        store.revoke_session("a", 100, 10).await.unwrap();
        store.revoke_session("b", 500, 20).await.unwrap();
        drop(store);
        // Across a restart: a configured session key keeps the cookies valid.
        let store = reopen().await;
        assert!(store.is_session_revoked("a").await.unwrap() && store.is_session_revoked("b").await.unwrap());
        assert!(!store.is_session_revoked("c").await.unwrap());
        // Each revocation drops the records of sessions expired since.
        store.revoke_session("c", 900, 100).await.unwrap();
        assert!(!store.is_session_revoked("a").await.unwrap(), "expired at 100: its record is dropped");
        assert!(store.is_session_revoked("b").await.unwrap() && store.is_session_revoked("c").await.unwrap());
    })
    .await;
}

/// PostgreSQL only: a large document is kept whole (compressed), replicas starting at once
/// migrate the schema once, and the store says when the database is gone and comes back.
#[tokio::test]
async fn postgres_migrates_once_compresses_and_survives_an_outage() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("outage");
    let (a, b, c) = tokio::join!(
        Store::connect(settings(url.clone())),
        Store::connect(settings(url.clone())),
        Store::connect(settings(url.clone()))
    );
    let (store, _, _) = (a.unwrap(), b.unwrap(), c.unwrap());
    // Each migration applied once, by one of the three.
    assert_eq!(cluster.sql("outage", "select count(*) from mcpgate_schema"), "2");

    let document = "paths:\n  /pets/{id}:\n    get: {operationId: getPet}\n".repeat(200_000).into_bytes();
    store.put_server("big", &record("{}", &document)).await.unwrap();
    assert_eq!(store.server("big").await.unwrap().unwrap().document, document);
    let stored: usize = cluster.sql("outage", "select length(document) from server_copies").parse().unwrap();
    assert!(stored < document.len() / 20, "{stored} bytes stored for {}", document.len());

    let mut watch = store.watch().unwrap();
    cluster.stop();
    let refused = store.put_server("pets", &record("{}", b"x")).await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert!(!store.is_usable());
    cluster.start_server();
    // The listener connects again and says so (what changed meanwhile was not heard).
    let heard = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            watch.heard().await.unwrap();
            if store.is_usable() {
                break;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the store did not come back");
    store.put_server("pets", &record("{}", b"x")).await.unwrap();
    // A notification comes for each change to a served copy.
    let other = Store::connect(settings(url)).await.unwrap();
    other.put_server("pets", &record("{}", b"y")).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), watch.heard()).await.unwrap();
    assert_eq!(heard, Some(Heard::Changed));
    // And one for each MCP session a replica ends (after the changes still pending, if any).
    other.end_session("pets", &["4f7c-session".to_owned()]).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.heard().await {
                Some(Heard::Changed) => {}
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    let ended = SessionEnd { server: "pets".to_owned(), sessions: vec!["4f7c-session".to_owned()] };
    assert_eq!(heard, Some(Heard::SessionEnded(ended)));
}
