//! The sessions of one hosted server that have ended, here or on another replica, remembered
//! until their ids expire: a request naming one is answered 404, not served as the session of
//! another replica. Bounded: past [`MAX_ENDED`], the oldest is forgotten first.

use std::collections::{HashSet, VecDeque};

use tokio::time::Instant;

/// Ended sessions remembered at most: beyond, the oldest is forgotten, and its id served as
/// another replica's session until it expires.
const MAX_ENDED: usize = 100_000;

#[derive(Default)]
pub(super) struct EndedSessions {
    ids: HashSet<String>,
    /// The same ids with when they may be forgotten, in the order they were added: every id is
    /// remembered for the same time, so the first to expire is at the front.
    order: VecDeque<(Instant, String)>,
}

impl EndedSessions {
    /// Remembers `id` until `expires`: whether it was not remembered already.
    pub fn insert(&mut self, id: String, now: Instant, expires: Instant) -> bool {
        while self.order.front().is_some_and(|(it, _)| *it <= now) || self.order.len() >= MAX_ENDED {
            if let Some((_, forgotten)) = self.order.pop_front() {
                self.ids.remove(&forgotten);
            }
        }
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.order.push_back((expires, id));
        true
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ids_are_remembered_once_until_they_expire() {
        let mut ended = EndedSessions::default();
        let start = Instant::now();
        let day = Duration::from_secs(86_400);
        assert!(ended.insert("a".to_owned(), start, start + day));
        assert!(!ended.insert("a".to_owned(), start, start + day), "already remembered");
        assert!(ended.insert("b".to_owned(), start + day / 2, start + day + day / 2));
        assert!(ended.contains("a") && ended.contains("b"));
        assert!(ended.insert("c".to_owned(), start + day, start + 2 * day));
        assert!(!ended.contains("a"), "expired");
        assert!(ended.contains("b") && ended.contains("c"));
    }

    #[test]
    fn the_oldest_is_forgotten_at_the_cap() {
        let mut ended = EndedSessions::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for n in 0..=MAX_ENDED {
            ended.insert(n.to_string(), now, later);
        }
        assert!(!ended.contains("0"));
        assert!(ended.contains("1") && ended.contains(&MAX_ENDED.to_string()));
        assert_eq!(ended.ids.len(), MAX_ENDED);
    }
}
