//! One issuer's signing keys: its JWKS, fetched over HTTP and cached by `kid`.
//!
//! Invariant: the issuer is asked at most once per `min_refresh_interval`, whatever tokens arrive,
//! and keys once fetched stay in use until a later fetch succeeds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use crate::outbound;

/// The largest JWKS or metadata document read from an issuer.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// Usable keys kept from one JWKS; the rest are ignored (a real issuer publishes a handful).
const MAX_KEYS: usize = 100;

/// When the issuer is asked for its keys.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// At most one fetch per interval, successful or not: tokens naming unknown keys cannot make
    /// us hammer the issuer. Default 30 s.
    pub min_refresh_interval: Duration,
    /// Keys older than this are refreshed in the background on next use, and served meanwhile.
    /// Default 1 h.
    pub max_age: Duration,
    /// The deadline for one fetch, connection to last byte. Default 10 s.
    pub fetch_timeout: Duration,
    /// The proxy the issuer is reached through (`http.outbound_proxy`). Default: none, direct.
    pub proxy: Option<Url>,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            min_refresh_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(60 * 60),
            fetch_timeout: Duration::from_secs(10),
            proxy: None,
        }
    }
}

/// What went wrong talking to an issuer, or looking up one of its keys.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid verifier configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Client(#[from] outbound::Error),
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("fetching {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("the document at {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("the document at {url} is not a JSON object: {reason}")]
    Json { url: String, reason: String },
    #[error("the document at {url} is unusable: {reason}")]
    Invalid { url: String, reason: String },
    #[error("the metadata at {url} names the issuer {found}, not {expected}")]
    IssuerMismatch { url: String, expected: String, found: String },
    #[error("no issuer metadata found; tried {tried}")]
    NoMetadata { tried: String },
    #[error("no signing key with this kid accepts the algorithm")]
    UnknownKey,
    #[error("the issuer's keys have never been fetched successfully")]
    NoKeys,
}

/// A public key from the JWKS with the algorithms it may verify.
#[derive(Debug)]
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// The key's own `alg` if it names one, else every allowed algorithm of its type and curve.
    pub algorithms: Vec<Algorithm>,
}

impl VerifyingKey {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }
}

/// A cheap handle on one issuer's key cache; clones share the cache.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    uri: Url,
    client: reqwest::Client,
    config: JwksConfig,
    algorithms: Vec<Algorithm>,
    // A std lock: held only to read or replace the snapshot, never across an await.
    state: Mutex<State>,
    // Serializes fetches. A caller that finds its key missing waits here for the fetch in flight
    // and then reads its result, instead of starting a fetch of its own.
    fetching: tokio::sync::Mutex<()>,
    background_refresh: AtomicBool,
}

#[derive(Default)]
struct State {
    keys: Arc<KeySet>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Vec<Arc<VerifyingKey>>>,
    all: Vec<Arc<VerifyingKey>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("uri", &self.inner.uri.as_str()).finish_non_exhaustive()
    }
}

impl Jwks {
    /// A cache for the JWKS at `uri` keeping only keys for `algorithms`; nothing is fetched yet.
    pub fn new(uri: Url, algorithms: &[Algorithm], config: JwksConfig) -> Result<Jwks, Error> {
        let client = http_client(config.proxy.clone())?;
        let inner = Inner {
            uri,
            client,
            config,
            algorithms: algorithms.to_vec(),
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            background_refresh: AtomicBool::new(false),
        };
        Ok(Jwks { inner: Arc::new(inner) })
    }

    pub fn uri(&self) -> &Url {
        &self.inner.uri
    }

    /// The key named `kid` that verifies `alg`. A miss refreshes the cache if no fetch ran within
    /// `min_refresh_interval`, waiting for a fetch already in flight.
    pub async fn key_for(&self, kid: &str, alg: Algorithm) -> Result<Arc<VerifyingKey>, Error> {
        self.lookup(|keys| keys.by_kid.get(kid)?.iter().find(|it| it.accepts(alg)).cloned()).await
    }

