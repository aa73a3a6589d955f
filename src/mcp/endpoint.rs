//! [`Endpoint`]: the Streamable HTTP side of one hosted server, `/mcp/{slug}`. It holds two rmcp
//! services over the same [`Gateway`] and picks one per request:
//!
//! - a request carrying `Mcp-Session-Id`, and an `initialize` request, go to the session service
//!   (rmcp's `LocalSessionManager`, SSE answers). A session's client may open the GET stream, on
//!   which it hears `notifications/tools/list_changed`, and ends the session with DELETE;
//! - any other request goes to the stateless service (JSON answers), as before sessions existed:
//!   a client that never initializes, such as a 2026-07-28 one, needs none;
//! - but `tools/call` and `tools/list`, the requests a client makes most, are answered by
//!   `mcp::direct` without either service when it can answer them as rmcp would, in a session
//!   (of its subject, open here) or not.
//!
//! A session's id is sealed (`mcp::session_ids`): rmcp's id, the subject and an expiry. A request
//! naming a session another replica opened (or this one, before a restart) is served here as far
//! as no state of the session is needed: `tools/call` and `tools/list` by the direct path, a GET
//! by a stream of `notifications/tools/list_changed` of its own, other messages by the stateless
//! service. A session that ends here (DELETE, unused, or to make room), or whose DELETE comes here
//! from a client of another replica's session, is announced through the shared store: the replica
//! that opened it closes it, and every replica answers 404 for it from then on.
//!
//! Invariant: in auth mode `jwt`, a session is used only by the subject (issuer and `sub`) that
//! opened it; anyone else presenting its id is answered 404, as for an unknown session.
//! Invariant: `initialize` is never refused for want of room, and one subject cannot end another's
//! sessions while it holds more than they do. A subject (the caller in mode `jwt`, the client's
//! address in mode `none`) holds at most [`SessionLimits::per_subject`] sessions, and a new one
//! ends its least recently used; at [`SessionLimits::per_server`], a new session ends the least
//! recently used one of the subject that holds the most. A session with no request after its
//! `initialize` ends after [`SessionLimits::unused`], any other after [`IDLE_TIMEOUT`] unused.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::catalog_mode::called_tool;
use super::direct;
use super::ended_sessions::EndedSessions;
use super::envelope;
use super::gateway::{self, Gateway};
use super::listeners::{self, Listeners};
use super::session_ids::SessionIds;
use crate::auth::{Caller, Challenge, Guard, Refusal};
use crate::calls::{CallLog, Decision};
use crate::metrics;
use crate::secrets::Keyring;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// A session nobody has used for this long ends. SSE keep-alive pings do not count as use, and a
/// client that only listens for changes may stay quiet for long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

pub(super) const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// How many sessions a hosted server keeps, and how long one that is never used lives. Each
/// session holds a task and its buffers until it ends.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// Sessions of one subject. A client that opens one per conversation needs a few; one that
    /// opens them in a loop only ends its own.
    pub per_subject: usize,
    /// Sessions of the server, whoever opened them.
    pub per_server: usize,
    /// How long a session lives when no request follows its `initialize` (a client that
    /// initializes for real says `notifications/initialized` at once).
    pub unused: Duration,
}

impl SessionLimits {
    pub const DEFAULT: SessionLimits =
        SessionLimits { per_subject: 20, per_server: 1000, unused: Duration::from_secs(120) };
}

/// Cheap to clone; the clones share the sessions.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    /// What answers the requests `mcp::direct` serves; rmcp's services hold clones.
    gateway: Gateway,
    stateless: StreamableHttpService<Gateway, NeverSessionManager>,
    sessions: StreamableHttpService<Gateway, LocalSessionManager>,
    manager: Arc<LocalSessionManager>,
    /// The sessions this endpoint opened, by id: who opened each and when it was last used.
    /// Entries of sessions that ended are dropped when rmcp answers 404 for them, on DELETE,
    /// and, for sessions that ended by themselves (idle, or their client went away), at the next
    /// `initialize`.
    // A std lock: held only to look up, insert or remove, never across an await.
    opened: Mutex<HashMap<String, Opened>>,
    /// rmcp's ids of the sessions of this server that ended, here or on another replica: they
    /// must not be taken for sessions open elsewhere. A std lock, as above.
    ended: Mutex<EndedSessions>,
    /// Seals and opens the ids clients see.
    ids: SessionIds,
    /// Where the sessions that end here go, to be told to the replicas that share the store
    /// (`announce_ends`); `None` when there is no other replica.
    announce: Option<mpsc::Sender<String>>,
    // A std lock: held only to copy or replace the limits.
    limits: Mutex<SessionLimits>,
    /// Taken by each `initialize`, so that the sessions cannot change between making room and
    /// the session it adds. Initializing is quick: the body is read before, the response sent
    /// after, and sessions that make room are closed in tasks of their own.
    opening: tokio::sync::Mutex<()>,
    max_body_bytes: usize,
    /// The server's recent calls, which the gateway shares: a step-up refusal is one too.
    calls: Arc<CallLog>,
}

