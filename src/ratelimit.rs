//! Rate limits on tool calls: a token bucket per (user, tool) and one per tool for all users
//! together, each refilled continuously at its rate and holding at most a minute's worth of
//! calls. A [`Limiter`] belongs to one hosted server and outlives its publications.
//!
//! A bucket is kept as one number, the time at which it will be full again (GCRA, the generic
//! cell rate algorithm): a call moves that time one interval later, and is refused when it would
//! be more than a minute ahead. A bucket whose time has passed is full, exactly as if it did not
//! exist, so dropping it loses nothing.
//!
//! Invariant: memory is bounded. The buckets live in [`SHARDS`] maps, each of at most
//! [`CAPACITY`] / [`SHARDS`] entries; a full shard first drops its full buckets, then, if active
//! ones still crowd it, the eighth closest to full (whose users get a fresh bucket: more than
//! [`CAPACITY`] users calling within one minute is beyond what the limiter tracks exactly; the
//! per-tool bucket still holds). Times are tokio's, so tests pause and advance the clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Buckets one limiter tracks at most: 100,000 users each calling two tools within a minute.
pub const CAPACITY: usize = 1 << 18;
/// Maps the buckets are spread over, each behind its own lock, held for a lookup and an update.
pub const SHARDS: usize = 64;

const MINUTE_NANOS: u64 = 60_000_000_000;

/// A rate: calls per minute, at most that many at once after a quiet minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    per_minute: u64,
    /// Nanoseconds between calls at the steady rate.
    interval: u64,
}

impl Rate {
    /// `per_minute` calls a minute (at least one).
    pub fn per_minute(per_minute: u64) -> Rate {
        let per_minute = per_minute.max(1);
        Rate { per_minute, interval: (MINUTE_NANOS / per_minute).max(1) }
    }

    pub fn calls_per_minute(self) -> u64 {
        self.per_minute
    }

    /// How far ahead a bucket's time may be after a call: a whole bucket's worth of intervals.
    fn tolerance(self) -> u64 {
        self.interval.saturating_mul(self.per_minute)
    }
}

/// The rates of one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls of one user.
    pub per_user: Rate,
    /// Calls of all users together.
    pub per_tool: Rate,
}

/// Why a call is refused, and when the next one would not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's own bucket for this tool is empty.
    User { rate: Rate, retry_after: Duration },
    /// The tool's bucket, shared by all users, is empty.
    Tool { rate: Rate, retry_after: Duration },
}

impl Refusal {
    /// Whole seconds to wait, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        let (Refusal::User { retry_after, .. } | Refusal::Tool { retry_after, .. }) = self;
        retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
    }
}

/// Words for the caller (the MCP edge shows them as a tool error): which limit, and when to retry.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rate, whom) = match self {
            Refusal::User { rate, .. } => (rate, "by each user"),
            Refusal::Tool { rate, .. } => (rate, "by all users together"),
        };
        let secs = self.retry_after_secs();
        let unit = if secs == 1 { "second" } else { "seconds" };
        write!(
            f,
            "Rate limit reached: this tool may be called {} times a minute {whom}. Try again in {secs} {unit}.",
            rate.per_minute
        )
    }
}

/// The buckets of one hosted server. Cheap to share (`Arc`); every method takes `&self`.
pub struct Limiter {
    /// Times are nanoseconds since this instant.
    epoch: Instant,
    /// Seeded per process: a caller cannot choose user names that land in one shard.
    hasher: foldhash::fast::RandomState,
    shards: Box<[Shard]>,
    per_shard: usize,
}

/// One map of buckets: key (a hash of the user and tool, or of the tool) to the time the bucket
/// is full again. Aligned so that two shards' locks never share a cache line.
#[repr(align(64))]
struct Shard(Mutex<HashMap<u64, u64, foldhash::fast::FixedState>>);

/// Which bucket a key names; part of the hash, so that a user and a tool never share one.
#[derive(Hash)]
enum Bucket<'a, U> {
    User(&'a U, &'a str),
    Tool(&'a str),
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::with_capacity(CAPACITY)
    }
}

impl Limiter {
    /// A limiter tracking at most `capacity` buckets.
    pub fn with_capacity(capacity: usize) -> Limiter {
        let shards = (0..SHARDS).map(|_| Shard(Mutex::new(HashMap::default()))).collect();
        Limiter {
            epoch: Instant::now(),
            hasher: foldhash::fast::RandomState::default(),
            shards,
            per_shard: (capacity / SHARDS).max(8),
        }
    }

    /// Takes a call of `tool` by `user` from both buckets, or says which is empty and for how
    /// long. A call the tool's bucket refuses gives the user's token back.
    pub fn check(&self, user: &impl Hash, tool: &str, limits: &Limits) -> Result<(), Refusal> {
        let now = self.now();
        let user_key = self.hasher.hash_one(Bucket::User(user, tool));
        let tool_key = self.hasher.hash_one(Bucket::<()>::Tool(tool));
        if let Err(wait) = self.take(user_key, now, limits.per_user) {
            return Err(Refusal::User { rate: limits.per_user, retry_after: Duration::from_nanos(wait) });
        }
        if let Err(wait) = self.take(tool_key, now, limits.per_tool) {
            self.give_back(user_key, limits.per_user);
            return Err(Refusal::Tool { rate: limits.per_tool, retry_after: Duration::from_nanos(wait) });
        }
        Ok(())
    }

