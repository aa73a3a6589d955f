//! [`Gateway`]: the rmcp server handler of one hosted server. `tools/list` pages through the
//! catalog; `tools/call` validates the arguments, then forwards the call to the backend.
//!
//! Sessions are optional (see [`super::Endpoint`]). Without one, each request is handled on its
//! own (rmcp's stateless mode, JSON responses) and nothing is kept between requests. A client that
//! initializes gets a session, whose peer `on_initialized` registers so that it hears
//! `notifications/tools/list_changed`; a 2026-07-28 client hears it on `subscriptions/listen`.
//! Every request reads the snapshot the edge took when the request arrived, session or not.
//!
//! Invariant: over its rate limit a call is a tool result with `isError: true` saying when to
//! retry, never an HTTP 429 or a JSON-RPC error; every call leaves one audit record
//! (`calls::CallLog`), however it ends.

use std::borrow::Cow;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use base64::Engine;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData, Implementation,
    ListToolsResult, MetaObject, PaginatedRequestParams, ResourceContents, ServerCapabilities, ServerConfig,
    SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{RoleServer, ServerHandler};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::confirm::{self, Confirmation};
use super::definition::listed_definition;
use super::endpoint::{SESSION_HEADER, Subject};
use super::listeners::Listeners;
use super::observe::observed;
use crate::auth::Caller;
use crate::calls::{CallLog, Decision, Who};
use crate::catalog::Tool;
use crate::ratelimit::{Limiter, Refusal};
use crate::snapshot::{self, Snapshot};
use crate::upstream::{self, Outcome, Part};

/// Tools per `tools/list` page.
const PAGE_SIZE: usize = 100;
/// Open `subscriptions/listen` streams per hosted server. Each holds a task and a connection.
const MAX_SUBSCRIPTIONS: usize = 1000;

/// Cheap to clone: rmcp makes one per session and per stateless request.
#[derive(Clone)]
pub struct Gateway {
    /// The server's current snapshot, for what no request carries: the server's description at
    /// `initialize`, and its changes.
    host: snapshot::Host,
    /// Where a new session registers to hear of catalog changes; `None` in the stateless
    /// service, which has no session to register.
    listeners: Option<Arc<Listeners>>,
    /// Permits for `subscriptions/listen` streams, shared by every clone.
    subscriptions: Arc<Semaphore>,
    /// The server's rate-limit buckets, kept across publications.
    limiter: Arc<Limiter>,
    /// The server's recent calls.
    calls: Arc<CallLog>,
    /// Confirmation states already used, kept across publications.
    confirmations: Arc<confirm::Taken>,
}

impl Gateway {
    pub fn new(host: snapshot::Host) -> Gateway {
        let calls = Arc::new(CallLog::new(&host.current().slug));
        Gateway {
            host,
            listeners: None,
            subscriptions: Arc::new(Semaphore::new(MAX_SUBSCRIPTIONS)),
            limiter: Arc::new(Limiter::default()),
            calls,
            confirmations: Arc::new(confirm::Taken::default()),
        }
    }

    /// This gateway keeping the confirmation states used in `store`, which replicas share: a
    /// state used on one is refused by all.
    pub fn with_store(self, store: crate::store::Store) -> Gateway {
        Gateway { confirmations: Arc::new(confirm::Taken::in_store(store)), ..self }
    }

    /// This gateway for the session service: each session it initializes registers with
    /// `listeners`.
    pub(super) fn with_listeners(&self, listeners: Arc<Listeners>) -> Gateway {
        Gateway { listeners: Some(listeners), ..self.clone() }
    }

    pub(super) fn host(&self) -> &snapshot::Host {
        &self.host
    }

    pub(super) fn calls(&self) -> &Arc<CallLog> {
        &self.calls
    }

    /// Whether a call of `tool` may ask the client for the user's confirmation (and so needs a
    /// path on which the server can ask: a session's, or a 2026-07-28 multi-round call).
    pub fn needs_confirmation(snapshot: &Snapshot, tool: &Tool) -> bool {
        tool.confirm || snapshot.policies.may_confirm()
    }