/// Whom a session counts against (and whose rate-limit buckets a call takes from).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Subject {
    /// Auth mode `jwt`: the verified issuer and `sub`. The session serves only them.
    Caller { issuer: String, subject: String },
    /// Auth mode `none`: the client's address; for IPv6, its /64 network, which one host
    /// commonly holds whole.
    Address(IpAddr),
    /// Auth mode `none`, a request that came through no socket (tests' router requests).
    Unknown,
}

impl Subject {
    pub(super) fn of(caller: Option<&Caller>, peer: Option<SocketAddr>) -> Subject {
        if let Some(caller) = caller {
            return Subject::Caller {
                issuer: caller.claims.issuer.clone(),
                subject: caller.claims.subject.clone(),
            };
        }
        match peer.map(|it| it.ip().to_canonical()) {
            Some(IpAddr::V6(ip)) => {
                let network = u128::from(ip) & !(u128::MAX >> 64);
                Subject::Address(IpAddr::V6(Ipv6Addr::from(network)))
            }
            Some(ip) => Subject::Address(ip),
            None => Subject::Unknown,
        }
    }
}

/// What a session id is to the subject presenting it.
#[derive(Debug, PartialEq)]
enum Claim {
    /// A session this endpoint opened and has open, of this subject (or in mode `none`, of
    /// anyone); rmcp's id of it.
    Here(String),
    /// A session of this subject that this endpoint did not open (another replica did); its
    /// local id.
    Elsewhere(String),
    /// A session of another subject.
    Foreign,
    /// No session: not an id of this server's, expired, or ended (here, or on a replica that
    /// said so).
    Unknown,
}

/// The session a request names, once its id is opened for its subject: rmcp's local id.
enum Session {
    Here(String),
    Elsewhere(String),
}

/// Ends waiting to be told to the other replicas; beyond, they are dropped (and those replicas
/// serve the ids until they expire).
const ANNOUNCED: usize = 4096;
/// Ends told in one notification at most.
const BATCH: usize = 100;

/// An open session as this endpoint knows it.
#[derive(Clone, Debug)]
struct Opened {
    subject: Subject,
    /// When its last request came (its `initialize` at first).
    last_used: Instant,
    /// Whether any request came after its `initialize`.
    came_back: bool,
}

