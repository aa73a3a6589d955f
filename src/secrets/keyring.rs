//! The keys that seal secrets at rest: AES-256-GCM with a random 96-bit nonce, and the secret's
//! place (server and field) as associated data, so a sealed value copied to another place does
//! not open. Each sealed value names its key, so keys can rotate: the first key seals, every
//! key opens.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Form, Secret};

const KEY_BYTES: usize = 32;

/// One configured key: `{ id = "2026-11", key = "<32 bytes, base64>" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: String,
    pub key: Secret,
}

pub struct Keyring {
    /// The first seals; all open.
    keys: Vec<(String, LessSafeKey)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secret key `{0}`: {1}")]
    BadKey(String, &'static str),
    #[error("no secret key is configured")]
    NoKey,
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("the secret is sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the sealed secret is damaged or belongs elsewhere")]
    Damaged,
    #[error("cannot seal the secret")]
    Seal,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    pub fn new(configs: &[KeyConfig]) -> Result<Keyring, Error> {
        let mut keys = Vec::with_capacity(configs.len());
        for config in configs {
            let id = &config.id;
            if id.is_empty() || id.contains(':') {
                return Err(Error::BadKey(id.clone(), "the id must be non-empty and have no `:`"));
            }
            let encoded = config.key.expose().ok_or(Error::BadKey(id.clone(), "the key itself is sealed"))?;
            let bytes = Zeroizing::new(
                STANDARD.decode(encoded.trim()).map_err(|_| Error::BadKey(id.clone(), "not base64"))?,
            );
            if bytes.len() != KEY_BYTES {
                return Err(Error::BadKey(id.clone(), "must be 32 bytes (base64 of 32 random bytes)"));
            }
            let key =
                UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| Error::BadKey(id.clone(), "rejected"))?;
            keys.push((id.clone(), LessSafeKey::new(key)));
        }
        if keys.is_empty() {
            return Err(Error::NoKey);
        }
        Ok(Keyring { keys })
    }

    /// The configured keys, or else the key kept in `{data_dir}/secret.key`, created on first
    /// use (readable by the owner only).
    pub fn configured_or_local(configs: &[KeyConfig], data_dir: &Path) -> Result<Keyring, Error> {
        if !configs.is_empty() {
            return Keyring::new(configs);
        }
        let path = data_dir.join("secret.key");
        let io = |source| Error::KeyFile { path: path.display().to_string(), source };
        let text = match std::fs::read_to_string(&path) {
            // An empty file is what a crash left before keys were written whole: no secret can
            // have been sealed with it.
            Ok(text) if !text.trim().is_empty() => Zeroizing::new(text),
            Ok(_) => create_key(data_dir, &path, true).map_err(io)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                create_key(data_dir, &path, false).map_err(io)?
            }
            Err(err) => return Err(io(err)),
        };
        let (id, key) = text
            .trim()
            .split_once(':')
            .ok_or(Error::BadKey(path.display().to_string(), "expected id:key"))?;
        Keyring::new(&[KeyConfig { id: id.to_owned(), key: Secret::new(key) }])
    }

    /// Seals `secret` for `place` (such as `pets/client_secret`); sealed secrets are returned as
    /// they are.
    pub fn seal(&self, secret: &Secret, place: &str) -> Result<Secret, Error> {
        let Form::Plain(value) = &secret.0 else { return Ok(secret.clone()) };
        let (id, key) = &self.keys[0];
        let nonce_bytes = random::<NONCE_LEN>()?;
        let mut sealed = Zeroizing::new(value.as_bytes().to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*nonce_bytes),
            Aad::from(place.as_bytes()),
            &mut *sealed,
        )
        .map_err(|_| Error::Seal)?;
        let mut payload = nonce_bytes.to_vec();
        payload.extend_from_slice(&sealed);
        Ok(Secret(Form::Sealed(format!("v1:{id}:{}", URL_SAFE_NO_PAD.encode(payload)))))
    }

    /// Opens a secret sealed for `place`; secrets in clear are returned as they are.
    pub fn open(&self, secret: &Secret, place: &str) -> Result<Secret, Error> {
        let Form::Sealed(sealed) = &secret.0 else { return Ok(secret.clone()) };
        let mut fields = sealed.splitn(3, ':');
        let (Some("v1"), Some(id), Some(payload)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(Error::Damaged);
        };
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .ok_or_else(|| Error::UnknownKey(id.to_owned()))?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Error::Damaged)?;
        if payload.len() < NONCE_LEN {
            return Err(Error::Damaged);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Damaged)?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain =
            key.open_in_place(nonce, Aad::from(place.as_bytes()), &mut buffer).map_err(|_| Error::Damaged)?;
        let text = std::str::from_utf8(plain).map_err(|_| Error::Damaged)?;
        Ok(Secret(Form::Plain(Zeroizing::new(text.to_owned()))))
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, Error> {
    let mut bytes = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(&mut *bytes).map_err(|_| Error::Seal)?;
    Ok(bytes)
}

