//! The curation page's view of a server: every operation's row, its tool definition and token
//! estimate, built once per version of the server and kept for the servers curated last, so that
//! listing a page of rows, opening one or exposing some costs work in proportion to what is shown
//! or changed, not to the size of the document. Rows are filtered and paged here, bulk actions
//! find their operations here, and the report is grouped by kind.
//!
//! Invariant: a view belongs to one version of its server; a change makes a new view (sharing
//! the generated rows when only exposure changed) or none.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ANNOTATIONS, ServerSettings, ToolOverride};
use crate::mcp::tool_definition;
use crate::openapi::Spec;
use crate::tools::{self, Report, ToolSpec};

/// How many servers' views are kept: those being curated now. Each holds every definition of
/// its document, tens of megabytes for the largest APIs.
const KEPT: usize = 2;
/// The most rows or report entries one page holds.
pub const MAX_PAGE: usize = 200;
/// Rows of a page when the client does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Above this estimate a tool's definition is flagged as costly for a model's context.
const LARGE_TOOL_TOKENS: usize = 2_000;

/// What tools the settings and document make, one row per operation, in the page's order: by
/// tag, then as the document lists them.
#[derive(Debug)]
pub struct Generated {
    pub title: String,
    pub rows: Vec<Row>,
    pub report: Report,
    pub methods: Vec<&'static str>,
    pub tags: Vec<String>,
    index: HashMap<String, usize>,
}

#[derive(Debug)]
pub struct Row {
    /// The operation's place in the document.
    pub position: usize,
    pub key: String,
    pub method: &'static str,
    pub path: String,
    pub tag: String,
    pub summary: String,
    pub tool_name: Option<String>,
    /// The MCP `Tool` object clients would see, as compact JSON.
    pub definition: Option<String>,
    pub tokens: usize,
    pub scopes: Vec<String>,
    pub curated: ToolOverride,
    /// Readiness warnings: missing description, very large schema, shortened name.
    pub warnings: Vec<String>,
    /// The name differs from the document's only by characters tool names refuse.
    pub mechanical_rename: bool,
    /// Key, path, summary, tool name and tag, lower case, for the search.
    search: String,
}

/// One version of a server as the curation page shows it.
#[derive(Debug, Clone)]
pub struct View {
    pub slug: String,
    pub version: u64,
    pub generated: Arc<Generated>,
    /// Whether each row is exposed, in the rows' order.
    pub exposed: Arc<Vec<bool>>,
    pub exposed_tokens: usize,
}

/// Which rows a page or a bulk action is about; empty fields filter nothing.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Words that must all appear in the key, path, summary, tool name or tag.
    #[serde(default, deserialize_with = "query")]
    pub q: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub state: Shown,
}

/// Which rows a filter lets through by their exposure. Anything else is refused: a misspelt
/// state taken for "any" would let a bulk action hide or expose every operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shown {
    #[default]
    #[serde(rename = "")]
    Any,
    Exposed,
    Hidden,
}

/// The longest search, in bytes and in words: each word is looked for in every row.
const MAX_QUERY_BYTES: usize = 256;
const MAX_QUERY_WORDS: usize = 16;

pub fn query<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let q = String::deserialize(deserializer)?;
    if q.len() > MAX_QUERY_BYTES || q.split_whitespace().count() > MAX_QUERY_WORDS {
        return Err(serde::de::Error::custom(format!(
            "a search has at most {MAX_QUERY_BYTES} bytes and {MAX_QUERY_WORDS} words"
        )));
    }
    Ok(q)
}

/// The views kept, most recently used last, and for each server the lock its view is built
/// under: one build at a time, the others wait for it rather than making every tool again.
#[derive(Clone, Default)]
pub struct Views(Arc<Mutex<Vec<View>>>, Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl Views {
    /// The lock a view of `slug` is built under.
    pub fn building(&self, slug: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.1.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(slug.to_owned()).or_default().clone()
    }

    pub fn get(&self, slug: &str, version: u64) -> Option<View> {
        let mut views = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let at = views.iter().position(|it| it.slug == slug && it.version == version)?;
        let view = views.remove(at);
        views.push(view.clone());
        Some(view)
    }

    /// The title of any kept version of `slug`, which reading the document would give.
    pub fn title(&self, slug: &str) -> Option<String> {
        let views = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        views.iter().find(|it| it.slug == slug).map(|it| it.generated.title.clone())
    }

    /// Keeps `view` in place of the other versions of its server.
    pub fn put(&self, view: View) {
        let mut views = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A build that took long may end after a newer version was kept: the newer one stays.
        if views.iter().any(|it| it.slug == view.slug && it.version > view.version) {
            return;
        }
        views.retain(|it| it.slug != view.slug);
        views.push(view);
        let extra = views.len().saturating_sub(KEPT);
        views.drain(..extra);
    }

    pub fn forget(&self, slug: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).retain(|it| it.slug != slug);
        self.1.lock().unwrap_or_else(PoisonError::into_inner).remove(slug);
    }
}

