//! `/admin`: the web UI, rendered on the server from the handlebars templates in `templates/`
//! (compiled into the binary and registered once, in strict mode, with HTML escaping) plus one
//! small script and style sheet from `assets/`. The pages only show; every change goes from the
//! script to the JSON API (`/admin/api`), which checks the CSRF token the page carries. A
//! server's page is a shell: its script asks the API for the operations a page at a time, so
//! its size does not grow with the document's.
//!
//! Invariant: no template writes data unescaped (`{{{ }}}` is never used), and the pages need no
//! inline script or style, so the strict Content-Security-Policy holds.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use handlebars::Handlebars;
use serde_json::{Value, json};

use super::workspace::{Curation, Side};
use super::{Admin, AdminState};
use crate::calls::{self, Decision};
use crate::config::{ANNOTATIONS, LEAN_BUDGET};

/// The templates, by name: the pages and the partials they share.
const TEMPLATES: [(&str, &str); 7] = [
    ("header", include_str!("../../templates/header.hbs")),
    ("footer", include_str!("../../templates/footer.hbs")),
    ("servers", include_str!("../../templates/servers.hbs")),
    ("server", include_str!("../../templates/server.hbs")),
    ("audit", include_str!("../../templates/audit.hbs")),
    ("calls", include_str!("../../templates/calls.hbs")),
    ("changes", include_str!("../../templates/changes.hbs")),
];

/// The files under `/admin/assets/`: name, content type, content.
const ASSETS: [(&str, &str, &str); 2] = [
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../assets/admin.js")),
    ("admin.css", "text/css; charset=utf-8", include_str!("../../assets/admin.css")),
];

/// Tokens of exposed tool definitions above which the page suggests catalog mode: a tenth of a
/// large model context, beyond which tools crowd out the conversation.
const CATALOG_MODE_SUGGESTED_ABOVE: usize = 20_000;
/// How many audit entries the audit page shows.
const AUDIT_PAGE: usize = 500;
/// How many calls a page of recent calls shows.
const CALLS_PAGE: usize = 100;
type Templates = Arc<Handlebars<'static>>;

/// The UI's routes, with the templates compiled.
pub fn router() -> Result<Router<AdminState>, String> {
    let templates = templates()?;
    Ok(Router::new()
        .route("/admin", get(servers))
        .route("/admin/servers/{slug}", get(server))
        .route("/admin/servers/{slug}/calls", get(recent_calls))
        .route("/admin/audit", get(audit))
        .route("/admin/assets/{name}", get(asset))
        .route("/admin/servers/{slug}/changes", get(changes))
        .layer(Extension(Arc::new(templates))))
}

fn templates() -> Result<Handlebars<'static>, String> {
    let mut handlebars = Handlebars::new();
    // A misspelt field is an error, not an empty string.
    handlebars.set_strict_mode(true);
    for (name, text) in TEMPLATES {
        handlebars.register_template_string(name, text).map_err(|err| format!("template {name}: {err}"))?;
    }
    Ok(handlebars)
}

async fn servers(
    State(state): State<AdminState>,
    Extension(templates): Extension<Templates>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let admin = match signed_in(&state, &headers, &uri).await {
        Ok(admin) => admin,
        Err(answer) => return *answer,
    };
    let servers = match state.workspace.list().await {
        Ok(it) => it,
        Err(err) => return failure(&templates, &admin, &err.to_string()),
    };
    let context = json!({
        "page": page(&admin, "Servers", "servers"),
        "servers": servers,
    });
    render(&templates, "servers", &context)
}

async fn server(
    State(state): State<AdminState>,
    Extension(templates): Extension<Templates>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let admin = match signed_in(&state, &headers, &uri).await {
        Ok(admin) => admin,
        Err(answer) => return *answer,
    };
    match state.workspace.curation(&slug).await {
        Ok(curation) => {
            let dev = state.workspace.hosting().config().dev.is_some();
            let mut context = server_context(&admin, &curation, dev);
            // Mode `authorization_code`: how many users have connected their account, as served.
            let connected = state.workspace.connections(&slug).await.ok().map(|it| it.len());
            context["settings"]["connected"] = json!(connected);
            context["settings"]["redirect_uri"] =
                json!(format!("{}/connect/{slug}/callback", state.workspace.hosting().config().public_url()));
            render(&templates, "server", &context)
        }
        Err(err) => {
            let status = super::api::ApiError::from(err).into_response().status();
            let mut response = failure(&templates, &admin, &format!("no server `{slug}` to show"));
            *response.status_mut() = status;
            response
        }
    }
}

