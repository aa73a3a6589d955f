//! The dev IdP's signing key: Ed25519, generated once and then read back from its PKCS#8 document
//! (which `saved` keeps); its JWK (with the RFC 7638 thumbprint as `kid`, so the same key always
//! has the same `kid`), signing, and checking tokens it signed itself.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// The `typ` of every token issued (RFC 9068).
pub(super) const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Tokens longer than this are not ours and are refused before decoding.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

pub(super) struct SigningKey {
    /// PKCS#8 v1, DER: the private key as `saved` writes it.
    pkcs8: Zeroizing<Vec<u8>>,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl SigningKey {
    pub(super) fn generate() -> Option<SigningKey> {
        let pair = Ed25519KeyPair::generate().ok()?;
        SigningKey::from_pair(&pair)
    }

    /// The key of a PKCS#8 document (v1 or v2), as `pkcs8` gave it; `None` if it is not an
    /// Ed25519 private key.
    pub(super) fn from_pkcs8(document: &[u8]) -> Option<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(document).ok()?;
        SigningKey::from_pair(&pair)
    }

    fn from_pair(pair: &Ed25519KeyPair) -> Option<SigningKey> {
        // PKCS#8 v1 (without the public key) is the form jsonwebtoken's EdDSA signer reads.
        let pkcs8 = Zeroizing::new(pair.to_pkcs8v1().ok()?.as_ref().to_vec());
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, thumbprint_input.as_bytes()));
        let decoding = DecodingKey::from_ed_components(&x).ok()?;
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
        let encoding = EncodingKey::from_ed_der(&pkcs8);
        Some(SigningKey { pkcs8, kid, encoding, decoding, jwk })
    }

    /// The private key as a PKCS#8 v1 document, to keep across restarts.
    pub(super) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key, as the JWKS document lists it.
    pub(super) fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// An access token (`typ: at+jwt`, our `kid`) carrying `claims`.
    pub(super) fn sign(&self, claims: &Map<String, Value>) -> Option<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).ok()
    }

    /// The claims of `token` if this key signed it as an access token for `issuer` and it has not
    /// expired; `None` for anything else, whoever's fault.
    pub(super) fn verify(&self, token: &str, issuer: &str) -> Option<Map<String, Value>> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &validation).ok()?;
        if data.header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE)
            || data.header.kid.as_deref() != Some(&self.kid)
        {
            return None;
        }
        Some(data.claims)
    }
}