/// Makes a new key file at `path`, whole or not at all: written to a temporary file, flushed to
/// disk, then linked into place, which fails rather than replace a key another process made
/// meanwhile (that key is read instead). `replace_empty` allows replacing an empty file.
fn create_key(dir: &Path, path: &Path, replace_empty: bool) -> std::io::Result<Zeroizing<String>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let text = Zeroizing::new(format!(
        "local:{}\n",
        STANDARD.encode(*random::<KEY_BYTES>().map_err(|_| std::io::Error::other("no randomness"))?)
    ));
    let temporary = dir.join(format!(".secret.key.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    let placed = written.and_then(|()| {
        if replace_empty { std::fs::rename(&temporary, path) } else { std::fs::hard_link(&temporary, path) }
    });
    let _ = std::fs::remove_file(&temporary);
    match placed {
        Ok(()) => {
            // The new name must survive a crash too.
            std::fs::File::open(dir)?.sync_all()?;
            Ok(text)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Zeroizing::new(std::fs::read_to_string(path)?))
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> KeyConfig {
        KeyConfig { id: id.to_owned(), key: Secret::new(STANDARD.encode([byte; KEY_BYTES])) }
    }

    #[test]
    fn the_local_key_file_is_made_whole_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        // What a crash between creating and writing the file used to leave.
        std::fs::write(&path, "").unwrap();
        let first = Keyring::configured_or_local(&[], dir.path()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("local:") && text.len() > 40, "{text:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|it| it.unwrap().file_name()).collect();
        assert_eq!(names, ["secret.key"], "no temporary file is left");
        // Later starts read the same key.
        let again = Keyring::configured_or_local(&[], dir.path()).unwrap();
        let sealed = first.seal(&Secret::new("s"), "p/f").unwrap();
        assert_eq!(again.open(&sealed, "p/f").unwrap().expose(), Some("s"));
    }

    #[test]
    fn seals_and_opens_in_place_only() {
        let keyring = Keyring::new(&[key("a", 1)]).unwrap();
        let sealed = keyring.seal(&Secret::new("s3cret"), "pets/client_secret").unwrap();
        let text = serde_json::to_string(&sealed).unwrap();
        assert!(text.starts_with("\"mcpgate-sealed:v1:a:") && !text.contains("s3cret"), "{text}");
        let opened = keyring.open(&sealed, "pets/client_secret").unwrap();
        assert_eq!(opened.expose(), Some("s3cret"));
        assert!(matches!(keyring.open(&sealed, "other/client_secret"), Err(Error::Damaged)));
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealed, keyring.seal(&Secret::new("s3cret"), "pets/client_secret").unwrap());
    }

    #[test]
    fn rotates_keys_by_id() {
        let old = Keyring::new(&[key("old", 1)]).unwrap();
        let sealed = old.seal(&Secret::new("v"), "p").unwrap();
        let rotated = Keyring::new(&[key("new", 2), key("old", 1)]).unwrap();
        assert_eq!(rotated.open(&sealed, "p").unwrap().expose(), Some("v"));
        let resealed = rotated.seal(&rotated.open(&sealed, "p").unwrap(), "p").unwrap();
        assert!(serde_json::to_string(&resealed).unwrap().contains(":v1:new:"));
        let without = Keyring::new(&[key("new", 2)]).unwrap();
        assert!(matches!(without.open(&sealed, "p"), Err(Error::UnknownKey(id)) if id == "old"));
    }

    #[test]
    fn refuses_damaged_values_and_bad_keys() {
        let keyring = Keyring::new(&[key("a", 1)]).unwrap();
        for damaged in [
            "mcpgate-sealed:v2:a:AAAA",
            "mcpgate-sealed:v1:a:!!",
            "mcpgate-sealed:v1:a:AAAA",
            "mcpgate-sealed:x",
        ] {
            assert!(keyring.open(&Secret::new(damaged), "p").is_err(), "{damaged}");
        }
        let short = KeyConfig { id: "a".to_owned(), key: Secret::new(STANDARD.encode([0u8; 16])) };
        assert!(matches!(Keyring::new(&[short]), Err(Error::BadKey(..))));
        assert!(matches!(Keyring::new(&[]), Err(Error::NoKey)));
    }

    #[test]
    fn creates_a_local_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::configured_or_local(&[], dir.path()).unwrap();
        let sealed = first.seal(&Secret::new("v"), "p").unwrap();
        let again = Keyring::configured_or_local(&[], dir.path()).unwrap();
        assert_eq!(again.open(&sealed, "p").unwrap().expose(), Some("v"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }
}
