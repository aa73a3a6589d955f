//! [`Endpoint`]: the Streamable HTTP side of one hosted server, `/mcp/{slug}`. It holds two rmcp
//! services over the same [`Gateway`] and picks one per request:
//!
//! - a request carrying `Mcp-Session-Id`, and an `initialize` request, go to the session service
//!   (rmcp's `LocalSessionManager`, SSE answers). A session's client may open the GET stream, on
//!   which it hears `notifications/tools/list_changed`, and ends the session with DELETE;
//! - any other request goes to the stateless service (JSON answers), as before sessions existed:
//!   a client that never initializes, such as a 2026-07-28 one, needs none.
//!
//! Invariant: in auth mode `jwt`, a session is used only by the subject (issuer and `sub`) that
//! opened it; anyone else presenting its id is answered 404, as for an unknown session.
//! Invariant: a hosted server has at most [`MAX_SESSIONS`] sessions; `initialize` beyond that is
//! refused with 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

use super::envelope;
use super::gateway::Gateway;
use super::listeners::{self, Listeners};
use crate::auth::Caller;
use crate::snapshot::Snapshot;

/// Open sessions per hosted server. Each holds a task and its buffers until it ends.
pub const MAX_SESSIONS: usize = 1000;
/// A session nobody has used for this long ends. SSE keep-alive pings do not count as use, and a
/// client that only listens for changes may stay quiet for long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

pub(super) const SESSION_HEADER: &str = "mcp-session-id";

/// Cheap to clone; the clones share the sessions.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    stateless: StreamableHttpService<Gateway, NeverSessionManager>,
    sessions: StreamableHttpService<Gateway, LocalSessionManager>,
    manager: Arc<LocalSessionManager>,
    /// Who opened each session: `None` in auth mode `none`. Entries of sessions that ended are
    /// dropped when rmcp answers 404 for them, on DELETE, and when the map reaches
    /// [`MAX_SESSIONS`].
    // A std lock: held only to look up, insert or remove, never across an await.
    owners: Mutex<HashMap<String, Option<Owner>>>,
    /// Taken by each `initialize`, so that the number of sessions cannot change between its
    /// check against [`MAX_SESSIONS`] and the session it adds. Initializing is quick: the body is
    /// read before, the response sent after.
    opening: tokio::sync::Mutex<()>,
    max_body_bytes: usize,
}

/// The subject a session belongs to.
#[derive(Clone, PartialEq, Eq)]
struct Owner {
    issuer: String,
    subject: String,
}

impl Owner {
    fn of(caller: &Caller) -> Owner {
        Owner { issuer: caller.claims.issuer.clone(), subject: caller.claims.subject.clone() }
    }
}

impl Endpoint {
    /// The endpoint of the hosted server `gateway` serves, with the rmcp settings of `config`
    /// (allowed hosts and origins, body limit). Spawns the task that tells its sessions when the
    /// catalog changes, so it must be called within the Tokio runtime.
    pub fn new(gateway: Gateway, config: StreamableHttpServerConfig) -> Endpoint {
        // The server's own token: cancelled when the endpoint is dropped (the server was removed),
        // it ends the server's sessions and streams, and stops its notifier.
        let token = config.cancellation_token.child_token();
        let config = config.with_cancellation_token(token.clone());
        let max_body_bytes = config.max_request_body_bytes;

        let stateless_config = config.clone().with_legacy_session_mode(false).with_json_response(true);
        let stateless_gateway = gateway.clone();
        let stateless = StreamableHttpService::new(
            move || Ok(stateless_gateway.clone()),
            Arc::new(NeverSessionManager::default()),
            stateless_config,
        );

        let listeners = Arc::new(Listeners::default());
        listeners::spawn_notifier(gateway.host(), listeners.clone(), token.cancelled_owned());
        let session_gateway = gateway.with_listeners(listeners);
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(IDLE_TIMEOUT);
        let manager = Arc::new(manager);
        let sessions = StreamableHttpService::new(
            move || Ok(session_gateway.clone()),
            manager.clone(),
            config.with_legacy_session_mode(true).with_json_response(false),
        );
        Endpoint {
            inner: Arc::new(Inner {
                stateless,
                sessions,
                manager,
                owners: Mutex::new(HashMap::new()),
                opening: tokio::sync::Mutex::new(()),
                max_body_bytes,
            }),
        }
    }

    /// Ends every session of this server and every stream it has open, such as sessions' GET
    /// streams, which never end by themselves: graceful shutdown waits for every response to end.
    /// Requests after this are answered with errors. Dropping the last clone does the same.
    pub fn close(&self) {
        self.inner.sessions.config.cancellation_token.cancel();
    }

