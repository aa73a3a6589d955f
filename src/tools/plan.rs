//! The call plan: everything a tool call needs to become the HTTP request its operation
//! describes, decided once when the tool is generated. The forwarder executes a [`CallPlan`] and
//! knows nothing of OpenAPI; this file is the vocabulary the two share.
//!
//! Invariant: a plan names only arguments of its tool's `inputSchema`, and no parameter of a
//! plan sets a header of [`is_reserved_header`].

use crate::openapi;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    pub method: http::Method,
    /// The operation's path template, such as `/pets/{petId}`, relative to the backend URL.
    pub path: String,
    /// Parameters with an argument, in document order (which is the order they are sent in).
    pub parameters: Vec<ParameterPlan>,
    pub body: Option<BodyPlan>,
    /// Arguments a call must carry.
    pub required: Vec<String>,
}

/// One path, query, header or cookie parameter and the argument that supplies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterPlan {
    pub argument: String,
    /// The name on the wire, as the document writes it.
    pub name: String,
    pub location: Location,
    pub style: Style,
    pub explode: bool,
    pub allow_reserved: bool,
    pub required: bool,
    /// Set when the document describes the value by `content`: it is serialized in this media
    /// type rather than by `style`.
    pub media_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

/// How a value is serialized (OpenAPI `style`; Swagger 2.0 `collectionFormat`). The plan's own
/// copy of `openapi::Style`, so that the forwarder needs nothing of the OpenAPI model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Form,
    Simple,
    Label,
    Matrix,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
    /// Swagger 2.0 `collectionFormat: tsv`.
    TabDelimited,
}

/// How the request body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Multipart,
    Text,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    /// The media type as the document writes it (possibly a range such as `text/*`).
    pub media_type: String,
    pub kind: BodyKind,
    pub required: bool,
    pub source: BodySource,
    /// What is known of the body's top-level properties: for form and multipart bodies, how
    /// each is encoded and whether it is a file. Properties not listed are sent plainly.
    pub fields: Vec<FieldPlan>,
}

/// Where the body's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    /// One argument holds the whole body.
    Whole(String),
    /// An object body whose properties are top-level arguments: (argument, property) pairs.
    Flattened(Vec<(String, String)>),
}

/// One top-level property of a form or multipart body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPlan {
    /// The property name as the document writes it.
    pub name: String,
    /// A base64 string sent as a file part (multipart).
    pub file: bool,
    /// An array whose items are base64 strings, each sent as a file part (multipart).
    pub file_items: bool,
    /// The document's Encoding Object for the property.
    pub encoding: Option<Encoding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub content_type: Option<String>,
    pub style: Option<Style>,
    pub explode: Option<bool>,
    pub allow_reserved: bool,
}

impl BodyPlan {
    pub fn field(&self, name: &str) -> Option<&FieldPlan> {
        self.fields.iter().find(|it| it.name == name)
    }
}

/// Headers a parameter may not set, so none becomes an argument: those OpenAPI says to ignore
/// (`Accept`, `Content-Type`, `Authorization`), the `Cookie` header the cookie parameters make,
/// and those that frame or route the request, which only the HTTP client may set (a `Host`
/// argument would pick another virtual host on the backend).
pub fn is_reserved_header(name: &str) -> bool {
    const RESERVED_HEADERS: [&str; 15] = [
        "accept",
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    RESERVED_HEADERS.iter().any(|it| it.eq_ignore_ascii_case(name))
}

impl From<openapi::Method> for http::Method {
    fn from(method: openapi::Method) -> http::Method {
        match method {
            openapi::Method::Get => http::Method::GET,
            openapi::Method::Put => http::Method::PUT,
            openapi::Method::Post => http::Method::POST,
            openapi::Method::Delete => http::Method::DELETE,
            openapi::Method::Options => http::Method::OPTIONS,
            openapi::Method::Head => http::Method::HEAD,
            openapi::Method::Patch => http::Method::PATCH,
            openapi::Method::Trace => http::Method::TRACE,
        }
    }
}

impl From<openapi::ParamLocation> for Location {
    fn from(location: openapi::ParamLocation) -> Location {
        match location {
            openapi::ParamLocation::Path => Location::Path,
            openapi::ParamLocation::Query => Location::Query,
            openapi::ParamLocation::Header => Location::Header,
            openapi::ParamLocation::Cookie => Location::Cookie,
        }
    }
}

impl From<openapi::Style> for Style {
    fn from(style: openapi::Style) -> Style {
        match style {
            openapi::Style::Form => Style::Form,
            openapi::Style::Simple => Style::Simple,
            openapi::Style::Label => Style::Label,
            openapi::Style::Matrix => Style::Matrix,
            openapi::Style::SpaceDelimited => Style::SpaceDelimited,
            openapi::Style::PipeDelimited => Style::PipeDelimited,
            openapi::Style::DeepObject => Style::DeepObject,
            openapi::Style::TabDelimited => Style::TabDelimited,
        }
    }
}

impl From<&openapi::Encoding> for Encoding {
    fn from(encoding: &openapi::Encoding) -> Encoding {
        Encoding {
            content_type: encoding.content_type.clone(),
            style: encoding.style.map(Style::from),
            explode: encoding.explode,
            allow_reserved: encoding.allow_reserved,
        }
    }
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::Form => "form",
            Style::Simple => "simple",
            Style::Label => "label",
            Style::Matrix => "matrix",
            Style::SpaceDelimited => "spaceDelimited",
            Style::PipeDelimited => "pipeDelimited",
            Style::DeepObject => "deepObject",
            Style::TabDelimited => "tabDelimited",
        }
    }
}
