//! The principal entity of each recent caller, made once per token rather than on every call,
//! and which tools that caller may list, decided once rather than on every page.
//!
//! A token's claims are verified once and shared (`Arc<Claims>`) by its requests for up to a
//! minute (`auth::verified`); the principal Cedar reads is a function of those claims and of the
//! claims the configuration types, both fixed for one publication. So a publication's policies
//! keep, per slot, the last caller's claims (as a `Weak`) and its principal.
//!
//! Whether a tool is listed is a function of the principal, the tool and the publication's
//! policies, and of the time when a policy reads it: it is kept with the principal, with the
//! second it was decided in when it depends on the time. A client listing GitHub's 1,223 tools
//! asks for 13 pages, each filtering the whole catalog. Principals made alike (the same caller's
//! token verified again after a minute, or callers with the same claims) share those decisions.
//!
//! Invariant: a principal is found only for the very claims it was made from. The slot keeps the
//! claims' allocation alive (a `Weak` does), so no other claims can be allocated at that address
//! while the slot names it: equal addresses mean the same claims.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use cedar_policy::{Entity, EntityUid};

use crate::auth::Claims;

/// How many callers' principals one publication keeps; a caller whose slot was taken by another
/// since is made again (what every call cost before this cache).
const SLOTS: usize = 256;

/// How many principals' listings one publication keeps, by the principal's content; beyond, they
/// are forgotten together and decided again.
const LISTINGS: usize = 256;

/// A caller as Cedar's principal.
pub(super) struct Principal {
    pub entity: Entity,
    pub uid: EntityUid,
    listed: Arc<Mutex<Listed>>,
}

/// Which tools the caller may list, by their place in the publication, as decided in `second`.
#[derive(Default)]
struct Listed {
    second: u64,
    shown: Vec<Shown>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Undecided,
    Yes,
    No,
}

impl Principal {
    pub fn new(entity: Entity) -> Principal {
        Principal { uid: entity.uid(), entity, listed: Arc::default() }
    }

    /// Whether the tool at `place` (of `tool_count`) is listed for this caller at `second` (0, a
    /// second of its own, when no policy reads the time), decided by `decide` unless it was in that
    /// second before.
    pub fn may_list(
        &self,
        place: usize,
        tool_count: usize,
        second: u64,
        decide: impl FnOnce() -> bool,
    ) -> bool {
        {
            let listed = lock(&self.listed);
            if listed.second == second {
                match listed.shown.get(place) {
                    Some(Shown::Yes) => return true,
                    Some(Shown::No) => return false,
                    Some(Shown::Undecided) | None => {}
                }
            }
        }
        // Decided without the lock: two pages asked at once may both decide, which is harmless.
        let shown = decide();
        let mut listed = lock(&self.listed);
        if second < listed.second {
            // Decided as another page was decided in a later second: that one's decisions stay.
            return shown;
        }
        if listed.second != second {
            *listed = Listed { second, shown: Vec::new() };
        }
        if listed.shown.len() != tool_count {
            listed.shown = vec![Shown::Undecided; tool_count];
        }
        if let Some(it) = listed.shown.get_mut(place) {
            *it = if shown { Shown::Yes } else { Shown::No };
        }
        shown
    }
}

pub(super) struct Principals {
    // std locks: held only to compare a pointer and clone an `Arc`.
    slots: Box<[Mutex<Option<Slot>>]>,
    /// The listing decisions of each principal made, by its entity's JSON.
    listings: Mutex<HashMap<String, Arc<Mutex<Listed>>>>,
}

struct Slot {
    claims: Weak<Claims>,
    principal: Arc<Principal>,
}

impl Principals {
    pub fn new() -> Principals {
        Principals { slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(), listings: Mutex::default() }
    }

    /// The principal of `claims`, whose entity `make` makes unless it was made for these claims
    /// before.
    pub fn get(
        &self,
        claims: &Arc<Claims>,
        make: impl FnOnce(&Claims) -> Option<Entity>,
    ) -> Option<Arc<Principal>> {
        let slot = &self.slots[index(claims)];
        if let Some(found) =
            lock(slot).as_ref().filter(|it| std::ptr::eq(it.claims.as_ptr(), Arc::as_ptr(claims)))
        {
            return Some(found.principal.clone());
        }
        // Made without the lock: two first calls of one caller may both make it, which is harmless.
        let entity = make(claims)?;
        let listed = match entity.to_json_string() {
            Ok(key) => {
                let mut listings = lock(&self.listings);
                if listings.len() >= LISTINGS && !listings.contains_key(&key) {
                    listings.clear();
                }
                listings.entry(key).or_default().clone()
            }
            Err(_) => Arc::default(),
        };
        let principal = Arc::new(Principal { uid: entity.uid(), entity, listed });
        *lock(slot) = Some(Slot { claims: Arc::downgrade(claims), principal: principal.clone() });
        Some(principal)
    }
}

fn lock<T>(it: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while a lock was held leaves a slot that is whole or empty, and a listing whose
    // decisions are each whole.
    it.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn make(claims: &Claims) -> Option<Entity> {
        let uid = super::super::request::uid("Caller", &claims.subject)?;
        Some(Entity::new_no_attrs(uid, Default::default()))
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

    #[test]
    fn a_listing_is_decided_once_per_tool_and_second() {
        let principal = Principal::new(make(&claims("alice")).unwrap());
        assert!(principal.may_list(1, 3, 0, || true));
        assert!(!principal.may_list(2, 3, 0, || false));
        assert!(principal.may_list(1, 3, 0, || panic!("decided twice")));
        assert!(!principal.may_list(2, 3, 0, || panic!("decided twice")));
        // Another second decides again, as a policy reading the time asks.
        assert!(!principal.may_list(1, 3, 7, || false));
        assert!(!principal.may_list(1, 3, 7, || panic!("decided twice")));
    }

    #[test]
    fn principals_made_alike_share_their_listing() {
        let principals = Principals::new();
        let first = principals.get(&claims("alice"), make).unwrap();
        assert!(first.may_list(0, 2, 0, || true));
        // The same caller's token verified again: other claims, an equal principal.
        let again = principals.get(&claims("alice"), make).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert!(again.may_list(0, 2, 0, || panic!("decided twice")));
        let bob = principals.get(&claims("bob"), make).unwrap();
        assert!(!bob.may_list(0, 2, 0, || false));
        assert!(first.may_list(0, 2, 0, || panic!("decided twice")));
    }
}
