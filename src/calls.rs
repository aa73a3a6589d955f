//! The call audit: one [`Record`] per tool call (when, which tool, who, through which client,
//! what mcpgate decided, for which backend audience, what the backend answered, how long it
//! took), written to the log under the target `mcpgate::audit::call` and kept in a bounded ring
//! per hosted server ([`CallLog`]) that the admin API and UI read.
//!
//! Invariant: a record never holds arguments, tokens or secrets: only names, identifiers, the
//! decision and numbers. The ring lives in the process: each replica keeps its own last
//! [`RECENT`] calls of each server, lost at restart; the log is the lasting record.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Calls each hosted server keeps for the admin API.
pub const RECENT: usize = 5_000;
/// The longest tool name or claim a record quotes whole (an unknown tool's name and the
/// token's claims are the caller's text).
const MAX_FIELD_CHARS: usize = 128;

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Sent to the backend, which answered (whatever its status).
    Allowed,
    /// Refused before anything was sent: the arguments do not fit the tool's schema, or cannot
    /// make its request.
    InvalidArguments,
    /// No such tool.
    UnknownTool,
    /// The caller's token lacks the tool's scopes.
    InsufficientScope,
    RateLimited,
    /// The server's concurrency limit was reached.
    Busy,
    /// No backend credential could be had (the token endpoint refused or failed).
    CredentialsFailed,
    /// The user has not connected their account at the backend's authorization server (mode
    /// `authorization_code`): asked to, the backend not called.
    ConsentRequired,
    /// The backend could not be reached, did not answer in time, or redirected elsewhere.
    BackendError,
    /// The client went away before the call ended.
    Cancelled,
    /// Refused by the server's Cedar policies before anything was sent.
    PolicyDenied,
    /// The call needed the user's confirmation, which was not given (or could not be asked).
    NotConfirmed,
}

impl Decision {
    /// Every decision, in the order filters offer them.
    pub const ALL: [Decision; 12] = [
        Decision::Allowed,
        Decision::InvalidArguments,
        Decision::UnknownTool,
        Decision::InsufficientScope,
        Decision::RateLimited,
        Decision::Busy,
        Decision::CredentialsFailed,
        Decision::ConsentRequired,
        Decision::BackendError,
        Decision::Cancelled,
        Decision::PolicyDenied,
        Decision::NotConfirmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::InvalidArguments => "invalid_arguments",
            Decision::UnknownTool => "unknown_tool",
            Decision::InsufficientScope => "insufficient_scope",
            Decision::RateLimited => "rate_limited",
            Decision::Busy => "busy",
            Decision::CredentialsFailed => "credentials_failed",
            Decision::ConsentRequired => "consent_required",
            Decision::BackendError => "backend_error",
            Decision::Cancelled => "cancelled",
            Decision::PolicyDenied => "policy_denied",
            Decision::NotConfirmed => "not_confirmed",
        }
    }
}

/// Who made a call: in auth mode `jwt` the token's issuer, subject and client (`client_id` or
/// `azp`); in mode `none` the client's address as subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who<'a> {
    pub issuer: Option<&'a str>,
    pub subject: Option<Cow<'a, str>>,
    pub client_id: Option<&'a str>,
}

/// One tool call, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Increasing within a server's log: the cursor of [`Query::before`].
    pub id: u64,
    /// Milliseconds since the Unix epoch, when the call arrived.
    pub at_ms: u64,
    pub tool: String,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub decision: Decision,
    /// The audience (or resource) of the token obtained for the backend, when the server's
    /// credentials obtain one.
    pub audience: Option<String>,
    /// The backend's HTTP status, when it answered.
    pub backend_status: Option<u16>,
    pub duration_ms: u64,
}

/// The recent calls of one hosted server. Shared by its gateway and the admin API.
pub struct CallLog {
    server: String,
    // A std lock: held to push one record, or to copy a page of them, never across an await.
    ring: Mutex<Ring>,
    capacity: usize,
}

struct Ring {
    records: VecDeque<Record>,
    next_id: u64,
}

/// Which records to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub tool: Option<String>,
    pub subject: Option<String>,
    pub decision: Option<Decision>,
    /// Only records older than this id: the `next` of the previous page.
    pub before: Option<u64>,
    pub limit: usize,
}

