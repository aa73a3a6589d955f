//! The browser side of mode `authorization_code`: tickets, which bind a link to the MCP user who
//! asked, and the authorizations under way, each waiting for its callback.
//!
//! A ticket is the user, the server and an expiry, sealed with the store's keys for the place
//! `{purpose}/{server}` (AES-GCM: it cannot be forged, read, or used for another server or
//! purpose). An authorization under way is kept here, in memory, under a random `state`; the
//! callback takes it out, so a `state` is used once, and only within [`FLOW_LIFETIME`], and only
//! by the browser that started it (a random cookie whose digest is kept with it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::vault::{User, now};
use crate::secrets::{Keyring, Secret};

/// How long a link (ticket) and an authorization under way stay usable.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Authorizations under way at once, for all servers; beyond it the oldest expired go, then new
/// ones are refused.
const MAX_PENDING: usize = 10_000;
/// Authorizations under way for one user on one server; a new one ends their oldest, so that
/// one user's clicks cannot fill [`MAX_PENDING`].
const MAX_PENDING_PER_USER: usize = 5;

/// What a ticket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Starting a connection (the link a tool call hands out).
    Connect,
    /// Seeing and revoking one's connection (the link the callback page offers).
    Manage,
}

impl Purpose {
    fn place(self, server: &str) -> String {
        match self {
            Purpose::Connect => format!("connect-ticket/{server}"),
            Purpose::Manage => format!("manage-ticket/{server}"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Ticket {
    iss: String,
    sub: String,
    exp: u64,
}

/// A ticket for `user` on `server`, to put in a URL.
pub fn ticket(keyring: &Keyring, purpose: Purpose, server: &str, user: &User) -> Option<String> {
    let ticket =
        Ticket { iss: user.issuer.clone(), sub: user.subject.clone(), exp: now() + FLOW_LIFETIME.as_secs() };
    let json = Zeroizing::new(serde_json::to_string(&ticket).ok()?);
    let sealed = keyring.seal(&Secret::new(json.as_str()), &purpose.place(server)).ok()?;
    match serde_json::to_value(&sealed).ok()? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    }
}

/// The user a ticket names, if it is a ticket for `purpose` on `server` and has not expired.
pub fn open_ticket(keyring: &Keyring, purpose: Purpose, server: &str, text: &str) -> Option<User> {
    if text.len() > 4096 {
        return None;
    }
    let sealed = Secret::new(text);
    if !sealed.is_sealed() {
        return None;
    }
    let opened = keyring.open(&sealed, &purpose.place(server)).ok()?;
    let ticket: Ticket = serde_json::from_str(opened.expose()?).ok()?;
    (ticket.exp > now()).then_some(User { issuer: ticket.iss, subject: ticket.sub })
}

/// A random value for `state`, a PKCE verifier or a cookie: 256 bits, base64url.
pub fn random_token() -> Option<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut *bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(*bytes))
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

fn digest(value: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes()).as_ref().to_vec()
}

/// One authorization under way.
pub struct Pending {
    pub server: String,
    pub user: User,
    pub verifier: Zeroizing<String>,
    browser: Vec<u8>,
    expires: Instant,
}

/// Every authorization under way, by `state`. Shared by every server and every publication of
/// one (a publication while a user approves must not lose their authorization).
#[derive(Clone)]
pub struct Flows {
    // A std lock: held only to insert or take, never across an await.
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    /// Bumped at each completed connection, whoever's: calls waiting for their user to connect
    /// try again.
    completions: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Flows {
    fn default() -> Flows {
        Flows { pending: Arc::default(), completions: Arc::new(tokio::sync::watch::Sender::new(0)) }
    }
}

/// Why a callback is refused, in words for the page.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Never issued, used already, or expired (they are forgotten on expiry).
    Unknown,
    /// Issued for another server.
    OtherServer,
    /// Started in another browser.
    OtherBrowser,
}

impl Flows {
    /// Keeps an authorization of `user` on `server` started with `verifier` by the browser
    /// holding `cookie`: its `state`, or `None` when too many are under way.
    pub fn begin(
        &self,
        server: &str,
        user: User,
        verifier: Zeroizing<String>,
        cookie: &str,
    ) -> Option<String> {
        let state = random_token()?;
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let theirs = |it: &Pending| it.server == server && it.user == user;
        while pending.values().filter(|it| theirs(it)).count() >= MAX_PENDING_PER_USER {
            let oldest = pending
                .iter()
                .filter(|(_, it)| theirs(it))
                .min_by_key(|(_, it)| it.expires)
                .map(|(state, _)| state.clone());
            let Some(oldest) = oldest else { break };
            pending.remove(&oldest);
        }
        if pending.len() >= MAX_PENDING {
            let now = Instant::now();
            pending.retain(|_, it| it.expires > now);
            if pending.len() >= MAX_PENDING {
                return None;
            }
        }
        let entry = Pending {
            server: server.to_owned(),
            user,
            verifier,
            browser: digest(cookie),
            expires: Instant::now() + FLOW_LIFETIME,
        };
        pending.insert(state.clone(), entry);
        Some(state)
    }