impl Endpoint {
    /// The endpoint of the hosted server `gateway` serves, with the rmcp settings of `config`
    /// (allowed hosts and origins, body limit) and [`SessionLimits::DEFAULT`]. Spawns the task
    /// that tells its sessions when the catalog changes, so it must be called within the Tokio
    /// runtime.
    pub fn new(
        gateway: Gateway,
        config: StreamableHttpServerConfig,
        keyring: Arc<Keyring>,
        shared: Option<Store>,
    ) -> Endpoint {
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

        let calls = gateway.calls().clone();
        let slug = gateway.host().current().slug.clone();
        let ids = SessionIds::new(keyring, &slug);
        let direct_gateway = gateway.clone();
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
                gateway: direct_gateway,
                stateless,
                sessions,
                manager,
                opened: Mutex::new(HashMap::new()),
                ended: Mutex::new(EndedSessions::default()),
                ids,
                announce: shared.map(|store| {
                    let (announce, ended) = mpsc::channel(ANNOUNCED);
                    tokio::spawn(announce_ends(store, slug, ended));
                    announce
                }),
                limits: Mutex::new(SessionLimits::DEFAULT),
                opening: tokio::sync::Mutex::new(()),
                max_body_bytes,
                calls,
            }),
        }
    }

    /// Sessions that ended on another replica (or that a DELETE there ended): closed here too
    /// if this endpoint opened them, and remembered, so that they are answered 404 from now on.
    pub async fn ended_elsewhere(&self, sessions: &[String]) {
        for session in sessions {
            if self.inner.opened().contains_key(session) {
                tracing::debug!("a session ends: another replica was asked to end it");
                self.inner.close_session(session).await;
            }
        }
        self.inner.ended_now(sessions.to_vec());
    }

    /// Replaces the limits on this server's sessions. Sessions opened from now on follow them;
    /// open sessions beyond a lowered cap end as new ones are opened.
    pub fn set_session_limits(&self, limits: SessionLimits) {
        *self.inner.limits.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = limits;
    }

    /// The server's recent tool calls.
    pub fn calls(&self) -> &CallLog {
        &self.inner.calls
    }

    /// How many sessions are open, for the metrics.
    pub async fn open_sessions(&self) -> usize {
        self.inner.manager.sessions.read().await.len()
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
                Err(refusal) => return refuse(&snapshot, guard, refusal),
            },
        };
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|it| it.0);
        let subject = Subject::of(caller.as_ref(), peer);
        let mut initialize = false;
        let mut direct = None;
        let body = if parts.method == Method::POST {
            let bytes = match axum::body::to_bytes(body, self.inner.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(err) => return unread_body(&err),
            };
            let envelope = match envelope::read(&bytes) {
                Ok(envelope) => envelope,
                Err(malformed) => return refused_message(malformed),
            };
            // In catalog mode the tool a call runs is named in the arguments of the call meta-tool.
            let arguments = envelope.tools.as_ref().and_then(|it| it.arguments());
            let called =
                envelope.called.as_deref().and_then(|it| called_tool(&snapshot.catalog, it, arguments));
            if let (Some(guard), Some(caller), Some(name)) = (&snapshot.access, &caller, called)
                && let Some(tool) = snapshot.catalog.tool(name)
                && let Some(refusal) = guard.step_up(caller, &tool.spec.name, &tool.scopes)
            {
                let who = gateway::who(Some(caller), peer);
                self.inner
                    .calls
                    .begin(name, who, snapshot.credentials.audience())
                    .decide(Decision::InsufficientScope);
                return refuse(&snapshot, guard, refusal);
            }
            initialize = envelope.initialize.is_some();
            direct = envelope.tools.filter(|it| direct::serves(&parts.headers, it, &snapshot));
            Body::from(bytes)
        } else {
            body
        };
        // A header that is not text names no session.
        let session = match parts.headers.get(SESSION_HEADER).map(|it| it.to_str().unwrap_or_default()) {
            None => None,
            Some(presented) => match self.inner.claim(presented, &subject) {
                Claim::Foreign => return self.inner.foreign(&snapshot),
                Claim::Unknown => return session_not_found(),
                Claim::Here(local) => Some(Session::Here(local)),
                Claim::Elsewhere(local) => Some(Session::Elsewhere(local)),
            },
        };
        if let Some(request) = direct {
            let here = match &session {
                None | Some(Session::Elsewhere(_)) => true,
                // rmcp answers for a session it has ended: 404.
                Some(Session::Here(local)) => {
                    self.inner.manager.sessions.read().await.contains_key(local.as_str())
                }
            };
            if here {
                let sender = direct::Sender { caller: caller.as_ref(), peer, headers: &parts.headers };
                return direct::answer(&self.inner.gateway, &snapshot, request, sender).await;
            }
        }
        if let Some(caller) = caller {
            parts.extensions.insert(caller);
        }
        parts.extensions.insert(snapshot);
        // rmcp's futures are boxed: the direct path above is every call's, and a future is as large
        // as its largest state, copied whole each time it moves.
        match (session, initialize) {
            (Some(Session::Here(local)), _) => {
                // rmcp knows the session by its own id.
                if let Ok(value) = HeaderValue::from_str(&local) {
                    parts.headers.insert(SESSION_HEADER, value);
                }
                Box::pin(self.inner.in_session(&local, Request::from_parts(parts, body))).await
            }
            (Some(Session::Elsewhere(local)), _) => {
                Box::pin(self.inner.elsewhere(&local, Request::from_parts(parts, body))).await
            }
            (None, true) => {
                Box::pin(Inner::open(&self.inner, subject, Request::from_parts(parts, body))).await
            }
            // GET and DELETE without a session: the stateless service answers 405.
            (None, false) => {
                Box::pin(self.inner.stateless.handle(Request::from_parts(parts, body))).await.map(Body::new)
            }
        }
    }
}