    /// The snapshot the edge took for this request (the current one if none was taken).
    fn snapshot(&self, context: &RequestContext<RoleServer>) -> Arc<Snapshot> {
        parts(context)
            .and_then(|it| it.extensions.get::<Arc<Snapshot>>())
            .cloned()
            .unwrap_or_else(|| self.host.current())
    }
}

/// Who a request comes from and what came with it, whichever path brought it: rmcp's, or
/// `mcp::direct`'s.
pub(super) struct Origin<'a> {
    pub caller: Option<&'a Caller>,
    pub peer: Option<SocketAddr>,
    /// The client's trace context (`traceparent`, `tracestate`): `_meta`'s, else the HTTP headers'.
    pub trace: (Option<&'a str>, Option<&'a str>),
    /// The request as rmcp handed it over, through which a call can ask its client something
    /// (to connect an account); `None` on the direct path, which serves no such call.
    pub rmcp: Option<&'a RequestContext<RoleServer>>,
}

impl<'a> Origin<'a> {
    fn of(context: &'a RequestContext<RoleServer>) -> Origin<'a> {
        let parts = parts(context);
        let header = |name: &str| parts?.headers.get(name)?.to_str().ok();
        let trace = match context.meta.get_traceparent() {
            Some(parent) => (Some(parent), context.meta.get_tracestate()),
            None => (header("traceparent"), header("tracestate")),
        };
        Origin { caller: caller(context), peer: peer(context), trace, rmcp: Some(context) }
    }
}

impl Gateway {
    /// `tools/call` on `snapshot`, timed and traced; `tool` is the called tool, looked up once for
    /// the call and for what observes it.
    pub(super) async fn call_on(
        &self,
        snapshot: &Snapshot,
        request: CallToolRequestParams,
        origin: &Origin<'_>,
    ) -> Result<Called, ErrorData> {
        // In catalog mode, a meta-tool: a search or a description is answered here, a call names
        // the operation to run.
        let request = if snapshot.catalog.search.is_some() {
            match super::catalog_mode::route(&snapshot.catalog, request, visible(snapshot, origin.caller)) {
                super::catalog_mode::Route::Answered(result) => return Ok(result.into()),
                super::catalog_mode::Route::Call(request) => request,
            }
        } else {
            request
        };
        let tool = snapshot.catalog.tool(&request.name);
        observed(snapshot, tool, origin.trace, self.call(snapshot, tool, request, origin)).await
    }

    /// Whether a call of `tool` on `snapshot` may need to ask its client something while it runs
    /// (to connect an account, to confirm), which only a request rmcp handles can do.
    pub(super) fn may_ask(snapshot: &Snapshot, tool: Option<&Tool>) -> bool {
        snapshot.credentials.consent().is_some()
            || tool.is_some_and(|it| Gateway::needs_confirmation(snapshot, it))
    }

