//! Sends one tool call to its backend within the hosted server's limits (concurrency, timeout,
//! response size, redirects only within the backend's origin) and maps what happens, failures
//! included, to an [`Outcome`].

use std::time::Duration;

use base64::Engine;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::request::{self, Request};
use super::response::{self, Outcome, Received};
use crate::catalog::Tool;
use crate::config::{BackendUrl, ServerSettings};
use crate::credentials::{Applied, Authorization, CallCredentials, Failure};
use crate::outbound::pool::{self, Pool};
use crate::telemetry::traces;

/// The backend of one hosted server: its base URL, client and limits. Part of the server's
/// snapshot, so a publication replaces it whole.
pub struct Backend {
    /// Every request's scheme, host and port come from it.
    url: Url,
    /// For messages: the backend's host, never its URL (which may carry a credential).
    host: String,
    pool: Pool,
    /// Headers the operator configured, sent with every request.
    headers: HeaderMap,
    in_flight: Semaphore,
    max_in_flight: usize,
    timeout: Duration,
    max_response_bytes: usize,
    slug: String,
}

/// Redirects are followed only to the backend's own origin, at most this many.
const MAX_REDIRECTS: usize = 5;

impl Backend {
    pub fn new(url: BackendUrl, settings: &ServerSettings) -> Result<Backend, String> {
        let mut url = Url::from(url);
        let timeout = Duration::from_secs(settings.timeout_secs.get());
        let mut headers = HeaderMap::new();
        if let Some(basic) = take_userinfo(&mut url) {
            headers.insert(AUTHORIZATION, basic);
        }
        let pool = Pool::new(&url, timeout)?;
        for (name, value) in &settings.headers {
            let (name, value) = header(name, value).map_err(|err| format!("headers: {err}"))?;
            headers.insert(name, value);
        }
        Ok(Backend {
            host: url.host_str().unwrap_or("the backend").to_owned(),
            url,
            pool,
            headers,
            in_flight: Semaphore::new(settings.max_concurrency.as_usize()),
            max_in_flight: settings.max_concurrency.as_usize(),
            timeout,
            max_response_bytes: settings.max_response_bytes.as_usize(),
            slug: settings.slug.to_string(),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// The user and password of `url` (`https://user:password@host/`), taken out of it, as the
/// Basic authorization HTTP clients send for them: the request line never carries them, and a
/// header the operator configures, or the call's credential, replaces it.
fn take_userinfo(url: &mut Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decoded = |it: &str| percent_encoding::percent_decode_str(it).decode_utf8_lossy().into_owned();
    let credentials =
        format!("{}:{}", decoded(url.username()), url.password().map(decoded).unwrap_or_default());
    // Neither fails on an http(s) URL with a host, which a backend URL is.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Why a call got no answer from its backend, in words for the user (the MCP edge shows them as
/// a tool error); never a token, a secret or a URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cannot build the request: {0}")]
    Request(#[from] request::Error),
    #[error("Cannot build the request: {0}.")]
    Header(String),
    #[error("The backend {host} is busy: {max} calls are in flight. Try again shortly.")]
    Busy { host: String, max: usize },
    #[error(transparent)]
    Credentials(#[from] Failure),
    /// A transport failure, described by [`describe_failure`].
    #[error("{0}")]
    Transport(String),
    #[error("The backend {host} did not finish its answer within {timeout:?}.")]
    Unfinished { host: String, timeout: Duration },
    #[error(
        "The backend {host} answered {status} with a redirect mcpgate does not follow (to another origin, or more than {MAX_REDIRECTS})."
    )]
    Redirected { host: String, status: u16 },
}

impl Error {
    /// Where the user connects their account to the backend, when the call needs that first
    /// (mode `authorization_code`).
    pub fn connect(&self) -> Option<&crate::credentials::Connect> {
        match self {
            Error::Credentials(failure) => failure.connect(),
            _ => None,
        }
    }
}

/// Sends a call of `tool` with `arguments` to `backend`: the backend's answer, whatever its
/// status, or why there is none.
pub async fn forward(
    backend: &Backend,
    tool: &Tool,
    arguments: &serde_json::Map<String, serde_json::Value>,
    credentials: &CallCredentials<'_>,
) -> Result<Outcome, Error> {
    let host = &backend.host;
    let timeout = backend.timeout;
    let request = request::build(&backend.url, &tool.spec.plan, arguments)?;
    // Beyond the limit a call is refused at once rather than queued: a model can retry, and a
    // queue would only move the wait into everyone's timeout.
    let Ok(_permit) = backend.in_flight.try_acquire() else {
        return Err(Error::Busy { host: host.clone(), max: backend.max_in_flight });
    };
    let authorization = credentials.authorize(&tool.scopes).instrument(traces::credentials()).await?;
    let started = std::time::Instant::now();
    let mut result = attempt(backend, tool, &request, &authorization).await;
    // A refused token may have been revoked or rotated: one new token, one more try.
    if let Ok(answer) = &result
        && answer.exchange.head().status == StatusCode::UNAUTHORIZED
        && authorization.renewable()
    {
        // Boxed: the rare retry would otherwise double the room every call's future takes.
        result = Box::pin(retry(backend, tool, &request, credentials, &authorization)).await?;
    }
    if let Ok(answer) = &result
        && is_followed(answer.exchange.head().status)
    {
        result = Box::pin(follow(backend, tool, request, &authorization, result)).await;
    }
    // Debug: the call's one line at info is its audit record (`mcpgate::audit::call`).
    tracing::debug!(
        server = %backend.slug,
        tool = %tool.spec.name,
        upstream = %host,
        elapsed_ms = started.elapsed().as_millis() as u64,
        status = result.as_ref().map_or(0, |it| it.exchange.head().status.as_u16()),
        "tool call forwarded"
    );
    let Answer { exchange, deadline } = result?;
    let max_bytes = backend.max_response_bytes;
    let (head, capped) = match tokio::time::timeout_at(deadline, exchange.read_capped(max_bytes as u64)).await
    {
        Ok(Ok(read)) => read,
        Ok(Err(err)) => {
            let cause = pool::root_cause(&err);
            return Err(Error::Transport(format!("The backend {host} broke off its answer: {cause}.")));
        }
        Err(_) => return Err(Error::Unfinished { host: host.clone(), timeout }),
    };
    let status = head.status;
    let received = Received {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or(""),
        content_type: head.content_type.as_deref(),
        body: &capped.body,
        truncated: capped.cut,
        max_bytes,
    };
    if status.is_redirection() {
        return Err(Error::Redirected { host: host.clone(), status: status.as_u16() });
    }
    Ok(response::outcome(&tool.spec, &received, |json| tool.output_check(json)))
}

/// A response's head, and until when its body may take to arrive.
struct Answer<'a> {
    exchange: pool::Exchange<'a>,
    deadline: Instant,
}

/// One more try of a request the backend refused with 401, with a new token; refused again, the
/// new token goes too, so that the next call does not repeat this one.
async fn retry<'a>(
    backend: &'a Backend,
    tool: &Tool,
    request: &Request,
    credentials: &CallCredentials<'_>,
    refused: &Authorization,
) -> Result<Result<Answer<'a>, Error>, Error> {
    credentials.forget(refused).await;
    let renewed = credentials.authorize(&tool.scopes).instrument(traces::credentials()).await?;
    tracing::info!(server = %backend.slug, tool = %tool.spec.name, "backend refused the token; retrying with a new one");
    let result = attempt(backend, tool, request, &renewed).await;
    if let Ok(answer) = &result
        && answer.exchange.head().status == StatusCode::UNAUTHORIZED
    {
        credentials.forget(&renewed).await;
    }
    Ok(result)
}

/// The redirects mcpgate follows.
fn is_followed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Follows the redirects in `result` while they stay on the backend's origin, at most
/// [`MAX_REDIRECTS`]; the first one that leaves it, or one too many, is the answer.
async fn follow<'a>(
    backend: &'a Backend,
    tool: &Tool,
    mut request: Request,
    authorization: &Authorization,
    mut result: Result<Answer<'a>, Error>,
) -> Result<Answer<'a>, Error> {
    for _ in 0..MAX_REDIRECTS {
        let Ok(answer) = &result else { break };
        let status = answer.exchange.head().status;
        let location = answer.exchange.head().location.as_deref();
        let Some(next) = location.and_then(|it| request.url.join(it).ok()) else { break };
        if !is_followed(status) || next.origin() != backend.url.origin() {
            break;
        }
        // As browsers do: 303, and 301 or 302 after anything but GET or HEAD, become a GET
        // without a body; 307 and 308 repeat the request as it was.
        let as_get = status == StatusCode::SEE_OTHER
            || (matches!(status.as_u16(), 301 | 302)
                && !matches!(request.method, Method::GET | Method::HEAD));
        if as_get {
            request.method = if request.method == Method::HEAD { Method::HEAD } else { Method::GET };
            request.body = None;
        }
        request.url = next;
        result = attempt(backend, tool, &request, authorization).await;
    }
    result
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    let value =
        HeaderValue::from_str(value).map_err(|_| format!("the value of header `{name}` is not valid"))?;
    Ok((header, value))
}