/// The view of `version` of a server: its tools as they will be served (shaped by the
/// curation, under the context budget).
pub fn build(slug: &str, version: u64, settings: &ServerSettings, mut spec: Spec) -> View {
    crate::catalog::shape(settings, &mut spec);
    let generated = tools::generate(&spec, &crate::catalog::options(settings));
    let by_operation: HashMap<usize, &ToolSpec> =
        generated.tools.iter().map(|it| (it.operation, it)).collect();
    let skipped: HashMap<&str, &str> =
        generated.report.skipped.iter().map(|it| (it.operation.as_str(), it.reason.as_str())).collect();
    let mut rows = Vec::with_capacity(spec.operations.len());
    for (index, operation) in spec.operations.iter().enumerate() {
        let key = operation.key();
        let tool = by_operation.get(&index).copied();
        let (warnings, mechanical_rename) = match tool {
            Some(tool) => readiness(tool, operation),
            None => (vec![format!("not a tool: {}", skipped.get(key.as_str()).unwrap_or(&"skipped"))], false),
        };
        let tag = operation.tags.first().cloned().unwrap_or_else(|| "default".to_owned());
        let summary = operation.summary.clone().unwrap_or_default();
        let tool_name = tool.map(|it| it.name.clone());
        let search =
            format!("{key} {} {summary} {} {tag}", operation.path, tool_name.as_deref().unwrap_or_default())
                .to_lowercase();
        rows.push(Row {
            position: index,
            method: operation.method.as_str(),
            path: operation.path.clone(),
            summary,
            tool_name,
            definition: tool.and_then(|it| serde_json::to_string(&tool_definition(it)).ok()),
            tokens: tool.map_or(0, |it| it.tokens),
            scopes: settings.tool_scopes.get(&key).cloned().unwrap_or_default(),
            curated: settings.tools.get(&key).cloned().unwrap_or_default(),
            warnings,
            mechanical_rename,
            search,
            tag,
            key,
        });
    }
    // Stable: within a tag, the document's order.
    rows.sort_by(|a, b| a.tag.cmp(&b.tag));
    let mut methods: Vec<&'static str> = rows.iter().map(|it| it.method).collect();
    methods.sort_unstable();
    methods.dedup();
    let mut tags: Vec<String> = rows.iter().map(|it| it.tag.clone()).collect();
    tags.dedup();
    let index = rows.iter().enumerate().map(|(idx, it)| (it.key.clone(), idx)).collect();
    let exposed: Vec<bool> = rows
        .iter()
        .map(|row| row.tool_name.is_some() && settings.expose.as_ref().is_none_or(|it| it.contains(&row.key)))
        .collect();
    let generated =
        Generated { title: spec.info.title.clone(), rows, report: generated.report, methods, tags, index };
    let exposed_tokens = tokens_of(&generated, &exposed);
    View {
        slug: slug.to_owned(),
        version,
        generated: Arc::new(generated),
        exposed: Arc::new(exposed),
        exposed_tokens,
    }
}

fn tokens_of(generated: &Generated, exposed: &[bool]) -> usize {
    generated.rows.iter().zip(exposed).filter(|(_, it)| **it).map(|(row, _)| row.tokens).sum()
}

impl View {
    pub fn index(&self, key: &str) -> Option<usize> {
        self.generated.index.get(key).copied()
    }

    pub fn is_tool(&self, idx: usize) -> bool {
        self.generated.rows.get(idx).is_some_and(|it| it.tool_name.is_some())
    }

    pub fn n_exposed(&self) -> usize {
        self.exposed.iter().filter(|it| **it).count()
    }

