//! The Prometheus text exposition format (version 0.0.4): each family's `HELP` and `TYPE`, then
//! its samples; label values escaped. Histograms and per-tool counters appear once observed,
//! per-server counters always (a rate over a series that appears late misses its first count).

use std::fmt::Write;
use std::sync::Arc;

use super::histogram::{BOUNDS, Histogram};
use super::{Outcome, Refusal, STATUS_CLASSES, ServerSeries, ServerState, ToolSeries};

pub struct Scrape<'a> {
    pub servers: &'a [Arc<ServerSeries>],
    pub tools: &'a [Arc<ToolSeries>],
    pub states: &'a [ServerState],
    pub jwks_refreshed: u64,
    pub jwks_failed: u64,
}

pub fn write(scrape: &Scrape<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let out = &mut out;

    let name = "mcp_server_operation_duration_seconds";
    family(
        out,
        name,
        "histogram",
        "MCP request duration as observed on the receiver from the time it was received until the result is sent.",
    );
    for tool in scrape.tools {
        for (idx, outcome) in Outcome::ALL.iter().enumerate() {
            let mut labels = vec![
                ("server", &*tool.server),
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", &*tool.tool),
            ];
            labels.extend(outcome.error_type().map(|it| ("error_type", it)));
            histogram(out, name, &labels, &tool.calls[idx]);
        }
    }
    for server in scrape.servers {
        let labels =
            [("server", &*server.server), ("mcp_method_name", "tools/call"), ("error_type", "-32602")];
        histogram(out, name, &labels, &server.unknown_tool);
        histogram(
            out,
            name,
            &[("server", &*server.server), ("mcp_method_name", "tools/list")],
            &server.listed,
        );
        let labels =
            [("server", &*server.server), ("mcp_method_name", "tools/list"), ("error_type", "-32602")];
        histogram(out, name, &labels, &server.list_refused);
    }

    let name = "mcpgate_backend_request_duration_seconds";
    family(
        out,
        name,
        "histogram",
        "Backend request duration until the response head, by status class (error: no answer).",
    );
    for tool in scrape.tools {
        for (idx, class) in STATUS_CLASSES.iter().enumerate() {
            let labels = [("server", &*tool.server), ("tool", &*tool.tool), ("status_class", *class)];
            histogram(out, name, &labels, &tool.backend[idx]);
        }
    }

    let name = "mcpgate_rate_limited_calls_total";
    family(out, name, "counter", "Tool calls refused by a rate limit.");
    for tool in scrape.tools {
        let value = tool.rate_limited.load(std::sync::atomic::Ordering::Relaxed);
        if value > 0 {
            sample(out, name, &[("server", &*tool.server), ("tool", &*tool.tool)], value);
        }
    }

    let name = "mcpgate_policy_denied_calls_total";
    family(out, name, "counter", "Tool calls refused by the server's Cedar policies.");
    for tool in scrape.tools {
        let value = tool.policy_denied.load(std::sync::atomic::Ordering::Relaxed);
        if value > 0 {
            sample(out, name, &[("server", &*tool.server), ("tool", &*tool.tool)], value);
        }
    }

    let name = "mcpgate_authorization_refusals_total";
    family(out, name, "counter", "MCP requests refused by the resource server, by reason.");
    for server in scrape.servers {
        for (idx, refusal) in Refusal::ALL.iter().enumerate() {
            let value = server.refusals[idx].load(std::sync::atomic::Ordering::Relaxed);
            sample(out, name, &[("server", &*server.server), ("reason", refusal.label())], value);
        }
    }

    let name = "mcpgate_token_requests_total";
    family(out, name, "counter", "Backend tokens asked of a token endpoint, by outcome.");
    for server in scrape.servers {
        for (outcome, counter) in [("issued", &server.tokens_issued), ("failed", &server.tokens_failed)] {
            let value = counter.load(std::sync::atomic::Ordering::Relaxed);
            sample(out, name, &[("server", &*server.server), ("outcome", outcome)], value);
        }
    }

    let name = "mcpgate_token_cache_lookups_total";
    family(out, name, "counter", "Backend token lookups in the cache, by result.");
    for server in scrape.servers {
        for (result, counter) in [("hit", &server.cache_hits), ("miss", &server.cache_misses)] {
            let value = counter.load(std::sync::atomic::Ordering::Relaxed);
            sample(out, name, &[("server", &*server.server), ("result", result)], value);
        }
    }

    let name = "mcpgate_jwks_refreshes_total";
    family(out, name, "counter", "Fetches of issuers' signing keys, by outcome.");
    sample(out, name, &[("outcome", "ok")], scrape.jwks_refreshed);
    sample(out, name, &[("outcome", "failed")], scrape.jwks_failed);

    let gauges: [(&str, &str, Gauge); 3] = [
        ("mcpgate_sessions_open", "MCP sessions open.", |it| it.sessions as u64),
        (
            "mcpgate_catalog_generation",
            "Publications of the server's catalog since start (0: the one provisioned at start).",
            |it| it.generation,
        ),
        ("mcpgate_catalog_tools", "Tools in the server's current catalog.", |it| it.tools as u64),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for state in scrape.states {
            sample(out, name, &[("server", &state.server)], value(state));
        }
    }

    let name = "mcpgate_build_info";
    family(out, name, "gauge", "Always 1; the version in a label.");
    sample(out, name, &[("version", env!("CARGO_PKG_VERSION"))], 1);
    std::mem::take(out)
}

/// How a gauge reads its value from a server's state.
type Gauge = fn(&ServerState) -> u64;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    write_labels(out, labels, None);
    let _ = writeln!(out, " {value}");
}

/// A histogram's buckets, sum and count; nothing for one never observed.
fn histogram(out: &mut String, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
    if histogram.count() == 0 {
        return;
    }
    let read = histogram.read();
    for (idx, count) in read.cumulative.iter().enumerate() {
        let le = BOUNDS.get(idx).map_or_else(|| "+Inf".to_owned(), |it| it.to_string());
        let _ = write!(out, "{name}_bucket");
        write_labels(out, labels, Some(&le));
        let _ = writeln!(out, " {count}");
    }
    let _ = write!(out, "{name}_sum");
    write_labels(out, labels, None);
    let _ = writeln!(out, " {}", read.sum_seconds);
    let _ = write!(out, "{name}_count");
    write_labels(out, labels, None);
    let _ = writeln!(out, " {}", read.cumulative[BOUNDS.len()]);
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    let le = le.map(|it| ("le", it));
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le) {
        out.push(if std::mem::take(&mut first) { '{' } else { ',' });
        out.push_str(name);
        out.push_str("=\"");
        for ch in value.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                _ => out.push(ch),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\nw")], 3);
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\nw\"} 3\n");
        let mut out = String::new();
        sample(&mut out, "m", &[], 0);
        assert_eq!(out, "m 0\n");
    }
}
