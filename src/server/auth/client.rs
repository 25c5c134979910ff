//! Who is signing in: the client's address, for the sign-in limiter. Behind
//! a reverse proxy every request comes from the proxy, so the address the
//! proxy saw is taken from `X-Forwarded-For` — but only when the peer is one
//! of the `trusted_proxies`: anyone else could write any address there.

use axum::http::HeaderMap;
use serde::Deserialize;
use std::net::IpAddr;
use std::str::FromStr;

/// The `trusted_proxies` setting: addresses and CIDR blocks
/// (`10.0.0.0/8, 192.0.2.7, 2001:db8::/32`). Empty (the default): no peer is
/// trusted and `X-Forwarded-For` is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpBlock>);

/// An address block: `addr/prefix`; a bare address is a block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IpBlock {
    addr: IpAddr,
    prefix: u8,
}

impl IpBlock {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// True when the first `prefix` of the `width` low bits agree.
fn same_prefix(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let host_bits = width - u32::from(prefix);
    host_bits >= width || (a >> host_bits) == (b >> host_bits)
}

impl FromStr for IpBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or CIDR block");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr.trim())
            .map_err(|_| bad())?
            .to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
            None => width,
        };
        Ok(IpBlock { addr, prefix })
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated (as `OPSHUB_TRUSTED_PROXIES` gives it).
    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(IpBlock::from_str)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

/// In `Leptos.toml` either a list of strings or one comma-separated string.
impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            One(String),
            Many(Vec<String>),
        }
        let text = match Given::deserialize(deserializer)? {
            Given::One(text) => text,
            Given::Many(list) => list.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the nearest address in `X-Forwarded-For` that is not a trusted proxy
/// (read from the right: each proxy appends the address it saw, and what
/// the client sent itself stands to the left). An entry that is no address
/// ends the walk at the last trusted hop.
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut client = peer.map(|ip| ip.to_canonical())?;
    if !trusted.contains(client) {
        return Some(client);
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in forwarded.into_iter().rev() {
        let Ok(hop) = IpAddr::from_str(entry.trim()) else {
            break;
        };
        client = hop.to_canonical();
        if !trusted.contains(client) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn blocks_parse_and_match() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32".parse().unwrap();
        assert!(trusted.contains(ip("10.1.2.3")));
        assert!(
            trusted.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped peers too"
        );
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8:1::1")));
        assert!(!trusted.contains(ip("2001:db9::1")));
        let everything: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.1")));
        assert!(TrustedProxies::default().is_empty());
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "nonsense",
            "10.0.0.1/",
            "::/129",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let headers = forwarded(&["198.51.100.9, 203.0.113.5"]);
        // Not from a trusted proxy: the header is the client's own word.
        assert_eq!(
            client_address(Some(ip("203.0.113.77")), &headers, &trusted),
            Some(ip("203.0.113.77"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), &headers, &TrustedProxies::default()),
            Some(ip("10.0.0.2"))
        );
        // From a trusted proxy: the address it saw (rightmost untrusted), not
        // what the client wrote to its left.
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), &headers, &trusted),
            Some(ip("203.0.113.5"))
        );
        // Chains of trusted proxies and several header lines.
        let chain = forwarded(&["198.51.100.9", "203.0.113.5, 10.0.0.3"]);
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), &chain, &trusted),
            Some(ip("203.0.113.5"))
        );
        // Garbage where the client should be: the last trusted hop.
        let garbage = forwarded(&["203.0.113.5, not-an-ip, 10.0.0.3"]);
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), &garbage, &trusted),
            Some(ip("10.0.0.3"))
        );
        // A trusted proxy without the header: the proxy itself.
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(client_address(None, &headers, &trusted), None);
    }
}
