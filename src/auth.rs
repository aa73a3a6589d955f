//! The resource server's token check: a bearer token becomes verified `Claims` or a `VerifyError`.
//!
//! `verify` holds the checks (algorithm allow-list, signature, issuer, audience, lifetime, type);
//! `jwks` caches each issuer's signing keys; `discovery` reads an issuer's RFC 8414 or OpenID
//! Connect metadata; `challenge` is what a refused client is told (RFC 9728 metadata and the
//! `WWW-Authenticate` challenges). No token ever reaches a log line or an error message.

mod challenge;
mod discovery;
mod guard;
mod jwks;
mod verified;
mod verify;

#[cfg(test)]
mod testing;

pub use challenge::{Challenge, Resource};
pub use discovery::{IssuerMetadata, discover, discover_through};
pub use guard::{Caller, Guard, Refusal};
pub use jwks::{Error, Jwks, JwksConfig, MAX_DOCUMENT_BYTES, VerifyingKey};
pub use verify::{
    Claims, DEFAULT_ALGORITHMS, IssuerConfig, MAX_TOKEN_BYTES, SharedSecret, Verifier, VerifierConfig,
    VerifyError,
};
