//! Access-token verification: a JWT becomes `Claims` only if every check passes.
//!
//! Invariant: the header's `alg` picks the key family, and no key is used outside its family:
//! HMAC only with a configured secret, never with a JWKS key; `none` never. Keys come from the
//! configured issuer's JWKS alone, never from the token (`jku`, `jwk`, `x5u` are ignored).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};
use url::Url;

use super::jwks::{self, Error, Jwks, JwksConfig};

/// Algorithms accepted unless configured otherwise: every asymmetric one jsonwebtoken supports.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Longer tokens are refused before any decoding. Entra tokens with many claims stay far below.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// What the caller fills in from its own configuration.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Each accepted issuer with where its keys come from; a token names one in `iss`.
    pub issuers: Vec<IssuerConfig>,
    /// Accepted `aud` values; a token must carry at least one. The MCP server's canonical URL
    /// (RFC 8707), plus e.g. an Entra application's client id, which Entra puts in `aud`.
    pub audiences: Vec<String>,
    /// Accepted `alg` values. An HMAC algorithm also needs an issuer with a `shared_secret`.
    pub algorithms: Vec<Algorithm>,
    /// Tolerance for `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    /// The `typ` header every token must carry, such as `at+jwt` (RFC 9068); compared without
    /// case and an `application/` prefix. `None` accepts any or none.
    pub required_type: Option<String>,
    pub jwks: JwksConfig,
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Exactly as tokens carry it in `iss`.
    pub issuer: String,
    pub jwks_uri: Option<Url>,
    /// For HMAC-signed tokens (`HS256`...) from this issuer.
    pub shared_secret: Option<SharedSecret>,
}

/// A symmetric signing key; its `Debug` does not show it.
#[derive(Clone)]
pub struct SharedSecret(Vec<u8>);

/// Why a token was refused. `Display` is fit for an `error_description`: it never repeats the
/// token or any of its contents, and uses no `"` or `\`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsigned tokens are not accepted")]
    Unsigned,
    #[error("the signing algorithm is not supported")]
    UnsupportedAlgorithm,
    #[error("the signing algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(Algorithm),
    #[error("the token type must be {expected}")]
    WrongType { expected: String },
    #[error("the token issuer is not accepted")]
    UnknownIssuer,
    #[error("no signing key of the issuer matches the token")]
    UnknownKey,
    /// Not the token's fault: the issuer's keys could not be fetched yet.
    #[error("the issuer's signing keys are unavailable")]
    KeysUnavailable,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this resource")]
    WrongAudience,
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the token's {0} claim is invalid")]
    InvalidClaim(&'static str),
}

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub subject: String,
    pub issuer: String,
    pub audience: Vec<String>,
    /// From `scope` (space-separated) and `scp` (space-separated or an array), merged.
    pub scopes: BTreeSet<String>,
    pub expires_at: SystemTime,
    /// From `client_id` (RFC 9068), else `azp` (OpenID Connect, Entra v2), else `appid` (Entra v1).
    pub client_id: Option<String>,
    pub raw: Map<String, Value>,
}

impl Claims {
    /// The `groups` claim: an array of strings, or one string.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.strings("groups")
    }

    /// The `roles` claim (Entra ID, Okta, Auth0 custom claims): an array of strings, or one string.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.strings("roles")
    }

    /// The caller's tenant: the `tenant` claim, else Entra ID's `tid`, else `org_id`.
    pub fn tenant(&self) -> Option<&str> {
        ["tenant", "tid", "org_id"].iter().find_map(|name| self.raw.get(*name).and_then(Value::as_str))
    }

    /// A claim read as a list of strings; other values in it are ignored, never a reason to
    /// refuse the token.
    fn strings(&self, name: &str) -> impl Iterator<Item = &str> {
        let (one, many) = match self.raw.get(name) {
            Some(Value::String(it)) => (Some(it.as_str()), None),
            Some(Value::Array(items)) => (None, Some(items.iter().filter_map(Value::as_str))),
            _ => (None, None),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// A cheap handle; clones share the key caches.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuers: Arc<[Issuer]>,
    policy: Arc<Policy>,
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    jwks: Option<Jwks>,
    secret: Option<DecodingKey>,
}

#[derive(Debug)]
struct Policy {
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    clock_skew: i64,
    required_type: Option<String>,
}

/// The token's three parts: decoded header, encoded payload, and what the signature covers.
struct Parts<'a> {
    header: Map<String, Value>,
    payload: &'a str,
    signed: &'a str,
    signature: &'a str,
}

impl VerifierConfig {
    /// A configuration with the defaults: `DEFAULT_ALGORITHMS`, 60 s of clock skew, any `typ`,
    /// and `JwksConfig::default()`.
    pub fn new(issuers: Vec<IssuerConfig>, audiences: Vec<String>) -> VerifierConfig {
        VerifierConfig {
            issuers,
            audiences,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            clock_skew: Duration::from_secs(60),
            required_type: None,
            jwks: JwksConfig::default(),
        }
    }
}

impl SharedSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> SharedSecret {
        SharedSecret(secret.into())
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret([redacted])")
    }
}

