//! Asking the user to confirm a call before it reaches the backend (tools marked for
//! confirmation: by default those of DELETE operations), in the way their client understands:
//!
//! - a 2026-07-28 client that declares form elicitation gets an `InputRequiredResult` asking
//!   accept or decline, with a `requestState` sealed with the store's keys that binds the answer to
//!   the caller, the tool, a digest of the arguments and an expiry; its retry carries the answer
//!   and the state back, and any replica can open it. A state is taken once: its nonce is kept
//!   in the store until it expires, so another replica refuses it too;
//! - a 2025-11-25 client in a session that declares form elicitation gets an `elicitation/create`
//!   and the call waits for the answer;
//! - any other client gets a tool error saying that the call needs a confirmation it cannot give.
//!
//! Invariant: an unconfirmed call never reaches the backend; a state opens only for the caller,
//! tool and arguments it was made for, before it expires, once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams, ElicitationAction,
    ElicitationSchema, InputRequest, InputRequiredResult, InputResponses, ProtocolVersion,
};
use rmcp::service::{ElicitationMode, RequestContext};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::catalog::Tool;
use crate::secrets::{Keyring, Secret};
use crate::store::Store;

/// How long a client may take to show the question and answer.
const ELICITATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a 2026-07-28 client may take to come back with the answer.
const STATE_LIFETIME: Duration = Duration::from_secs(300);
/// The key of the question among a 2026-07-28 result's `inputRequests`.
const CONFIRM_REQUEST: &str = "confirm";
/// Taken states remembered per process; beyond it the oldest expired ones are dropped first.
const MAX_TAKEN: usize = 100_000;
/// The longest `requestState` opened.
const MAX_STATE_BYTES: usize = 4096;

/// What became of the question.
pub(super) enum Confirmation {
    Confirmed,
    /// The call ends with this answer (a question, a refusal), the backend not called.
    Answer(Box<CallToolResponse>),
}

/// The states already taken, by nonce, with their expiry: a state opens once. In the store when
/// the server has one (every replica sees what another took), else in this process.
#[derive(Default)]
pub(super) struct Taken {
    local: Mutex<HashMap<String, u64>>,
    store: Option<Store>,
}

#[derive(Serialize, Deserialize)]
struct State {
    iss: String,
    sub: String,
    tool: String,
    /// SHA-256 of the arguments as JSON, base64url.
    args: String,
    exp: u64,
    nonce: String,
}

/// The call to confirm.
pub(super) struct Call<'a> {
    pub slug: &'a str,
    pub keyring: &'a Keyring,
    pub taken: &'a Taken,
    pub tool: &'a Tool,
    pub caller: Option<&'a Caller>,
    pub arguments: &'a Map<String, Value>,
    /// A 2026-07-28 retry's `requestState` and `inputResponses`.
    pub state: Option<&'a str>,
    pub answers: Option<&'a InputResponses>,
}

