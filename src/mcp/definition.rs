//! A generated tool as the MCP `Tool` object clients see in `tools/list`.

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