impl Verifier {
    /// Checks the configuration and sets up an empty key cache per issuer; nothing is fetched.
    pub fn new(config: &VerifierConfig) -> Result<Verifier, Error> {
        let invalid = |reason: String| Err(Error::Config(reason));
        if config.issuers.is_empty() {
            return invalid("no issuer is configured".to_owned());
        }
        if config.algorithms.is_empty() {
            return invalid("no signing algorithm is allowed".to_owned());
        }
        let hmac_allowed = config.algorithms.iter().any(|it| it.family() == AlgorithmFamily::Hmac);
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for it in &config.issuers {
            if issuers.iter().any(|seen: &Issuer| seen.issuer == it.issuer) {
                return invalid(format!("issuer {} is configured twice", it.issuer));
            }
            if it.jwks_uri.is_none() && it.shared_secret.is_none() {
                return invalid(format!("issuer {} has neither a jwks_uri nor a shared secret", it.issuer));
            }
            if it.shared_secret.is_some() && !hmac_allowed {
                return invalid(format!(
                    "issuer {} has a shared secret but no HMAC algorithm is allowed",
                    it.issuer
                ));
            }
            let jwks = match &it.jwks_uri {
                Some(uri) => Some(Jwks::new(uri.clone(), &config.algorithms, config.jwks.clone())?),
                None => None,
            };
            let secret = it.shared_secret.as_ref().map(|it| DecodingKey::from_secret(&it.0));
            issuers.push(Issuer { issuer: it.issuer.clone(), jwks, secret });
        }
        if hmac_allowed && issuers.iter().all(|it| it.secret.is_none()) {
            return invalid("an HMAC algorithm is allowed but no issuer has a shared secret".to_owned());
        }
        let policy = Policy {
            audiences: Vec::new(),
            algorithms: config.algorithms.clone(),
            clock_skew: i64::try_from(config.clock_skew.as_secs()).unwrap_or(i64::MAX),
            required_type: config.required_type.as_deref().map(media_type),
        };
        Verifier { issuers: issuers.into(), policy: Arc::new(policy) }.with_audiences(&config.audiences)
    }

    /// The same verifier for other audiences, sharing the key caches: one per hosted server.
    pub fn with_audiences(&self, audiences: &[String]) -> Result<Verifier, Error> {
        if audiences.is_empty() {
            return Err(Error::Config("no audience is configured".to_owned()));
        }
        let policy = Policy {
            audiences: audiences.to_vec(),
            algorithms: self.policy.algorithms.clone(),
            clock_skew: self.policy.clock_skew,
            required_type: self.policy.required_type.clone(),
        };
        Ok(Verifier { issuers: self.issuers.clone(), policy: Arc::new(policy) })
    }

