//! Who a request comes from, for rate limits and per-address caps.
//!
//! The peer address of the TCP connection, unless that peer is a trusted
//! proxy (`--trusted-proxy CIDR…`): then the client is the rightmost address
//! in `Forwarded` (`for=`) or else `X-Forwarded-For` that is not itself a
//! trusted proxy. Headers from any other peer are ignored, since anyone can
//! send them. IPv6 clients are keyed by their /64 (one subscriber usually
//! holds a whole /64), IPv4-mapped IPv6 as IPv4.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// Proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Trust these networks.
    #[must_use]
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        Self(nets)
    }

    /// Parse `10.0.0.0/8`, `192.0.2.7` (a single address) or `2001:db8::/32`.
    ///
    /// # Errors
    /// A sentence naming the bad entry.
    pub fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
        let text = text.trim();
        ipnet::IpNet::from_str(text)
            .or_else(|_| IpAddr::from_str(text).map(ipnet::IpNet::from))
            .map_err(|_| format!("{text:?} is not an address or CIDR network (e.g. 10.0.0.0/8)"))
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether any proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The key a request is limited and counted by (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(pub IpAddr);

/// IPv4-mapped IPv6 as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An address as a limiting key: IPv6 cut to its /64.
#[must_use]
pub fn address_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client's address for a request from `peer` with `headers`.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return canonical(peer);
    }
    let hops = forwarded_for(headers);
    // Rightmost first: each proxy appends the address it saw. The first one
    // not trusted is the client (or a liar the proxies cannot vouch past).
    hops.into_iter()
        .rev()
        .map(canonical)
        .find(|ip| !trusted.contains(*ip))
        .unwrap_or(canonical(peer))
}

/// The `for=` addresses of `Forwarded`, else those of `X-Forwarded-For`,
/// in order. Unparseable entries (obfuscated identifiers, `unknown`) are
/// skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("for")
                .then(|| parse_node(value.trim().trim_matches('"')))
                .flatten()
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|node| parse_node(node.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(text) {
        return Some(ip);
    }
    if let Ok(sock) = SocketAddr::from_str(text) {
        return Some(sock.ip());
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok()
}

/// Middleware: put the request's [`ClientKey`] into its extensions.
pub async fn client_address(
    State(trusted): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let ip = client_ip(peer, request.headers(), &trusted);
    request.extensions_mut().insert(ClientKey(address_key(ip)));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets.iter()
                .map(|n| TrustedProxies::parse_net(n).unwrap())
                .collect(),
        )
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let header = |v: &'static str| HeaderValue::from_static(v);
        let via_proxy = |h: &HeaderMap| client_ip(ip("10.0.0.1"), h, &trusted(&["10.0.0.0/8"]));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", header("203.0.113.9, 10.0.0.2"));
        // Untrusted peer: headers ignored.
        let direct = ip("198.51.100.1");
        assert_eq!(client_ip(direct, &h, &TrustedProxies::default()), direct);
        assert_eq!(client_ip(direct, &h, &trusted(&["10.0.0.0/8"])), direct);
        // Trusted peer: the rightmost untrusted hop.
        assert_eq!(via_proxy(&h), ip("203.0.113.9"));
        // A client cannot pick its address by prepending hops.
        h.insert("x-forwarded-for", header("1.2.3.4, 203.0.113.9, 10.0.0.2"));
        assert_eq!(via_proxy(&h), ip("203.0.113.9"));
        // Forwarded wins over X-Forwarded-For, with ports and IPv6 brackets.
        let forwarded = "for=\"[2001:db8:1:2::7]:4711\";proto=https, for=10.0.0.3";
        h.insert("forwarded", header(forwarded));
        assert_eq!(via_proxy(&h), ip("2001:db8:1:2::7"));
        // Nothing usable: the peer.
        let empty = HeaderMap::new();
        let peer = ip("10.0.0.1");
        assert_eq!(client_ip(peer, &empty, &trusted(&["10.0.0.1"])), peer);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:bbbb::9")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn bad_networks_are_refused_clearly() {
        assert!(TrustedProxies::parse_net("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse_net("proxy.local").is_err());
        assert!(TrustedProxies::parse_net("192.0.2.7").is_ok());
    }
}
