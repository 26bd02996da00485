//! Where rapport may connect to on its own (webhook endpoints, a client's or an identity
//! provider's JWKS URI): `https` only, and never to an address inside the network
//! rapport runs in (loopback, private, link-local, unique-local, multicast, unspecified and
//! the other special-purpose ranges), IPv4 and IPv6 alike, IPv4 embedded in IPv6 included.
//! The rule is checked at registration and again on the address actually connected at each
//! delivery: the HTTP client resolves through `CheckedResolver`, which hands the connector
//! only allowed addresses, so a DNS answer that changes after registration cannot reach a
//! private one. `RAPPORT_WEBHOOK_ALLOW_PRIVATE=true` lifts both rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long registration waits for a hostname to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest URL accepted.
pub const MAX_URL: usize = 2_048;

/// One entry of an IANA special-purpose address registry: the prefix, its length, whether
/// the registry calls it globally reachable, and what it is.
struct Special<T> {
    prefix: T,
    len: u32,
    global: bool,
    name: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u32, global: bool, name: &'static str) -> Special<u32> {
    Special {
        prefix: u32::from_be_bytes([a, b, c, d]),
        len,
        global,
        name,
    }
}

const fn v6(prefix: u128, len: u32, global: bool, name: &'static str) -> Special<u128> {
    Special {
        prefix,
        len,
        global,
        name,
    }
}

/// The IANA IPv4 Special-Purpose Address Registry (as of 2025-10), plus multicast
/// (224.0.0.0/4, not in that registry and never a webhook target). "Globally reachable"
/// decides; the deprecated 6to4 relay anycast prefix (N/A there) is refused.
const V4_SPECIAL: &[Special<u32>] = &[
    v4(0, 0, 0, 0, 8, false, "an unspecified (\"this network\") address"),
    v4(10, 0, 0, 0, 8, false, "a private address"),
    v4(100, 64, 0, 0, 10, false, "a shared (carrier-grade NAT) address"),
    v4(127, 0, 0, 0, 8, false, "a loopback address"),
    v4(169, 254, 0, 0, 16, false, "a link-local address"),
    v4(172, 16, 0, 0, 12, false, "a private address"),
    v4(192, 0, 0, 0, 24, false, "an IETF protocol assignment"),
    v4(192, 0, 0, 0, 29, false, "an IPv4 service continuity address"),
    v4(192, 0, 0, 8, 32, false, "the IPv4 dummy address"),
    v4(192, 0, 0, 9, 32, true, "the PCP anycast address"),
    v4(192, 0, 0, 10, 32, true, "the TURN anycast address"),
    v4(192, 0, 0, 170, 32, false, "a NAT64/DNS64 discovery address"),
    v4(192, 0, 0, 171, 32, false, "a NAT64/DNS64 discovery address"),
    v4(192, 0, 2, 0, 24, false, "a documentation address (TEST-NET-1)"),
    v4(192, 31, 196, 0, 24, true, "AS112-v4"),
    v4(192, 52, 193, 0, 24, true, "AMT"),
    v4(192, 88, 99, 0, 24, false, "a deprecated 6to4 relay anycast address"),
    v4(192, 168, 0, 0, 16, false, "a private address"),
    v4(192, 175, 48, 0, 24, true, "direct delegation AS112"),
    v4(198, 18, 0, 0, 15, false, "a benchmarking address"),
    v4(198, 51, 100, 0, 24, false, "a documentation address (TEST-NET-2)"),
    v4(203, 0, 113, 0, 24, false, "a documentation address (TEST-NET-3)"),
    v4(224, 0, 0, 0, 4, false, "a multicast address"),
    v4(240, 0, 0, 0, 4, false, "a reserved address"),
    v4(255, 255, 255, 255, 32, false, "the limited broadcast address"),
];

