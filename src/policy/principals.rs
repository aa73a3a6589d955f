//! The principal entity of each recent caller, made once per token rather than on every call.
//!
//! A token's claims are verified once and shared (`Arc<Claims>`) by its requests for up to a
//! minute (`auth::verified`); the principal Cedar reads is a function of those claims and of the
//! claims the configuration types, both fixed for one publication. So a publication's policies
//! keep, per slot, the last caller's claims (as a `Weak`) and its principal.
//!
//! Invariant: a principal is found only for the very claims it was made from. The slot keeps the
//! claims' allocation alive (a `Weak` does), so no other claims can be allocated at that address
//! while the slot names it: equal addresses mean the same claims.

use std::sync::{Arc, Mutex, Weak};

use cedar_policy::{Entity, EntityUid};

use crate::auth::Claims;

/// How many callers' principals one publication keeps; a caller whose slot was taken by another
/// since is made again (what every call cost before this cache).
const SLOTS: usize = 256;

/// A caller as Cedar's principal.
pub(super) struct Principal {
    pub entity: Entity,
    pub uid: EntityUid,
}

pub(super) struct Principals {
    // std locks: held only to compare a pointer and clone an `Arc`.
    slots: Box<[Mutex<Option<Slot>>]>,
}

struct Slot {
    claims: Weak<Claims>,
    principal: Arc<Principal>,
}

impl Principals {
    pub fn new() -> Principals {
        Principals { slots: (0..SLOTS).map(|_| Mutex::new(None)).collect() }
    }

    /// The principal of `claims`, made by `make` unless it was made for these claims before.
    pub fn get(
        &self,
        claims: &Arc<Claims>,
        make: impl FnOnce(&Claims) -> Option<Principal>,
    ) -> Option<Arc<Principal>> {
        let slot = &self.slots[index(claims)];
        if let Some(found) =
            lock(slot).as_ref().filter(|it| std::ptr::eq(it.claims.as_ptr(), Arc::as_ptr(claims)))
        {
            return Some(found.principal.clone());
        }
        // Made without the lock: two first calls of one caller may both make it, which is harmless.
        let principal = Arc::new(make(claims)?);
        *lock(slot) = Some(Slot { claims: Arc::downgrade(claims), principal: principal.clone() });
        Some(principal)
    }
}

fn lock(slot: &Mutex<Option<Slot>>) -> std::sync::MutexGuard<'_, Option<Slot>> {
    // A panic while the lock was held leaves a slot that is whole or empty.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The slot of `claims`: Fibonacci hashing of its address, whose low bits are alignment.
fn index(claims: &Arc<Claims>) -> usize {
    let address = Arc::as_ptr(claims) as usize as u64;
    let mixed = (address >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // The top bits are the best mixed; `SLOTS` is a power of two.
    usize::try_from(mixed >> (64 - SLOTS.trailing_zeros())).unwrap_or(0) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn claims(subject: &str) -> Arc<Claims> {
        Arc::new(Claims {
            subject: subject.to_owned(),
            issuer: "https://idp.example".to_owned(),
            audience: Vec::new(),
            scopes: Default::default(),
            expires_at: SystemTime::now() + Duration::from_secs(60),
            client_id: None,
            raw: Default::default(),
        })
    }

    fn make(claims: &Claims) -> Option<Principal> {
        let uid = super::super::request::uid("Caller", &claims.subject)?;
        Some(Principal { entity: Entity::new_no_attrs(uid.clone(), Default::default()), uid })
    }

    #[test]
    fn a_principal_is_made_once_per_claims() {
        let principals = Principals::new();
        let alice = claims("alice");
        let first = principals.get(&alice, make).unwrap();
        let again = principals.get(&alice, |_| panic!("made twice")).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Equal claims in another allocation (the same token verified again) are another key.
        let other = claims("alice");
        let made = principals.get(&other, make).unwrap();
        assert!(!Arc::ptr_eq(&first, &made));
    }

    #[test]
    fn claims_dropped_never_lend_their_principal() {
        let principals = Principals::new();
        let mut seen = Vec::new();
        for n in 0..(4 * SLOTS) {
            let caller = claims(&format!("user{n}"));
            let principal = principals.get(&caller, make).unwrap();
            assert_eq!(principal.uid.id().unescaped(), format!("user{n}"));
            seen.push(principal);
        }
    }
}
