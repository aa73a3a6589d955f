//! The HTTP client the OTLP exporter sends spans with: mcpgate's own (`outbound::client`), so
//! that no proxy comes from the environment and no second HTTP stack enters the build.
//!
//! The batch processor exports from a thread of its own, outside the tokio runtime, so each
//! export runs as a task on the runtime the exporter was started in, and the processor's thread
//! waits for it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

use crate::outbound;

/// The collector's answer is read up to this size: an OTLP response is a small status message.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// One export, connection to last byte.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ExportClient {
    /// Must be called within the tokio runtime.
    pub fn new() -> Result<ExportClient, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the trace exporter needs the tokio runtime".to_owned())?;
        let mut policy = outbound::Policy::direct();
        policy.timeout = Some(EXPORT_TIMEOUT);
        let client = outbound::client(&policy).map_err(|err| err.to_string())?;
        Ok(ExportClient { client, runtime })
    }
}

impl HttpClient for ExportClient {
    // `async_trait`'s shape, written out: the trait is declared with it.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move { send(&client, request).await });
        Box::pin(async move { task.await.map_err(|err| -> HttpError { Box::new(err) })? })
    }
}

async fn send(client: &reqwest::Client, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let mut response = client
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|err| -> HttpError { outbound::describe(&err).into() })?;
    let status = response.status();
    let headers = response.headers().clone();
    let capped = outbound::read_capped(&mut response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|err| -> HttpError { outbound::describe(&err).into() })?;
    let mut answer = Response::new(Bytes::from(capped.body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}