impl Inner {
    /// Opens a session for an `initialize` request of `subject`, ending others first when a cap
    /// is reached.
    async fn open(self: &Arc<Self>, subject: Subject, request: Request) -> Response {
        let _turn = self.opening.lock().await;
        let limits = *self.limits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let victims = {
            let live = self.manager.sessions.read().await;
            let mut opened = self.opened();
            // Only open sessions count: forget those that ended by themselves.
            let gone: Vec<String> =
                opened.keys().filter(|it| !live.contains_key(it.as_str())).cloned().collect();
            for it in &gone {
                opened.remove(it);
            }
            drop(opened);
            self.end_everywhere(gone);
            let opened = self.opened();
            make_room(&opened, &subject, &limits)
        };
        for victim in victims {
            tracing::debug!(?subject, "a session ends to make room for a new one");
            self.end(&victim).await;
        }
        let mut response = self.sessions.handle(request).await;
        let session =
            response.headers().get(SESSION_HEADER).and_then(|it| it.to_str().ok()).map(str::to_owned);
        if let Some(session) = session {
            let Some(id) = self.ids.issue(&session, &subject).and_then(|it| HeaderValue::from_str(&it).ok())
            else {
                self.end(&session).await;
                tracing::error!("a session id could not be sealed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            response.headers_mut().insert(SESSION_HEADER, id);
            // Recorded before the client learns the id, so no request can use it unbound.
            let opened = Opened { subject, last_used: Instant::now(), came_back: false };
            self.opened().insert(session.clone(), opened);
            self.end_if_unused(session, limits.unused);
        }
        response.map(Body::new)
    }

    /// A request in `session` (rmcp's id), which its subject opened here.
    async fn in_session(&self, session: &str, request: Request) -> Response {
        let method = request.method().clone();
        let response = self.sessions.handle(request).await;
        let ended = match response.status() {
            // 404 also answers unknown methods of 2026-07-28 requests: ask whether the session ended.
            StatusCode::NOT_FOUND => !self.manager.sessions.read().await.contains_key(session),
            status => method == Method::DELETE && status.is_success(),
        };
        if ended {
            self.opened().remove(session);
            self.end_everywhere(vec![session.to_owned()]);
        }
        if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
            // rmcp answers 202, which says the work is still to be done; the session has ended,
            // and clients such as the Python SDK log anything but 200 or 204 as a failed DELETE.
            return StatusCode::NO_CONTENT.into_response();
        }
        response.map(Body::new)
    }

    /// What the session id `presented` is to `subject`; a use of the session when it is here.
    fn claim(&self, presented: &str, subject: &Subject) -> Claim {
        let Some(sealed) = self.ids.open(presented) else { return Claim::Unknown };
        if !sealed.admits(subject) {
            return Claim::Foreign;
        }
        if let Some(entry) = self.opened().get_mut(&sealed.local) {
            entry.last_used = Instant::now();
            entry.came_back = true;
            return Claim::Here(sealed.local);
        }
        if self.ended_sessions().contains(&sealed.local) {
            return Claim::Unknown;
        }
        Claim::Elsewhere(sealed.local)
    }

    /// A request in the session `local`, which another replica opened (or this one, before it
    /// restarted).
    async fn elsewhere(&self, local: &str, mut request: Request) -> Response {
        match *request.method() {
            Method::GET => {
                listeners::stream(self.gateway.host(), self.sessions.config.cancellation_token.clone())
            }
            // The replica that opened it ends it when it hears of this; here it is unknown from now.
            Method::DELETE => {
                self.end_everywhere(vec![local.to_owned()]);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => {
                request.headers_mut().remove(SESSION_HEADER);
                self.stateless.handle(request).await.map(Body::new)
            }
        }
    }

    /// Remembers that the sessions `local` (rmcp's ids) ended, and has the ones not known to
    /// have ended before told to the replicas that share the store, which close them if they
    /// opened them, and answer 404 for them.
    fn end_everywhere(&self, local: Vec<String>) {
        let fresh = self.ended_now(local);
        let Some(announce) = &self.announce else { return };
        for session in fresh {
            if announce.try_send(session).is_err() {
                tracing::debug!("the end of a session is not told to the other replicas: too many at once");
            }
        }
    }

    /// Remembers that the sessions `local` (rmcp's ids) ended, until their ids expire; those not
    /// remembered before.
    fn ended_now(&self, local: Vec<String>) -> Vec<String> {
        let now = Instant::now();
        let expires = now + super::session_ids::LIFETIME;
        let mut ended = self.ended_sessions();
        local.into_iter().filter(|it| ended.insert(it.clone(), now, expires)).collect()
    }

    fn ended_sessions(&self) -> std::sync::MutexGuard<'_, EndedSessions> {
        self.ended.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer to a subject presenting another's session: what an unknown session gets.
    fn foreign(&self, snapshot: &Snapshot) -> Response {
        tracing::debug!("a session id was presented by a subject other than its owner");
        snapshot.catalog.metrics.refused(metrics::Refusal::ForeignSession);
        session_not_found()
    }

    /// Ends `session` after `after` unless a request came for it meanwhile: a client that
    /// initializes and never comes back would otherwise hold it for [`IDLE_TIMEOUT`].
    fn end_if_unused(self: &Arc<Self>, session: String, after: Duration) {
        let inner = Arc::downgrade(self);
        let removed = self.sessions.config.cancellation_token.clone().cancelled_owned();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(after) => {}
                // The server was removed: its sessions have ended.
                () = removed => return,
            }
            let Some(inner) = inner.upgrade() else { return };
            let unused = inner.opened().get(&session).is_some_and(|it| !it.came_back);
            if unused {
                tracing::debug!("a session ends: no request came after its initialize");
                inner.end(&session).await;
            }
        });
    }

    /// Ends `session` and its streams, and tells the other replicas.
    async fn end(&self, session: &str) {
        self.close_session(session).await;
        self.end_everywhere(vec![session.to_owned()]);
    }

    /// Ends `session` and its streams here. It is gone from the session map when this returns;
    /// its task is told to stop in a task of its own, since telling it waits for room in its queue.
    async fn close_session(&self, session: &str) {
        self.opened().remove(session);
        let handle = self.manager.sessions.write().await.remove(session);
        if let Some(handle) = handle {
            tokio::spawn(async move {
                // An error says the session's task has already stopped.
                let _ = handle.close().await;
            });
        }
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, HashMap<String, Opened>> {
        self.opened.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sessions.config.cancellation_token.cancel();
    }
}

