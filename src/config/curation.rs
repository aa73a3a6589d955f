//! `[servers.tools]`: what an administrator changed of the generated tools, keyed by operation
//! (its operationId, else `METHOD /path`), so that it carries over when the document is
//! imported again. The same effect as `x-mcp-*` extensions written into the document.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::budget::Budget;
use crate::openapi::Operation;

/// The annotation hints a curator may set (MCP `ToolAnnotations`).
pub const ANNOTATIONS: [&str; 4] = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"];

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOverride {
    /// The tool's name instead of the generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Hints replacing those derived from the method, by name: booleans.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
    /// This tool's context budget, over the server's.
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
}

impl ToolOverride {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.annotations.is_empty()
            && self.budget.is_empty()
    }

    /// Why the override cannot be applied, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if let Some(name) = &self.name {
            let valid = (1..=128).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !valid {
                return Some(format!("tool name `{name}` must be 1 to 128 letters, digits, `_`, `-` or `.`"));
            }
        }
        if self.description.as_ref().is_some_and(|it| it.len() > 16 * 1024) {
            return Some("the description is longer than 16 KiB".to_owned());
        }
        if let Some(problem) = self.budget.problem() {
            return Some(problem);
        }
        for (key, value) in &self.annotations {
            if !ANNOTATIONS.contains(&key.as_str()) {
                return Some(format!("unknown annotation `{key}`; use one of {}", ANNOTATIONS.join(", ")));
            }
            if !value.is_boolean() {
                return Some(format!("annotation `{key}` must be true or false"));
            }
        }
        None
    }

    /// Writes the override into the operation, as its `x-mcp-*` extensions would.
    pub fn apply(&self, operation: &mut Operation) {
        if let Some(name) = &self.name {
            operation.mcp.name = Some(name.clone());
        }
        if let Some(description) = &self.description {
            operation.mcp.description = Some(description.clone());
        }
        for (key, value) in &self.annotations {
            operation.mcp.annotations.insert(key.clone(), value.clone());
        }
    }
}
