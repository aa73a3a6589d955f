//! Secrets: client secrets, API keys and private keys that mcpgate holds for backends.
//!
//! A [`Secret`] never shows itself: `Debug` and `Display` print `[redacted]`, its memory is
//! zeroed when dropped, and it serializes only once sealed by the [`Keyring`] (AEAD), so that
//! writing one to the store or to an API response in clear is an error rather than a leak.

mod keyring;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

pub use keyring::{Error, KeyConfig, Keyring};

/// Sealed values carry this prefix, so a configuration file may hold either form.
const SEALED_PREFIX: &str = "mcpgate-sealed:";

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Form);

#[derive(Clone, PartialEq, Eq)]
enum Form {
    Plain(Zeroizing<String>),
    /// `v1:{key id}:{nonce and ciphertext, base64url}`, after the prefix.
    Sealed(String),
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        let value: String = value.into();
        match value.strip_prefix(SEALED_PREFIX) {
            Some(sealed) => Secret(Form::Sealed(sealed.to_owned())),
            None => Secret(Form::Plain(Zeroizing::new(value))),
        }
    }

    /// The value, when in clear; a sealed secret must be opened by the [`Keyring`] first.
    pub fn expose(&self) -> Option<&str> {
        match &self.0 {
            Form::Plain(value) => Some(value),
            Form::Sealed(_) => None,
        }
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self.0, Form::Sealed(_))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Form::Sealed(sealed) => serializer.serialize_str(&format!("{SEALED_PREFIX}{sealed}")),
            Form::Plain(_) => Err(serde::ser::Error::custom("a secret must be sealed before it is written")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_or_serializes_in_clear() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        assert_eq!(secret.expose(), Some("hunter2"));
        let err = serde_json::to_string(&secret).unwrap_err();
        assert!(err.to_string().contains("sealed"), "{err}");
    }

    #[test]
    fn reads_sealed_values_as_sealed() {
        let secret: Secret = serde_json::from_str(r#""mcpgate-sealed:v1:k:abc""#).unwrap();
        assert!(secret.is_sealed() && secret.expose().is_none());
        assert_eq!(serde_json::to_string(&secret).unwrap(), r#""mcpgate-sealed:v1:k:abc""#);
    }
}