/// Tells the replicas sharing `store` of the sessions of `server` that `ended` here, a batch at a
/// time: one task and one notification per batch, however many sessions end at once. While the
/// store cannot be reached, ends are dropped rather than queued behind its timeouts (the other
/// replicas then serve those ids until they expire). Ends when the endpoint is dropped.
async fn announce_ends(store: Store, server: String, mut ended: mpsc::Receiver<String>) {
    while let Some(first) = ended.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            let Ok(next) = ended.try_recv() else { break };
            batch.push(next);
        }
        if !store.is_usable() {
            tracing::debug!(sessions = batch.len(), "the end of sessions is not told: the store is down");
            continue;
        }
        if let Err(err) = store.end_session(&server, &batch).await {
            tracing::debug!(%err, "the end of sessions was not told to the other replicas");
        }
    }
}

/// The sessions to end before `subject` opens one more, within `limits`: its own least recently
/// used ones while it is at its cap; then, while the server is at its cap, the least recently
/// used one of the subject holding the most sessions (of those holding equally many, the one
/// whose session has waited longest). A subject that holds fewer sessions than another never
/// loses one to make room for it.
fn make_room(opened: &HashMap<String, Opened>, subject: &Subject, limits: &SessionLimits) -> Vec<String> {
    let mut by_subject: HashMap<&Subject, Vec<(&String, Instant)>> = HashMap::new();
    for (id, it) in opened {
        by_subject.entry(&it.subject).or_default().push((id, it.last_used));
    }
    // Least recently used last, to be popped first.
    for sessions in by_subject.values_mut() {
        sessions.sort_by_key(|(_, last_used)| std::cmp::Reverse(*last_used));
    }
    let mut victims = Vec::new();
    if let Some(own) = by_subject.get_mut(subject) {
        while own.len() >= limits.per_subject.max(1) {
            victims.extend(own.pop().map(|(id, _)| id.clone()));
        }
    }
    let mut total = opened.len() - victims.len();
    while total >= limits.per_server.max(1) {
        let largest = by_subject
            .values_mut()
            .filter(|it| !it.is_empty())
            .max_by_key(|it| (it.len(), std::cmp::Reverse(it.last().map(|(_, last_used)| *last_used))));
        let Some(victim) = largest.and_then(|it| it.pop()) else { break };
        victims.push(victim.0.clone());
        total -= 1;
    }
    victims
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

/// The guard's answer to `refusal`, counted by reason.
fn refuse(snapshot: &Snapshot, guard: &Guard, refusal: Refusal) -> Response {
    let reason = match &refusal {
        Refusal::Challenge(Challenge::Missing) => metrics::Refusal::MissingToken,
        Refusal::Challenge(Challenge::InvalidToken { .. }) => metrics::Refusal::InvalidToken,
        Refusal::Challenge(Challenge::InsufficientScope { .. }) => metrics::Refusal::InsufficientScope,
        Refusal::Challenge(Challenge::InvalidRequest { .. }) => metrics::Refusal::InvalidRequest,
        Refusal::KeysUnavailable => metrics::Refusal::KeysUnavailable,
    };
    snapshot.catalog.metrics.refused(reason);
    guard.refuse(refusal)
}

/// What rmcp answers for an unknown session, so that a session of someone else looks the same.
fn session_not_found() -> Response {
    let mut response = Response::new(Body::from("Not Found: Session not found"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use axum::body::Body;
    use tokio::time::Instant;

    use super::{Opened, SessionLimits, Subject, make_room, unread_body};

    fn address(ip: &str) -> Subject {
        Subject::of(None, Some(SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 40000)))
    }

    /// Sessions named `{subject}{n}`, used in the order given: the first is the least recently used.
    fn opened(order: &[(&str, &Subject)]) -> HashMap<String, Opened> {
        let start = Instant::now();
        let mut opened = HashMap::new();
        for (n, (id, subject)) in order.iter().enumerate() {
            let last_used = start + Duration::from_secs(n as u64);
            opened
                .insert((*id).to_owned(), Opened { subject: (*subject).clone(), last_used, came_back: true });
        }
        opened
    }

    fn limits(per_subject: usize, per_server: usize) -> SessionLimits {
        SessionLimits { per_subject, per_server, ..SessionLimits::DEFAULT }
    }

    #[test]
    fn subjects_in_mode_none_are_addresses_and_ipv6_networks() {
        assert_eq!(address("10.0.0.1"), address("::ffff:10.0.0.1"), "an IPv4-mapped address is the IPv4 one");
        assert_ne!(address("10.0.0.1"), address("10.0.0.2"));
        assert_eq!(address("2001:db8:1:2::1"), address("2001:db8:1:2:ffff::9"), "one /64");
        assert_ne!(address("2001:db8:1:2::1"), address("2001:db8:1:3::1"));
        assert_eq!(Subject::of(None, None), Subject::Unknown);
    }

    #[test]
    fn below_the_caps_nothing_ends() {
        let (a, b) = (address("10.0.0.1"), address("10.0.0.2"));
        let opened = opened(&[("a1", &a), ("b1", &b)]);
        assert!(make_room(&opened, &a, &limits(2, 3)).is_empty());
    }

    #[test]
    fn a_subject_at_its_cap_loses_its_least_recently_used_session() {
        let (a, b) = (address("10.0.0.1"), address("10.0.0.2"));
        let opened = opened(&[("b1", &b), ("a2", &a), ("a1", &a), ("a3", &a)]);
        assert_eq!(make_room(&opened, &a, &limits(3, 100)), ["a2"]);
        // After the cap was lowered, as many as it takes.
        assert_eq!(make_room(&opened, &a, &limits(1, 100)), ["a2", "a1", "a3"]);
        assert!(make_room(&opened, &b, &limits(3, 100)).is_empty(), "another subject is not at its cap");
    }

    #[test]
    fn at_the_server_cap_the_largest_holder_loses_its_least_recently_used_session() {
        let (a, b, c) = (address("10.0.0.1"), address("10.0.0.2"), address("10.0.0.3"));
        // `c1` is the least recently used session of all, but `c` holds only one.
        let opened = opened(&[("c1", &c), ("b1", &b), ("a1", &a), ("a2", &a), ("b2", &b), ("a3", &a)]);
        assert_eq!(make_room(&opened, &c, &limits(10, 6)), ["a1"]);
        assert_eq!(make_room(&opened, &c, &limits(10, 4)), ["a1", "b1", "a2"]);
        // Holding equally many: the one whose session waited longest.
        let opened = opened_equal(&a, &b);
        assert_eq!(make_room(&opened, &c, &limits(10, 4)), ["b1"]);
        // A newcomer at its own cap makes room from its own sessions first.
        assert_eq!(make_room(&opened, &a, &limits(2, 4)), ["a1"]);
    }

    fn opened_equal(a: &Subject, b: &Subject) -> HashMap<String, Opened> {
        opened(&[("b1", b), ("a1", a), ("a2", a), ("b2", b)])
    }

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
