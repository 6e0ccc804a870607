//! Who a request comes from: the peer, or behind a trusted reverse proxy
//! the client that proxy names in `X-Forwarded-For`. The per-address limits
//! count by this; behind a proxy the peer is the proxy for everyone.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;

/// A proxy address or network (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`) whose
/// `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(raw: &str) -> Result<TrustedProxy, String> {
        let (address, prefix) = raw.trim().split_once('/').unwrap_or((raw.trim(), ""));
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or network"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            bits
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("{raw:?}: the prefix length must be 0 to {bits}"))?
        };
        Ok(TrustedProxy { network, prefix })
    }
}

impl TrustedProxy {
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        match (canonical(self.network), address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as the IPv4 one.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy;
/// then, walking `X-Forwarded-For` from the right (the entries a trusted
/// proxy appended), the first address that is not a trusted proxy. A
/// client can put anything at the left of the header, so nothing left of
/// that is believed.
pub fn client_address(req: &HttpRequest, trusted: &[TrustedProxy]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |address: IpAddr| trusted.iter().any(|proxy| proxy.contains(address));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|entry| entry.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        // A list with an entry that is no address is not believed at all.
        .unwrap_or_default();
    Some(
        forwarded
            .iter()
            .rev()
            .copied()
            .find(|address| !is_trusted(*address))
            .or_else(|| forwarded.first().copied())
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter()
            .map(|raw| raw.parse().expect("a proxy"))
            .collect()
    }

    fn from(peer: &str, forwarded: Option<&str>, trusted: &[&str]) -> Option<IpAddr> {
        let mut request = TestRequest::default().peer_addr(peer.parse().expect("a peer"));
        if let Some(forwarded) = forwarded {
            request = request.insert_header(("X-Forwarded-For", forwarded));
        }
        client_address(&request.to_http_request(), &proxies(trusted))
    }

    fn ip(raw: &str) -> Option<IpAddr> {
        raw.parse().ok()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net: TrustedProxy = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        let one: TrustedProxy = "fd00::1".parse().unwrap();
        assert!(one.contains("fd00::1".parse().unwrap()));
        assert!(!one.contains("fd00::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("proxy.local".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn x_forwarded_for_counts_only_from_a_trusted_peer() {
        let peer = "10.0.0.5:40000";
        assert_eq!(from(peer, Some("203.0.113.7"), &[]), ip("10.0.0.5"));
        assert_eq!(
            from(peer, Some("203.0.113.7"), &["10.0.0.5"]),
            ip("203.0.113.7")
        );
        assert_eq!(from(peer, None, &["10.0.0.0/8"]), ip("10.0.0.5"));
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let trusted = ["10.0.0.0/8"];
        // The client wrote "1.2.3.4" itself; the proxies appended the rest.
        let chain = "1.2.3.4, 198.51.100.9, 10.0.0.7";
        assert_eq!(
            from("10.0.0.5:1", Some(chain), &trusted),
            ip("198.51.100.9")
        );
        // Only proxies in the chain: the leftmost is as far as it goes.
        assert_eq!(
            from("10.0.0.5:1", Some("10.9.9.9, 10.0.0.7"), &trusted),
            ip("10.9.9.9")
        );
        // Garbage is not believed.
        assert_eq!(
            from("10.0.0.5:1", Some("1.2.3.4, not-an-ip"), &trusted),
            ip("10.0.0.5")
        );
    }
}
