//! A generated tool as the MCP `Tool` object clients see in `tools/list`. As listed, it carries a
//! digest of that definition under `_meta` (`mcpgate/definitionHash`): a client or an auditor can
//! tell whether a tool changed between two listings without comparing schemas.

use base64::Engine;
use rmcp::model;

use crate::tools::ToolSpec;

/// The MCP `Tool` object clients see in `tools/list`.
pub fn tool_definition(tool: &ToolSpec) -> model::Tool {
    let mut annotations = model::ToolAnnotations::new();
    annotations.read_only_hint = Some(tool.annotations.read_only);
    // MCP defines the destructive and idempotent hints only for tools that write.
    if !tool.annotations.read_only {
        annotations.destructive_hint = Some(tool.annotations.destructive);
        annotations.idempotent_hint = Some(tool.annotations.idempotent);
    }
    annotations.open_world_hint = Some(tool.annotations.open_world);
    let mut definition = model::Tool::new_with_raw(
        tool.name.clone(),
        Some(tool.description.clone().into()),
        tool.input_schema.clone(),
    )
    .with_annotations(annotations);
    if let Some(title) = &tool.title {
        definition = definition.with_title(title.clone());
    }
    if let Some(schema) = &tool.output_schema {
        definition = definition.with_raw_output_schema(schema.clone());
    }
    definition
}

/// The definition as `tools/list` shows it: with its digest under `_meta`.
pub fn listed_definition(tool: &ToolSpec) -> model::Tool {
    let mut definition = tool_definition(tool);
    if let Some(hash) = definition_hash(&definition) {
        let mut meta = model::MetaObject::new();
        meta.insert("mcpgate/definitionHash".to_owned(), hash.into());
        definition.meta = Some(meta);
    }
    definition
}

/// SHA-256 of the definition's JSON (without `_meta`), which is the same for the same tool: the
/// generator is deterministic and keeps the order of every object's keys.
pub fn definition_hash(definition: &model::Tool) -> Option<String> {
    let text = serde_json::to_vec(definition).ok()?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
    Some(format!("sha256-{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())))
}
