//! Catalog mode: a server too large to list is served as three meta-tools, to search its
//! operations, describe one and call one, instead of one tool per operation. `tools/list` then
//! costs a few hundred tokens whatever the API's size, and the model asks for what it needs.
//!
//! Invariant: what a caller may not see in `tools/list` is never found nor described here
//! (`visible`, the filter the listing uses); a call through [`CALL`] becomes a `tools/call` of the
//! real tool, which then passes every check a direct call does (scopes, rate limits, arguments
//! against the real tool's schema, the audit), and the edge asks for missing scopes with the
//! real tool's name ([`called_tool`]).

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, JsonObject, Tool as McpTool};
use serde_json::{Value, json};

use super::definition::tool_definition;
use crate::catalog::{Catalog, Tool};

pub const SEARCH: &str = "search_operations";
pub const DESCRIBE: &str = "describe_operation";
pub const CALL: &str = "call_operation";

/// Results a search returns by default, and at most.
const DEFAULT_RESULTS: usize = 10;
const MAX_RESULTS: usize = 50;
/// Characters of a description a search result shows: enough to choose, not to call.
const RESULT_DESCRIPTION_CHARS: usize = 160;
/// Longest query read.
const MAX_QUERY_CHARS: usize = 1000;

/// What a `tools/call` of a server in catalog mode comes to.
pub enum Route {
    /// A search or a description, answered here.
    Answered(CallToolResult),
    /// A call of the real tool: the gateway's call path takes it from here.
    Call(CallToolRequestParams),
}

/// The name of the catalog tool a `tools/call` runs: the `name` argument of [`CALL`] in catalog
/// mode, else the name called. The edge asks for the scopes of this tool (HTTP 403 step-up).
pub fn called_tool<'a>(
    catalog: &Catalog,
    name: &'a str,
    arguments: Option<&'a JsonObject>,
) -> Option<&'a str> {
    if catalog.search.is_none() || name != CALL {
        return Some(name);
    }
    arguments?.get("name")?.as_str()
}

/// The meta-tools, as `tools/list` shows them.
pub fn definitions(catalog: &Catalog) -> Vec<McpTool> {
    let title = &catalog.title;
    let count = catalog.tools.len();
    let search = McpTool::new_with_raw(
        SEARCH,
        Some(
            format!(
                "Search the {count} operations of the {title} API by what you want to do; returns the best \
                 matches (name and summary). Then describe_operation for one's arguments, and \
                 call_operation to call it."
            )
            .into(),
        ),
        object(json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to do, in words: \"list open issues of a repository\"."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "Results wanted (default 10)."}
            },
            "required": ["query"]
        })),
    );
    let describe = McpTool::new_with_raw(
        DESCRIBE,
        Some("The full definition of one operation found by search_operations: its description and the JSON Schema of its arguments.".into()),
        object(json!({
            "type": "object",
            "properties": {"name": {"type": "string", "description": "The operation's name, as search_operations gives it."}},
            "required": ["name"]
        })),
    );
    let call = McpTool::new_with_raw(
        CALL,
        Some("Calls one operation with arguments that follow the schema describe_operation gives.".into()),
        object(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The operation's name."},
                "arguments": {"type": "object", "description": "The operation's arguments."}
            },
            "required": ["name"]
        })),
    );
    vec![search, describe, call]
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

/// Answers a search or a description, or turns a call into the real tool's `tools/call`.
/// `visible` is the filter `tools/list` applies for this caller.
pub fn route(catalog: &Catalog, request: CallToolRequestParams, visible: impl Fn(&Tool) -> bool) -> Route {
    let arguments = request.arguments.clone().unwrap_or_default();
    match request.name.as_ref() {
        SEARCH => Route::Answered(search(catalog, &arguments, visible)),
        DESCRIBE => Route::Answered(describe(catalog, &arguments, visible)),
        CALL => {
            let Some(name) = arguments.get("name").and_then(Value::as_str) else {
                return Route::Answered(error("`name` is required: the operation to call"));
            };
            let arguments = match arguments.get("arguments") {
                None | Some(Value::Null) => JsonObject::new(),
                Some(Value::Object(it)) => it.clone(),
                Some(_) => return Route::Answered(error("`arguments` must be an object")),
            };
            let mut call = request;
            call.name = name.to_owned().into();
            call.arguments = Some(arguments);
            Route::Call(call)
        }
        // Not a meta-tool: the call path answers "unknown tool", as for any other name.
        _ => Route::Call(request),
    }
}

fn search(catalog: &Catalog, arguments: &JsonObject, visible: impl Fn(&Tool) -> bool) -> CallToolResult {
    let Some(query) = arguments.get("query").and_then(Value::as_str).filter(|it| !it.trim().is_empty())
    else {
        return error("`query` is required: what you want to do, in words");
    };
    let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
    let limit = arguments
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_RESULTS, |it| usize::try_from(it).unwrap_or(MAX_RESULTS).clamp(1, MAX_RESULTS));
    let Some(index) = &catalog.search else { return error("this server is not in catalog mode") };
    let found = index.search(&query, limit, |idx| catalog.tools.get(idx).is_some_and(&visible));
    let operations: Vec<Value> = found
        .into_iter()
        .filter_map(|idx| catalog.tools.get(idx))
        .map(|tool| {
            let summary = tool.spec.title.clone().unwrap_or_else(|| clip(&tool.spec.description));
            json!({"name": tool.spec.name, "summary": summary, "read_only": tool.spec.annotations.read_only})
        })
        .collect();
    let text = if operations.is_empty() {
        "No operation matches; try other words.".to_owned()
    } else {
        json!({"operations": operations}).to_string()
    };
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn describe(catalog: &Catalog, arguments: &JsonObject, visible: impl Fn(&Tool) -> bool) -> CallToolResult {
    let Some(name) = arguments.get("name").and_then(Value::as_str) else {
        return error("`name` is required: an operation name from search_operations");
    };
    // Hidden and unknown look the same: a caller learns nothing of what it may not call.
    match catalog.tool(name).filter(|it| visible(it)) {
        Some(tool) => {
            let definition = serde_json::to_string(&tool_definition(&tool.spec)).unwrap_or_default();
            CallToolResult::success(vec![ContentBlock::text(definition)])
        }
        None => error(&format!("no operation `{}`; search_operations finds them", clip(name))),
    }
}

fn error(text: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.to_owned())])
}

fn clip(text: &str) -> String {
    let first = text.split("\n\n").next().unwrap_or(text).trim();
    match first.char_indices().nth(RESULT_DESCRIPTION_CHARS) {
        Some((end, _)) => format!("{}…", &first[..end]),
        None => first.to_owned(),
    }
}