    /// Every key that verifies `alg`, for tokens without a `kid`; refreshed on a miss as `key_for`.
    pub async fn keys_for(&self, alg: Algorithm) -> Result<Vec<Arc<VerifyingKey>>, Error> {
        self.lookup(|keys| {
            let found: Vec<_> = keys.all.iter().filter(|it| it.accepts(alg)).cloned().collect();
            (!found.is_empty()).then_some(found)
        })
        .await
    }

    /// Fetches the keys now, unless a fetch ran within `min_refresh_interval` (then `Ok`). For a
    /// warm start; a failure leaves the cached keys in place.
    pub async fn refresh(&self) -> Result<(), Error> {
        self.refresh_detached().await.unwrap_or(Ok(()))
    }

    async fn lookup<T>(&self, find: impl Fn(&KeySet) -> Option<T>) -> Result<T, Error> {
        if let Some(found) = find(&self.current()) {
            return Ok(found);
        }
        // A failed refresh is logged in `refresh_if_due`; the cached keys answer either way.
        let _ = self.refresh_detached().await;
        let state = self.state();
        match find(&state.keys) {
            Some(found) => Ok(found),
            None if state.fetched_at.is_none() => Err(Error::NoKeys),
            None => Err(Error::UnknownKey),
        }
    }

    /// The cached keys; when they are older than `max_age`, a refresh starts in the background.
    fn current(&self) -> Arc<KeySet> {
        let (keys, stale) = {
            let state = self.state();
            let stale = state.fetched_at.is_some_and(|at| at.elapsed() >= self.inner.config.max_age)
                && self.due(&state);
            (state.keys.clone(), stale)
        };
        if stale && !self.inner.background_refresh.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let jwks = self.clone();
                    runtime.spawn(async move {
                        let _ = jwks.refresh_if_due().await;
                        jwks.inner.background_refresh.store(false, Ordering::Release);
                    });
                }
                Err(_) => self.inner.background_refresh.store(false, Ordering::Release),
            }
        }
        keys
    }

    /// `refresh_if_due` as a task of its own. A caller that goes away (its client disconnected)
    /// then cannot cancel a fetch that the rate limit already counts and others wait for: else
    /// one request per interval, dropped at once, would keep rotated keys out.
    async fn refresh_detached(&self) -> Option<Result<(), Error>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.refresh_if_due().await;
        };
        let jwks = self.clone();
        runtime.spawn(async move { jwks.refresh_if_due().await }).await.unwrap_or(None)
    }

    /// Fetches unless rate-limited (`None`). Concurrent callers queue on `fetching`; all but the
    /// first then find the attempt recent and return at once.
    async fn refresh_if_due(&self) -> Option<Result<(), Error>> {
        let _fetching = self.inner.fetching.lock().await;
        {
            let mut state = self.state();
            if !self.due(&state) {
                return None;
            }
            state.attempted_at = Some(Instant::now());
        }
        let result = self.fetch().await;
        match result {
            Ok(keys) => {
                tracing::debug!(jwks_uri = %self.inner.uri, n_keys = keys.all.len(), "fetched JWKS");
                crate::metrics::jwks_refreshed();
                let mut state = self.state();
                state.keys = Arc::new(keys);
                state.fetched_at = Some(Instant::now());
                Some(Ok(()))
            }
            Err(err) => {
                tracing::warn!(jwks_uri = %self.inner.uri, error = %err, "JWKS refresh failed; keeping the cached keys");
                crate::metrics::jwks_refresh_failed();
                Some(Err(err))
            }
        }
    }

    fn due(&self, state: &State) -> bool {
        state.attempted_at.is_none_or(|at| at.elapsed() >= self.inner.config.min_refresh_interval)
    }

    async fn fetch(&self) -> Result<KeySet, Error> {
        let uri = &self.inner.uri;
        let document = fetch_json(&self.inner.client, uri, self.inner.config.fetch_timeout).await?;
        KeySet::parse(&document, &self.inner.algorithms)
            .map_err(|reason| Error::Invalid { url: uri.to_string(), reason: reason.to_owned() })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the snapshot is still whole.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KeySet {
    fn parse(document: &Value, allowed: &[Algorithm]) -> Result<KeySet, &'static str> {
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err("it has no `keys` array");
        };
        let mut set = KeySet { by_kid: HashMap::new(), all: Vec::new() };
        for entry in entries {
            if set.all.len() == MAX_KEYS {
                tracing::warn!(max = MAX_KEYS, "JWKS has more usable keys than kept");
                break;
            }
            match usable_key(entry, allowed) {
                Ok(key) => {
                    let key = Arc::new(key);
                    if let Some(kid) = &key.kid {
                        set.by_kid.entry(kid.clone()).or_default().push(key.clone());
                    }
                    set.all.push(key);
                }
                Err(reason) => {
                    let kid = entry.get("kid").and_then(Value::as_str).unwrap_or_default();
                    tracing::debug!(kid, reason, "ignoring a JWKS key");
                }
            }
        }
        if set.all.is_empty() {
            return Err("it has no usable signing key");
        }
        Ok(set)
    }
}

