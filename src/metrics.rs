//! Prometheus metrics, rendered in the text exposition format at `/metrics` ([`render`]).
//!
//! The names follow the OpenTelemetry MCP conventions where they have one
//! (`mcp_server_operation_duration_seconds` with `mcp_method_name`, `gen_ai_tool_name`,
//! `error_type`); the others are mcpgate's own (`mcpgate_…`).
//!
//! Our own small registry rather than `prometheus-client` or `metrics`: a tool's series are
//! resolved once, on its first call ([`ToolMetrics`], kept in `catalog::Tool`), so the hot path
//! is then two relaxed atomic increments with no map lookup, lock or allocation; the crates look
//! labels up per observation (`prometheus-client` also locks each histogram). The text format is
//! a few lines of code, and the fixed label sets are enums.
//!
//! The registry is process-wide, as the log subscriber is: one `/metrics` describes the process,
//! and modules far apart (auth, credentials, upstream) record without a handle threaded through.
//!
//! Invariants: no label carries a user identifier (subject, client id, token, address) or an
//! argument; label values come from the configuration (server slugs), the catalogs (tool names)
//! and fixed lists, so a call naming an unknown tool never makes a series. A series lives while
//! a catalog or a server's credentials hold it; a scrape drops the others.

mod exposition;
mod histogram;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use self::histogram::Histogram;

/// How an MCP request ended, as the conventions' `error_type` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A result with `isError: true` (invalid arguments, a backend's failure).
    ToolError,
    /// JSON-RPC -32602: an unknown tool, a bad cursor.
    InvalidParams,
    /// JSON-RPC -32600: the caller lacks the tool's scopes.
    InvalidRequest,
    /// JSON-RPC -32603.
    InternalError,
    /// The client went away before the call ended.
    Cancelled,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::InvalidParams,
        Outcome::InvalidRequest,
        Outcome::InternalError,
        Outcome::Cancelled,
    ];

    /// The conventions' `error.type`: `None` for a success.
    pub fn error_type(self) -> Option<&'static str> {
        match self {
            Outcome::Ok => None,
            Outcome::ToolError => Some("tool_error"),
            Outcome::InvalidParams => Some("-32602"),
            Outcome::InvalidRequest => Some("-32600"),
            Outcome::InternalError => Some("-32603"),
            Outcome::Cancelled => Some("cancelled"),
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingToken,
    InvalidToken,
    /// A malformed request, such as a token in the query string.
    InvalidRequest,
    InsufficientScope,
    /// The issuer's keys could not be fetched.
    KeysUnavailable,
    /// A session id presented by someone other than the subject that opened it.
    ForeignSession,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::MissingToken,
        Refusal::InvalidToken,
        Refusal::InvalidRequest,
        Refusal::InsufficientScope,
        Refusal::KeysUnavailable,
        Refusal::ForeignSession,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::InvalidToken => "invalid_token",
            Refusal::InvalidRequest => "invalid_request",
            Refusal::InsufficientScope => "insufficient_scope",
            Refusal::KeysUnavailable => "keys_unavailable",
            Refusal::ForeignSession => "foreign_session",
        }
    }
}

/// The status classes of backend answers, and `error` for no answer.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// The series of one tool of one hosted server.
pub struct ToolSeries {
    server: Arc<str>,
    tool: Box<str>,
    /// `tools/call` durations, by [`Outcome`] (in the order of `Outcome::ALL`).
    calls: [Histogram; Outcome::ALL.len()],
    /// Backend request durations, by status class (in the order of `STATUS_CLASSES`).
    backend: [Histogram; 6],
    rate_limited: AtomicU64,
    policy_denied: AtomicU64,
}

impl ToolSeries {
    /// A `tools/call` of this tool that took `elapsed` and ended as `outcome`.
    pub fn called(&self, outcome: Outcome, elapsed: Duration) {
        // `Outcome::ALL` lists every variant in declaration order, so the index is in bounds.
        self.calls[outcome as usize].observe(elapsed);
    }

    /// A backend request answered with `status` after `elapsed`.
    pub fn backend_answered(&self, status: u16, elapsed: Duration) {
        let idx = usize::from(status / 100).saturating_sub(1).min(4);
        self.backend[idx].observe(elapsed);
    }

    /// A backend request that got no answer (connection, timeout).
    pub fn backend_failed(&self, elapsed: Duration) {
        self.backend[5].observe(elapsed);
    }

    /// A call refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A call refused by the server's policies.
    pub fn policy_denied(&self) {
        self.policy_denied.fetch_add(1, Ordering::Relaxed);
    }
}

/// The series of one tool of a catalog, made on its first observation: a tool's series take
/// about 1.9 KB, and a catalog of 10,000 tools of which a deployment calls a few would hold 19 MB
/// of zeros (which a scrape does not show: series appear once observed).
pub struct ToolMetrics {
    server: Arc<str>,
    tool: Box<str>,
    series: OnceLock<Arc<ToolSeries>>,
}

