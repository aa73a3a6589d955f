//! The vault of mode `authorization_code`: each user's tokens for one hosted server's backend,
//! kept in the store, every token sealed with the store's keys for its own place (server and
//! user), so a sealed token copied to another user's record does not open.
//!
//! Invariant: no token leaves this file in clear except to `consent`, which sends it to the
//! backend or to its authorization server; listings carry no token at all.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Failure;
use crate::secrets::{Keyring, Secret};
use crate::store::Store;

/// Whom a connection belongs to: the MCP caller's issuer and subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    pub issuer: String,
    pub subject: String,
}

impl User {
    /// The store's id of this user's connection: a digest, so ids are short, safe in keys and
    /// say nothing of the user.
    pub fn id(&self) -> String {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{}\n{}", self.issuer, self.subject).as_bytes(),
        );
        digest.as_ref().iter().map(|it| format!("{it:02x}")).collect()
    }
}

/// One user's connection, as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct Connection {
    pub user: User,
    /// Seconds since the Unix epoch.
    pub connected_at: u64,
    pub scopes: Vec<String>,
    /// When the access token was issued and when it expires (seconds since the Unix epoch).
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// The backend refused the tokens or the authorization server the refresh: the user must
    /// approve again. The record stays, so the admin API shows it.
    pub needs_consent: bool,
}

/// The connections of one hosted server.
#[derive(Clone)]
pub struct Vault {
    store: Store,
    keyring: Arc<Keyring>,
    server: String,
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs())
}

fn unavailable(err: impl std::fmt::Display) -> Failure {
    tracing::error!(%err, "the connections vault cannot be used");
    Failure::new(
        "mcpgate cannot read its stored connections now. Try again later, or tell the administrator.",
    )
}

impl Vault {
    pub fn new(store: Store, keyring: Arc<Keyring>, server: &str) -> Vault {
        Vault { store, keyring, server: server.to_owned() }
    }

    fn place(&self, user: &User, field: &str) -> String {
        format!("connections/{}/{}/{field}", self.server, user.id())
    }

    /// The connection of `user`, tokens opened.
    pub async fn get(&self, user: &User) -> Result<Option<Connection>, Failure> {
        let Some(bytes) = self.store.connection(&self.server, &user.id()).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let mut connection: Connection = serde_json::from_slice(&bytes).map_err(unavailable)?;
        // A record whose user is not the one asked for is not theirs (ids are digests).
        if connection.user != *user {
            return Ok(None);
        }
        for (field, slot) in
            [("access_token", &mut connection.access_token), ("refresh_token", &mut connection.refresh_token)]
        {
            if let Some(secret) = slot.as_ref() {
                *slot = Some(self.keyring.open(secret, &self.place(user, field)).map_err(unavailable)?);
            }
        }
        Ok(Some(connection))
    }

    pub async fn put(&self, connection: &Connection) -> Result<(), Failure> {
        let mut sealed = connection.clone();
        let user = &connection.user;
        for (field, slot) in
            [("access_token", &mut sealed.access_token), ("refresh_token", &mut sealed.refresh_token)]
        {
            if let Some(secret) = slot.as_ref() {
                *slot = Some(self.keyring.seal(secret, &self.place(user, field)).map_err(unavailable)?);
            }
        }
        let bytes = serde_json::to_vec(&sealed).map_err(unavailable)?;
        self.store.put_connection(&self.server, &user.id(), &bytes).await.map_err(unavailable)
    }

    /// Forgets the connection of `user`; whether there was one.
    pub async fn delete(&self, user: &User) -> Result<bool, Failure> {
        self.store.delete_connection(&self.server, &user.id()).await.map_err(unavailable)
    }

    /// Every connection of the server, tokens left sealed (listings never need them).
    pub async fn list(&self) -> Result<Vec<Connection>, Failure> {
        let stored = self.store.connections(&self.server).await.map_err(unavailable)?;
        Ok(stored.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_sealed_for_their_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keyring = Arc::new(Keyring::configured_or_local(&[], dir.path()).unwrap());
        let vault = Vault::new(store.clone(), keyring, "pets");
        let alice = User { issuer: "https://idp".into(), subject: "alice".into() };
        let connection = Connection {
            user: alice.clone(),
            connected_at: 1,
            scopes: vec!["read".into()],
            issued_at: 1,
            expires_at: Some(2),
            access_token: Some(Secret::new("access-1234567")),
            refresh_token: Some(Secret::new("refresh-1234567")),
            needs_consent: false,
        };
        vault.put(&connection).await.unwrap();
        let raw = store.connection("pets", &alice.id()).await.unwrap().unwrap();
        let raw = String::from_utf8_lossy(&raw);
        assert!(!raw.contains("access-1234567") && !raw.contains("refresh-1234567"), "{raw}");
        let opened = vault.get(&alice).await.unwrap().unwrap();
        assert_eq!(opened.access_token.unwrap().expose(), Some("access-1234567"));
        let bob = User { issuer: "https://idp".into(), subject: "bob".into() };
        assert!(vault.get(&bob).await.unwrap().is_none());
        // Alice's sealed tokens moved to Bob's record do not open there.
        store
            .put_connection("pets", &bob.id(), raw.replace("\"alice\"", "\"bob\"").as_bytes())
            .await
            .unwrap();
        assert!(vault.get(&bob).await.is_err());
        assert_eq!(vault.list().await.unwrap().len(), 2);
        assert!(vault.delete(&alice).await.unwrap());
    }
}
