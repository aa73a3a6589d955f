//! Asking a user to connect their account to a backend (credentials mode `authorization_code`),
//! in the way their client understands:
//!
//! - a 2026-07-28 client that declares URL-mode elicitation gets an `InputRequiredResult` with an
//!   `elicitation/create` in URL mode; its retry, carrying the user's acceptance, waits (up to
//!   [`CONNECT_WAIT`]) for the connection and runs, else asks again;
//! - a 2025-11-25 client in a session that declared URL-mode elicitation gets an
//!   `elicitation/create` in URL mode; once the user accepts, the call waits (up to
//!   [`CONNECT_WAIT`]) for the connection to be made in the browser and then runs, else ends with
//!   a tool error saying to call again once connected;
//! - any other client, and any call that came without rmcp (`mcp::direct`), gets a tool error
//!   whose text holds the link.
//!
//! The link is the user's own (see `credentials::flows`), so it is shown only to the caller.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams, ElicitationAction,
    InputRequest, InputRequiredResult, InputResponses, ProtocolVersion,
};
use rmcp::service::{ElicitationMode, RequestContext};

use crate::credentials::Connect;
use crate::upstream::{self, Outcome};

/// How long a client may take to show the link and answer.
const ELICITATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a call whose user accepted to connect waits for the connection. Shorter than the
/// usual client request timeout (60 s for the TypeScript SDK), so the client hears why.
const CONNECT_WAIT: Duration = Duration::from_secs(45);
/// The key of the connection request among a 2026-07-28 result's `inputRequests`.
const CONNECT_REQUEST: &str = "connect";

/// The answer to a call that needs the caller to connect first (`message` says so); `retry`
/// runs the call again.
pub(super) async fn ask<F, Fut>(
    connect: &Connect,
    message: &str,
    answers: Option<&InputResponses>,
    context: Option<&RequestContext<RoleServer>>,
    retry: F,
) -> CallToolResponse
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Outcome, upstream::Error>>,
{
    let link = connect.link();
    let failed = |text: String| CallToolResult::error(vec![ContentBlock::text(text)]).into();
    let Some(context) = context else { return failed(message.to_owned()) };
    let declares_url =
        context.client_capabilities().and_then(|it| it.elicitation).is_some_and(|it| it.url.is_some());
    let version = context.protocol_version();
    if version.is_some_and(|it| it.as_str() >= ProtocolVersion::V_2026_07_28.as_str()) {
        if !declares_url {
            return failed(message.to_owned());
        }
        // A retry whose user accepted to connect waits for the connection, as a session's call
        // does; the connection itself is in the vault, so no state travels with the request.
        let accepted = answers
            .and_then(|it| it.get(CONNECT_REQUEST))
            .and_then(|it| it.get("action"))
            .and_then(serde_json::Value::as_str)
            == Some("accept");
        if accepted && let Some(result) = once_connected(connect.clone(), retry).await {
            return result;
        }
        let params = url_params(link, message, String::new());
        let requests = BTreeMap::from([(
            CONNECT_REQUEST.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        )]);
        return InputRequiredResult::from_input_requests(requests).into();
    }
    if !context.peer.supported_elicitation_modes().contains(&ElicitationMode::Url) {
        return failed(message.to_owned());
    }
    let params = url_params(link, message, elicitation_id());
    match context.peer.create_elicitation_with_timeout(params, Some(ELICITATION_TIMEOUT)).await {
        Ok(answer) if answer.action == ElicitationAction::Accept => {
            if let Some(result) = once_connected(connect.clone(), retry).await {
                return result;
            }
            failed(format!(
                "Not connected yet: approve access in the page that opened, then call this tool again. \
                 If no page opened: {message}"
            ))
        }
        Ok(_) => failed(format!("Not connected: the connection was declined. {message}")),
        Err(err) => {
            tracing::debug!(%err, "the client did not answer the connection request");
            failed(message.to_owned())
        }
    }
}

/// The call's answer once its user has connected, or `None` if they have not within
/// [`CONNECT_WAIT`]. Each completed connection (anyone's) is a reason to try the call again.
async fn once_connected<F, Fut>(mut connect: Connect, retry: F) -> Option<CallToolResponse>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Outcome, upstream::Error>>,
{
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, connect.completed()).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return None,
        }
        match retry().await {
            Ok(outcome) => return Some(super::gateway::into_result(outcome).into()),
            // Someone else connected: keep waiting.
            Err(err) if err.connect().is_some() => {}
            Err(err) => return Some(CallToolResult::error(vec![ContentBlock::text(err.to_string())]).into()),
        }
    }
}

fn url_params(link: &str, message: &str, elicitation_id: String) -> ElicitRequestParams {
    ElicitRequestParams::UrlElicitationParams {
        meta: None,
        message: message.to_owned(),
        url: link.to_owned(),
        elicitation_id,
    }
}

/// A fresh id for one elicitation (the client may show it or match a completion to it).
fn elicitation_id() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return "connect".to_owned();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
