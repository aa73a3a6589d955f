//! The conversion report: counts, what was skipped or degraded and where, and what the tool
//! definitions cost a model's context. It is an output format (CLI `--json`, admin API), hence
//! `Serialize`.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub document: DocumentSummary,
    /// Operations the document declares.
    pub operations: usize,
    /// Tools generated; `tools + skipped.len() == operations`.
    pub tools: usize,
    pub skipped: Vec<SkippedOperation>,
    pub warnings: Vec<Warning>,
    pub tokens: TokenEstimate,
}

#[derive(Debug, Serialize)]
pub struct DocumentSummary {
    pub title: String,
    pub version: String,
    /// `2.0`, `3.0.3`, `3.1.0`, ...
    pub spec_version: String,
    pub format: &'static str,
    pub files: usize,
}

#[derive(Debug, Serialize)]
pub struct SkippedOperation {
    pub operation: String,
    pub location: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A part of the document that could not be read as written.
    Document,
    /// A schema keyword dropped or replaced while lowering to JSON Schema 2020-12.
    Schema,
    NameShortened,
    NameCollision,
    DescriptionCapped,
    /// The schema would exceed `max_schema_tokens`; the farthest
    /// referenced schemas are described but not expanded.
    SchemaTruncated,
    /// A schema refers to itself; it stays a `$ref` into `$defs`.
    Cycle,
    /// A parameter carrying a credential (per `securitySchemes`) is not shown to the model.
    CredentialHidden,
    /// A header parameter the HTTP client sets itself (`Accept`, `Content-Type`, `Host`, ...)
    /// is not shown to the model.
    HeaderManaged,
    /// The response schema is not an object, so the output is wrapped in `{"result": ...}`.
    OutputWrapped,
}

#[derive(Debug, Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    pub location: String,
    pub message: String,
}

/// An estimate of what the definitions cost in a model's context: about one token per four
/// bytes of compact JSON, the usual ratio for JSON-heavy text.
#[derive(Debug, Serialize)]
pub struct TokenEstimate {
    pub total: usize,
    pub per_tool: Vec<ToolTokens>,
}

#[derive(Debug, Serialize)]
pub struct ToolTokens {
    pub name: String,
    pub operation: String,
    pub tokens: usize,
}