    async fn call(
        &self,
        snapshot: &Snapshot,
        tool: Option<&Tool>,
        request: CallToolRequestParams,
        origin: &Origin<'_>,
    ) -> Result<Called, ErrorData> {
        let (caller, peer) = (origin.caller, origin.peer);
        // Written when dropped, with what the call came to.
        let mut audit = self.calls.begin(&request.name, who(caller, peer), snapshot.credentials.audience());
        let Some(tool) = tool else {
            audit.decide(Decision::UnknownTool);
            return Err(ErrorData::invalid_params(format!("unknown tool {}", request.name), None));
        };
        // The edge has asked for these scopes already (a 403 challenge); this holds whatever
        // message reached rmcp without the edge seeing its tool.
        if snapshot.access.is_some() && !caller.is_some_and(|it| it.has_scopes(&tool.scopes)) {
            audit.decide(Decision::InsufficientScope);
            return Err(ErrorData::invalid_request(format!("{} needs more scopes", tool.spec.name), None));
        }
        // Over the limit, a result the model can act on (wait, then retry): clients take an HTTP
        // 429 for a failed transport, and a JSON-RPC error for a broken call.
        if let Err(refusal) = self.limiter.check(&user(caller, peer), &tool.spec.name, &tool.limits) {
            audit.decide(Decision::RateLimited);
            tool.metrics.rate_limited();
            return Ok(rate_limited(&refusal).into());
        }
        let arguments = request.arguments.unwrap_or_default();
        let instance = Value::Object(arguments);
        // Invalid arguments are a result the model reads and can correct, not a protocol error.
        let problems: Vec<String> = tool
            .validator
            .iter_errors(&instance)
            .take(20)
            .map(|err| {
                let path = err.instance_path().to_string();
                let place = if path.is_empty() { "arguments".to_owned() } else { format!("`{path}`") };
                format!("- {place}: {}", err.masked())
            })
            .collect();
        if !problems.is_empty() {
            audit.decide(Decision::InvalidArguments);
            let text = format!("Invalid arguments for {}:\n{}", tool.spec.name, problems.join("\n"));
            return Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into());
        }
        let Value::Object(arguments) = instance else {
            return Err(ErrorData::internal_error("arguments changed shape", None));
        };
        let allowed = match snapshot.policies.check_call(caller.map(|it| &it.claims), tool, &arguments) {
            Ok(allowed) => allowed,
            Err(refused) => {
                audit.decide(Decision::PolicyDenied);
                return Ok(CallToolResult::error(vec![ContentBlock::text(refused.to_string())]).into());
            }
        };
        if tool.confirm || allowed.confirm {
            let call = confirm::Call {
                slug: &snapshot.slug,
                keyring: &snapshot.keyring,
                taken: &self.confirmations,
                tool,
                caller,
                arguments: &arguments,
                state: request.request_state.as_deref(),
                answers: request.input_responses.as_ref(),
            };
            // Boxed, as the rarer paths below are: a future is as large as its largest state, and every
            // call's future would otherwise carry room for the question (and be copied with it).
            if let Confirmation::Answer(response) = Box::pin(confirm::ask(call, origin.rmcp)).await {
                audit.decide(Decision::NotConfirmed);
                return Ok((*response).into());
            }
        }
        let credentials = snapshot.credentials.for_call(caller);
        // A backend that cannot be reached, refuses or fails is a result the model can act on
        // (retry, tell the user), not a protocol error.
        match upstream::forward(&snapshot.backend, tool, &arguments, &credentials).await {
            Ok(outcome) => {
                audit.decide(Decision::Allowed);
                audit.backend_status(outcome.status);
                Ok(Called::Forwarded(outcome))
            }
            Err(err) => match err.connect() {
                Some(connect) => {
                    // The user may connect while the call waits, and its retry reach the backend:
                    // the audit then says so, with the backend's status (0: not reached).
                    let reached = AtomicU16::new(0);
                    let retry = || async {
                        let result =
                            upstream::forward(&snapshot.backend, tool, &arguments, &credentials).await;
                        if let Ok(outcome) = &result {
                            reached.store(outcome.status, Ordering::Relaxed);
                        }
                        result
                    };
                    let answers = request.input_responses.as_ref();
                    let response =
                        Box::pin(super::connect::ask(connect, &err.to_string(), answers, origin.rmcp, retry))
                            .await;
                    match reached.load(Ordering::Relaxed) {
                        0 => audit.decide(Decision::ConsentRequired),
                        status => {
                            audit.decide(Decision::Allowed);
                            audit.backend_status(status);
                        }
                    }
                    Ok(response.into())
                }
                None => {
                    audit.decide(decision(&err));
                    Ok(CallToolResult::error(vec![ContentBlock::text(err.to_string())]).into())
                }
            },
        }
    }
}

/// What a `tools/call` came to: the backend's answer, or a result made here (a refusal, an
/// error, a question). The direct path writes a backend's answer itself; rmcp gets it as a
/// [`CallToolResponse`].
pub(super) enum Called {
    Forwarded(Outcome),
    Made(CallToolResponse),
}

impl Called {
    /// Whether the call's result is an error the model reads.
    pub fn is_error(&self) -> bool {
        match self {
            Called::Forwarded(outcome) => outcome.is_error,
            Called::Made(CallToolResponse::Complete(result)) => result.is_error == Some(true),
            Called::Made(_) => false,
        }
    }
}

impl From<Called> for CallToolResponse {
    fn from(called: Called) -> CallToolResponse {
        match called {
            Called::Forwarded(outcome) => into_result(outcome).into(),
            Called::Made(response) => response,
        }
    }
}

impl From<CallToolResponse> for Called {
    fn from(response: CallToolResponse) -> Called {
        Called::Made(response)
    }
}