/// A page of records, and the cursor of the next when there are more.
#[derive(Debug, Serialize)]
pub struct Page {
    pub calls: Vec<Record>,
    pub next: Option<u64>,
}

/// `text` without control characters, cut after `max` characters (marked with `…`).
fn loggable(text: &str, max: usize) -> String {
    // Most are short printable ASCII (tool names, addresses, subjects): copied as they are.
    if text.len() <= max && text.bytes().all(|it| (b' '..=b'~').contains(&it)) {
        return text.to_owned();
    }
    let mut out: String =
        text.chars().map(|it| if it.is_control() { '\u{fffd}' } else { it }).take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

impl CallLog {
    pub fn new(server: &str) -> CallLog {
        CallLog::with_capacity(server, RECENT)
    }

    pub fn with_capacity(server: &str, capacity: usize) -> CallLog {
        let ring = Ring { records: VecDeque::new(), next_id: 1 };
        CallLog { server: server.to_owned(), ring: Mutex::new(ring), capacity: capacity.max(1) }
    }

    /// Starts the record of a call of `tool` by `who`; it is written when the returned
    /// [`Pending`] is dropped, with what it was told by then.
    pub fn begin(&self, tool: &str, who: Who<'_>, audience: Option<&str>) -> Pending<'_> {
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_millis() as u64);
        // The tool's name and the token's claims are the caller's words: clipped so that a
        // record's size is bounded, and without control characters so that a text log line
        // cannot be forged with a newline.
        let clip = |text: &str| loggable(text, MAX_FIELD_CHARS);
        let tool = clip(tool);
        let (issuer, subject, client_id) =
            (who.issuer.map(clip), who.subject.as_deref().map(clip), who.client_id.map(clip));
        Pending {
            log: self,
            started: Instant::now(),
            record: Record {
                id: 0,
                at_ms,
                tool,
                issuer,
                subject,
                client_id,
                decision: Decision::Cancelled,
                audience: audience.map(str::to_owned),
                backend_status: None,
                duration_ms: 0,
            },
        }
    }

    /// The records `query` asks for, newest first.
    pub fn query(&self, query: &Query) -> Page {
        let ring = self.ring();
        let limit = query.limit.max(1);
        let mut calls: Vec<Record> = ring
            .records
            .iter()
            .rev()
            .filter(|it| query.before.is_none_or(|before| it.id < before))
            .filter(|it| query.tool.as_ref().is_none_or(|tool| it.tool == *tool))
            .filter(|it| query.subject.as_ref().is_none_or(|subject| it.subject.as_ref() == Some(subject)))
            .filter(|it| query.decision.is_none_or(|decision| it.decision == decision))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = calls.len() > limit;
        calls.truncate(limit);
        let next = if more { calls.last().map(|it| it.id) } else { None };
        Page { calls, next }
    }

    fn write(&self, mut record: Record) {
        // Logged before the ring is locked: writing the log may wait, calls must not wait on it.
        tracing::info!(
            target: "mcpgate::audit::call",
            server = %self.server,
            tool = record.tool.as_str(),
            issuer = record.issuer.as_deref(),
            subject = record.subject.as_deref(),
            client_id = record.client_id.as_deref(),
            decision = record.decision.as_str(),
            audience = record.audience.as_deref(),
            backend_status = record.backend_status,
            duration_ms = record.duration_ms,
            "tool call"
        );
        let mut ring = self.ring();
        // Ids are given in the ring's order, which paging relies on.
        record.id = ring.next_id;
        ring.next_id += 1;
        if ring.records.len() >= self.capacity {
            ring.records.pop_front();
        }
        ring.records.push_back(record);
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while the ring was held leaves it whole: at worst one record is missing.
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The record of a call under way; see [`CallLog::begin`]. Written when dropped, so that every
/// way out of a call, a client going away included, leaves one record.
pub struct Pending<'a> {
    log: &'a CallLog,
    started: Instant,
    record: Record,
}

impl Pending<'_> {
    pub fn decide(&mut self, decision: Decision) {
        self.record.decision = decision;
    }

    pub fn backend_status(&mut self, status: u16) {
        self.record.backend_status = Some(status);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut record = std::mem::replace(&mut self.record, empty());
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        self.log.write(record);
    }
}

fn empty() -> Record {
    Record {
        id: 0,
        at_ms: 0,
        tool: String::new(),
        issuer: None,
        subject: None,
        client_id: None,
        decision: Decision::Cancelled,
        audience: None,
        backend_status: None,
        duration_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(subject: &str) -> Who<'_> {
        Who { subject: Some(Cow::Borrowed(subject)), ..Who::default() }
    }

    fn call(log: &CallLog, tool: &str, subject: &str, decision: Decision) {
        let mut pending = log.begin(tool, who(subject), None);
        pending.decide(decision);
    }

    #[test]
    fn records_are_kept_newest_first_within_the_capacity() {
        let log = CallLog::with_capacity("pets", 3);
        for n in 0..5 {
            call(&log, &format!("t{n}"), "alice", Decision::Allowed);
        }
        let page = log.query(&Query { limit: 10, ..Query::default() });
        let tools: Vec<&str> = page.calls.iter().map(|it| it.tool.as_str()).collect();
        assert_eq!(tools, ["t4", "t3", "t2"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn queries_filter_and_page() {
        let log = CallLog::new("pets");
        call(&log, "getPet", "alice", Decision::Allowed);
        call(&log, "getPet", "bob", Decision::RateLimited);
        call(&log, "addPet", "alice", Decision::InvalidArguments);
        call(&log, "getPet", "alice", Decision::Allowed);
        let query = |tool: Option<&str>, subject: Option<&str>, decision, before, limit| {
            let query = Query {
                tool: tool.map(str::to_owned),
                subject: subject.map(str::to_owned),
                decision,
                before,
                limit,
            };
            log.query(&query)
        };
        let ids = |page: &Page| page.calls.iter().map(|it| it.id).collect::<Vec<_>>();
        assert_eq!(ids(&query(Some("getPet"), None, None, None, 10)), [4, 2, 1]);
        assert_eq!(ids(&query(None, Some("alice"), None, None, 10)), [4, 3, 1]);
        assert_eq!(ids(&query(None, None, Some(Decision::RateLimited), None, 10)), [2]);
        let first = query(None, None, None, None, 2);
        assert_eq!((ids(&first), first.next), (vec![4, 3], Some(3)));
        let second = query(None, None, None, first.next, 2);
        assert_eq!((ids(&second), second.next), (vec![2, 1], None));
    }

    #[test]
    fn a_call_that_was_never_decided_is_cancelled_and_long_names_are_clipped() {
        let log = CallLog::new("pets");
        drop(log.begin(&"x".repeat(1000), who("alice"), Some("api://pets")));
        let page = log.query(&Query { limit: 1, ..Query::default() });
        let record = &page.calls[0];
        assert_eq!(record.decision, Decision::Cancelled);
        assert_eq!(record.tool.chars().count(), MAX_FIELD_CHARS + 1);
        assert_eq!(record.audience.as_deref(), Some("api://pets"));
    }

    #[test]
    fn loggable_text_keeps_printable_text_and_replaces_every_control_character() {
        assert_eq!(loggable("getPetById", 10), "getPetById");
        assert_eq!(loggable("getPetById", 9), "getPetByI…");
        assert_eq!(loggable("a\u{7f}b\u{85}c\td", 10), "a\u{fffd}b\u{fffd}c\u{fffd}d");
        assert_eq!(loggable("zoë", 3), "zoë");
    }

    #[test]
    fn caller_text_cannot_break_a_log_line_or_grow_a_record() {
        let log = CallLog::new("pets");
        let mut caller = who("alice\nmcpgate::audit::call: forged");
        let long = "c".repeat(10_000);
        caller.client_id = Some(&long);
        drop(log.begin("getPet\r\ndecision=allowed", caller, None));
        let page = log.query(&Query { limit: 1, ..Query::default() });
        let record = &page.calls[0];
        assert!(!record.tool.contains(['\r', '\n']), "{}", record.tool);
        assert!(!record.subject.as_deref().unwrap_or_default().contains('\n'));
        assert_eq!(record.client_id.as_deref().map(|it| it.chars().count()), Some(MAX_FIELD_CHARS + 1));
    }
}
