//! What the dev IdP keeps across restarts, in its own folder (`{data_dir}/dev-idp/` under
//! `serve --dev`): the signing key (`signing-key.der`, PKCS#8 v1 DER) and the registered clients
//! (`clients.json`), so that a client with a cached registration (MCP Inspector, VS Code) is still
//! known, and a token signed before a restart still verifies, after it.
//!
//! Invariant: a file is replaced whole or not at all (a temporary file flushed to disk, renamed
//! into place, the folder flushed) and is readable by its owner only. A missing file is a first
//! start; an unreadable one is a warning and a fresh start, never a refusal to start, since this
//! is a development tool and what is lost costs one sign-in.

use std::io::{Read as _, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::clients::{Client, Record};
use super::keys::SigningKey;

const KEY_FILE: &str = "signing-key.der";
const CLIENTS_FILE: &str = "clients.json";

/// An Ed25519 PKCS#8 document is under 100 bytes; anything much larger is not ours.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// A full store (1,000 clients of 20 redirect URIs of 2 KiB) is about 40 MiB; anything larger
/// is not ours, and is not read into memory.
const MAX_CLIENTS_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct ClientsFile {
    /// Oldest first, the order in which the bounded store drops them.
    clients: Vec<Record>,
}

/// The key kept in `dir`, or a new one (kept there for the next start); `None` only when no key
/// can be generated.
pub(super) fn signing_key(dir: &Path) -> Option<SigningKey> {
    let path = dir.join(KEY_FILE);
    match read(&path, MAX_KEY_FILE_BYTES) {
        Ok(Some(document)) => match SigningKey::from_pkcs8(&document) {
            Some(key) => return Some(key),
            None => tracing::warn!(
                path = %path.display(),
                "the dev-idp signing key file is not an Ed25519 PKCS#8 key; a new key replaces it, \
                 and tokens signed before are no longer accepted"
            ),
        },
        Ok(None) => {}
        Err(err) => tracing::warn!(
            path = %path.display(),
            "cannot read the dev-idp signing key ({err}); a new key replaces it, and tokens signed \
             before are no longer accepted"
        ),
    }
    let key = SigningKey::generate()?;
    if let Err(err) = replace(dir, KEY_FILE, key.pkcs8()) {
        tracing::warn!(
            path = %path.display(),
            "cannot keep the dev-idp signing key ({err}); tokens it signs will not be accepted \
             after a restart"
        );
    }
    Some(key)
}

/// The clients kept in `dir`, oldest first; none on a first start or when the file is unreadable.
pub(super) fn clients(dir: &Path) -> Vec<Client> {
    let path = dir.join(CLIENTS_FILE);
    let forgotten = |reason: String| {
        tracing::warn!(
            path = %path.display(),
            "cannot read the dev-idp's registered clients ({reason}); they must register again"
        );
        Vec::new()
    };
    let bytes = match read(&path, MAX_CLIENTS_FILE_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Vec::new(),
        Err(err) => return forgotten(err.to_string()),
    };
    let file = match serde_json::from_slice::<ClientsFile>(&bytes) {
        Ok(file) => file,
        Err(err) => return forgotten(format!("not a clients file: {err}")),
    };
    let n_records = file.clients.len();
    let clients: Vec<Client> = file.clients.into_iter().filter_map(Client::from_record).collect();
    if clients.len() < n_records {
        tracing::warn!(
            path = %path.display(),
            n_left_out = n_records - clients.len(),
            "some of the dev-idp's registered clients are not valid registrations and are left out"
        );
    }
    clients
}

/// Replaces the clients file in `dir` with `clients` (oldest first); a failure is a warning, as
/// the clients still work until the next restart.
pub(super) fn save_clients(dir: &Path, clients: Vec<Record>) {
    let saved = serde_json::to_vec_pretty(&ClientsFile { clients })
        .map_err(std::io::Error::other)
        .and_then(|bytes| replace(dir, CLIENTS_FILE, &bytes));
    if let Err(err) = saved {
        tracing::warn!(
            path = %dir.join(CLIENTS_FILE).display(),
            "cannot keep the dev-idp's registered clients ({err}); they must register again after a restart"
        );
    }
}

/// The contents of `path`, `None` if it does not exist, an error if it cannot be read or is larger
/// than `max_bytes`. Zeroed when dropped, as the key file is read with it.
fn read(path: &Path, max_bytes: u64) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(std::io::Error::other(format!("larger than {max_bytes} bytes")));
    }
    Ok(Some(bytes))
}

/// Replaces `dir/name` with `bytes`, whole or not at all, readable by the owner only; makes `dir`
/// (owner only) if need be.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
    folder.create(dir)?;
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    // One left by a crash goes first, so that the file is made now, with the mode below.
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let placed = options
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, dir.join(name)));
    if placed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    placed?;
    // The new name must survive a crash too.
    std::fs::File::open(dir)?.sync_all()
}
