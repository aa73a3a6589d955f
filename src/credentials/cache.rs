//! Tokens obtained for backends, kept until shortly before they expire.
//!
//! Each key has a slot whose lock is held while its token is fetched, so concurrent first calls
//! for one key make one request and share its result, failures included. The number of keys is
//! bounded: at capacity, expired tokens go first, then those expiring soonest; slots being
//! fetched are kept (so concurrent fetches may exceed it briefly).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
        match fetch().await {
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::credentials::Failure;

    fn key(subject: &str) -> Key {
        Key { subject: subject.to_owned(), scopes: vec!["read".to_owned()] }
    }

    fn token(value: &str, lifetime: Duration) -> Token {
        Token { value: Secret::new(value), refresh_at: Instant::now() + lifetime }
    }

    #[tokio::test]
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

    #[tokio::test]
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
}