impl ToolMetrics {
    /// The series of `tool` of `server`: those in the registry already (a tool published again
    /// keeps its counts), else none until the first observation.
    pub fn new(server: &Arc<str>, tool: &str) -> ToolMetrics {
        let series = OnceLock::new();
        if let Some(existing) = registry().tools.get(&**server).and_then(|it| it.get(tool)) {
            let _ = series.set(existing.clone());
        }
        ToolMetrics { server: server.clone(), tool: tool.into(), series }
    }

    /// Whether the series exist (the tool was observed, or held them from a previous publication).
    pub fn is_made(&self) -> bool {
        self.series.get().is_some()
    }

    fn series(&self) -> &ToolSeries {
        // After the first observation, one atomic load: no lock, no allocation.
        self.series.get_or_init(|| self::tool(&self.server, &self.tool))
    }

    pub fn called(&self, outcome: Outcome, elapsed: Duration) {
        self.series().called(outcome, elapsed);
    }

    pub fn backend_answered(&self, status: u16, elapsed: Duration) {
        self.series().backend_answered(status, elapsed);
    }

    pub fn backend_failed(&self, elapsed: Duration) {
        self.series().backend_failed(elapsed);
    }

    pub fn rate_limited(&self) {
        self.series().rate_limited();
    }

    pub fn policy_denied(&self) {
        self.series().policy_denied();
    }
}

