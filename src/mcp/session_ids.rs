//! Session ids that any replica can check. The id a client receives is not rmcp's: it is rmcp's
//! id, the subject that opened the session and an expiry, sealed (AES-256-GCM) with the store's
//! keys for this hosted server. The replica that opened the session knows it by that id; any
//! other replica sharing the keys (or this one after a restart) opens it and serves the
//! session's tool calls and listings, and its notification stream.
//!
//! Invariants: an id opens only for the server it was issued for (the server is the sealing's
//! associated data), only for its subject in auth mode `jwt`, and only until it expires; an id
//! that does not open is an unknown session.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldhash::{HashMap, HashMapExt};

use serde::{Deserialize, Serialize};

use super::endpoint::Subject;
use crate::secrets::{Keyring, Secret};

/// How long an id stays usable on replicas that did not open its session (the one that did
/// ends it when unused for `endpoint::IDLE_TIMEOUT`).
pub const LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Ids are short; anything longer is no id of ours.
const MAX_LEN: usize = 512;

/// Ids kept opened at most; past it, the kept ones are forgotten at once.
const MAX_KEPT: usize = 4096;

pub(super) struct SessionIds {
    keyring: Arc<Keyring>,
    /// What each id is sealed for: this hosted server.
    place: String,
    /// Ids opened lately, with what they say: opening one (base64, AES-GCM, JSON) would cost
    /// each call of a session more than the rest of its way through the endpoint. What an id
    /// says never changes; its expiry is checked at each use. Only ids that opened are kept, so
    /// a client cannot fill this with ids of its own making. A std lock: held only to look up
    /// or insert.
    kept: Mutex<HashMap<Box<str>, Sealed>>,
}

/// What an id says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Sealed {
    /// rmcp's id of the session, on the replica that opened it.
    pub local: String,
    /// `iss` and `sub` of the caller that opened it (auth mode `jwt`), or nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<(String, String)>,
    /// Seconds since the Unix epoch.
    pub exp: u64,
}

impl Sealed {
    /// Whether `subject` may use the session: in mode `jwt` its caller alone; in mode `none`
    /// anyone who has the id, as on the replica that opened it.
    pub fn admits(&self, subject: &Subject) -> bool {
        match (subject, &self.owner) {
            (Subject::Caller { issuer, subject }, Some((owner_issuer, owner))) => {
                issuer == owner_issuer && subject == owner
            }
            (Subject::Caller { .. }, None) | (_, Some(_)) => false,
            (Subject::Address(_) | Subject::Unknown, None) => true,
        }
    }
}

impl SessionIds {
    pub fn new(keyring: Arc<Keyring>, slug: &str) -> SessionIds {
        SessionIds { keyring, place: format!("mcp-session/{slug}"), kept: Mutex::new(HashMap::new()) }
    }

    /// The id to give the client of rmcp's session `local`, opened by `subject`.
    pub fn issue(&self, local: &str, subject: &Subject) -> Option<String> {
        let owner = match subject {
            Subject::Caller { issuer, subject } => Some((issuer.clone(), subject.clone())),
            Subject::Address(_) | Subject::Unknown => None,
        };
        let sealed = Sealed { local: local.to_owned(), owner, exp: now() + LIFETIME.as_secs() };
        let json = serde_json::to_string(&sealed).ok()?;
        let secret = self.keyring.seal(&Secret::new(json), &self.place).ok()?;
        match serde_json::to_value(&secret).ok()? {
            serde_json::Value::String(id) => Some(id),
            _ => None,
        }
    }

    /// What `id` says, if it is an id this server issued and it has not expired.
    pub fn open(&self, id: &str) -> Option<Sealed> {
        if id.len() > MAX_LEN {
            return None;
        }
        let kept = self.kept().get(id).cloned();
        let sealed = match kept {
            Some(sealed) => sealed,
            None => {
                let sealed = self.unseal(id)?;
                let mut kept = self.kept();
                if kept.len() >= MAX_KEPT {
                    kept.clear();
                }
                kept.insert(id.into(), sealed.clone());
                sealed
            }
        };
        (sealed.exp > now()).then_some(sealed)
    }