fn usable_key(entry: &Value, allowed: &[Algorithm]) -> Result<VerifyingKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "not a well-formed JWK")?;
    if !matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)) {
        return Err("its use is not sig");
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("its key_ops lack verify");
    }
    let fitting: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms(),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return Err("unsupported curve"),
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return Err("unsupported curve"),
        },
        // A symmetric key in a public document would let anyone sign; HMAC needs a configured secret.
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are never taken from a JWKS"),
        _ => return Err("unsupported key type"),
    };
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        Some(declared) => {
            let alg = Algorithm::try_from(declared).map_err(|_| "unsupported alg")?;
            if !fitting.contains(&alg) {
                return Err("its alg does not fit its key type");
            }
            vec![alg]
        }
        None => fitting.to_vec(),
    };
    let algorithms: Vec<Algorithm> = algorithms.into_iter().filter(|it| allowed.contains(it)).collect();
    if algorithms.is_empty() {
        return Err("its algorithm is not allowed");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "invalid key material")?;
    Ok(VerifyingKey { kid: jwk.common.key_id, key, algorithms })
}

/// The client for issuer documents, through `proxy` if one is configured: no redirects (a
/// document is where the configuration says).
pub(super) fn http_client(proxy: Option<Url>) -> Result<reqwest::Client, Error> {
    Ok(outbound::client(&outbound::Policy { proxy, ..outbound::Policy::direct() })?)
}

/// GETs a JSON object, within `timeout` and `MAX_DOCUMENT_BYTES`.
pub(super) async fn fetch_json(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> Result<Value, Error> {
    let body = match tokio::time::timeout(timeout, fetch_bytes(client, url)).await {
        Ok(body) => body?,
        Err(_) => return Err(Error::Timeout { url: url.to_string(), timeout }),
    };
    let json_error = |reason: String| Error::Json { url: url.to_string(), reason };
    match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(json_error("not an object".to_owned())),
        Err(err) => Err(json_error(err.to_string())),
    }
}

async fn fetch_bytes(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, Error> {
    let transport =
        |err: reqwest::Error| Error::Transport { url: url.to_string(), reason: outbound::describe(&err) };
    let mut response =
        client.get(url.clone()).header("accept", "application/json").send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::Status { url: url.to_string(), status: status.as_u16() });
    }
    let too_large = || Error::TooLarge { url: url.to_string(), limit: MAX_DOCUMENT_BYTES };
    if response.content_length().is_some_and(|it| it > MAX_DOCUMENT_BYTES) {
        return Err(too_large());
    }
    let capped = outbound::read_capped(&mut response, MAX_DOCUMENT_BYTES).await.map_err(transport)?;
    if capped.cut {
        return Err(too_large());
    }
    Ok(capped.body)
}

#[cfg(test)]
mod tests;
