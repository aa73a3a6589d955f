//! mcpgate as an HTTP client: outbound clients are built by [`client`] from a [`Policy`]
//! (deadline, pinned address, proxy); bodies are read within a cap by
//! [`read_capped`]; transport errors are put into words by [`describe`] and [`root_cause`]. The
//! forwarder, on every call's path, sends through a leaner client of its own ([`pool`]).
//!
//! Invariants: no client follows a redirect (a redirect is its answer; who follows one checks
//! each hop, as `source::fetch` and `upstream::forward` do); no client takes a proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`), only the one its policy names; a client pinned to a checked address has no
//! proxy; no description of an error contains the request's URL, whose query may carry a
//! credential.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

mod http1;
pub mod pool;
#[cfg(test)]
pub(crate) mod testing;

/// How one client sends its requests.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The deadline of each whole request, connection to last byte. `None` when each request
    /// sets its own (`RequestBuilder::timeout`) or the caller bounds the call.
    pub timeout: Option<Duration>,
    /// Connections to this host go to this address, unresolved: the address was checked, and a
    /// second DNS answer could differ from the one checked.
    pub pin: Option<(String, SocketAddr)>,
    /// The http(s) proxy every request goes through (it may carry `user:password@`); `None`
    /// connects directly.
    pub proxy: Option<Url>,
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the proxy {proxy} is not usable: {reason}")]
    Proxy { proxy: String, reason: &'static str },
    #[error("a connection pinned to a checked address cannot go through a proxy")]
    PinnedThroughProxy,
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

/// A body read up to a cap.
#[derive(Debug)]
pub struct Capped {
    /// The body, or its first `max_bytes` when it is longer.
    pub body: Vec<u8>,
    /// Whether the body went on past `max_bytes`; the rest was not read.
    pub cut: bool,
}

impl Policy {
    /// Direct connections, no deadline of the client's own, nothing pinned.
    pub fn direct() -> Policy {
        Policy { timeout: None, pin: None, proxy: None }
    }
}

/// The client `policy` describes.
pub fn client(policy: &Policy) -> Result<reqwest::Client, Error> {
    // `no_proxy` drops the proxies reqwest would read from the environment: requests would go
    // where no configuration sent them, and nothing reads the environment after start-up.
    let mut builder = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none());
    if let Some(proxy) = &policy.proxy {
        // The proxy would resolve the host itself, and could connect anywhere.
        if policy.pin.is_some() {
            return Err(Error::PinnedThroughProxy);
        }
        let unusable = |reason| Error::Proxy { proxy: shown(proxy), reason };
        // reqwest ignores a proxy of another scheme silently, and would connect directly.
        if !matches!(proxy.scheme(), "http" | "https") || !proxy.has_host() {
            return Err(unusable("only http:// and https:// proxies are supported"));
        }
        let proxy = reqwest::Proxy::all(proxy.as_str()).map_err(|_| unusable("reqwest refuses it"))?;
        builder = builder.proxy(proxy);
    }
    if let Some(timeout) = policy.timeout {
        builder = builder.timeout(timeout);
    }
    if let Some((host, addr)) = &policy.pin {
        builder = builder.resolve(host, *addr);
    }
    builder.build().map_err(|err| Error::Client(describe(&err)))
}

/// The proxy without its credentials, query or fragment.
fn shown(proxy: &Url) -> String {
    let mut it = proxy.clone();
    let _ = it.set_username("");
    let _ = it.set_password(None);
    it.set_query(None);
    it.set_fragment(None);
    it.to_string()
}

/// Reads the body of `response`, stopping once it is longer than `max_bytes`. Refusing a body
/// that does not fit or showing its beginning is the caller's choice, by [`Capped::cut`].
pub async fn read_capped(response: &mut reqwest::Response, max_bytes: u64) -> Result<Capped, reqwest::Error> {
    let mut capped = Capped { body: Vec::new(), cut: false };
    while let Some(chunk) = response.chunk().await.map_err(reqwest::Error::without_url)? {
        if !capped.push(&chunk, max_bytes) {
            break;
        }
    }
    Ok(capped)
}

impl Capped {
    /// Appends what fits of `chunk`; `false` once the body is cut.
    fn push(&mut self, chunk: &[u8], max_bytes: u64) -> bool {
        let room = usize::try_from(max_bytes).unwrap_or(usize::MAX).saturating_sub(self.body.len());
        if chunk.len() > room {
            self.body.extend_from_slice(&chunk[..room]);
            self.cut = true;
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }
}

/// What went wrong: the error's words, then its causes', outermost first, without the URL.
pub fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut words = without_url(err, err.to_string());
    let mut source = err.source();
    while let Some(cause) = source {
        words.push_str(": ");
        words.push_str(&without_url(err, cause.to_string()));
        source = cause.source();
    }
    words
}

/// The innermost cause alone, without the URL, for a message that already says what was tried
/// ("cannot reach {host}: {cause}"); the error's own words when it has no cause.
pub fn root_cause(err: &reqwest::Error) -> String {
    without_url(err, innermost(err).to_string())
}

/// The last of `err`'s chain of causes (`err` itself when it has none).
fn innermost<'a>(err: &'a (dyn std::error::Error + 'static)) -> &'a (dyn std::error::Error + 'static) {
    let mut innermost = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost
}

/// `words` with the URL of `err` taken out: reqwest appends ` for url (…)` to its own words.
fn without_url(err: &reqwest::Error, words: String) -> String {
    let Some(url) = err.url() else { return words };
    words.replace(&format!(" for url ({url})"), "").replace(url.as_str(), "the URL")
}

#[cfg(test)]
mod tests;
