//! The client address of a request: the socket peer, or, only when the peer
//! is a trusted reverse proxy, the nearest untrusted hop in
//! `X-Forwarded-For` (read right to left, so a client can't forge its way
//! past the proxies by sending its own header).

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

fn trusted(ip: &IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(ip))
}

/// The address a request came from, given the peer and the trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(&peer, proxies) {
        return peer;
    }
    // All X-Forwarded-For headers form one list, in order.
    let hops: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A malformed hop ends the trusted chain: keep the last address a trusted proxy vouched for.
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip.to_canonical();
        if !trusted(&client, proxies) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(ip("203.0.113.9"), &headers(&["198.51.100.1"]), &proxies), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("203.0.113.9"), &headers(&[]), &[]), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxies_hand_over_the_nearest_untrusted_hop() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        // client, forged entry first: the forged left part is never reached.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &proxies), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("::1"), &headers(&["2001:db8::5"]), &proxies), ip("2001:db8::5"));
        // No header, or garbage: the proxy itself (or the last vouched hop).
        assert_eq!(client_ip(ip("10.0.0.2"), &headers(&[]), &proxies), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &headers(&["nonsense"]), &proxies), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &headers(&["198.51.100.7, junk, 10.0.0.9"]), &proxies), ip("10.0.0.9"));
        // IPv4-mapped peers count as IPv4.
        assert_eq!(client_ip(ip("::ffff:10.0.0.2"), &headers(&["198.51.100.7"]), &proxies), ip("198.51.100.7"));
    }
}
