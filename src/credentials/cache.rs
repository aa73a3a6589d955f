//! Tokens obtained for backends, kept until shortly before they expire.
//!
//! Each key has a slot whose lock is held while its token is fetched, so concurrent first calls
//! for one key make one request and share its result, failures included. The number of keys is
//! bounded: at capacity, expired tokens go first, then those expiring soonest; slots being
//! fetched are kept (so concurrent fetches may exceed it briefly).
//!
//! Times are tokio's ([`Instant`]), so that tests pause the clock and advance it through a
//! token's lifetime rather than wait for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::secrets::Secret;

/// Whom a token is for: the caller (issuer and subject; empty for the server's own tokens) and
/// the scopes asked for. The audience is the hosted server's, so each server has its own cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub subject: String,
    pub scopes: Vec<String>,
}

#[derive(Debug)]
pub struct Token {
    pub value: Secret,
    /// When the token stops being handed out: a little before it expires.
    pub refresh_at: Instant,
}

pub struct TokenCache {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    capacity: usize,
}

#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    token: Option<Arc<Token>>,
    /// The last fetch's failure and when it happened, shared with the calls that waited for it.
    failure: Option<(Instant, super::Failure)>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache { slots: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// The cached token for `key`, or the one `fetch` gets (once for all concurrent callers).
    pub async fn get_or_fetch<F, Fut>(&self, key: &Key, fetch: F) -> Result<Arc<Token>, super::Failure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, super::Failure>>,
    {
        let asked = Instant::now();
        let slot = self.slot(key);
        let mut state = slot.state.lock().await;
        if let Some(token) = state.token.as_ref().filter(|it| Instant::now() < it.refresh_at) {
            return Ok(token.clone());
        }
        if let Some((at, failure)) = &state.failure
            && *at >= asked
        {
            return Err(failure.clone());
        }
        // Boxed: a token request is rare and its future large; every call's future would carry it.
        match Box::pin(fetch()).await {
            Ok(token) => {
                let token = Arc::new(token);
                *state = State { token: Some(token.clone()), failure: None };
                Ok(token)
            }
            Err(failure) => {
                *state = State { token: None, failure: Some((Instant::now(), failure.clone())) };
                Err(failure)
            }
        }
    }

    /// Drops `token` (a backend refused it), unless another call has already replaced it.
    pub async fn forget(&self, key: &Key, token: &Arc<Token>) {
        let slot = self.slot(key);
        let mut state = slot.state.lock().await;
        if state.token.as_ref().is_some_and(|it| Arc::ptr_eq(it, token)) {
            state.token = None;
        }
    }

    /// Drops whatever is kept for `key` (a new connection replaces it).
    pub async fn clear(&self, key: &Key) {
        let slot = self.slot(key);
        *slot.state.lock().await = State::default();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().map_or(0, |it| it.len())
    }

    fn slot(&self, key: &Key) -> Arc<Slot> {
        // A panic elsewhere while holding the lock leaves the map as it was: still usable.
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= self.capacity {
            evict(&mut slots, self.capacity);
        }
        slots.entry(key.clone()).or_default().clone()
    }
}