    /// The numbers a change answers with: how many operations, how many exposed, their tokens.
    pub fn totals(&self) -> Value {
        json!({
            "version": self.version,
            "n_operations": self.generated.rows.len(),
            "n_exposed": self.n_exposed(),
            "exposed_tokens": self.exposed_tokens,
        })
    }

    /// This view once the rows `changes` name are exposed or hidden, as version `version`.
    pub fn with_exposure(&self, version: u64, changes: &[(usize, bool)]) -> View {
        let mut exposed = (*self.exposed).clone();
        for (idx, value) in changes {
            if let Some(it) = exposed.get_mut(*idx) {
                *it = *value && self.is_tool(*idx);
            }
        }
        let exposed_tokens = tokens_of(&self.generated, &exposed);
        View {
            slug: self.slug.clone(),
            version,
            generated: self.generated.clone(),
            exposed: Arc::new(exposed),
            exposed_tokens,
        }
    }

    /// The rows `filter` lets through, in the page's order.
    pub fn matching(&self, filter: &Filter) -> Vec<usize> {
        let words: Vec<String> = filter.q.to_lowercase().split_whitespace().map(str::to_owned).collect();
        let state = match filter.state {
            Shown::Any => None,
            Shown::Exposed => Some(true),
            Shown::Hidden => Some(false),
        };
        self.generated
            .rows
            .iter()
            .enumerate()
            .filter(|(idx, row)| {
                words.iter().all(|word| row.search.contains(word.as_str()))
                    && (filter.method.is_empty() || row.method == filter.method)
                    && (filter.tag.is_empty() || row.tag == filter.tag)
                    && state.is_none_or(|it| self.exposed.get(*idx).copied() == Some(it))
            })
            .map(|(idx, _)| idx)
            .collect()
    }

    /// One page of the rows `filter` lets through, with how many there are, and the totals.
    pub fn page(&self, filter: &Filter, offset: usize, limit: usize) -> Value {
        let matching = self.matching(filter);
        let limit = limit.clamp(1, MAX_PAGE);
        let rows: Vec<Value> = matching.iter().skip(offset).take(limit).map(|idx| self.row(*idx)).collect();
        let mut page = self.totals();
        page["total"] = json!(matching.len());
        page["offset"] = json!(offset);
        page["limit"] = json!(limit);
        page["operations"] = json!(rows);
        page
    }

    /// A row as the list shows it, without its definition.
    pub fn row(&self, idx: usize) -> Value {
        let Some(row) = self.generated.rows.get(idx) else { return Value::Null };
        json!({
            "key": row.key,
            "method": row.method,
            "path": row.path,
            "tag": row.tag,
            "summary": row.summary,
            "exposed": self.exposed.get(idx).copied().unwrap_or(false),
            "is_tool": row.tool_name.is_some(),
            "tool_name": row.tool_name,
            "tokens": row.tokens,
            "warnings": row.warnings,
            "curated": !row.curated.is_empty(),
        })
    }

