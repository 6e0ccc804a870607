//! Who a request comes from: the peer, or behind a trusted reverse proxy
//! the client that proxy names in `X-Forwarded-For`. The per-address limits
//! count by this; behind a proxy the peer is the proxy for everyone.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::domain::trusted_proxy::TrustedProxy;

/// The client's address: the peer's, unless the peer is a trusted proxy;
/// then, walking `X-Forwarded-For` from the right (the entries a trusted
/// proxy appended), the first address that is not a trusted proxy. A
/// client can put anything at the left of the header, so nothing left of
/// that is believed.
pub(super) fn client_address(req: &HttpRequest, trusted: &[TrustedProxy]) -> Option<IpAddr> {
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
