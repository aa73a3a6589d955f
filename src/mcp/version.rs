//! One tool as a generation keeps it: the parts of its listed definition a diff compares, and the
//! hash `tools/list` shows under `_meta["mcpgate/definitionHash"]`. A publication stores its
//! tools in this form (`encode`), and so does a server of the configuration file whose tools
//! changed since its last start.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::listed_definition;
use crate::tools::ToolSpec;

/// One tool as a generation served it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolVersion {
    pub name: String,
    /// `_meta["mcpgate/definitionHash"]` of the listed tool.
    pub hash: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub input_schema: Value,
    #[serde(default)]
    pub output_schema: Option<Value>,
    #[serde(default)]
    pub annotations: Option<Value>,
}

impl ToolVersion {
    /// The tool as `tools/list` lists it.
    pub fn of(tool: &ToolSpec) -> ToolVersion {
        let listed = serde_json::to_value(listed_definition(tool)).unwrap_or(Value::Null);
        let text = |key: &str| listed.get(key).and_then(Value::as_str).map(str::to_owned);
        let part = |key: &str| listed.get(key).filter(|it| !it.is_null()).cloned();
        ToolVersion {
            name: tool.name.clone(),
            hash: listed
                .pointer("/_meta/mcpgate~1definitionHash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            title: text("title"),
            description: text("description"),
            input_schema: part("inputSchema").unwrap_or(Value::Null),
            output_schema: part("outputSchema"),
            annotations: part("annotations"),
        }
    }

    /// The stored form of a generation's tools: the same tools always give the same bytes.
    pub fn encode(tools: &[ToolVersion]) -> Vec<u8> {
        serde_json::to_vec(tools).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Vec<ToolVersion>, String> {
        serde_json::from_slice(bytes).map_err(|err| format!("a stored generation is unreadable: {err}"))
    }
}