async fn audit(
    State(state): State<AdminState>,
    Extension(templates): Extension<Templates>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let admin = match signed_in(&state, &headers, &uri).await {
        Ok(admin) => admin,
        Err(answer) => return *answer,
    };
    let entries = match state.workspace.audit_log(AUDIT_PAGE).await {
        Ok(it) => it,
        Err(err) => return failure(&templates, &admin, &err.to_string()),
    };
    let entries: Vec<Value> = entries
        .iter()
        .map(|it| {
            json!({
                "at": timestamp(it.at),
                "actor": it.actor,
                "action": it.action,
                "server": it.server,
                "detail": it.detail,
            })
        })
        .collect();
    let context = json!({"page": page(&admin, "Audit log", "audit"), "entries": entries});
    render(&templates, "audit", &context)
}

/// The filters of the recent calls page, as its form sends them (empty means any).
#[derive(Debug, Default, serde::Deserialize)]
struct CallFilters {
    #[serde(default)]
    tool: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    decision: String,
    before: Option<u64>,
}

async fn recent_calls(
    State(state): State<AdminState>,
    Extension(templates): Extension<Templates>,
    Path(slug): Path<String>,
    filters: Result<Query<CallFilters>, axum::extract::rejection::QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let admin = match signed_in(&state, &headers, &uri).await {
        Ok(admin) => admin,
        Err(answer) => return *answer,
    };
    // A query string the form did not make filters nothing.
    let filters = filters.map(|it| it.0).unwrap_or_default();
    let decision = Decision::ALL.into_iter().find(|it| it.as_str() == filters.decision);
    let query = calls::Query {
        tool: Some(filters.tool.clone()).filter(|it| !it.is_empty()),
        subject: Some(filters.subject.clone()).filter(|it| !it.is_empty()),
        decision,
        before: filters.before,
        limit: CALLS_PAGE,
    };
    let found = match state.workspace.calls(&slug, &query) {
        Ok(found) => found,
        Err(err) => {
            let status = super::api::ApiError::from(err).into_response().status();
            let mut response = failure(&templates, &admin, &format!("no served server `{slug}`"));
            *response.status_mut() = status;
            return response;
        }
    };
    let rows: Vec<Value> = found
        .calls
        .iter()
        .map(|it| {
            json!({
                "at": timestamp(it.at_ms / 1000),
                "tool": it.tool,
                "issuer": it.issuer,
                "subject": it.subject,
                "client_id": it.client_id,
                "decision": it.decision.as_str(),
                "audience": it.audience,
                "backend_status": it.backend_status,
                "duration_ms": it.duration_ms,
            })
        })
        .collect();
    let older = found.next.map(|before| {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        link.append_pair("tool", &filters.tool)
            .append_pair("subject", &filters.subject)
            .append_pair("decision", &filters.decision)
            .append_pair("before", &before.to_string());
        format!("/admin/servers/{slug}/calls?{}", link.finish())
    });
    let decisions: Vec<Value> = Decision::ALL
        .iter()
        .map(|it| json!({"value": it.as_str(), "selected": Some(*it) == decision}))
        .collect();
    let context = json!({
        "page": page(&admin, &format!("{slug} — recent calls"), "servers"),
        "slug": slug,
        "recent": calls::RECENT,
        "filter": {"tool": filters.tool, "subject": filters.subject},
        "filtered": query.tool.is_some() || query.subject.is_some() || decision.is_some(),
        "decisions": decisions,
        "calls": rows,
        "older": older,
    });
    render(&templates, "calls", &context)
}

/// The sides of the changes page (`from`, `to`: a generation's number, `published` or `draft`).
#[derive(Debug, Default, serde::Deserialize)]
struct Sides {
    from: Option<String>,
    to: Option<String>,
}

