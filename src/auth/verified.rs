//! [`Verified`]: the tokens a hosted server verified recently, so that a client calling again
//! with the same token (every call of a conversation) costs a lookup instead of a signature
//! check and a parse of its claims.
//!
//! Invariants: a token is found only by itself (the whole token is compared, never only a hash);
//! an entry ends when its token expires, and at most [`MAX_AGE`] after it was verified, so a
//! key the issuer withdraws stops admitting tokens within that time, as the key cache does; at
//! most [`CAPACITY`] tokens are kept, and their copies are zeroed when dropped.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use zeroize::Zeroizing;

use super::Claims;

/// How long a verified token is taken on trust at most.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Tokens kept, in all.
pub const CAPACITY: usize = 4096;
const SHARDS: usize = 16;
const PER_SHARD: usize = CAPACITY / SHARDS;

#[derive(Default)]
pub struct Verified {
    hasher: foldhash::fast::RandomState,
    shards: [Mutex<HashMap<u64, Entry>>; SHARDS],
}

struct Entry {
    token: Zeroizing<String>,
    claims: Arc<Claims>,
    until: Instant,
}

impl Verified {
    /// The claims of `token` if it was verified less than [`MAX_AGE`] ago and has not expired.
    pub fn get(&self, token: &str) -> Option<Arc<Claims>> {
        let (hash, shard) = self.place(token);
        let shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = shard.get(&hash)?;
        (entry.token.as_str() == token && Instant::now() < entry.until).then(|| entry.claims.clone())
    }

    /// Remembers that `token` was verified and carries `claims`.
    pub fn put(&self, token: &str, claims: Arc<Claims>) {
        let left = claims.expires_at.duration_since(SystemTime::now()).unwrap_or_default();
        let now = Instant::now();
        let entry = Entry { token: Zeroizing::new(token.to_owned()), claims, until: now + left.min(MAX_AGE) };
        let (hash, shard) = self.place(token);
        let mut shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if shard.len() >= PER_SHARD && !shard.contains_key(&hash) {
            shard.retain(|_, it| now < it.until);
            if shard.len() >= PER_SHARD {
                // All still valid: any one goes; its client pays one more verification.
                let any = shard.keys().next().copied();
                any.map(|it| shard.remove(&it));
            }
        }
        // A token whose hash another holds replaces it: both stay correct, one is verified again.
        shard.insert(hash, entry);
    }

    fn place(&self, token: &str) -> (u64, &Mutex<HashMap<u64, Entry>>) {
        let hash = self.hasher.hash_one(token);
        // The high bits choose the shard; the map hashes the whole value again.
        let index = usize::try_from(hash >> 60).unwrap_or_default() % SHARDS;
        (hash, &self.shards[index])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Map;

    use super::*;

    fn claims(subject: &str, expires_in: Duration) -> Arc<Claims> {
        Arc::new(Claims {
            subject: subject.to_owned(),
            issuer: "https://issuer.example".to_owned(),
            audience: vec!["https://gate.example/mcp/pets".to_owned()],
            scopes: BTreeSet::new(),
            expires_at: SystemTime::now() + expires_in,
            client_id: None,
            raw: Map::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_found_by_itself_until_max_age() {
        let verified = Verified::default();
        verified.put("token-a", claims("alice", Duration::from_secs(3600)));
        assert_eq!(verified.get("token-a").map(|it| it.subject.clone()).as_deref(), Some("alice"));
        assert!(verified.get("token-b").is_none());
        assert!(verified.get("token-").is_none() && verified.get("token-aa").is_none());
        tokio::time::advance(MAX_AGE).await;
        assert!(verified.get("token-a").is_none(), "verified again after MAX_AGE");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_ends_when_it_expires() {
        let verified = Verified::default();
        verified.put("short", claims("bob", Duration::from_secs(5)));
        assert!(verified.get("short").is_some());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(verified.get("short").is_none());
        verified.put("expired", claims("bob", Duration::ZERO));
        assert!(verified.get("expired").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_capacity_tokens_are_kept() {
        let verified = Verified::default();
        for n in 0..CAPACITY * 3 {
            verified.put(&format!("token-{n}"), claims("carol", Duration::from_secs(3600)));
        }
        let kept: usize = verified.shards.iter().map(|it| it.lock().unwrap().len()).sum();
        assert!(kept <= CAPACITY, "{kept} kept");
        let last = format!("token-{}", CAPACITY * 3 - 1);
        assert!(verified.get(&last).is_some(), "the newest is kept");
    }
}