    /// Buckets held now, full ones included until a shard needs their room.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|it| lock(it).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(Instant::now().saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, u64, foldhash::fast::FixedState>> {
        // The high bits pick the shard; the map hashes the whole key again.
        lock(&self.shards[(key >> 58) as usize % SHARDS])
    }

    /// One call from the bucket `key`: `Err(nanoseconds to wait)` when it is empty.
    fn take(&self, key: u64, now: u64, rate: Rate) -> Result<(), u64> {
        let mut shard = self.shard(key);
        let full_at = shard.get(&key).copied().unwrap_or(now).max(now);
        let next = full_at.saturating_add(rate.interval);
        let ahead = next - now;
        if ahead > rate.tolerance() {
            return Err(ahead - rate.tolerance());
        }
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            make_room(&mut shard, now, self.per_shard);
        }
        shard.insert(key, next);
        Ok(())
    }

    fn give_back(&self, key: u64, rate: Rate) {
        if let Some(full_at) = self.shard(key).get_mut(&key) {
            *full_at = full_at.saturating_sub(rate.interval);
        }
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<u64, u64, foldhash::fast::FixedState>> {
    // A panic while a shard was held leaves at worst one bucket a call off.
    shard.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Frees room in a full shard: drops the full buckets, then, while more than seven eighths of
/// `capacity` are still active, those closest to full. Each pass frees at least an eighth, so the
/// cost is constant per call on average.
fn make_room(shard: &mut HashMap<u64, u64, foldhash::fast::FixedState>, now: u64, capacity: usize) {
    shard.retain(|_, full_at| *full_at > now);
    let keep = capacity - capacity / 8;
    if shard.len() > keep {
        let mut times: Vec<u64> = shard.values().copied().collect();
        let drop = shard.len() - keep;
        let (_, threshold, _) = times.select_nth_unstable(drop - 1);
        let threshold = *threshold;
        shard.retain(|_, full_at| *full_at > threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_user: u64, per_tool: u64) -> Limits {
        Limits { per_user: Rate::per_minute(per_user), per_tool: Rate::per_minute(per_tool) }
    }

    fn refused_for(result: Result<(), Refusal>) -> u64 {
        result.expect_err("refused").retry_after_secs()
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_gets_a_minutes_worth_at_once_then_one_per_interval() {
        let limiter = Limiter::default();
        let limits = limits(2, 100);
        assert!(limiter.check(&"alice", "getPet", &limits).is_ok());
        assert!(limiter.check(&"alice", "getPet", &limits).is_ok());
        let refusal = limiter.check(&"alice", "getPet", &limits).unwrap_err();
        assert!(matches!(refusal, Refusal::User { .. }), "{refusal:?}");
        assert_eq!(refusal.retry_after_secs(), 30);
        // Others, and the same user's other tools, have buckets of their own.
        assert!(limiter.check(&"bob", "getPet", &limits).is_ok());
        assert!(limiter.check(&"alice", "listPets", &limits).is_ok());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(refused_for(limiter.check(&"alice", "getPet", &limits)), 20);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(limiter.check(&"alice", "getPet", &limits).is_ok(), "refilled by one");
        assert_eq!(refused_for(limiter.check(&"alice", "getPet", &limits)), 30);
        // A quiet minute fills the bucket again, and no more than full.
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(limiter.check(&"alice", "getPet", &limits).is_ok());
        assert!(limiter.check(&"alice", "getPet", &limits).is_ok());
        assert!(limiter.check(&"alice", "getPet", &limits).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_tools_bucket_is_shared_and_a_refusal_costs_the_user_nothing() {
        let limiter = Limiter::default();
        let limits = limits(2, 3);
        for user in ["a", "b", "c"] {
            assert!(limiter.check(&user, "addPet", &limits).is_ok(), "{user}");
        }
        let refusal = limiter.check(&"d", "addPet", &limits).unwrap_err();
        assert!(matches!(refusal, Refusal::Tool { .. }), "{refusal:?}");
        assert_eq!(refusal.retry_after_secs(), 20);
        tokio::time::advance(Duration::from_secs(40)).await;
        // `d` was refused by the tool's bucket: its own still holds two calls.
        assert!(limiter.check(&"d", "addPet", &limits).is_ok());
        assert!(limiter.check(&"d", "addPet", &limits).is_ok());
        assert!(limiter.check(&"d", "addPet", &limits).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_capped_and_full_buckets_go_first() {
        let limiter = Limiter::with_capacity(SHARDS * 64);
        let limits = limits(10, 1_000_000);
        // One user calling a lot keeps an active bucket.
        for _ in 0..5 {
            assert!(limiter.check(&"steady", "t", &limits).is_ok());
        }
        for user in 0..20_000u32 {
            assert!(limiter.check(&user, "t", &limits).is_ok());
        }
        assert!(limiter.len() <= SHARDS * 64 + 1, "{}", limiter.len());
        // The crowd's buckets were the closest to full, so they made room; the steady user's
        // bucket was kept, with its five calls.
        for _ in 0..5 {
            assert!(limiter.check(&"steady", "t", &limits).is_ok());
        }
        assert!(limiter.check(&"steady", "t", &limits).is_err());
        // After a quiet minute every bucket is full: a new crowd replaces the old one whole.
        tokio::time::advance(Duration::from_secs(61)).await;
        for user in 20_000..40_000u32 {
            assert!(limiter.check(&user, "t", &limits).is_ok());
        }
        assert!(limiter.len() <= SHARDS * 64 + 1, "{}", limiter.len());
    }

    #[test]
    fn retry_hints_round_up_to_whole_seconds() {
        let hint =
            |nanos| Refusal::User { rate: Rate::per_minute(1), retry_after: Duration::from_nanos(nanos) };
        assert_eq!(hint(1).retry_after_secs(), 1);
        assert_eq!(hint(1_000_000_000).retry_after_secs(), 1);
        assert_eq!(hint(1_000_000_001).retry_after_secs(), 2);
        assert_eq!(Rate::per_minute(0).calls_per_minute(), 1);
    }
}
