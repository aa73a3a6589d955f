//! Where a document comes from: a file (whose relative `$ref`s may read files below a root
//! folder), standard input, or an HTTP(S) URL. Every read is size-capped.
//!
//! Invariant: no file outside the root folder is read, whether by `..` or through a symlink,
//! and nothing is fetched from the network but the URL the caller gave.

pub mod fetch;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::openapi::{self, Loader, Spec};

/// A document's origin, as given on a command line or in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Stdin,
    Url(Url),
}

impl Source {
    /// `-` is standard input, an `http(s)://` address is a URL, anything else a path.
    pub fn parse(text: &str) -> Source {
        if text == "-" {
            return Source::Stdin;
        }
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Source::Url(url),
            _ => Source::File(PathBuf::from(text)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest document (and the largest total of all its files) read.
    pub max_bytes: u64,
    /// The longest a URL fetch may take, redirects included.
    pub timeout: Duration,
    /// Whether the URL given may point at a loopback, private or link-local address.
    /// Redirects never may.
    pub allow_private_url: bool,
    /// The folder relative `$ref`s may read below; default: the entry document's folder.
    pub root: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            allow_private_url: false,
            root: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{entry} is not inside the root folder {root}")]
    OutsideRoot { entry: String, root: String },
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    #[error("{name}: {source}")]
    Ingest { name: String, source: openapi::Error },
}

/// A document read and ingested, with the entry document's bytes as they were read.
pub struct Loaded {
    pub spec: Spec,
    pub document: Vec<u8>,
}

/// Reads and ingests the document at `source`.
pub async fn load(source: &Source, limits: &Limits) -> Result<Loaded, Error> {
    match source {
        Source::File(path) => {
            let path = path.clone();
            let limits = limits.clone();
            tokio::task::spawn_blocking(move || load_file(&path, &limits))
                .await
                .map_err(|err| Error::Io { path: "file".into(), source: std::io::Error::other(err) })?
        }
        Source::Stdin => {
            let document = read_capped(std::io::stdin().lock(), "standard input", limits.max_bytes)?;
            Ok(Loaded { spec: ingest("standard input", &document)?, document })
        }
        Source::Url(url) => {
            let policy = fetch::Policy {
                max_bytes: limits.max_bytes,
                timeout: limits.timeout,
                allow_private_origin: limits.allow_private_url,
            };
            let document = fetch::fetch(url, &policy).await?;
            Ok(Loaded { spec: ingest(url.as_str(), &document)?, document })
        }
    }
}

pub fn ingest(name: &str, bytes: &[u8]) -> Result<Spec, Error> {
    openapi::ingest(bytes).map_err(|source| Error::Ingest { name: name.to_owned(), source })
}

/// Reads a document from disk, with the files its relative `$ref`s name below the root folder.
pub fn load_file(path: &Path, limits: &Limits) -> Result<Loaded, Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    let entry = path.canonicalize().map_err(io(path))?;
    let root = match &limits.root {
        Some(root) => root.canonicalize().map_err(io(root))?,
        None => entry.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")),
    };
    let Ok(relative) = entry.strip_prefix(&root) else {
        return Err(Error::OutsideRoot {
            entry: entry.display().to_string(),
            root: root.display().to_string(),
        });
    };
    let entry_name = relative.to_string_lossy().replace('\\', "/");
    let file = std::fs::File::open(&entry).map_err(io(&entry))?;
    let bytes = read_file_capped(file, &path.display().to_string(), limits.max_bytes)?;
    let mut loader = RootedFiles { root, budget: limits.max_bytes.saturating_sub(bytes.len() as u64) };
    let spec = openapi::ingest_files(&entry_name, &bytes, &mut loader)
        .map_err(|source| Error::Ingest { name: path.display().to_string(), source })?;
    Ok(Loaded { spec, document: bytes })
}

/// Serves the files below `root` to the ingest, within a shared byte budget.
struct RootedFiles {
    root: PathBuf,
    budget: u64,
}

impl Loader for RootedFiles {
    fn load(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let path = self.root.join(name);
        // Canonicalizing resolves symlinks, so a link pointing out of the root is caught here.
        let real = path.canonicalize().map_err(|err| err.to_string())?;
        if !real.starts_with(&self.root) {
            return Err("it resolves outside the root folder".to_owned());
        }
        if !real.is_file() {
            return Err("it is not a file".to_owned());
        }
        let file = std::fs::File::open(&real).map_err(|err| err.to_string())?;
        let bytes = read_file_capped(file, name, self.budget).map_err(|err| err.to_string())?;
        self.budget -= bytes.len() as u64;
        Ok(bytes)
    }
}

fn read_capped(reader: impl Read, what: &str, limit: u64) -> Result<Vec<u8>, Error> {
    read_capped_sized(reader, what, limit, 0)
}

/// Reads a file whose size is known, into a buffer allocated once.
fn read_file_capped(file: std::fs::File, what: &str, limit: u64) -> Result<Vec<u8>, Error> {
    let size = file.metadata().map_or(0, |it| it.len());
    read_capped_sized(file, what, limit, size)
}

fn read_capped_sized(reader: impl Read, what: &str, limit: u64, size: u64) -> Result<Vec<u8>, Error> {
    if size > limit {
        return Err(Error::TooLarge { what: what.to_owned(), limit });
    }
    // One byte more than the file, so that reading to its end needs no second allocation.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io { path: what.to_owned(), source })?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge { what: what.to_owned(), limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(Source::parse("-"), Source::Stdin);
        assert!(matches!(Source::parse("https://example.com/openapi.json"), Source::Url(_)));
        assert_eq!(Source::parse("api.yaml"), Source::File("api.yaml".into()));
        assert_eq!(Source::parse("C:/api.yaml"), Source::File("C:/api.yaml".into()));
    }

    #[test]
    fn refuses_files_outside_the_root_even_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret.yaml"), "Secret: {type: string}\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.yaml"), root.join("link.yaml")).unwrap();
        std::fs::write(root.join("ok.yaml"), "Ok: {type: integer}\n").unwrap();
        let root = root.canonicalize().unwrap();
        let mut loader = RootedFiles { root, budget: 1 << 20 };
        assert!(loader.load("ok.yaml").is_ok());
        assert_eq!(loader.load("link.yaml").unwrap_err(), "it resolves outside the root folder");
    }

    #[test]
    fn caps_sizes() {
        let err = read_capped(&b"0123456789"[..], "doc", 9).unwrap_err();
        assert_eq!(err.to_string(), "doc is larger than the limit of 9 bytes");
        assert_eq!(read_capped(&b"0123456789"[..], "doc", 10).unwrap().len(), 10);
    }
}