/// One request to the backend, timed in the metrics (until the response head) and traced as a
/// client span.
async fn attempt<'a>(
    backend: &'a Backend,
    tool: &Tool,
    request: &Request,
    authorization: &Authorization,
) -> Result<Answer<'a>, Error> {
    let port = backend.url.port_or_known_default();
    let span = traces::backend_request(request.method.as_str(), &backend.host, port, &tool.spec.plan.path);
    let started = std::time::Instant::now();
    let deadline = Instant::now() + backend.timeout;
    let sent = send(backend, request, authorization, &span).instrument(span.clone());
    let result = match tokio::time::timeout_at(deadline, sent).await {
        Ok(result) => result.map(|exchange| Answer { exchange, deadline }),
        Err(_) => Err(Error::Transport(format!(
            "The backend {} did not answer within {:?}.",
            backend.host, backend.timeout
        ))),
    };
    let status = result.as_ref().ok().map(|it| it.exchange.head().status.as_u16());
    match status {
        Some(status) => tool.metrics.backend_answered(status, started.elapsed()),
        None => tool.metrics.backend_failed(started.elapsed()),
    }
    traces::backend_answered(&span, status);
    result
}

async fn send<'a>(
    backend: &'a Backend,
    request: &Request,
    authorization: &Authorization,
    span: &tracing::Span,
) -> Result<pool::Exchange<'a>, Error> {
    let mut headers = HeaderMap::with_capacity(request.headers.len() + backend.headers.len() + 2);
    for (name, value) in &request.headers {
        let (name, value) = header(name, value).map_err(Error::Header)?;
        headers.append(name, value);
    }
    // Headers the operator configured replace any parameter of the same name.
    for (name, value) in &backend.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(body) = &request.body {
        let (name, value) = header("content-type", &body.content_type).map_err(Error::Header)?;
        headers.insert(name, value);
    }
    traces::inject(span, &mut headers);
    let with_query_credential;
    let mut url = &request.url;
    // The credential comes last: nothing the document or the operator names replaces it.
    match &authorization.applied {
        Some(Applied::Header(name, value)) => {
            headers.insert(name.clone(), value.clone());
        }
        Some(Applied::Query(name, value)) => {
            with_query_credential = with_query(url, name, value.expose().unwrap_or_default());
            url = &with_query_credential;
        }
        None => {}
    }
    // The pool connects to the backend's origin, where `url` is (`request::build`, `follow`).
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let body = request.body.as_ref().map_or(&[][..], |it| it.bytes.as_slice());
    let outgoing = pool::Request { method: &request.method, target, headers: &headers, body };
    backend.pool.send(&outgoing).await.map_err(|err| Error::Transport(describe_failure(&backend.host, &err)))
}

/// `url` with the query parameter `name` set to `value`: a parameter of the same name is
/// dropped; the others keep their encoding as built.
fn with_query(url: &Url, name: &str, value: &str) -> Url {
    let mut url = url.clone();
    let kept: Vec<&str> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !pair.is_empty() && url::form_urlencoded::parse(key.as_bytes()).all(|(key, _)| key != *name)
        })
        .collect();
    let kept = kept.join("&");
    url.set_query((!kept.is_empty()).then_some(kept.as_str()));
    url.query_pairs_mut().append_pair(name, value);
    url
}

/// What went wrong, in words a user can act on; never the request's headers or URL (which may
/// carry a credential), which the pool's errors do not hold.
fn describe_failure(backend: &str, err: &pool::Error) -> String {
    let cause = pool::root_cause(err);
    if matches!(err, pool::Error::Connect(_)) {
        return format!("Cannot connect to the backend {backend}: {cause}.");
    }
    format!("The request to the backend {backend} failed: {cause}.")
}