    fn unseal(&self, id: &str) -> Option<Sealed> {
        let sealed = Secret::new(id);
        if !sealed.is_sealed() {
            return None;
        }
        let opened = self.keyring.open(&sealed, &self.place).ok()?;
        serde_json::from_str(opened.expose()?).ok()
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Sealed>> {
        // The map holds no invariant a panic could break halfway.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|it| it.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::KeyConfig;

    fn keyring(key: &str) -> Arc<Keyring> {
        let key = Secret::new(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [key.as_bytes()[0]; 32],
        ));
        Arc::new(Keyring::new(&[KeyConfig { id: "k1".to_owned(), key }]).unwrap())
    }

    fn alice() -> Subject {
        Subject::Caller { issuer: "https://idp".to_owned(), subject: "alice".to_owned() }
    }

    #[test]
    fn an_id_opens_for_its_server_and_subject_only() {
        let ids = SessionIds::new(keyring("a"), "pets");
        let id = ids.issue("rmcp-1", &alice()).unwrap();
        assert!(id.bytes().all(|it| (0x21..=0x7e).contains(&it)), "visible ASCII: {id}");
        let sealed = ids.open(&id).unwrap();
        assert_eq!(sealed.local, "rmcp-1");
        assert!(sealed.admits(&alice()));
        let bob = Subject::Caller { issuer: "https://idp".to_owned(), subject: "bob".to_owned() };
        assert!(!sealed.admits(&bob));
        assert!(!sealed.admits(&Subject::Unknown), "a jwt session is no session without a caller");
        assert!(SessionIds::new(keyring("a"), "other").open(&id).is_none(), "another server");
        assert!(SessionIds::new(keyring("b"), "pets").open(&id).is_none(), "other keys");
        let mut tampered = id.clone();
        tampered.pop();
        tampered.push(if id.ends_with('A') { 'B' } else { 'A' });
        assert!(ids.open(&tampered).is_none());
        assert!(ids.open("a1b2c3d4-0000-0000-0000-000000000000").is_none(), "rmcp's own ids");
        assert!(ids.open(&"v1:k1:".repeat(200)).is_none());
    }

    #[test]
    fn an_id_of_mode_none_admits_anyone_with_it() {
        let ids = SessionIds::new(keyring("a"), "pets");
        let id = ids.issue("rmcp-2", &Subject::Unknown).unwrap();
        let sealed = ids.open(&id).unwrap();
        assert!(sealed.admits(&Subject::Address("10.0.0.1".parse().unwrap())));
        assert!(!sealed.admits(&alice()), "a session opened without a caller is not a caller's");
    }

    #[test]
    fn an_expired_id_does_not_open() {
        let ids = SessionIds::new(keyring("a"), "pets");
        let sealed = Sealed { local: "x".to_owned(), owner: None, exp: now() - 1 };
        let secret =
            ids.keyring.seal(&Secret::new(serde_json::to_string(&sealed).unwrap()), &ids.place).unwrap();
        let id = serde_json::to_value(&secret).unwrap().as_str().unwrap().to_owned();
        assert!(ids.open(&id).is_none());
    }

    #[test]
    fn a_kept_id_still_expires_and_still_opens_for_its_subject_only() {
        let ids = SessionIds::new(keyring("a"), "pets");
        let soon = Sealed {
            local: "x".to_owned(),
            owner: Some(("https://idp".into(), "alice".into())),
            exp: now() + 1,
        };
        let secret =
            ids.keyring.seal(&Secret::new(serde_json::to_string(&soon).unwrap()), &ids.place).unwrap();
        let id = serde_json::to_value(&secret).unwrap().as_str().unwrap().to_owned();
        assert_eq!(ids.open(&id), Some(soon.clone()));
        assert_eq!(ids.kept().len(), 1, "kept once opened");
        let kept = ids.open(&id).unwrap();
        assert!(kept.admits(&alice()) && !kept.admits(&Subject::Unknown));
        std::thread::sleep(Duration::from_millis(2100));
        assert!(ids.open(&id).is_none(), "expired, though kept");
        assert!(ids.open("v1:k1:AAAA").is_none());
        assert_eq!(ids.kept().len(), 1, "an id that does not open is not kept");
    }
}
