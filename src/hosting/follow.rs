//! Following a store shared with other replicas: when the store says a served copy changed (a
//! notification, or the periodic comparison of generations that heals a missed one), this
//! replica builds that server's snapshot from the store and swaps it in, which tells its
//! connected clients that the tool list changed; a server deleted elsewhere stops being served.
//! A session another replica ended (or was asked to end with DELETE) ends here too.
//!
//! Servers of the configuration file are left alone: every replica reads the same file.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Hosting, stored_settings};
use crate::source;
use crate::store::{Heard, Store};

/// How often the generations are compared even when no notification came.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Follows `store` from now on, when other replicas share it.
pub fn follow(hosting: &Hosting, store: &Store) {
    let Some(mut watch) = store.watch() else { return };
    let (hosting, store) = (hosting.clone(), store.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECK_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                heard = watch.heard() => match heard {
                    Some(Heard::Changed) => {}
                    Some(Heard::SessionEnded(ended)) => {
                        hosting.session_ended(&ended).await;
                        continue;
                    }
                    None => return,
                },
                _ = every.tick() => {}
            }
            catch_up(&hosting, &store).await;
        }
    });
}

/// Serves what the store serves now.
async fn catch_up(hosting: &Hosting, store: &Store) {
    // Taken before the store is read: a server published here meanwhile is not in the store's
    // answer, and must not be taken for one deleted elsewhere.
    let before: BTreeMap<String, Option<u64>> =
        hosting.slugs().into_iter().map(|slug| (slug.clone(), hosting.generation(&slug))).collect();
    let stored = match store.generations().await {
        Ok(stored) => stored,
        Err(err) => {
            tracing::debug!(%err, "store: generations not compared");
            return;
        }
    };
    let from_file = |slug: &str| hosting.config().servers.iter().any(|it| it.slug == slug);
    for (slug, generation) in &stored {
        if from_file(slug) || hosting.generation(slug) == Some(*generation) {
            continue;
        }
        let settings = match stored_settings(store, slug, &hosting.builder).await {
            Ok(Some(settings)) => settings,
            // Deleted meanwhile: the next comparison sees it gone.
            Ok(None) => continue,
            Err(reason) => {
                tracing::warn!(server = %slug, %reason, "stored server unreadable");
                continue;
            }
        };
        let building = hosting.clone();
        // Parsing a large document and compiling its schemas takes a while: not on a worker
        // that serves requests.
        let prepared = tokio::task::spawn_blocking(move || {
            let (settings, document) = settings;
            let spec = source::ingest(&settings.spec, &document).map_err(|err| err.to_string())?;
            building.prepare(settings, spec)
        })
        .await
        .unwrap_or_else(|err| Err(err.to_string()));
        match prepared {
            Ok(prepared) => {
                hosting.install(prepared, Some(*generation));
                tracing::info!(server = %slug, generation, "serving the store's newer copy");
            }
            Err(reason) => {
                tracing::error!(server = %slug, %reason, "the store's newer copy cannot be served");
                super::write(&hosting.failed).insert(slug.clone(), reason);
            }
        }
    }
    for (slug, generation) in before {
        let gone = !stored.iter().any(|(it, _)| *it == slug);
        if gone && !from_file(&slug) && hosting.generation(&slug) == generation {
            hosting.remove(&slug);
            tracing::info!(server = %slug, "no longer served: deleted from the store");
        }
    }
}