    /// Hears of connections completed from now on.
    pub fn completions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.completions.subscribe()
    }

    /// Tells the calls waiting for a connection that one was made.
    pub fn completed(&self) {
        self.completions.send_modify(|it| *it += 1);
    }

    /// Takes the authorization `state` for `server`, if the browser holding `cookie` started it
    /// and it has not expired. A `state` is taken once, whatever the verdict.
    pub fn finish(&self, server: &str, state: &str, cookie: Option<&str>) -> Result<Pending, Refused> {
        let taken = {
            let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            pending.retain(|_, it| it.expires > now);
            pending.remove(state)
        };
        let pending = taken.ok_or(Refused::Unknown)?;
        if pending.server != server {
            return Err(Refused::OtherServer);
        }
        let same_browser = cookie.is_some_and(|it| {
            aws_lc_rs::constant_time::verify_slices_are_equal(&digest(it), &pending.browser).is_ok()
        });
        if !same_browser {
            return Err(Refused::OtherBrowser);
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(subject: &str) -> User {
        User { issuer: "https://idp".into(), subject: subject.into() }
    }

    #[test]
    fn tickets_open_only_for_their_server_and_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::configured_or_local(&[], dir.path()).unwrap();
        let text = ticket(&keyring, Purpose::Connect, "pets", &user("alice")).unwrap();
        assert_eq!(open_ticket(&keyring, Purpose::Connect, "pets", &text), Some(user("alice")));
        assert_eq!(open_ticket(&keyring, Purpose::Connect, "other", &text), None);
        assert_eq!(open_ticket(&keyring, Purpose::Manage, "pets", &text), None);
        assert_eq!(open_ticket(&keyring, Purpose::Connect, "pets", "mcpgate-sealed:v1:x:AAAA"), None);
        assert_eq!(open_ticket(&keyring, Purpose::Connect, "pets", "{\"iss\":\"a\"}"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_is_used_once_by_its_browser_within_its_lifetime() {
        let flows = Flows::default();
        let verifier = || Zeroizing::new("v".to_owned());
        let state = flows.begin("pets", user("alice"), verifier(), "cookie-1").unwrap();
        assert_eq!(flows.finish("pets", &state, Some("cookie-2")).err(), Some(Refused::OtherBrowser));
        assert_eq!(
            flows.finish("pets", &state, Some("cookie-1")).err(),
            Some(Refused::Unknown),
            "taken once"
        );
        let state = flows.begin("pets", user("alice"), verifier(), "cookie-1").unwrap();
        assert_eq!(flows.finish("apps", &state, Some("cookie-1")).err(), Some(Refused::OtherServer));
        let state = flows.begin("pets", user("alice"), verifier(), "cookie-1").unwrap();
        tokio::time::advance(FLOW_LIFETIME + Duration::from_secs(1)).await;
        assert_eq!(flows.finish("pets", &state, Some("cookie-1")).err(), Some(Refused::Unknown));
        let state = flows.begin("pets", user("alice"), verifier(), "cookie-1").unwrap();
        let pending = flows.finish("pets", &state, Some("cookie-1")).unwrap();
        assert_eq!((pending.user, pending.verifier.as_str()), (user("alice"), "v"));
        // One user's authorizations under way are capped: a new one ends their oldest.
        let mut states = Vec::new();
        for _ in 0..=MAX_PENDING_PER_USER {
            states.push(flows.begin("pets", user("alice"), verifier(), "cookie-1").unwrap());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let bob = flows.begin("pets", user("bob"), verifier(), "cookie-b").unwrap();
        assert_eq!(flows.finish("pets", &states[0], Some("cookie-1")).err(), Some(Refused::Unknown));
        assert!(flows.finish("pets", &states[MAX_PENDING_PER_USER], Some("cookie-1")).is_ok());
        assert!(flows.finish("pets", &bob, Some("cookie-b")).is_ok());
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
