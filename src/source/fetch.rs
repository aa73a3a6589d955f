//! Fetches a document from an HTTP(S) URL with a size cap, a deadline, and redirects followed by
//! hand so that none can lead to a loopback, private or link-local address.
//!
//! Each hop's host is resolved once and the connection pinned to the checked address, never
//! through a proxy, so a DNS answer cannot change between the check and the request.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

use crate::outbound;

const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub struct Policy {
    pub max_bytes: u64,
    pub timeout: Duration,
    /// Whether the first URL may be on a non-public address (an admin's own choice).
    pub allow_private_origin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("only http and https URLs can be fetched, not `{0}`")]
    Scheme(String),
    #[error("{url} has no host")]
    NoHost { url: String },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{host} resolves to the non-public address {addr}, which is refused")]
    PrivateAddress { host: String, addr: IpAddr },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("redirect without a valid Location from {url}")]
    BadRedirect { url: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("the document at {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("fetching {url} failed: {reason}")]
    Transport { url: String, reason: String },
}

pub async fn fetch(url: &Url, policy: &Policy) -> Result<Vec<u8>, Error> {
    let deadline = policy.timeout;
    match tokio::time::timeout(deadline, follow(url.clone(), policy)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout { url: url.to_string(), timeout: deadline }),
    }
}

async fn follow(mut url: Url, policy: &Policy) -> Result<Vec<u8>, Error> {
    for hop in 0..=MAX_REDIRECTS {
        let allow_private = hop == 0 && policy.allow_private_origin;
        let addr = checked_address(&url, allow_private).await?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Redirects are followed here, by hand, each hop checked. Never a proxy, configured or
        // not: it would resolve the host itself and connect to an address nobody checked.
        let pinned = outbound::Policy { pin: Some((host, addr)), ..outbound::Policy::direct() };
        let client = outbound::client(&pinned)
            .map_err(|err| Error::Transport { url: url.to_string(), reason: err.to_string() })?;
        let mut response = client
            .get(url.clone())
            .header("accept", "application/json, application/yaml, text/yaml, */*;q=0.5")
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get("location")
                .and_then(|it| it.to_str().ok())
                .and_then(|it| url.join(it).ok())
                .ok_or_else(|| Error::BadRedirect { url: url.to_string() })?;
            url = location;
            continue;
        }
        if !status.is_success() {
            return Err(Error::Status { url: url.to_string(), status: status.as_u16() });
        }
        let too_large = || Error::TooLarge { url: url.to_string(), limit: policy.max_bytes };
        if response.content_length().is_some_and(|it| it > policy.max_bytes) {
            return Err(too_large());
        }
        let capped = outbound::read_capped(&mut response, policy.max_bytes)
            .await
            .map_err(|err| transport(&url, &err))?;
        if capped.cut {
            return Err(too_large());
        }
        return Ok(capped.body);
    }
    Err(Error::TooManyRedirects)
}

fn transport(url: &Url, err: &reqwest::Error) -> Error {
    Error::Transport { url: url.to_string(), reason: outbound::describe(err) }
}

/// Resolves the URL's host and returns an address that may be connected to.
async fn checked_address(url: &Url, allow_private: bool) -> Result<SocketAddr, Error> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Scheme(url.scheme().to_owned()));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = url.host().ok_or_else(|| Error::NoHost { url: url.to_string() })?;
    let (name, addrs): (String, Vec<IpAddr>) = match host {
        Host::Ipv4(ip) => (ip.to_string(), vec![IpAddr::V4(ip)]),
        Host::Ipv6(ip) => (ip.to_string(), vec![IpAddr::V6(ip)]),
        Host::Domain(domain) => {
            let resolved = tokio::net::lookup_host((domain, port))
                .await
                .map_err(|err| Error::Resolve { host: domain.to_owned(), reason: err.to_string() })?;
            (domain.to_owned(), resolved.map(|it| it.ip()).collect())
        }
    };
    if !allow_private && let Some(&addr) = addrs.iter().find(|it| !is_public(**it)) {
        return Err(Error::PrivateAddress { host: name, addr });
    }
    let addr =
        addrs.first().ok_or_else(|| Error::Resolve { host: name, reason: "no addresses".to_owned() })?;
    Ok(SocketAddr::new(*addr, port))
}

/// Whether `ip` is an ordinary internet address: not loopback, private, link-local, shared,
/// multicast, documentation or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