impl From<CallToolResult> for Called {
    fn from(result: CallToolResult) -> Called {
        Called::Made(result.into())
    }
}

/// One page of the tools `caller` may see, counted in the metrics.
pub(super) fn list_tools_on(
    snapshot: &Snapshot,
    request: Option<PaginatedRequestParams>,
    caller: Option<&Caller>,
) -> Result<ListToolsResult, ErrorData> {
    let started = std::time::Instant::now();
    let result = list_page(snapshot, request, caller);
    snapshot.catalog.metrics.listed(result.is_ok(), started.elapsed());
    result
}

fn list_page(
    snapshot: &Snapshot,
    request: Option<PaginatedRequestParams>,
    caller: Option<&Caller>,
) -> Result<ListToolsResult, ErrorData> {
    if snapshot.catalog.search.is_some() {
        return Ok(ListToolsResult::with_all_items(super::catalog_mode::definitions(&snapshot.catalog)));
    }
    let may_see = visible(snapshot, caller);
    let visible: Vec<&Tool> = snapshot.catalog.tools.iter().filter(|it| may_see(it)).collect();
    let start = match request.and_then(|it| it.cursor) {
        None => 0,
        Some(cursor) => decode_cursor(&cursor)
            .filter(|it| *it <= visible.len())
            .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
    };
    let end = (start + PAGE_SIZE).min(visible.len());
    let page = visible[start..end].iter().map(|it| listed_definition(&it.spec)).collect();
    let mut result = ListToolsResult::with_all_items(page);
    result.next_cursor = (end < visible.len()).then(|| encode_cursor(end));
    Ok(result)
}

/// Whether the caller may see a tool: every tool, unless the server filters the list by scope
/// (`auth.filter_tools_by_scope`), or serves a catalog (whose search never finds what a caller
/// may not call).
fn visible<'a>(snapshot: &'a Snapshot, caller: Option<&'a Caller>) -> impl Fn(&Tool) -> bool + 'a {
    let filter =
        snapshot.access.as_ref().is_some_and(|it| it.filter_tools || snapshot.catalog.search.is_some());
    let claims = caller.map(|it| &it.claims);
    let by_scope = caller.filter(|_| filter);
    // A tool the policies never let this caller call is not listed (nor found in a catalog).
    move |tool| {
        by_scope.is_none_or(|caller| caller.has_scopes(&tool.scopes))
            && snapshot.policies.may_list(claims, tool)
    }
}

fn parts(context: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    context.extensions.get::<axum::http::request::Parts>()
}

/// The caller the auth guard admitted, from the HTTP request rmcp hands over.
fn caller(context: &RequestContext<RoleServer>) -> Option<&Caller> {
    parts(context)?.extensions.get::<Caller>()
}

/// The client's address, when the request came through a socket.
fn peer(context: &RequestContext<RoleServer>) -> Option<SocketAddr> {
    parts(context)?.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|it| it.0)
}

/// Who a call's audit record names: the caller in auth mode `jwt`, else the client's address.
pub(super) fn who(caller: Option<&Caller>, peer: Option<SocketAddr>) -> Who<'_> {
    match caller {
        Some(caller) => Who {
            issuer: Some(&caller.claims.issuer),
            subject: Some(Cow::Borrowed(&caller.claims.subject)),
            client_id: caller.claims.client_id.as_deref(),
        },
        None => {
            Who { subject: peer.map(|it| Cow::Owned(address_text(it.ip().to_canonical()))), ..Who::default() }
        }
    }
}

/// `ip` as `Display` writes it. An IPv4 address, the common case, is written without the
/// formatting machinery, which took 1,300 instructions of every call in mode `none`.
fn address_text(ip: IpAddr) -> String {
    let IpAddr::V4(ip) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    let mut digits = itoa::Buffer::new();
    for (n, octet) in ip.octets().into_iter().enumerate() {
        if n > 0 {
            text.push('.');
        }
        text.push_str(digits.format(octet));
    }
    text
}

