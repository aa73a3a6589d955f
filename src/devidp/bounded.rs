//! An in-memory map with a capacity: inserting into a full map drops the oldest entry first.
//!
//! Invariant: `entries` and `order` always hold the same keys, so the map never exceeds its
//! capacity however many entries are added or taken.

use std::collections::{BTreeMap, HashMap};

pub(super) struct Bounded<V> {
    capacity: usize,
    next: u64,
    /// Each value with its insertion number, the key of `order`.
    entries: HashMap<String, (u64, V)>,
    order: BTreeMap<u64, String>,
}

impl<V> Bounded<V> {
    pub(super) fn new(capacity: usize) -> Bounded<V> {
        Bounded { capacity: capacity.max(1), next: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    /// Adds or replaces `key`; it becomes the newest entry.
    pub(super) fn insert(&mut self, key: String, value: V) {
        self.remove(&key);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(key, (seq, value));
    }

    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, value)| value)
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let (seq, value) = self.entries.remove(key)?;
        self.order.remove(&seq);
        Some(value)
    }

    /// The values, oldest first: the order in which inserting them again keeps the newest.
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.order.values().filter_map(|key| self.entries.get(key).map(|(_, value)| value))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
