//! Who may administer: a signed-in administrator (session cookie) or automation holding the
//! bootstrap token (API only). Sessions are a signed cookie (HMAC-SHA256 with `admin.session_key`,
//! else a key made at start, so that a restart signs everyone out), `HttpOnly`, `SameSite=Lax`,
//! `Secure` behind https, and carry a CSRF token that every state-changing request from a browser
//! must echo.
//!
//! Invariant: a session that was signed out is refused until it expires, though its cookie is
//! still validly signed: each session has an id, and signing out records it in the store, which
//! every check of a session reads (and every mcpgate sharing the store).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{constant_time, hmac, rand};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::secrets::Secret;
use crate::store::{self, Store};

pub const SESSION_COOKIE: &str = "mcpgate_admin";
/// Holds the state of a sign-in in progress (state, PKCE verifier, nonce).
pub const LOGIN_COOKIE: &str = "mcpgate_admin_login";
const SESSION_SECS: u64 = 8 * 3600;
const LOGIN_SECS: u64 = 600;

pub struct Access {
    key: hmac::Key,
    bootstrap: Option<Secret>,
    secure: bool,
    /// Where signed-out sessions are recorded.
    store: Store,
}

/// An authenticated administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
    /// The session's CSRF token; `None` for the bootstrap token, which no browser sends on its
    /// own.
    pub csrf: Option<String>,
    /// The session, to sign out of; `None` for the bootstrap token.
    pub session: Option<SessionId>,
}

/// Which session an administrator's is, and until when it is valid.
#[derive(Debug, Clone)]
pub struct SessionId {
    id: String,
    expires: u64,
}

#[derive(Serialize, Deserialize)]
struct Session {
    /// Random; what signing out records. Cookies made before sessions had one are refused.
    sid: String,
    sub: String,
    exp: u64,
    csrf: String,
}

/// A sign-in in progress.
#[derive(Serialize, Deserialize)]
pub struct Login {
    pub state: String,
    pub verifier: String,
    pub nonce: String,
    exp: u64,
}

impl Access {
    /// With `session_key`, sessions survive restarts and are shared by replicas; without, a key
    /// is made now.
    pub fn new(
        bootstrap: Option<Secret>,
        session_key: Option<&Secret>,
        secure: bool,
        store: Store,
    ) -> Result<Access, String> {
        let key = match session_key {
            Some(secret) => {
                let bytes = secret.expose().ok_or("admin.session_key is sealed")?.as_bytes();
                if bytes.len() < 32 {
                    return Err("admin.session_key must be at least 32 bytes".to_owned());
                }
                hmac::Key::new(hmac::HMAC_SHA256, bytes)
            }
            None => hmac::Key::generate(hmac::HMAC_SHA256, &rand::SystemRandom::new())
                .map_err(|_| "cannot make the session key".to_owned())?,
        };
        Ok(Access { key, bootstrap, secure, store })
    }

    /// The administrator a request comes from, if any; an error when the store cannot say
    /// whether the session was signed out.
    pub async fn admin(&self, headers: &HeaderMap) -> Result<Option<Admin>, store::Error> {
        if let Some(token) = bearer(headers) {
            let Some(expected) = self.bootstrap.as_ref().and_then(Secret::expose) else { return Ok(None) };
            return Ok(constant_time::verify_slices_are_equal(token.as_bytes(), expected.as_bytes())
                .ok()
                .map(|_| Admin { name: "bootstrap-token".to_owned(), csrf: None, session: None }));
        }
        let Some(session) = cookie(headers, SESSION_COOKIE).and_then(|it| self.open::<Session>(it)) else {
            return Ok(None);
        };
        if self.store.is_session_revoked(&session.sid).await? {
            return Ok(None);
        }
        Ok(Some(Admin {
            name: session.sub,
            csrf: Some(session.csrf),
            session: Some(SessionId { id: session.sid, expires: session.exp }),
        }))
    }

    /// Whether a state-changing request from `admin` carries the right CSRF token.
    pub fn csrf_ok(admin: &Admin, presented: Option<&str>) -> bool {
        match (&admin.csrf, presented) {
            (None, _) => true,
            (Some(expected), Some(presented)) => {
                constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok()
            }
            (Some(_), None) => false,
        }
    }

    /// The `Set-Cookie` value that signs `name` in.
    pub fn sign_in(&self, name: &str) -> Result<String, String> {
        let session = Session {
            sid: random_token()?,
            sub: name.to_owned(),
            exp: now() + SESSION_SECS,
            csrf: random_token()?,
        };
        Ok(self.cookie(SESSION_COOKIE, &self.seal(&session)?, SESSION_SECS))
    }

    /// Ends `session` for good, wherever its cookie is presented.
    pub async fn sign_out(&self, session: &SessionId) -> Result<(), store::Error> {
        self.store.revoke_session(&session.id, session.expires, now()).await
    }