    /// One operation whole: its row, definition, curation and the hints it has by default.
    pub fn detail(&self, key: &str) -> Option<Value> {
        let idx = self.index(key)?;
        let row = &self.generated.rows[idx];
        let definition: Option<Value> =
            row.definition.as_deref().and_then(|it| serde_json::from_str(it).ok());
        let derived = definition.as_ref().and_then(|it| it.get("annotations"));
        let defaults: serde_json::Map<String, Value> = ANNOTATIONS
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), derived?.get(*name)?.clone())))
            .collect();
        let mut detail = self.row(idx);
        detail["definition"] = definition.unwrap_or(Value::Null);
        detail["scopes"] = json!(row.scopes);
        detail["curation"] = serde_json::to_value(&row.curated).unwrap_or(Value::Null);
        detail["default_annotations"] = Value::Object(defaults);
        Some(detail)
    }

    /// The report, grouped by kind with counts, and one page of the entries of `kind` (all
    /// kinds but mechanical renames when none is given): skipped operations, the converter's
    /// warnings, and each row's readiness warnings.
    pub fn report(&self, kind: Option<&str>, offset: usize, limit: usize) -> Value {
        let report = &self.generated.report;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut entries: Vec<(String, Value)> = Vec::new();
        let mut add = |kind: String, operation: Option<&str>, location: &str, message: &str| {
            *counts.entry(kind.clone()).or_default() += 1;
            let entry =
                json!({"kind": kind, "operation": operation, "location": location, "message": message});
            entries.push((kind, entry));
        };
        for it in &report.skipped {
            add("skipped".to_owned(), Some(&it.operation), &it.location, &it.reason);
        }
        for it in &report.warnings {
            let kind = serde_json::to_value(it.kind).ok().and_then(|it| it.as_str().map(str::to_owned));
            add(
                kind.unwrap_or_else(|| "other".to_owned()),
                it.operation.as_deref(),
                &it.location,
                &it.message,
            );
        }
        for row in &self.generated.rows {
            if row.tool_name.is_none() {
                continue;
            }
            for warning in &row.warnings {
                add(readiness_kind(warning).to_owned(), Some(&row.key), "", warning);
            }
            if row.mechanical_rename {
                let message = format!(
                    "named `{}`: `/` and other characters are not allowed",
                    row.tool_name.as_deref().unwrap_or_default()
                );
                add(MECHANICAL.to_owned(), Some(&row.key), "", &message);
            }
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let chosen: Vec<&Value> = entries
            .iter()
            .filter(|(it, _)| match kind {
                Some(kind) => it == kind,
                None => it != MECHANICAL,
            })
            .map(|(_, entry)| entry)
            .collect();
        let groups: Vec<Value> = counts
            .iter()
            .map(|(kind, count)| json!({"kind": kind, "count": count, "collapsed": kind == MECHANICAL}))
            .collect();
        json!({
            "operations": report.operations,
            "tools": report.tools,
            "skipped": report.skipped.len(),
            "groups": groups,
            "kind": kind,
            "total": chosen.len(),
            "offset": offset,
            "limit": limit,
            "entries": chosen.iter().skip(offset).take(limit).collect::<Vec<_>>(),
        })
    }
}

/// The kind of renames made only because tool names refuse some characters: counted, and
/// listed only when asked for, so that they do not drown the warnings that matter.
pub const MECHANICAL: &str = "renamed_characters";

fn readiness_kind(warning: &str) -> &'static str {
    if warning.starts_with("no description") {
        "no_description"
    } else if warning.starts_with("large definition") {
        "large_definition"
    } else if warning.starts_with("name changed") {
        "name_changed"
    } else {
        "readiness"
    }
}

/// What makes a tool harder for a model to use well, and whether its name changed only
/// mechanically.
fn readiness(tool: &ToolSpec, operation: &crate::openapi::Operation) -> (Vec<String>, bool) {
    let mut warnings = Vec::new();
    if operation.summary.is_none() && operation.description.is_none() && operation.mcp.description.is_none() {
        warnings.push("no description: the model sees only the name".to_owned());
    }
    if tool.tokens > LARGE_TOOL_TOKENS {
        warnings.push(format!("large definition: about {} tokens", tool.tokens));
    }
    let wanted = operation.mcp.name.clone().or_else(|| operation.operation_id.clone());
    // A name whose every character tool names refuse became `_` (GitHub's `issues/create` is
    // `issues_create`) changed mechanically: said on every row of such a document, it would
    // drown the warnings that matter.
    let renamed = wanted.as_ref().is_some_and(|it| *it != tool.name);
    let mechanical_rename = renamed && wanted.as_ref().is_some_and(|it| mechanical(it, &tool.name));
    if renamed && !mechanical_rename {
        warnings.push(format!("name changed to `{}` (length or characters)", tool.name));
    }
    (warnings, mechanical_rename)
}

/// Whether `name` is `wanted` with only the characters tool names refuse replaced, as the
/// namer replaces them.
fn mechanical(wanted: &str, name: &str) -> bool {
    tools::sanitize(wanted) == name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Slug;

    const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Shop, version: "1"}