/// What the draft changes (or what changed between two generations), and the history.
async fn changes(
    State(state): State<AdminState>,
    Extension(templates): Extension<Templates>,
    Path(slug): Path<String>,
    sides: Result<Query<Sides>, axum::extract::rejection::QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let admin = match signed_in(&state, &headers, &uri).await {
        Ok(admin) => admin,
        Err(answer) => return *answer,
    };
    let sides = sides.map(|it| it.0).unwrap_or_default();
    let side = |it: Option<String>, default| it.map_or(Ok(default), |it| Side::parse(&it));
    let found = match (side(sides.from, Side::Published), side(sides.to, Side::Draft)) {
        (Ok(from), Ok(to)) => match state.workspace.history(&slug).await {
            Ok(history) => state.workspace.changes(&slug, from, to).await.map(|it| (history, from, to, it)),
            Err(err) => Err(err),
        },
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    let (history, from, to, found) = match found {
        Ok(found) => found,
        Err(err) => {
            let status = super::api::ApiError::from(err).into_response().status();
            let mut response = failure(&templates, &admin, &format!("no changes of `{slug}` to show"));
            *response.status_mut() = status;
            return response;
        }
    };
    let label = |side: Side, number: Option<u64>| match (side, number) {
        (Side::Draft, _) if found.draft => "Draft".to_owned(),
        (Side::Draft, _) => "Draft (none: as published)".to_owned(),
        (_, Some(number)) => format!("Generation {number}"),
        (_, None) => "Published".to_owned(),
    };
    let compact = |value: &Value| match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    let changed: Vec<Value> = found
        .diff
        .changed
        .iter()
        .map(|tool| {
            let mut rows = Vec::new();
            for change in &tool.changes {
                let part = change.part.replace('_', " ");
                if let (Some(old), Some(new)) = (&change.old, &change.new) {
                    rows.push(json!({"part": part, "path": "", "old": compact(old), "new": compact(new)}));
                }
                for path in &change.paths {
                    let shown = if path.path.is_empty() { "/" } else { path.path.as_str() };
                    rows.push(json!({"part": part, "path": shown, "old": compact(&path.old), "new": compact(&path.new)}));
                }
            }
            json!({
                "name": tool.name,
                "parts": tool.parts.iter().map(|it| it.replace('_', " ")).collect::<Vec<_>>().join(", "),
                "old_hash": tool.old_hash,
                "new_hash": tool.new_hash,
                "rows": rows,
                "more": tool.changes.iter().any(|it| it.more),
            })
        })
        .collect();
    let kept: Vec<u64> = history.iter().map(|it| it.number).collect();
    let generations: Vec<Value> = history
        .iter()
        .map(|it| {
            // The diff link needs the previous generation kept.
            let previous = it.number.checked_sub(1).filter(|it| kept.contains(it));
            json!({
                "number": it.number,
                "at": timestamp(it.published_at),
                "by": it.published_by,
                "previous": previous,
            })
        })
        .collect();
    let diff = &found.diff;
    let context = json!({
        "page": page(&admin, &format!("{slug} — changes"), "servers"),
        "slug": slug,
        "kept": crate::store::GENERATIONS_KEPT,
        "from_label": label(from, found.from),
        "to_label": label(to, found.to),
        "same": diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty(),
        "added": diff.added,
        "removed": diff.removed,
        "changed": changed,
        "unchanged": diff.unchanged,
        "generations": generations,
    });
    render(&templates, "changes", &context)
}

/// The script and style sheet; public, like any login page's assets.
async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(it, _, _)| *it == name) {
        Some((_, content_type, text)) => ([(header::CONTENT_TYPE, *content_type)], *text).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// What every page's header needs.
fn page(admin: &Admin, title: &str, section: &str) -> Value {
    json!({
        "title": title,
        "admin": admin.name,
        // The bootstrap token never reaches a browser, but a page rendered for it still works.
        "csrf": admin.csrf.clone().unwrap_or_default(),
        "servers": section == "servers",
        "audit": section == "audit",
    })
}

/// The server page's shell: the summary, the settings and what the filters offer. The rows
/// come a page at a time from the API (`GET /admin/api/servers/{slug}/operations`), so the page
/// is as small for 10,000 operations as for 10.
fn server_context(admin: &Admin, curation: &Curation, dev: bool) -> Value {
    let view = &curation.view;
    let draft = curation;
    let report = &view.generated.report;
    let lean = LEAN_BUDGET;
    let server_budget = draft.settings.budget.unwrap_or_default();
    let report_counts = json!({
        "operations": report.operations,
        "tools": report.tools,
        "skipped": report.skipped.len(),
        "warnings": report.warnings.len(),
    });
    let budget = json!({
        "max_schema_tokens": server_budget.max_schema_tokens,
        "max_output_schema_tokens": server_budget.max_output_schema_tokens,
        "optional_depth": server_budget.optional_depth,
        "max_description_chars": server_budget.max_description_chars,
        "lean": {
            "max_schema_tokens": lean.max_schema_tokens,
            "max_output_schema_tokens": lean.max_output_schema_tokens,
            "optional_depth": lean.optional_depth,
            "max_description_chars": lean.max_description_chars,
        },
    });
    let credentials = draft.settings.credentials.clone().unwrap_or(Value::Null);
    let field = |name: &str| credentials.get(name).cloned().unwrap_or(Value::Null);
    let text = |name: &str| match field(name) {
        Value::String(it) => it,
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    };
    let mode = credentials.get("mode").and_then(Value::as_str).unwrap_or("none").to_owned();
    let secret = |name: &str| field(name).as_str() == Some("(set)");
    let choose = |current: &str, options: &[&str]| -> Vec<Value> {
        options.iter().map(|it| json!({"value": it, "selected": *it == current})).collect()
    };
    let mut context = json!({
        "page": page(admin, &format!("{} — server", draft.summary.slug), "servers"),
        "summary": draft.summary,
        "version": draft.version,
        "read_only": draft.summary.provisioned,
        // `serve --dev` declares its samples itself: there is no file to change.
        "dev_sample": draft.summary.provisioned && dev,
        "exposed_tokens": view.exposed_tokens,
        "catalog_budget": CATALOG_MODE_SUGGESTED_ABOVE,
        "suggest_catalog_mode": view.exposed_tokens > CATALOG_MODE_SUGGESTED_ABOVE
            && draft.settings.catalog_mode != Some(true),
        "n_operations": view.generated.rows.len(),
        "n_exposed": view.n_exposed(),
        "methods": view.generated.methods,
        "tags": view.generated.tags,
        "report": report_counts,
        "settings": {
            "backend_url": draft.settings.backend_url.as_ref().map(ToString::to_string).unwrap_or_default(),
            "timeout_secs": draft.settings.timeout_secs,
            "catalog_mode": draft.settings.catalog_mode == Some(true),
            "modes": choose(
                &mode,
                &["none", "static", "client_credentials", "token_exchange", "entra_obo", "authorization_code"],
            ),
            "schemes": choose(&text("scheme"), &["header", "query", "bearer", "basic"]),
            "client_auths": choose(
                &text("client_auth"),
                &["client_secret_basic", "client_secret_post", "private_key_jwt"],
            ),
            "name": text("name"),
            "username": text("username"),
            "token_endpoint": text("token_endpoint"),
            "issuer": text("issuer"),
            "authorization_endpoint": text("authorization_endpoint"),
            "revocation_endpoint": text("revocation_endpoint"),
            "tenant": text("tenant"),
            "client_id": text("client_id"),
            "private_key_id": text("private_key_id"),
            "signing_algorithm": text("signing_algorithm"),
            "audience": text("audience"),
            "resource": text("resource"),
            "scopes": text("scopes"),
            "value_set": secret("value"),
            "password_set": secret("password"),
            "client_secret_set": secret("client_secret"),
            "private_key_set": secret("private_key"),
            "rate_limits": draft.settings.rate_limits,
            // Edited as JSON text; empty when no tool has rates of its own.
            "rate_limit_tools": draft.settings.rate_limits.as_ref()
                .filter(|it| !it.tools.is_empty())
                .and_then(|it| serde_json::to_string(&it.tools).ok())
                .unwrap_or_default(),
            "policies": draft.settings.policies,
        },
    });
    // Beside the rest: one `json!` of them all is deeper than the macro may recurse.
    context["annotations"] = json!(ANNOTATIONS);
    context["budget"] = budget;
    context
}

fn render(templates: &Handlebars<'static>, name: &str, context: &Value) -> Response {
    match templates.render(name, context) {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(%err, template = name, "admin: template");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered; see the log").into_response()
        }
    }
}