/// Whose bucket a call takes from: the caller (issuer and subject), else the client's address
/// (its /64 network for IPv6), as sessions are counted.
fn user<'a>(caller: Option<&'a Caller>, peer: Option<SocketAddr>) -> impl Hash + 'a {
    match caller {
        Some(caller) => Ok((caller.claims.issuer.as_str(), caller.claims.subject.as_str())),
        None => Err(Subject::of(None, peer)),
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        let snapshot = self.host.current();
        let catalog = &snapshot.catalog;
        let mut info = Implementation::new(format!("mcpgate/{}", snapshot.slug), env!("CARGO_PKG_VERSION"));
        info.title = Some(catalog.title.clone());
        // `listChanged`: sessions and `subscriptions/listen` streams hear of catalog changes.
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(info)
            .with_instructions(format!(
                "Tools of the {} API, served by mcpgate. Each tool calls one operation of the API.",
                catalog.title
            ))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let snapshot = self.snapshot(&context);
        list_tools_on(&snapshot, request, caller(&context))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // One snapshot for the whole call, even if the server is published again meanwhile.
        let snapshot = self.snapshot(&context);
        self.call_on(&snapshot, request, &Origin::of(&context)).await.map(CallToolResponse::from)
    }

    /// Called when a session's client says it is initialized (rmcp also makes gateways it never
    /// initializes, so a session registers here rather than when its gateway is made).
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let Some(listeners) = &self.listeners else { return };
        let session = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|it| it.headers.get(SESSION_HEADER))
            .and_then(|it| it.to_str().ok());
        if let Some(session) = session {
            listeners.add(session, context.peer.clone());
        }
    }

    fn accepted_subscription_filter(&self, _requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// A 2026-07-28 client's `subscriptions/listen` stream: `notifications/tools/list_changed`
    /// after each catalog change, until the client cancels or goes away.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let Ok(_permit) = self.subscriptions.clone().try_acquire_owned() else {
            return Err(ErrorData::internal_error("this server has too many open subscriptions", None));
        };
        let mut changes = self.host.changes();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
            }
            if context.accepted().tools_list_changed == Some(true)
                && let Err(err) = context.sink().notify_tool_list_changed().await
            {
                // The client is gone; its request is being cancelled.
                tracing::debug!(%err, "a subscription was not told that the tool list changed");
                return Ok(());
            }
        }
    }
}

/// A call over its rate limit: what to wait for in words, and in seconds under `_meta` for
/// clients that retry by themselves.
fn rate_limited(refusal: &Refusal) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(refusal.to_string())]);
    let mut meta = MetaObject::new();
    meta.insert("mcpgate/retryAfterSeconds".to_owned(), refusal.retry_after_secs().into());
    result.meta = Some(meta);
    result
}

/// How the audit names a call the backend did not answer.
fn decision(err: &upstream::Error) -> Decision {
    match err {
        upstream::Error::Request(_) => Decision::InvalidArguments,
        upstream::Error::Busy { .. } => Decision::Busy,
        upstream::Error::Credentials(_) => Decision::CredentialsFailed,
        upstream::Error::Header(_)
        | upstream::Error::Transport(_)
        | upstream::Error::Unfinished { .. }
        | upstream::Error::Redirected { .. } => Decision::BackendError,
    }
}

pub(super) fn into_result(outcome: Outcome) -> CallToolResult {
    let content = outcome
        .content
        .into_iter()
        .map(|part| match part {
            Part::Text(text) => ContentBlock::text(text),
            Part::Image { data, mime_type } => {
                ContentBlock::image(base64::engine::general_purpose::STANDARD.encode(data), mime_type)
            }
            Part::Resource { uri, data, mime_type } => ContentBlock::resource(
                ResourceContents::blob(base64::engine::general_purpose::STANDARD.encode(data), uri)
                    .with_mime_type(mime_type),
            ),
        })
        .collect();
    let mut result =
        if outcome.is_error { CallToolResult::error(content) } else { CallToolResult::success(content) };
    // Valid JSON: checked when the answer was read.
    result.structured_content = outcome.structured.and_then(|it| serde_json::from_str(&it.json).ok());
    result
}

/// Cursors are opaque to clients; inside they are the offset of the next page.
fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes).ok()?.strip_prefix("offset:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(300)), Some(300));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("offset:x")), None);
    }

    #[test]
    fn an_address_is_written_as_display_writes_it() {
        for text in
            ["0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "::1", "2001:db8::8a2e:370:7334"]
        {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string());
            assert_eq!(address_text(ip), text);
        }
    }
}
