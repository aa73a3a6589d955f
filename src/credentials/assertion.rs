//! `private_key_jwt` client authentication (RFC 7523): a short-lived JWT about mcpgate's client,
//! signed with its private key. Signed here with aws-lc-rs directly; the key is read from PEM
//! (PKCS#8, or PKCS#1 for RSA).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// Client assertions are single-use and short-lived.
const LIFETIME_SECS: u64 = 60;

pub struct AssertionKey {
    algorithm: &'static str,
    key: Key,
    key_id: Option<String>,
}

enum Key {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl AssertionKey {
    /// Reads `pem` for `algorithm` (RS256, PS256, ES256 or EdDSA). Errors never quote the key.
    pub fn new(pem: &str, algorithm: &str, key_id: Option<String>) -> Result<AssertionKey, String> {
        let (label, der) = decode_pem(pem).ok_or("private_key is not a PEM private key")?;
        let unusable = || format!("private_key is not a {algorithm} private key");
        let (algorithm, key) = match (algorithm, label.as_str()) {
            ("RS256" | "PS256", "RSA PRIVATE KEY") => {
                (algorithm, RsaKeyPair::from_der(&der).map_err(|_| unusable())?)
            }
            ("RS256" | "PS256", "PRIVATE KEY") => {
                (algorithm, RsaKeyPair::from_pkcs8(&der).map_err(|_| unusable())?)
            }
            ("ES256", "PRIVATE KEY") => {
                let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|_| unusable())?;
                return Ok(AssertionKey { algorithm: "ES256", key: Key::Ecdsa(key), key_id });
            }
            ("EdDSA", "PRIVATE KEY") => {
                let key = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| unusable())?;
                return Ok(AssertionKey { algorithm: "EdDSA", key: Key::Ed25519(key), key_id });
            }
            ("RS256" | "PS256" | "ES256" | "EdDSA", _) => return Err(unusable()),
            (other, _) => {
                return Err(format!("signing_algorithm `{other}`: use RS256, PS256, ES256 or EdDSA"));
            }
        };
        let (name, encoding): (&'static str, &'static dyn signature::RsaEncoding) = if algorithm == "PS256" {
            ("PS256", &signature::RSA_PSS_SHA256)
        } else {
            ("RS256", &signature::RSA_PKCS1_SHA256)
        };
        Ok(AssertionKey { algorithm: name, key: Key::Rsa(key, encoding), key_id })
    }

    /// An assertion by `client_id` for `audience` (the token endpoint), with a fresh `jti`.
    pub fn sign(&self, client_id: &str, audience: &str) -> Result<String, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let rng = SystemRandom::new();
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| "no randomness for the client assertion")?;
        let mut header = serde_json::json!({"alg": self.algorithm, "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(id),
            "iat": now,
            "exp": now + LIFETIME_SECS,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let failed = |_| "cannot sign the client assertion".to_owned();
        let signature = match &self.key {
            Key::Rsa(key, encoding) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(*encoding, &rng, input.as_bytes(), &mut signature).map_err(failed)?;
                signature
            }
            Key::Ecdsa(key) => key.sign(&rng, input.as_bytes()).map_err(failed)?.as_ref().to_vec(),
            Key::Ed25519(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The label and bytes of the first PEM block.
fn decode_pem(pem: &str) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest.split_once(&end)?;
    let base64: Zeroizing<String> = Zeroizing::new(body.chars().filter(|it| !it.is_whitespace()).collect());
    let der = Zeroizing::new(STANDARD.decode(base64.as_bytes()).ok()?);
    Some((label.to_owned(), der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ED25519, KeyPair as _, UnparsedPublicKey};

    fn pem(label: &str, der: &[u8]) -> String {
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", STANDARD.encode(der))
    }

    #[test]
    fn signs_verifiable_assertions() {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap();
        let signer =
            AssertionKey::new(&pem("PRIVATE KEY", document.as_ref()), "EdDSA", Some("k1".into())).unwrap();
        let jwt = signer.sign("mcpgate", "https://idp.example/token").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}));
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("mcpgate"), Some("mcpgate")));
        assert_eq!(claims["aud"], "https://idp.example/token");
        let verifier = UnparsedPublicKey::new(&ED25519, key.public_key().as_ref());
        let input = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        assert_ne!(jwt, signer.sign("mcpgate", "https://idp.example/token").unwrap(), "jti must be fresh");
    }

    #[test]
    fn refuses_unusable_keys_without_quoting_them() {
        let err = AssertionKey::new("not a key SECRETSTUFF", "RS256", None).err().unwrap();
        assert!(!err.contains("SECRETSTUFF"), "{err}");
        let err = AssertionKey::new(&pem("PRIVATE KEY", b"SECRETSTUFF"), "ES256", None).err().unwrap();
        assert!(!err.contains("SECRETSTUFF") && err.contains("ES256"), "{err}");
        assert!(AssertionKey::new(&pem("PRIVATE KEY", b"x"), "HS256", None).err().unwrap().contains("HS256"));
    }
}
