//! Ingest: bytes of a Swagger 2.0, OpenAPI 3.0 or 3.1 document (JSON or YAML) to one normalized
//! [`Spec`]. No IO: external files come through a [`Loader`].
//!
//! Invariant: only an unreadable entry document is an error. A readable document with broken
//! parts still yields a `Spec`; what was lost is in `Spec::skipped` and `Spec::warnings`.

mod documents;
mod model;
mod node;
mod parse;
mod read;
mod swagger2;

pub use documents::{DocId, Documents, Loader, NoExternalFiles, Target, escape_token};
pub use model::*;
pub use node::{Node, Object};
pub use parse::{Format, SyntaxError};

/// Why a document could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("not an OpenAPI document: {0}")]
    NotOpenApi(String),
    #[error("cannot start a thread to read the document: {0}")]
    Thread(String),
    #[error("unsupported version `{found}` at {pointer}: mcpgate reads Swagger 2.0 and OpenAPI 3.0 and 3.1")]
    UnsupportedVersion { found: String, pointer: &'static str },
}

/// The most files one description may span (DigitalOcean's spans about 2,900).
pub const MAX_FILES: usize = 10_000;

/// Reads a self-contained document; `$ref`s to other files are reported as unresolvable.
pub fn ingest(bytes: &[u8]) -> Result<Spec, Error> {
    ingest_files("openapi", bytes, &mut NoExternalFiles)
}

/// Reads the entry document `entry_name` (a path relative to the root folder the loader serves)
/// and the files its `$ref`s name.
pub fn ingest_files(entry_name: &str, bytes: &[u8], loader: &mut (dyn Loader + Send)) -> Result<Spec, Error> {
    // Parsing recurses once per nesting level (up to 128), and an unoptimized build spends tens
    // of kilobytes of stack on each; ingest runs on a thread with room for that, whichever
    // thread calls it. The stack is reserved, not committed.
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("ingest".to_owned())
            .stack_size(INGEST_STACK)
            .spawn_scoped(scope, || ingest_here(entry_name, bytes, &mut *loader));
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(err) => Err(Error::Thread(err.to_string())),
        }
    })
}

const INGEST_STACK: usize = 64 * 1024 * 1024;

fn ingest_here(entry_name: &str, bytes: &[u8], loader: &mut (dyn Loader + Send)) -> Result<Spec, Error> {
    let (root, format) = parse::parse(bytes)?;
    let (version, version_text) = detect_version(&root)?;
    let documents = Documents::load(entry_name, root, format, loader, MAX_FILES);
    Ok(read::read(documents, version, version_text))
}

fn detect_version(root: &Node) -> Result<(Version, String), Error> {
    let Node::Object(map) = root else {
        return Err(Error::NotOpenApi("the top level is not an object".to_owned()));
    };
    let text = |value: &Node| match value {
        Node::String(it) => it.to_string(),
        other => other.to_string(),
    };
    if let Some(found) = map.get("openapi").map(text) {
        let version = if found.starts_with("3.0") {
            Version::OpenApi30
        } else if found.starts_with("3.1") || found.starts_with("3.2") {
            Version::OpenApi31
        } else {
            return Err(Error::UnsupportedVersion { found, pointer: "#/openapi" });
        };
        return Ok((version, found));
    }
    if let Some(found) = map.get("swagger").map(text) {
        if found == "2.0" || found == "2" {
            return Ok((Version::Swagger2, "2.0".to_owned()));
        }
        return Err(Error::UnsupportedVersion { found, pointer: "#/swagger" });
    }
    Err(Error::NotOpenApi("neither `openapi` nor `swagger` is set at #/".to_owned()))
}

impl Spec {
    /// `file#/pointer` for reports; the entry document's name is left out.
    pub fn render_location(&self, location: &Location) -> String {
        if location.doc == DocId::ENTRY {
            format!("#{}", location.pointer)
        } else {
            format!("{}#{}", self.documents.name(location.doc), location.pointer)
        }
    }
}