/// Makes room for one more slot. Slots being fetched stay: their callers are waiting on them.
fn evict(slots: &mut HashMap<Key, Arc<Slot>>, capacity: usize) {
    let now = Instant::now();
    // `None`: being fetched (locked); else when its token stops being handed out (`now` if none).
    let refresh_at = |slot: &Slot| {
        slot.state.try_lock().ok().map(|it| it.token.as_ref().map_or(now, |token| token.refresh_at))
    };
    slots.retain(|_, slot| refresh_at(slot).is_none_or(|at| at > now));
    while slots.len() >= capacity {
        let soonest = slots
            .iter()
            .filter_map(|(key, slot)| Some((refresh_at(slot)?, key)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, key)| key.clone());
        // Every slot is being fetched: the map grows past capacity until they finish.
        let Some(soonest) = soonest else { return };
        slots.remove(&soonest);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::auth::{Caller, Claims};
    use crate::config::CredentialsConfig;
    use crate::credentials::{Applied, Credentials, Failure};

    fn key(subject: &str) -> Key {
        Key { subject: subject.to_owned(), scopes: vec!["read".to_owned()] }
    }

    fn token(value: &str, lifetime: Duration) -> Token {
        Token { value: Secret::new(value), refresh_at: Instant::now() + lifetime }
    }

    /// Whether the cache holds a token for `subject`, looked up without making a slot.
    fn holds(cache: &TokenCache, subject: &str) -> bool {
        let slots = cache.slots.lock().unwrap();
        slots.get(&key(subject)).is_some_and(|slot| slot.state.try_lock().is_ok_and(|it| it.token.is_some()))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_first_calls_fetch_once() {
        let cache = Arc::new(TokenCache::new(10));
        let fetches = Arc::new(AtomicUsize::new(0));
        let calls = (0..100).map(|_| {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fetch(&key("alice"), || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(token("t1", Duration::from_secs(60)))
                    })
                    .await
            })
        });
        for call in calls {
            let token = call.await.unwrap().unwrap();
            assert_eq!(token.value.expose(), Some("t1"));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    // On the real clock: a call is "later" than a failure when the clock has moved since.
    #[tokio::test]
    async fn waiting_calls_share_a_failure_and_later_calls_retry() {
        let cache = Arc::new(TokenCache::new(10));
        let fetches = Arc::new(AtomicUsize::new(0));
        let fail = |cache: Arc<TokenCache>, fetches: Arc<AtomicUsize>| async move {
            cache
                .get_or_fetch(&key("bob"), || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(Failure::new("refused"))
                })
                .await
        };
        let (a, b) = tokio::join!(fail(cache.clone(), fetches.clone()), fail(cache.clone(), fetches.clone()));
        assert!(a.is_err() && b.is_err());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(fail(cache.clone(), fetches.clone()).await.is_err());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refetches_after_refresh_time_or_forget() {
        let cache = TokenCache::new(10);
        let first =
            cache.get_or_fetch(&key("a"), || async { Ok(token("t1", Duration::ZERO)) }).await.unwrap();
        let second = cache
            .get_or_fetch(&key("a"), || async { Ok(token("t2", Duration::from_secs(60))) })
            .await
            .unwrap();
        assert_eq!(second.value.expose(), Some("t2"));
        // Forgetting a token already replaced leaves the new one.
        cache.forget(&key("a"), &first).await;
        let same = cache.get_or_fetch(&key("a"), || async { Ok(token("t3", Duration::ZERO)) }).await.unwrap();
        assert_eq!(same.value.expose(), Some("t2"));
        cache.forget(&key("a"), &same).await;
        let renewed = cache
            .get_or_fetch(&key("a"), || async { Ok(token("t4", Duration::from_secs(60))) })
            .await
            .unwrap();
        assert_eq!(renewed.value.expose(), Some("t4"));
    }

    #[tokio::test]
    async fn stays_within_capacity() {
        let cache = TokenCache::new(3);
        for (i, subject) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let lifetime = Duration::from_secs(60 + i as u64);
            cache.get_or_fetch(&key(subject), || async { Ok(token(subject, lifetime)) }).await.unwrap();
            assert!(cache.len() <= 3);
        }
        // The longest-lived tokens stay.
        let kept = cache.get_or_fetch(&key("e"), || async { Err(Failure::new("not cached")) }).await;
        assert!(kept.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_slots_being_fetched_at_capacity() {
        let cache = Arc::new(TokenCache::new(1));
        let fetches = Arc::new(AtomicUsize::new(0));
        let slow = |cache: Arc<TokenCache>, fetches: Arc<AtomicUsize>| async move {
            cache
                .get_or_fetch(&key("a"), || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(token("ta", Duration::from_secs(60)))
                })
                .await
        };
        let first = tokio::spawn(slow(cache.clone(), fetches.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Another key arrives while "a" is fetched; a second caller for "a" must still wait on it.
        cache.get_or_fetch(&key("b"), || async { Ok(token("tb", Duration::from_secs(60))) }).await.unwrap();
        let second = slow(cache.clone(), fetches.clone()).await.unwrap();
        assert_eq!(second.value.expose(), Some("ta"));
        first.await.unwrap().unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn hands_out_a_token_until_its_refresh_time() {
        let cache = TokenCache::new(10);
        let fetch = |value: &'static str| async move { Ok(token(value, Duration::from_secs(60))) };
        cache.get_or_fetch(&key("a"), || fetch("t1")).await.unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        let kept = cache.get_or_fetch(&key("a"), || fetch("t2")).await.unwrap();
        assert_eq!(kept.value.expose(), Some("t1"));
        tokio::time::advance(Duration::from_secs(1)).await;
        let renewed = cache.get_or_fetch(&key("a"), || fetch("t2")).await.unwrap();
        assert_eq!(renewed.value.expose(), Some("t2"));
    }

    /// Caches a token for `subject` that is handed out for `seconds`.
    async fn put(cache: &TokenCache, subject: &str, seconds: u64) {
        let lifetime = Duration::from_secs(seconds);
        cache.get_or_fetch(&key(subject), || async { Ok(token(subject, lifetime)) }).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn evicts_expired_tokens_first_then_the_soonest_to_expire() {
        let cache = TokenCache::new(3);
        put(&cache, "a", 60).await;
        put(&cache, "b", 120).await;
        put(&cache, "c", 180).await;
        tokio::time::advance(Duration::from_secs(61)).await;
        // At capacity, a new key makes room: "a" is past its refresh time, so it goes, and only it.
        put(&cache, "d", 300).await;
        assert_eq!(cache.len(), 3);
        assert!(!holds(&cache, "a") && holds(&cache, "b") && holds(&cache, "c") && holds(&cache, "d"));
        // None has expired: the one expiring soonest goes.
        put(&cache, "e", 300).await;
        assert_eq!(cache.len(), 3);
        assert!(!holds(&cache, "b") && holds(&cache, "c") && holds(&cache, "d") && holds(&cache, "e"));
    }

    // The renewal rule (`Credentials::fetch`) through `Credentials::authorize`, against a token
    // endpoint on loopback. The token requests run on the real clock, since a paused clock
    // would advance through reqwest's timeouts while it waits for the socket; the waiting
    // between them runs on a paused clock.

    /// A token endpoint issuing `t1`, `t2`, ... that live `lifetime` seconds: its URL, and how
    /// many it issued.
    async fn token_endpoint(lifetime: u64) -> (String, Arc<AtomicUsize>) {
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let issue = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("t{n}");
            async move {
                axum::Json(
                    serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime}),
                )
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/token", axum::routing::post(issue));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, issued)
    }

    fn token_exchange(url: &str) -> Credentials {
        let config: CredentialsConfig = toml::from_str(&format!(
            "mode = 'token_exchange'\nclient_id = 'c'\nclient_secret = 's'\ntoken_endpoint = '{url}'"
        ))
        .unwrap();
        Credentials::new("pets", &config).unwrap()
    }

    /// A caller whose own token expires `expires_in` from now (on the system clock, as a JWT's
    /// `exp`).
    fn caller(expires_in: Duration) -> Caller {
        let claims = Claims {
            subject: "alice".to_owned(),
            issuer: "https://idp.example".to_owned(),
            audience: Vec::new(),
            scopes: BTreeSet::new(),
            expires_at: SystemTime::now() + expires_in,
            client_id: None,
            raw: serde_json::Map::new(),
        };
        Caller { claims: std::sync::Arc::new(claims), token: Secret::new("caller-token") }
    }

    /// The token `authorize` hands out for `caller`.
    async fn backend_token(credentials: &Credentials, caller: &Caller) -> String {
        let authorization = credentials.authorize(Some(caller), &["read".to_owned()]).await.unwrap();
        let Some(Applied::Header(_, value)) = authorization.applied else { panic!("no header") };
        value.to_str().unwrap().trim_start_matches("Bearer ").to_owned()
    }

    #[tokio::test]
    async fn tokens_are_renewed_before_less_than_a_fifth_or_30_seconds_is_left() {
        // (lifetime, margin): a fifth of a short lifetime, 30 s of a long one.
        for (lifetime, margin) in [(60, 12), (3600, 30)] {
            let (url, issued) = token_endpoint(lifetime).await;
            let credentials = token_exchange(&url);
            let caller = caller(Duration::from_secs(24 * 3600));
            assert_eq!(backend_token(&credentials, &caller).await, "t1");
            tokio::time::pause();
            tokio::time::advance(Duration::from_secs(lifetime - margin - 1)).await;
            let kept = backend_token(&credentials, &caller).await;
            assert_eq!(kept, "t1", "{lifetime} s token renewed with more than {margin} s left");
            tokio::time::advance(Duration::from_secs(2)).await;
            tokio::time::resume();
            let renewed = backend_token(&credentials, &caller).await;
            assert_eq!(renewed, "t2", "{lifetime} s token not renewed with less than {margin} s left");
            assert_eq!(issued.load(Ordering::SeqCst), 2);
        }
    }

    #[tokio::test]
    async fn tokens_are_not_handed_out_past_the_callers_own_token() {
        let (url, issued) = token_endpoint(3600).await;
        let credentials = token_exchange(&url);
        let caller = caller(Duration::from_secs(20));
        assert_eq!(backend_token(&credentials, &caller).await, "t1");
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(18)).await;
        assert_eq!(backend_token(&credentials, &caller).await, "t1");
        // The backend token would live another hour; the caller's own ends now.
        tokio::time::advance(Duration::from_secs(3)).await;
        tokio::time::resume();
        assert_eq!(backend_token(&credentials, &caller).await, "t2");
        assert_eq!(issued.load(Ordering::SeqCst), 2);
    }
}