    /// The token's claims if it is well-formed, signed with an allowed algorithm by a key of the
    /// issuer it names, meant for one of our audiences, and within its lifetime.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let parts = Parts::split(token)?;
        let alg = self.algorithm(&parts.header)?;
        self.check_type(&parts.header)?;
        if parts.header.contains_key("crit") {
            // RFC 7515 §4.1.11: extensions marked critical must be understood; we know none.
            return Err(VerifyError::Malformed("critical header extensions are not supported"));
        }
        let kid = match parts.header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(VerifyError::Malformed("kid is not a string")),
        };
        let claims = decode_object(parts.payload)
            .ok_or(VerifyError::Malformed("the payload is not a base64url JSON object"))?;
        let iss = string_claim(&claims, "iss")?;
        let issuer = self.issuers.iter().find(|it| it.issuer == iss).ok_or(VerifyError::UnknownIssuer)?;
        self.check_signature(issuer, alg, kid, &parts).await?;
        self.check_claims(claims)
    }

    fn algorithm(&self, header: &Map<String, Value>) -> Result<Algorithm, VerifyError> {
        let name = match header.get("alg") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(VerifyError::Malformed("alg is not a string")),
            None => return Err(VerifyError::Malformed("the header has no alg")),
        };
        if name.eq_ignore_ascii_case("none") {
            return Err(VerifyError::Unsigned);
        }
        let alg = Algorithm::from_str(name).map_err(|_| VerifyError::UnsupportedAlgorithm)?;
        if !self.policy.algorithms.contains(&alg) {
            return Err(VerifyError::AlgorithmNotAllowed(alg));
        }
        Ok(alg)
    }

    fn check_type(&self, header: &Map<String, Value>) -> Result<(), VerifyError> {
        let Some(expected) = &self.policy.required_type else { return Ok(()) };
        match header.get("typ") {
            Some(Value::String(typ)) if media_type(typ) == *expected => Ok(()),
            _ => Err(VerifyError::WrongType { expected: expected.clone() }),
        }
    }

    async fn check_signature(
        &self,
        issuer: &Issuer,
        alg: Algorithm,
        kid: Option<&str>,
        parts: &Parts<'_>,
    ) -> Result<(), VerifyError> {
        if alg.family() == AlgorithmFamily::Hmac {
            // Only the configured secret: a token "signed" with a public key's bytes fails here.
            let secret = issuer.secret.as_ref().ok_or(VerifyError::AlgorithmNotAllowed(alg))?;
            return if parts.verify(secret, alg) { Ok(()) } else { Err(VerifyError::BadSignature) };
        }
        let jwks = issuer.jwks.as_ref().ok_or(VerifyError::AlgorithmNotAllowed(alg))?;
        let keys = match kid {
            Some(kid) => jwks.key_for(kid, alg).await.map(|it| vec![it]),
            None => jwks.keys_for(alg).await,
        };
        let keys = keys.map_err(|err| match err {
            jwks::Error::UnknownKey => VerifyError::UnknownKey,
            _ => VerifyError::KeysUnavailable,
        })?;
        if keys.iter().any(|it| parts.verify(&it.key, alg)) { Ok(()) } else { Err(VerifyError::BadSignature) }
    }

    fn check_claims(&self, raw: Map<String, Value>) -> Result<Claims, VerifyError> {
        let now = unix_now();
        let skew = self.policy.clock_skew;
        let exp = time_claim(&raw, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
        if now.saturating_sub(skew) >= exp {
            return Err(VerifyError::Expired);
        }
        let expires_at = u64::try_from(exp)
            .ok()
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .ok_or(VerifyError::InvalidClaim("exp"))?;
        if let Some(nbf) = time_claim(&raw, "nbf")?
            && nbf > now.saturating_add(skew)
        {
            return Err(VerifyError::NotYetValid);
        }
        if let Some(iat) = time_claim(&raw, "iat")?
            && iat > now.saturating_add(skew)
        {
            return Err(VerifyError::NotYetValid);
        }
        let audience = match raw.get("aud") {
            None => return Err(VerifyError::MissingClaim("aud")),
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|it| it.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(VerifyError::InvalidClaim("aud"))?,
            Some(_) => return Err(VerifyError::InvalidClaim("aud")),
        };
        if !audience.iter().any(|it| self.policy.audiences.contains(it)) {
            return Err(VerifyError::WrongAudience);
        }
        let subject = string_claim(&raw, "sub")?.to_owned();
        if subject.is_empty() {
            return Err(VerifyError::InvalidClaim("sub"));
        }
        let mut scopes = BTreeSet::new();
        match raw.get("scope") {
            None => {}
            Some(Value::String(scope)) => scopes.extend(scope.split_ascii_whitespace().map(str::to_owned)),
            Some(_) => return Err(VerifyError::InvalidClaim("scope")),
        }
        match raw.get("scp") {
            None => {}
            Some(Value::String(scp)) => scopes.extend(scp.split_ascii_whitespace().map(str::to_owned)),
            Some(Value::Array(items)) => {
                for it in items {
                    let scope = it.as_str().ok_or(VerifyError::InvalidClaim("scp"))?;
                    scopes.insert(scope.to_owned());
                }
            }
            Some(_) => return Err(VerifyError::InvalidClaim("scp")),
        }
        let client_id = ["client_id", "azp", "appid"]
            .iter()
            .find_map(|name| raw.get(*name).and_then(Value::as_str))
            .map(str::to_owned);
        let issuer = string_claim(&raw, "iss")?.to_owned();
        Ok(Claims { subject, issuer, audience, scopes, expires_at, client_id, raw })
    }
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed("the token is too long"));
        }
        let mut it = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(VerifyError::Malformed("a JWT has three dot-separated parts"));
        };
        let header = decode_object(header)
            .ok_or(VerifyError::Malformed("the header is not a base64url JSON object"))?;
        if URL_SAFE_NO_PAD.decode(signature).is_err() {
            return Err(VerifyError::Malformed("the signature is not base64url"));
        }
        let Some((signed, _)) = token.rsplit_once('.') else {
            return Err(VerifyError::Malformed("a JWT has three dot-separated parts"));
        };
        Ok(Parts { header, payload, signed, signature })
    }

    fn verify(&self, key: &DecodingKey, alg: Algorithm) -> bool {
        // A key of another family is an error here, which counts as a failed check.
        jsonwebtoken::crypto::verify(self.signature, self.signed.as_bytes(), key, alg).unwrap_or(false)
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, VerifyError> {
    match claims.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
        None => Err(VerifyError::MissingClaim(name)),
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional, truncated.
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, VerifyError> {
    let Some(value) = claims.get(name) else { return Ok(None) };
    let Value::Number(number) = value else { return Err(VerifyError::InvalidClaim(name)) };
    if let Some(secs) = number.as_i64() {
        return Ok(Some(secs));
    }
    match number.as_f64() {
        // Saturating: an absurdly distant time stays absurdly distant.
        Some(secs) if secs.is_finite() => Ok(Some(secs as i64)),
        _ => Err(VerifyError::InvalidClaim(name)),
    }
}

fn unix_now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A `typ` value in the form RFC 7515 §4.1.9 compares: lowercase, without `application/`.
fn media_type(typ: &str) -> String {
    let typ = typ.to_ascii_lowercase();
    match typ.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => typ,
    }
}

#[cfg(test)]
mod tests;