paths:
  /pets:
    get: {operationId: pets/list, summary: List pets, tags: [pets], responses: {"200": {description: ok}}}
    post: {operationId: addPet, tags: [pets], responses: {"200": {description: ok}}}
  /orders/{id}:
    get:
      operationId: getOrder
      summary: One order
      tags: [orders]
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
"#;

    fn view() -> View {
        let mut settings = ServerSettings::new(Slug::parse("shop").unwrap(), "shop.yaml".to_owned());
        settings.expose = Some(vec!["getOrder".to_owned()]);
        let spec = crate::openapi::ingest(DOCUMENT.as_bytes()).unwrap();
        build("shop", 3, &settings, spec)
    }

    #[test]
    fn rows_are_filtered_and_paged_by_tag() {
        let view = view();
        let keys = |filter: &Filter| -> Vec<String> {
            view.matching(filter).iter().map(|it| view.generated.rows[*it].key.clone()).collect()
        };
        assert_eq!(keys(&Filter::default()), ["getOrder", "pets/list", "addPet"]);
        assert_eq!(keys(&Filter { q: "PETS list".to_owned(), ..Filter::default() }), ["pets/list"]);
        assert_eq!(keys(&Filter { method: "POST".to_owned(), ..Filter::default() }), ["addPet"]);
        assert_eq!(keys(&Filter { state: Shown::Exposed, ..Filter::default() }), ["getOrder"]);
        let page = view.page(&Filter::default(), 1, 1);
        assert_eq!((page["total"].as_u64(), page["n_exposed"].as_u64()), (Some(3), Some(1)));
        assert_eq!(page["operations"][0]["key"], "pets/list");
        assert!(page["operations"][0].get("definition").is_none(), "rows come without definitions");
    }

    #[test]
    fn exposure_changes_share_the_rows_and_recount() {
        let view = view();
        let before = view.exposed_tokens;
        let idx = view.index("addPet").unwrap();
        let next = view.with_exposure(4, &[(idx, true)]);
        assert!(Arc::ptr_eq(&view.generated, &next.generated));
        assert_eq!((next.version, next.n_exposed()), (4, 2));
        assert_eq!(next.exposed_tokens, before + view.generated.rows[idx].tokens);
        assert_eq!(view.detail("addPet").unwrap()["definition"]["name"], "addPet");
    }

    #[test]
    fn the_report_keeps_mechanical_renames_apart() {
        let report = view().report(None, 0, 50);
        let groups = report["groups"].as_array().unwrap();
        let mechanical = groups.iter().find(|it| it["kind"] == MECHANICAL).unwrap();
        assert_eq!((mechanical["count"].as_u64(), mechanical["collapsed"].as_bool()), (Some(1), Some(true)));
        assert!(report["entries"].as_array().unwrap().iter().all(|it| it["kind"] != MECHANICAL));
        assert!(groups.iter().any(|it| it["kind"] == "no_description" && it["count"] == 1), "{report}");
        let only = view().report(Some(MECHANICAL), 0, 50);
        assert_eq!(only["total"], 1);
    }

    #[test]
    fn kept_views_are_few() {
        let views = Views::default();
        for slug in ["a", "b", "c"] {
            let mut it = view();
            it.slug = slug.to_owned();
            views.put(it);
        }
        assert!(views.get("a", 3).is_none());
        assert!(views.get("c", 3).is_some() && views.get("c", 4).is_none());
        // A slow build of an older version ends after a newer one was kept.
        let idx = view().index("addPet").unwrap();
        views.put(view().with_exposure(5, &[(idx, true)]));
        views.put(view());
        assert!(views.get("shop", 5).is_some() && views.get("shop", 3).is_none());
    }

    #[test]
    fn renames_of_refused_characters_are_mechanical() {
        assert!(mechanical("issues/create", "issues_create"));
        assert!(mechanical("repos/get-content", "repos_get-content"));
        assert!(!mechanical("issues/create", "issues_create_2"));
        assert!(!mechanical("getPet", "get_pet"));
        assert!(mechanical(
            "admin.serviceAnnouncement.ListMessages",
            "admin_serviceAnnouncement_ListMessages"
        ));
    }

    #[test]
    fn filters_refuse_what_they_cannot_mean() {
        let filter = |json: &str| serde_json::from_str::<Filter>(json);
        assert_eq!(filter(r#"{"state": "hidden"}"#).unwrap().state, Shown::Hidden);
        assert_eq!(filter(r#"{"state": ""}"#).unwrap().state, Shown::Any);
        // Taken for "any", a bulk action would touch every operation.
        assert!(filter(r#"{"state": "visible"}"#).is_err());
        assert!(filter(&format!(r#"{{"q": "{}"}}"#, "a".repeat(257))).is_err());
        assert!(filter(&format!(r#"{{"q": "{}"}}"#, "a ".repeat(17))).is_err());
        assert!(filter(&format!(r#"{{"q": "{}"}}"#, "a ".repeat(16))).is_ok());
    }
}
