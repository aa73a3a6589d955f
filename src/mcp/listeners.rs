//! Who hears that a hosted server's tool list changed: the clients of its open sessions. Each
//! session's peer is registered when its client says it is initialized, and one task per hosted
//! server sends them `notifications/tools/list_changed` after each [`snapshot::Host::replace`].
//!
//! Invariant: the registry holds at most one peer per open session; peers whose session has
//! ended are dropped whenever a peer is added or the catalog changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::service::Peer;

use crate::snapshot;

#[derive(Default)]
pub(super) struct Listeners {
    // A std lock: held only to add, prune or copy peers, never across an await.
    peers: Mutex<HashMap<String, Peer<RoleServer>>>,
}

impl Listeners {
    /// Registers the peer of `session`. A client may say it is initialized more than once; the
    /// session keeps one entry.
    pub(super) fn add(&self, session: &str, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        peers.retain(|_, it| !it.is_transport_closed());
        peers.insert(session.to_owned(), peer);
    }

    /// The peers of the sessions still open.
    fn live(&self) -> Vec<Peer<RoleServer>> {
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        peers.retain(|_, it| !it.is_transport_closed());
        peers.values().cloned().collect()
    }
}

/// Spawns the task that tells every registered session when the server `host` holds changes,
/// until `stop` completes (the hosted server is gone or the process stops).
pub(super) fn spawn_notifier(
    host: &snapshot::Host,
    listeners: Arc<Listeners>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let mut changes = host.changes();
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            let peers = listeners.live();
            tracing::debug!(sessions = peers.len(), "telling sessions that the tool list changed");
            // One task per peer: a slow session must not hold up the others or the next change.
            for peer in peers {
                tokio::spawn(async move {
                    if let Err(err) = peer.notify_tool_list_changed().await {
                        tracing::debug!(%err, "a session was not told that the tool list changed");
                    }
                });
            }
        }
    });
}

/// How often a change stream says it is alive when nothing changed, so proxies keep it open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// A session's GET stream served by a replica that did not open the session: an SSE stream of
/// `notifications/tools/list_changed` after each change of `host`, until the client goes away
/// or `stop` is cancelled (the hosted server is removed, or the process stops).
pub(super) fn stream(
    host: &snapshot::Host,
    stop: tokio_util::sync::CancellationToken,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};

    const CHANGED: &str = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    let changes = host.changes();
    let events = futures_util::stream::unfold((changes, stop), |(mut changes, stop)| async move {
        let event = tokio::select! {
            () = stop.cancelled() => return None,
            changed = changes.changed() => match changed {
                Ok(()) => CHANGED,
                Err(_) => return None,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => ":\n\n",
        };
        Some((Ok::<_, std::convert::Infallible>(event), (changes, stop)))
    });
    let mut response = axum::response::Response::new(axum::body::Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