    /// Answers one request to `/mcp/{slug}` with `snapshot`, the server as the request found it:
    /// authenticates the caller (auth mode `jwt`), reads the JSON-RPC envelope once, asks for
    /// more scopes when a called tool needs them, and hands the request to rmcp with the
    /// snapshot and the [`Caller`] in its extensions.
    pub async fn handle(&self, snapshot: Arc<Snapshot>, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let caller = match &snapshot.access {
            None => None,
            Some(guard) => match guard.authenticate(&parts).await {
                Ok(caller) => Some(caller),
                Err(refusal) => return guard.refuse(refusal),
            },
        };
        let owner = caller.as_ref().map(Owner::of);
        // rmcp reads a non-text id as no id; here it matches no session.
        let session = parts.headers.get(SESSION_HEADER).map(|it| it.to_str().unwrap_or_default().to_owned());
        let mut initialize = None;
        let body = if parts.method == Method::POST {
            let bytes = match axum::body::to_bytes(body, self.inner.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(err) => return unread_body(&err),
            };
            let envelope = match envelope::read(&bytes) {
                Ok(envelope) => envelope,
                Err(malformed) => return refused_message(malformed),
            };
            if let (Some(guard), Some(caller), Some(name)) = (&snapshot.access, &caller, &envelope.called)
                && let Some(tool) = snapshot.catalog.tool(name)
                && let Some(refusal) = guard.step_up(caller, &tool.spec.name, &tool.scopes)
            {
                return guard.refuse(refusal);
            }
            initialize = envelope.initialize;
            Body::from(bytes)
        } else {
            body
        };
        if let Some(caller) = caller {
            parts.extensions.insert(caller);
        }
        parts.extensions.insert(snapshot);
        let request = Request::from_parts(parts, body);
        match (session, initialize) {
            (Some(session), _) => self.inner.in_session(&session, owner, request).await,
            (None, Some(id)) => self.inner.open(owner, id, request).await,
            // GET and DELETE without a session: the stateless service answers 405.
            (None, None) => self.inner.stateless.handle(request).await.map(Body::new),
        }
    }
}

impl Inner {
    /// Opens a session for an `initialize` request whose JSON-RPC id is `id`, if there is room.
    async fn open(&self, owner: Option<Owner>, id: Value, request: Request) -> Response {
        let _turn = self.opening.lock().await;
        let open = self.manager.sessions.read().await.len();
        if open >= MAX_SESSIONS {
            tracing::warn!(sessions = open, "initialize refused: this server has too many sessions");
            return too_many_sessions(id);
        }
        let response = self.sessions.handle(request).await;
        let session = response.headers().get(SESSION_HEADER).and_then(|it| it.to_str().ok());
        if let Some(session) = session {
            if self.owners().len() >= MAX_SESSIONS {
                // Sessions also end by themselves (idle, or their client went away): forget those.
                let sessions = self.manager.sessions.read().await;
                self.owners().retain(|it, _| sessions.contains_key(it.as_str()));
            }
            // Bound before the client learns the id, so no request can use it unbound.
            self.owners().insert(session.to_owned(), owner);
        }
        response.map(Body::new)
    }

    /// A request naming `session`: refused as unknown when another subject opened it.
    async fn in_session(&self, session: &str, owner: Option<Owner>, request: Request) -> Response {
        // In auth mode `none` there is no subject to check: the session id is the only key.
        if let Some(owner) = owner {
            let bound = self.owners().get(session).cloned();
            if bound != Some(Some(owner)) {
                tracing::debug!("a session id was presented by a subject other than its owner");
                return session_not_found();
            }
        }
        let method = request.method().clone();
        let response = self.sessions.handle(request).await;
        let ended = match response.status() {
            // 404 also answers unknown methods of 2026-07-28 requests: ask whether the session ended.
            StatusCode::NOT_FOUND => !self.manager.sessions.read().await.contains_key(session),
            status => method == Method::DELETE && status.is_success(),
        };
        if ended {
            self.owners().remove(session);
        }
        if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
            // rmcp answers 202, which says the work is still to be done; the session has ended,
            // and clients such as the Python SDK log anything but 200 or 204 as a failed DELETE.
            return StatusCode::NO_CONTENT.into_response();
        }
        response.map(Body::new)
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Owner>>> {
        self.owners.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sessions.config.cancellation_token.cancel();
    }
}

/// The answer to a POST whose body could not be read: 408 when it did not arrive within the
/// accept loop's body deadline, 413 when it is too large (or its client went away, who will not
/// read the answer).
fn unread_body(err: &axum::Error) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(it) = source {
        if it.is::<tower_http::timeout::TimeoutError>() {
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
        source = it.source();
    }
    StatusCode::PAYLOAD_TOO_LARGE.into_response()
}

/// The JSON-RPC error for a body that is not one message mcpgate accepts: 400 for one that is
/// not JSON-RPC at all, 200 for a request whose parameters are wrong (its error is the answer).
fn refused_message(malformed: envelope::Malformed) -> Response {
    let status =
        if malformed.code == envelope::INVALID_PARAMS { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let body = json!({
        "jsonrpc": "2.0",
        "id": malformed.id,
        "error": {"code": malformed.code, "message": malformed.message},
    });
    (status, axum::Json(body)).into_response()
}

/// What rmcp answers for an unknown session, so that a session of someone else looks the same.
fn session_not_found() -> Response {
    let mut response = Response::new(Body::from("Not Found: Session not found"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn too_many_sessions(id: Value) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32000, "message": "this server has too many open sessions; try again later"},
    });
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "60")], axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;

    use super::unread_body;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_came_too_late_is_a_timeout_and_one_too_large_is_refused() {
        let late =
            Body::new(tower_http::timeout::DeadlineBody::new(Duration::from_secs(1), Body::from("{}")));
        tokio::time::advance(Duration::from_secs(2)).await;
        let err = axum::body::to_bytes(late, 100).await.unwrap_err();
        assert_eq!(unread_body(&err).status(), 408);
        let err = axum::body::to_bytes(Body::from("z".repeat(101)), 100).await.unwrap_err();
        assert_eq!(unread_body(&err).status(), 413);
    }
}