/// The IANA IPv6 Special-Purpose Address Registry (as of 2025-10), plus multicast
/// (ff00::/8) and the deprecated site-local (fec0::/10) and IPv4-compatible (::/96)
/// prefixes. Teredo (2001::/32) and the deprecated ORCHID (2001:10::/28) are refused;
/// ORCHIDv2 (2001:20::/28) is globally reachable and allowed.
const V6_SPECIAL: &[Special<u128>] = &[
    v6(0, 128, false, "an unspecified address"),
    v6(1, 128, false, "a loopback address"),
    v6(0, 96, false, "an IPv4-compatible address"),
    v6(0xffff_0000_0000, 96, false, "an IPv4-mapped address"),
    v6(0x0064_ff9b << 96, 96, true, "an IPv4/IPv6 translation address"),
    v6(
        0x0064_ff9b_0001 << 80,
        48,
        false,
        "a local-use IPv4/IPv6 translation address",
    ),
    v6(0x0100 << 112, 64, false, "a discard-only address"),
    v6((0x0100 << 112) | (1 << 64), 64, false, "the dummy IPv6 prefix"),
    v6(0x2001 << 112, 23, false, "an IETF protocol assignment"),
    v6(0x2001 << 112, 32, false, "a Teredo address"),
    v6((0x2001_0001 << 96) | 1, 128, true, "the PCP anycast address"),
    v6((0x2001_0001 << 96) | 2, 128, true, "the TURN anycast address"),
    v6(
        (0x2001_0001 << 96) | 3,
        128,
        true,
        "the DNS-SD service registration anycast address",
    ),
    v6(0x2001_0002 << 96, 48, false, "a benchmarking address"),
    v6(0x2001_0003 << 96, 32, true, "AMT"),
    v6(0x2001_0004_0112 << 80, 48, true, "AS112-v6"),
    v6(0x2001_0010 << 96, 28, false, "a deprecated ORCHID address"),
    v6(0x2001_0020 << 96, 28, true, "ORCHIDv2"),
    v6(0x2001_0030 << 96, 28, true, "a drone remote ID address"),
    v6(0x2001_0db8 << 96, 32, false, "a documentation address"),
    v6(0x2002 << 112, 16, true, "a 6to4 address"),
    v6(0x2620_004f_8000 << 80, 48, true, "direct delegation AS112"),
    v6(0x3fff << 112, 20, false, "a documentation address"),
    v6(0x5f00 << 112, 16, false, "a segment routing (SRv6) SID"),
    v6(0xfc00 << 112, 7, false, "a unique-local address"),
    v6(0xfe80 << 112, 10, false, "a link-local address"),
    v6(0xfec0 << 112, 10, false, "a site-local address"),
    v6(0xff00 << 112, 8, false, "a multicast address"),
];

/// The most specific entry holding `ip`.
fn most_specific<T>(table: &[Special<T>], ip: T, bits: u32, mask: impl Fn(u32) -> T) -> Option<&Special<T>>
where
    T: Copy + PartialEq + std::ops::BitAnd<Output = T>,
{
    table
        .iter()
        .filter(|e| e.len <= bits && ip & mask(e.len) == e.prefix & mask(e.len))
        .max_by_key(|e| e.len)
}

/// Why an address may not be a target; `None` when it may.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let mask = |len: u32| u32::MAX.checked_shl(32 - len).unwrap_or(0);
    match most_specific(V4_SPECIAL, u32::from(ip), 32, mask) {
        Some(e) if !e.global => Some(e.name),
        _ => None,
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let mask = |len: u32| u128::MAX.checked_shl(128 - len).unwrap_or(0);
    if let Some(e) = most_specific(V6_SPECIAL, bits, 128, mask)
        && !e.global
    {
        // An IPv4-mapped address is judged by the IPv4 address it reaches.
        if e.len != 96 || e.prefix != 0xffff_0000_0000 {
            return Some(e.name);
        }
    }
    // Addresses that reach an embedded IPv4 address are judged by it too: IPv4-mapped
    // (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48). (Teredo,
    // 2001::/32, is refused whole above.)
    let embedded = if bits >> 32 == 0xffff || bits >> 32 == 0x0064_ff9b << 64 {
        Some(Ipv4Addr::from(bits as u32))
    } else if bits >> 112 == 0x2002 {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    };
    embedded.and_then(forbidden_v4)
}

