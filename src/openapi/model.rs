//! The normalized API model: one shape for Swagger 2.0, OpenAPI 3.0 and 3.1.
//!
//! Schemas stay as the document wrote them ([`Schema`]), together with the document their
//! `$ref`s resolve against; `tools::schema` lowers them to JSON Schema 2020-12.

use serde_json::{Map, Value};

use super::documents::{DocId, Documents};
use super::node::Node;
use super::parse::Format;

#[derive(Debug)]
pub struct Spec {
    pub version: Version,
    /// The version string as written (`2.0`, `3.0.3`, `3.1.0`).
    pub version_text: String,
    pub format: Format,
    pub info: Info,
    pub servers: Vec<Server>,
    pub security_schemes: Vec<SecurityScheme>,
    pub operations: Vec<Operation>,
    /// Operations that could not be turned into tools, with the reason.
    pub skipped: Vec<Skipped>,
    /// Parts that were read in a degraded way.
    pub warnings: Vec<Issue>,
    pub documents: Documents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Swagger2,
    OpenApi30,
    OpenApi31,
}

#[derive(Debug, Default)]
pub struct Info {
    pub title: String,
    pub version: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub url: String,
    pub description: Option<String>,
    pub variables: Vec<ServerVariable>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerVariable {
    pub name: String,
    pub default: String,
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SecurityScheme {
    pub name: String,
    pub kind: SecurityKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecurityKind {
    /// A key sent as the parameter `name` in `location`.
    ApiKey {
        name: String,
        location: ParamLocation,
    },
    /// `Authorization: <scheme> ...` (basic, bearer, ...).
    Http {
        scheme: String,
    },
    /// With the endpoints of its authorization code flow, when it has one.
    OAuth2 {
        authorization_url: Option<String>,
        token_url: Option<String>,
    },
    OpenIdConnect,
    MutualTls,
    Other(String),
}

/// One alternative of a `security` list: every scheme named must be satisfied.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityRequirement {
    pub schemes: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
    Options,
    Head,
    Patch,
    Trace,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Patch,
        Method::Trace,
    ];

    /// The lowercase key a path item uses for this method.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Options => "options",
            Method::Head => "head",
            Method::Patch => "patch",
            Method::Trace => "trace",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    pub path: String,
    /// Where the operation is written: document name and JSON pointer.
    pub location: Location,
    pub operation_id: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub deprecated: bool,
    /// Path-level parameters merged with the operation's own (which win).
    pub parameters: Vec<Parameter>,
    pub request_body: Option<RequestBody>,
    pub responses: Vec<Response>,
    /// The requirements in force: the operation's own, else the document's.
    pub security: Vec<SecurityRequirement>,
    /// The servers in force: the operation's, else the path item's, else the document's.
    pub servers: Vec<Server>,
    pub mcp: McpExtensions,
}

impl Operation {
    /// The stable key curation is attached to: the operationId, else `METHOD path`.
    pub fn key(&self) -> String {
        match &self.operation_id {
            Some(id) => id.clone(),
            None => format!("{} {}", self.method.as_str(), self.path),
        }
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path)
    }
}

/// The `x-mcp-*` extensions an API author can set on an operation.
#[derive(Debug, Clone, Default)]
pub struct McpExtensions {
    /// `x-mcp-name`: the tool name to use instead of the operationId.
    pub name: Option<String>,
    /// `x-mcp-description`: the tool description to use instead of summary and description.
    pub description: Option<String>,
    /// `x-mcp-annotations`: hints that override those derived from the method.
    pub annotations: Map<String, Value>,
}

/// A place in the description: a document and a JSON pointer into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub doc: DocId,
    pub pointer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParamLocation {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamLocation {
    pub fn parse(text: &str) -> Option<ParamLocation> {
        match text {
            "path" => Some(ParamLocation::Path),
            "query" => Some(ParamLocation::Query),
            "header" => Some(ParamLocation::Header),
            "cookie" => Some(ParamLocation::Cookie),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
            ParamLocation::Header => "header",
            ParamLocation::Cookie => "cookie",
        }
    }
}

/// How a parameter value is serialized (OpenAPI `style`; Swagger 2.0 `collectionFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Form,
    Simple,
    Label,
    Matrix,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
    /// Swagger 2.0 `collectionFormat: tsv`, which OpenAPI 3 dropped.
    TabDelimited,
}

impl Style {
    pub fn parse(text: &str) -> Option<Style> {
        match text {
            "form" => Some(Style::Form),
            "simple" => Some(Style::Simple),
            "label" => Some(Style::Label),
            "matrix" => Some(Style::Matrix),
            "spaceDelimited" => Some(Style::SpaceDelimited),
            "pipeDelimited" => Some(Style::PipeDelimited),
            "deepObject" => Some(Style::DeepObject),
            _ => None,
        }
    }

    /// The default style for a location (OpenAPI 3 §Parameter Object).
    pub fn default_for(location: ParamLocation) -> Style {
        match location {
            ParamLocation::Query | ParamLocation::Cookie => Style::Form,
            ParamLocation::Path | ParamLocation::Header => Style::Simple,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub location: ParamLocation,
    pub required: bool,
    pub description: Option<String>,
    pub deprecated: bool,
    pub schema: Schema,
    pub style: Style,
    pub explode: bool,
    pub allow_reserved: bool,
    /// Set when the parameter is described by `content` rather than `schema`: the value is
    /// serialized in this media type.
    pub media_type: Option<String>,
}

/// A schema as written, with the document its `$ref`s resolve against.
#[derive(Debug, Clone)]
pub struct Schema {
    pub doc: DocId,
    pub pointer: String,
    pub value: Node,
}

#[derive(Debug, Clone)]
pub struct RequestBody {
    pub description: Option<String>,
    pub required: bool,
    pub content: Vec<MediaType>,
}

#[derive(Debug, Clone)]
pub struct MediaType {
    pub name: String,
    pub schema: Option<Schema>,
    /// Per-property encoding for form and multipart bodies.
    pub encoding: Vec<(String, Encoding)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    pub content_type: Option<String>,
    pub style: Option<Style>,
    pub explode: Option<bool>,
    pub allow_reserved: bool,
}

#[derive(Debug, Clone)]
pub struct Response {
    /// `200`, `2XX`, `default`, ...
    pub status: String,
    pub description: Option<String>,
    pub content: Vec<MediaType>,
}

#[derive(Debug, Clone)]
pub struct Skipped {
    pub operation: String,
    pub location: Location,
    pub reason: String,
}

/// A part of the description that was read in a degraded way.
#[derive(Debug, Clone)]
pub struct Issue {
    pub location: Location,
    pub message: String,
}