/// The series of one hosted server that no tool names.
pub struct ServerSeries {
    server: Arc<str>,
    /// `tools/call` naming a tool the catalog does not have: counted here, never by its name.
    unknown_tool: Histogram,
    /// `tools/list` durations: answered, and refused for a bad cursor (-32602).
    listed: Histogram,
    list_refused: Histogram,
    refusals: [AtomicU64; 6],
    tokens_issued: AtomicU64,
    tokens_failed: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl ServerSeries {
    pub fn unknown_tool(&self, elapsed: Duration) {
        self.unknown_tool.observe(elapsed);
    }

    /// A `tools/list` that took `elapsed`, answered (`ok`) or refused for its cursor.
    pub fn listed(&self, ok: bool, elapsed: Duration) {
        if ok { &self.listed } else { &self.list_refused }.observe(elapsed);
    }

    pub fn refused(&self, refusal: Refusal) {
        let idx = Refusal::ALL.iter().position(|it| *it == refusal).unwrap_or(0);
        self.refusals[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// A token endpoint issued a backend token (client credentials, exchange, on-behalf-of).
    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn token_failed(&self) {
        self.tokens_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A call found its backend token in the cache (or waited for one being fetched).
    pub fn token_cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn token_cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a scrape asks the hosted servers for, besides the registry.
pub struct ServerState {
    pub server: String,
    pub sessions: usize,
    /// Publications since start: 0 for the catalog provisioned at start.
    pub generation: u64,
    pub tools: usize,
}

struct Registry {
    servers: BTreeMap<Arc<str>, Arc<ServerSeries>>,
    /// By server, then tool.
    tools: BTreeMap<Arc<str>, BTreeMap<Box<str>, Arc<ToolSeries>>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> =
    LazyLock::new(|| Mutex::new(Registry { servers: BTreeMap::new(), tools: BTreeMap::new() }));

static JWKS_REFRESHED: AtomicU64 = AtomicU64::new(0);
static JWKS_FAILED: AtomicU64 = AtomicU64::new(0);

fn registry() -> MutexGuard<'static, Registry> {
    // Nothing panics while holding it; the maps stay whole if something did.
    REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The series of `server`, made on first use. For catalogs and credentials, when they are built.
pub fn server(server: &str) -> Arc<ServerSeries> {
    let mut registry = registry();
    if let Some(it) = registry.servers.get(server) {
        return it.clone();
    }
    let series = Arc::new(ServerSeries {
        server: server.into(),
        unknown_tool: Histogram::default(),
        listed: Histogram::default(),
        list_refused: Histogram::default(),
        refusals: Default::default(),
        tokens_issued: AtomicU64::new(0),
        tokens_failed: AtomicU64::new(0),
        cache_hits: AtomicU64::new(0),
        cache_misses: AtomicU64::new(0),
    });
    registry.servers.insert(server.into(), series.clone());
    series
}

/// The series of `tool` of `server`, made on first use. For catalogs only, through
/// [`ToolMetrics`]: a tool published again keeps its counts.
fn tool(server: &str, tool: &str) -> Arc<ToolSeries> {
    let mut registry = registry();
    let tools = registry.tools.entry(server.into()).or_default();
    if let Some(it) = tools.get(tool) {
        return it.clone();
    }
    let series = Arc::new(ToolSeries {
        server: server.into(),
        tool: tool.into(),
        calls: Default::default(),
        backend: Default::default(),
        rate_limited: AtomicU64::new(0),
        policy_denied: AtomicU64::new(0),
    });
    tools.insert(tool.into(), series.clone());
    series
}

/// A fetch of an issuer's keys succeeded.
pub fn jwks_refreshed() {
    JWKS_REFRESHED.fetch_add(1, Ordering::Relaxed);
}

pub fn jwks_refresh_failed() {
    JWKS_FAILED.fetch_add(1, Ordering::Relaxed);
}

/// Every metric in the Prometheus text format (version 0.0.4), with the gauges of `servers`.
/// Series no catalog or credentials hold any more (a removed server, a tool left out by a new
/// publication) are dropped first.
pub fn render(servers: &[ServerState]) -> String {
    let (server_series, tool_series) = {
        let mut registry = registry();
        registry.servers.retain(|_, it| Arc::strong_count(it) > 1);
        for tools in registry.tools.values_mut() {
            tools.retain(|_, it| Arc::strong_count(it) > 1);
        }
        registry.tools.retain(|_, it| !it.is_empty());
        let servers: Vec<Arc<ServerSeries>> = registry.servers.values().cloned().collect();
        let tools: Vec<Arc<ToolSeries>> =
            registry.tools.values().flat_map(|it| it.values().cloned()).collect();
        (servers, tool_series_sorted(tools))
    };
    exposition::write(&exposition::Scrape {
        servers: &server_series,
        tools: &tool_series,
        states: servers,
        jwks_refreshed: JWKS_REFRESHED.load(Ordering::Relaxed),
        jwks_failed: JWKS_FAILED.load(Ordering::Relaxed),
    })
}

fn tool_series_sorted(mut tools: Vec<Arc<ToolSeries>>) -> Vec<Arc<ToolSeries>> {
    tools.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_live_while_held_and_calls_never_make_them() {
        let server = server("metrics-unit");
        let tool = ToolMetrics::new(&Arc::from("metrics-unit"), "listThings");
        tool.called(Outcome::Ok, Duration::from_millis(3));
        tool.called(Outcome::ToolError, Duration::from_millis(30));
        tool.backend_answered(404, Duration::from_millis(2));
        tool.backend_failed(Duration::from_secs(1));
        tool.rate_limited();
        server.refused(Refusal::InvalidToken);
        server.token_cache_hit();
        let text =
            render(&[ServerState { server: "metrics-unit".into(), sessions: 2, generation: 1, tools: 1 }]);
        let has = |line: &str| text.lines().any(|it| it == line);
        let call = r#"server="metrics-unit",mcp_method_name="tools/call",gen_ai_tool_name="listThings""#;
        assert!(has(&format!("mcp_server_operation_duration_seconds_count{{{call}}} 1")), "{text}");
        assert!(has(&format!(
            "mcp_server_operation_duration_seconds_bucket{{{call},error_type=\"tool_error\",le=\"0.05\"}} 1"
        )));
        assert!(has(&format!(
            "mcp_server_operation_duration_seconds_bucket{{{call},error_type=\"tool_error\",le=\"0.02\"}} 0"
        )));
        let backend = r#"server="metrics-unit",tool="listThings""#;
        assert!(has(&format!(
            "mcpgate_backend_request_duration_seconds_count{{{backend},status_class=\"4xx\"}} 1"
        )));
        assert!(has(&format!(
            "mcpgate_backend_request_duration_seconds_count{{{backend},status_class=\"error\"}} 1"
        )));
        assert!(has(&format!("mcpgate_rate_limited_calls_total{{{backend}}} 1")));
        assert!(!text.contains("noSuchTool"));
        assert!(has(
            r#"mcpgate_authorization_refusals_total{server="metrics-unit",reason="invalid_token"} 1"#
        ));
        assert!(has(r#"mcpgate_token_cache_lookups_total{server="metrics-unit",result="hit"} 1"#));
        assert!(has(r#"mcpgate_sessions_open{server="metrics-unit"} 2"#));
        // Nothing holds them any more (the server was removed): the next scrape drops them.
        drop((server, tool));
        let _ = render(&[]);
        assert!(!render(&[]).contains("metrics-unit"));
    }

    #[test]
    fn a_tool_has_series_once_called_and_keeps_them_when_published_again() {
        let server: Arc<str> = "metrics-lazy".into();
        let called = ToolMetrics::new(&server, "called");
        let idle = ToolMetrics::new(&server, "idle");
        assert!(!called.is_made() && !idle.is_made());
        called.called(Outcome::Ok, Duration::from_millis(1));
        assert!(called.is_made() && !idle.is_made());
        // The next publication's catalog takes the series of the tools called, with their counts.
        let (again, idle_again) = (ToolMetrics::new(&server, "called"), ToolMetrics::new(&server, "idle"));
        assert!(again.is_made() && !idle_again.is_made());
        drop((called, idle));
        let _ = render(&[]);
        again.called(Outcome::Ok, Duration::from_millis(1));
        let text = render(&[]);
        let call = r#"server="metrics-lazy",mcp_method_name="tools/call",gen_ai_tool_name="called""#;
        assert!(
            text.lines().any(|it| it == format!("mcp_server_operation_duration_seconds_count{{{call}}} 2")),
            "{text}"
        );
        assert!(!text.contains("\"idle\""), "{text}");
    }
}