/// Checks a URL given at registration: absolute, `https` (unless `allow_private`), no
/// credentials, no fragment, and a host whose every address is allowed. The error is a
/// sentence for the `url` field.
pub async fn check_registration(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    if raw.len() > MAX_URL {
        return Err(format!("must be at most {MAX_URL} characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("must be an absolute URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (put them in the receiver's own configuration)".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    let host = match url.host() {
        Some(host) => host,
        None => return Err("must name a host".into()),
    };
    if allow_private {
        return Ok(url);
    }
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(_)) | Err(_) => return Err(format!("host `{name}` does not resolve")),
            }
        }
    };
    if addresses.is_empty() {
        return Err("host does not resolve".into());
    }
    for ip in addresses {
        if let Some(why) = forbidden(ip) {
            return Err(format!("must not reach {why} ({ip})"));
        }
    }
    Ok(url)
}

/// The delivery client's resolver: resolves once and hands the connector only allowed
/// addresses (all of them with `allow_private`), so the address connected is the address
/// checked.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || forbidden(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let why = found
                    .first()
                    .and_then(|a| forbidden(a.ip()).map(|w| format!("{host} resolves to {w} ({})", a.ip())))
                    .unwrap_or_else(|| format!("{host} does not resolve"));
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A web origin as given (`scheme://host[:port]`, http or https, nothing after it), in its
/// serialised form; the error is a sentence naming it.
pub fn web_origin(given: &str) -> Result<String, String> {
    let url = url::Url::parse(given).map_err(|e| format!("`{given}` is not an origin: {e}"))?;
    let origin = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || origin != given.trim_end_matches('/') {
        return Err(format!("`{given}` must be scheme://host[:port], with no path"));
    }
    Ok(origin)
}

/// The check for a URL whose host is an IP literal (the connector resolves no name then).
pub fn check_literal(url: &url::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match forbidden(ip) {
        Some(why) => Err(format!("refused: {ip} is {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        forbidden(s.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_addresses_are_refused_in_both_families() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            // v3: every not-globally-reachable range of the IANA registries.
            "64:ff9b:1::1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "192.0.0.8",
            "192.0.0.170",
            "198.19.255.255",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:10::1",
            "2001:2::1",
            "3fff::1",
            "5f00::1",
            "100::1",
            "fec0::1",
            "64:ff9b::c000:201",
            "2002:c000:0201::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn the_most_specific_registry_entry_decides() {
        // Globally reachable entries inside refused ones.
        for ip in [
            "192.0.0.9",
            "192.0.0.10",
            "2001:1::1",
            "2001:1::2",
            "2001:20::1",
            "2001:3::1",
            "2001:4:112::1",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
        assert!(refused("192.0.0.11") && refused("2001:1::4"));
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[tokio::test]
    async fn registration_refuses_plain_http_internal_literals_and_names_resolving_inside() {
        for url in [
            "http://example.org/hook",
            "https://127.0.0.1/hook",
            "https://10.0.0.8/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://[fc00::]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost:8443/hook",
            "https://user:pass@example.org/hook",
            "ftp://example.org/hook",
            "not a url",
        ] {
            assert!(check_registration(url, false).await.is_err(), "{url} should be refused");
        }
        assert!(check_registration("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(
            check_registration("https://[2606:4700::1111]/hook", false)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_resolver_never_hands_out_an_internal_address() {
        use reqwest::dns::Resolve as _;
        let strict = CheckedResolver { allow_private: false };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(strict.resolve(name).await.is_err());
        let open = CheckedResolver { allow_private: true };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = open.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