/// Asks `context`'s user to confirm `call`.
pub(super) async fn ask(call: Call<'_>, context: Option<&RequestContext<RoleServer>>) -> Confirmation {
    let Call { slug, keyring, taken, tool, caller, arguments, state, answers } = call;
    let refuse = |text: String| {
        Confirmation::Answer(Box::new(CallToolResult::error(vec![ContentBlock::text(text)]).into()))
    };
    let name = &tool.spec.name;
    let message = format!(
        "Allow {name} to run? It changes data at the backend ({} {}).",
        tool.spec.plan.method, tool.spec.plan.path
    );
    // A call that came without rmcp (`mcp::direct`) has no way to ask; the direct path takes none
    // that may need to.
    let Some(context) = context else { return refuse(cannot_confirm(name)) };
    let version = context.protocol_version();
    if version.is_some_and(|it| it.as_str() >= ProtocolVersion::V_2026_07_28.as_str()) {
        let declares_form = context
            .client_capabilities()
            .and_then(|it| it.elicitation)
            .is_some_and(|it| it.form.is_some() || it.url.is_none());
        let place = format!("confirm-state/{slug}");
        let digest = digest(arguments);
        if let Some(state) = state {
            let Some(opened) = open(keyring, &place, state) else {
                return refuse(format!(
                    "The confirmation of {name} is invalid or has expired: call the tool again."
                ));
            };
            let (iss, sub) = who(caller);
            if opened.iss != iss || opened.sub != sub || opened.tool != *name || opened.args != digest {
                return refuse(format!(
                    "The confirmation of {name} was given for another call: call the tool again."
                ));
            }
            match taken.take(&opened.nonce, opened.exp).await {
                Ok(true) => {}
                Ok(false) => {
                    return refuse(format!(
                        "The confirmation of {name} was used already: call the tool again."
                    ));
                }
                Err(err) => {
                    // Unsure whether it was used: refused, as a replay would be.
                    tracing::warn!(%err, "a confirmation could not be checked against the store");
                    return refuse(format!(
                        "The confirmation of {name} cannot be checked now: call the tool again in a moment."
                    ));
                }
            }
            let action = answers
                .and_then(|it| it.get(CONFIRM_REQUEST))
                .and_then(|it| it.get("action"))
                .and_then(Value::as_str);
            return match action {
                Some("accept") => Confirmation::Confirmed,
                _ => refuse(format!("{name} was not run: the user did not confirm it.")),
            };
        }
        if !declares_form {
            return refuse(cannot_confirm(name));
        }
        let (iss, sub) = who(caller);
        let Some(nonce) = nonce() else { return refuse(cannot_confirm(name)) };
        let state = State {
            iss,
            sub,
            tool: name.clone(),
            args: digest,
            exp: now() + STATE_LIFETIME.as_secs(),
            nonce,
        };
        let Some(sealed) = seal(keyring, &place, &state) else { return refuse(cannot_confirm(name)) };
        let Some(params) = form(&message) else { return refuse(cannot_confirm(name)) };
        let requests = BTreeMap::from([(
            CONFIRM_REQUEST.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        )]);
        return Confirmation::Answer(Box::new(InputRequiredResult::new(Some(requests), Some(sealed)).into()));
    }
    if !context.peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
        return refuse(cannot_confirm(name));
    }
    let Some(params) = form(&message) else { return refuse(cannot_confirm(name)) };
    match context.peer.create_elicitation_with_timeout(params, Some(ELICITATION_TIMEOUT)).await {
        Ok(answer) if answer.action == ElicitationAction::Accept => Confirmation::Confirmed,
        Ok(_) => refuse(format!("{name} was not run: the user did not confirm it.")),
        Err(err) => {
            tracing::debug!(%err, "the client did not answer the confirmation request");
            refuse(format!("{name} was not run: the confirmation got no answer."))
        }
    }
}

fn cannot_confirm(name: &str) -> String {
    format!(
        "{name} needs the user's confirmation before it runs, and this client cannot ask for it \
         (it needs form elicitation, in a session or with protocol 2026-07-28)."
    )
}

/// The question: accept or decline, no field to fill.
fn form(message: &str) -> Option<ElicitRequestParams> {
    let schema = ElicitationSchema::builder().build().ok()?;
    Some(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.to_owned(),
        requested_schema: schema,
    })
}

fn who(caller: Option<&Caller>) -> (String, String) {
    caller.map_or_else(Default::default, |it| (it.claims.issuer.clone(), it.claims.subject.clone()))
}

/// The arguments' digest: the JSON text of the validated arguments, whose keys serde_json keeps
/// in the order they came; a client sends the same arguments again on its retry.
fn digest(arguments: &Map<String, Value>) -> String {
    let mut sorted: Vec<(&String, &Value)> = arguments.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let text = serde_json::to_string(&sorted).unwrap_or_default();
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref())
}

fn seal(keyring: &Keyring, place: &str, state: &State) -> Option<String> {
    let json = serde_json::to_string(state).ok()?;
    let sealed = keyring.seal(&Secret::new(json), place).ok()?;
    match serde_json::to_value(&sealed).ok()? {
        Value::String(text) => Some(text),
        _ => None,
    }
}

fn open(keyring: &Keyring, place: &str, text: &str) -> Option<State> {
    if text.len() > MAX_STATE_BYTES {
        return None;
    }
    let sealed = Secret::new(text);
    if !sealed.is_sealed() {
        return None;
    }
    let opened = keyring.open(&sealed, place).ok()?;
    let state: State = serde_json::from_str(opened.expose()?).ok()?;
    (state.exp > now()).then_some(state)
}

impl Taken {
    /// Used states kept in `store`.
    pub(super) fn in_store(store: Store) -> Taken {
        Taken { local: Mutex::default(), store: Some(store) }
    }

    /// Whether `nonce` was not taken yet (and now is).
    async fn take(&self, nonce: &str, expires: u64) -> Result<bool, crate::store::Error> {
        match &self.store {
            Some(store) => store.take_nonce(&format!("confirm/{nonce}"), expires, now()).await,
            None => Ok(self.take_here(nonce, expires)),
        }
    }

    fn take_here(&self, nonce: &str, expires: u64) -> bool {
        let mut taken = self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if taken.len() >= MAX_TAKEN {
            let now = now();
            taken.retain(|_, exp| *exp > now);
            if taken.len() >= MAX_TAKEN {
                // Still full of live states: refuse rather than forget one that could be replayed.
                return false;
            }
        }
        taken.insert(nonce.to_owned(), expires).is_none()
    }
}

fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs())
}
