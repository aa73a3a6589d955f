//! One hosted server as a request sees it. A [`Snapshot`] holds everything a request needs from
//! its server (the tools, the resource-server checks, the backend and its credentials), built
//! whole when the server is published; a [`Host`] swaps it in one step.
//!
//! Invariant: a request takes its server's snapshot once, at the edge (`app::mcp`), and every
//! layer reads that same value: a call cannot pass the scope check of one publication and run
//! against the tools, backend or credentials of another.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::auth::Guard;
use crate::catalog::Catalog;
use crate::credentials::Credentials;
use crate::policy::Policies;
use crate::secrets::Keyring;
use crate::upstream::Backend;

pub struct Snapshot {
    pub slug: String,
    pub catalog: Catalog,
    /// The resource-server checks: `None` in auth mode `none`.
    pub access: Option<Guard>,
    pub backend: Backend,
    pub credentials: Credentials,
    /// The Cedar policies, validated against the catalog's tools.
    pub policies: Policies,
    /// Seals the state of a confirmation a client brings back (`mcp::confirm`).
    pub keyring: Arc<Keyring>,
}

/// Holds the current snapshot of one hosted server, and tells whoever listens when it changes.
/// Cheap to clone; clones share the snapshot.
#[derive(Clone)]
pub struct Host {
    // A std lock: it is held only to clone or replace the `Arc`, never across an await.
    current: Arc<RwLock<Arc<Snapshot>>>,
    /// Bumped after each replacement; the MCP edge tells its clients that the tool list changed.
    generation: Arc<watch::Sender<u64>>,
}

impl Host {
    pub fn new(snapshot: Snapshot) -> Host {
        Host {
            current: Arc::new(RwLock::new(Arc::new(snapshot))),
            generation: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The snapshot as it is now; later publications do not affect it.
    pub fn current(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap; the `Arc` inside is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `snapshot` from now on: requests that start after this call see it, those under
    /// way keep theirs. Then every receiver of [`Host::changes`] is woken.
    pub fn replace(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.generation.send_modify(|it| *it += 1);
    }

    /// How many times the snapshot was replaced: 0 for the one the host started with.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Wakes (`changed()`) after each [`Host::replace`] from now on; a receiver that falls behind
    /// sees several replacements as one change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}
