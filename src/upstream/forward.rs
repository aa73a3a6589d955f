//! Sends one tool call to its backend within the hosted server's limits (concurrency, timeout,
//! response size, redirects only within the backend's origin) and maps what happens, failures
//! included, to an [`Outcome`].

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;
use tracing::Instrument;
use url::Url;

use super::request::{self, Request};
use super::response::{self, Outcome, Received};
use crate::catalog::Tool;
use crate::config::{BackendUrl, ServerSettings};
use crate::credentials::{Applied, Authorization, CallCredentials, Failure};
use crate::outbound::{self, ReadError, Redirects};
use crate::telemetry::traces;

/// The backend of one hosted server: its base URL, client and limits. Part of the server's
/// snapshot, so a publication replaces it whole.
pub struct Backend {
    /// Every request's scheme, host and port come from it.
    url: Url,
    /// For messages: the backend's host, never its URL (which may carry a credential).
    host: String,
    client: reqwest::Client,
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
        let url = Url::from(url);
        let client = outbound::client(&outbound::Policy::new(Redirects::SameOrigin { max: MAX_REDIRECTS }))
            .map_err(|err| err.to_string())?;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let (name, value) = header(name, value).map_err(|err| format!("headers: {err}"))?;
            headers.insert(name, value);
        }
        Ok(Backend {
            host: url.host_str().unwrap_or("the backend").to_owned(),
            url,
            client,
            headers,
            in_flight: Semaphore::new(settings.max_concurrency.as_usize()),
            max_in_flight: settings.max_concurrency.as_usize(),
            timeout: Duration::from_secs(settings.timeout_secs.get()),
            max_response_bytes: settings.max_response_bytes.as_usize(),
            slug: settings.slug.to_string(),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
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
    #[error("The backend {host} stopped sending its answer for {timeout:?}.")]
    Stalled { host: String, timeout: Duration },
    #[error("The backend {host} redirected elsewhere ({status}), which mcpgate does not follow.")]
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
    if let Ok(response) = &result
        && response.status() == reqwest::StatusCode::UNAUTHORIZED
        && authorization.renewable()
    {
        // Boxed: the rare retry would otherwise double the room every call's future takes.
        result = Box::pin(retry(backend, tool, &request, credentials, &authorization)).await?;
    }
    // Debug: the call's one line at info is its audit record (`mcpgate::audit::call`).
    tracing::debug!(
        server = %backend.slug,
        tool = %tool.spec.name,
        upstream = %host,
        elapsed_ms = started.elapsed().as_millis() as u64,
        status = result.as_ref().map_or(0, |it| it.status().as_u16()),
        "tool call forwarded"
    );
    let mut response = result?;
    let max_bytes = backend.max_response_bytes;
    let capped = match outbound::read_capped_idle(&mut response, max_bytes as u64, timeout).await {
        Ok(capped) => capped,
        Err(ReadError::Transport(err)) => {
            return Err(Error::Transport(describe_failure(host, timeout, &err)));
        }
        Err(ReadError::Idle(_)) => return Err(Error::Stalled { host: host.clone(), timeout }),
    };
    let status = response.status();
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|it| it.to_str().ok());
    let received = Received {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or(""),
        content_type,
        body: &capped.body,
        truncated: capped.cut,
        max_bytes,
    };
    if status.is_redirection() {
        return Err(Error::Redirected { host: host.clone(), status: status.as_u16() });
    }
    let matches =
        |value: &serde_json::Value| tool.output_validator.as_ref().is_none_or(|it| it.is_valid(value));
    Ok(response::outcome(&tool.spec, &received, matches))
}

/// One more try of a request the backend refused with 401, with a new token; refused again, the
/// new token goes too, so that the next call does not repeat this one.
async fn retry(
    backend: &Backend,
    tool: &Tool,
    request: &Request,
    credentials: &CallCredentials<'_>,
    refused: &Authorization,
) -> Result<Result<reqwest::Response, Error>, Error> {
    credentials.forget(refused).await;
    let renewed = credentials.authorize(&tool.scopes).instrument(traces::credentials()).await?;
    tracing::info!(server = %backend.slug, tool = %tool.spec.name, "backend refused the token; retrying with a new one");
    let result = attempt(backend, tool, request, &renewed).await;
    if let Ok(response) = &result
        && response.status() == reqwest::StatusCode::UNAUTHORIZED
    {
        credentials.forget(&renewed).await;
    }
    Ok(result)
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
async fn attempt(
    backend: &Backend,
    tool: &Tool,
    request: &Request,
    authorization: &Authorization,
) -> Result<reqwest::Response, Error> {
    let port = backend.url.port_or_known_default();
    let span = traces::backend_request(request.method.as_str(), &backend.host, port, &tool.spec.plan.path);
    let started = std::time::Instant::now();
    let result = send(backend, request, authorization, &span).instrument(span.clone()).await;
    let status = result.as_ref().ok().map(|it| it.status().as_u16());
    match status {
        Some(status) => tool.metrics.backend_answered(status, started.elapsed()),
        None => tool.metrics.backend_failed(started.elapsed()),
    }
    traces::backend_answered(&span, status);
    result
}

async fn send(
    backend: &Backend,
    request: &Request,
    authorization: &Authorization,
    span: &tracing::Span,
) -> Result<reqwest::Response, Error> {
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
    let mut url = request.url.clone();
    // The credential comes last: nothing the document or the operator names replaces it.
    match &authorization.applied {
        Some(Applied::Header(name, value)) => {
            headers.insert(name.clone(), value.clone());
        }
        Some(Applied::Query(name, value)) => {
            // A parameter of the same name is dropped; the others keep their encoding as built.
            let kept: Vec<&str> = url
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|pair| {
                    let key = pair.split('=').next().unwrap_or_default();
                    !pair.is_empty()
                        && url::form_urlencoded::parse(key.as_bytes()).all(|(key, _)| key != *name)
                })
                .collect();
            let kept = kept.join("&");
            url.set_query((!kept.is_empty()).then_some(kept.as_str()));
            url.query_pairs_mut().append_pair(name, value.expose().unwrap_or_default());
        }
        None => {}
    }
    let mut builder =
        backend.client.request(request.method.clone(), url).timeout(backend.timeout).headers(headers);
    if let Some(body) = &request.body {
        builder = builder.body(body.bytes.clone());
    }
    builder
        .send()
        .await
        .map_err(|err| Error::Transport(describe_failure(&backend.host, backend.timeout, &err)))
}

/// What went wrong, in words a user can act on; never the request's headers or URL (which may
/// carry a credential).
fn describe_failure(backend: &str, timeout: Duration, err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return format!("The backend {backend} did not answer within {timeout:?}.");
    }
    let cause = outbound::root_cause(err);
    if err.is_connect() {
        return format!("Cannot connect to the backend {backend}: {cause}.");
    }
    if err.is_builder() {
        return format!("Cannot build the request to {backend}: {cause}.");
    }
    format!("The request to the backend {backend} failed: {cause}.")
}