/// A page saying what went wrong, in the UI's frame.
fn failure(templates: &Handlebars<'static>, admin: &Admin, message: &str) -> Response {
    let context = json!({"page": page(admin, "Error", ""), "servers": [], "error": message});
    let mut response = render(templates, "servers", &context);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// The administrator a page is for, or what to answer instead: the way to sign in (and then
/// back to this page), that nobody can, or that the session cannot be checked now.
async fn signed_in(state: &AdminState, headers: &HeaderMap, uri: &Uri) -> Result<Admin, Box<Response>> {
    match state.access.admin(headers).await {
        Ok(Some(admin)) => Ok(admin),
        Ok(None) if !state.signin.is_available() => Err(Box::new(super::signin::not_configured())),
        Ok(None) => {
            let page = uri.path_and_query().map_or(uri.path(), |it| it.as_str());
            Err(Box::new(Redirect::to(&super::signin::login_path(page)).into_response()))
        }
        Err(err) => {
            tracing::error!(%err, "admin: store");
            let answer = (StatusCode::SERVICE_UNAVAILABLE, "the store failed; see the log").into_response();
            Err(Box::new(answer))
        }
    }
}

/// `2026-11-01 12:00:00 UTC`.
fn timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let (hours, minutes, seconds) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hours:02}:{minutes:02}:{seconds:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_and_escape() {
        let templates = templates().unwrap();
        let admin = Admin { name: "<ada>".to_owned(), csrf: Some("t\"k".to_owned()), session: None };
        let context = json!({
            "page": page(&admin, "Servers", "servers"),
            "servers": [{
                "slug": "s", "title": "<script>alert(1)</script>", "mcp_url": "http://x/mcp/s",
                "state": "live", "provisioned": false, "unpublished": true, "tools": 2, "failure": null,
            }],
        });
        let html = templates.render("servers", &context).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;ada&gt;") && html.contains("t&quot;k"), "{html}");
        for (_, text) in TEMPLATES {
            assert!(!text.contains("{{{"), "a template writes data unescaped");
            assert!(!text.contains("<script>") && !text.contains("style="), "inline script or style");
        }
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(timestamp(1_709_210_096), "2024-02-29 12:34:56 UTC");
    }
}