    /// The `Set-Cookie` value that removes the session cookie from the browser.
    pub fn forget_session(&self) -> String {
        self.cookie(SESSION_COOKIE, "", 0)
    }

    /// A new sign-in: its state and the cookie that remembers it.
    pub fn begin_login(&self) -> Result<(Login, String), String> {
        let login = Login {
            state: random_token()?,
            verifier: random_token()?,
            nonce: random_token()?,
            exp: now() + LOGIN_SECS,
        };
        let cookie = self.cookie(LOGIN_COOKIE, &self.seal(&login)?, LOGIN_SECS);
        Ok((login, cookie))
    }

    /// The sign-in in progress this browser started, if still valid.
    pub fn login(&self, headers: &HeaderMap) -> Option<Login> {
        self.open(cookie(headers, LOGIN_COOKIE)?)
    }

    pub fn end_login(&self) -> String {
        self.cookie(LOGIN_COOKIE, "", 0)
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }

    fn seal<T: Serialize>(&self, value: &T) -> Result<String, String> {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).map_err(|err| err.to_string())?);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
    }

    fn open<T: for<'de> Deserialize<'de> + Expiring>(&self, text: &str) -> Option<T> {
        let (payload, tag) = text.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let value: T = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (value.expires() > now()).then_some(value)
    }
}

trait Expiring {
    fn expires(&self) -> u64;
}

impl Expiring for Session {
    fn expires(&self) -> u64 {
        self.exp
    }
}

impl Expiring for Login {
    fn expires(&self) -> u64 {
        self.exp
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|it| it.to_str().ok())
        .flat_map(|it| it.split(';'))
        .filter_map(|it| it.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes).map_err(|_| "no randomness".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// A store of its own in a folder that lives as long as the test.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn with_cookie(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {pair}")).unwrap());
        headers
    }

    #[tokio::test]
    async fn sessions_are_signed_and_carry_a_csrf_token() {
        let (_dir, store) = store();
        let access = Access::new(None, None, true, store.clone()).unwrap();
        let cookie = access.sign_in("ada").unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"));
        let admin = access.admin(&with_cookie(&cookie)).await.unwrap().unwrap();
        assert_eq!(admin.name, "ada");
        let csrf = admin.csrf.clone().unwrap();
        assert!(Access::csrf_ok(&admin, Some(&csrf)));
        assert!(!Access::csrf_ok(&admin, Some("guess")) && !Access::csrf_ok(&admin, None));
        // Another process's key, or a changed payload, is not accepted.
        let other = Access::new(None, None, true, store.clone()).unwrap();
        assert!(other.admin(&with_cookie(&cookie)).await.unwrap().is_none());
        // A configured key signs alike in every process (restarts, replicas).
        let key = Secret::new("k".repeat(32));
        let shared = Access::new(None, Some(&key), true, store.clone()).unwrap().sign_in("ada").unwrap();
        let replica = Access::new(None, Some(&key), true, store.clone()).unwrap();
        let name = replica.admin(&with_cookie(&shared)).await.unwrap().map(|it| it.name);
        assert_eq!(name.as_deref(), Some("ada"));
        assert!(Access::new(None, Some(&Secret::new("short")), true, store).is_err());
        let forged = cookie.replacen("mcpgate_admin=", "mcpgate_admin=e30", 1);
        assert!(access.admin(&with_cookie(&forged)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_signed_out_session_is_refused_everywhere_though_its_cookie_is_valid() {
        let (_dir, store) = store();
        let key = Secret::new("k".repeat(32));
        let access = Access::new(None, Some(&key), false, store.clone()).unwrap();
        let replica = Access::new(None, Some(&key), false, store).unwrap();
        let (kept, ended) = (access.sign_in("ada").unwrap(), access.sign_in("ada").unwrap());
        let admin = access.admin(&with_cookie(&ended)).await.unwrap().unwrap();
        access.sign_out(admin.session.as_ref().unwrap()).await.unwrap();
        assert!(access.admin(&with_cookie(&ended)).await.unwrap().is_none());
        assert!(replica.admin(&with_cookie(&ended)).await.unwrap().is_none(), "the store is shared");
        assert!(access.admin(&with_cookie(&kept)).await.unwrap().is_some(), "another session goes on");
        assert!(access.forget_session().contains("Max-Age=0"));
    }

    #[tokio::test]
    async fn the_bootstrap_token_is_for_automation() {
        let (_dir, store) = store();
        let access = Access::new(Some(Secret::new("boot")), None, false, store.clone()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer boot"));
        let admin = access.admin(&headers).await.unwrap().unwrap();
        assert!(admin.csrf.is_none() && admin.session.is_none() && Access::csrf_ok(&admin, None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        assert!(access.admin(&headers).await.unwrap().is_none());
        let closed = Access::new(None, None, false, store).unwrap();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer boot"));
        assert!(closed.admin(&headers).await.unwrap().is_none());
    }
}
