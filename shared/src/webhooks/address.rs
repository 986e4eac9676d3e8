//! Which URLs an endpoint may have and which addresses a delivery may connect to (SSRF). In AWS only
//! `https` URLs whose every resolved address is a public unicast one; the devstack allowance
//! (`WEBHOOK_ALLOW_PRIVATE_URLS=true`, never in the template) also lets `http` and private,
//! loopback or link-local addresses through, for local receivers and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::Uri;

/// The longest URL an endpoint may have (the column's check says the same).
pub const MAX_URL_LEN: usize = 2048;

/// Whether a delivery may connect to `ip`: a public unicast address, not loopback, private
/// (RFC 1918, fc00::/7), link-local (169.254/16 with the instance metadata endpoint, fe80::/10),
/// CGNAT (100.64/10), unspecified, multicast, broadcast, documentation, benchmarking or reserved;
/// IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 169 && b == 254) // link-local, instance metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96): the IPv4 address in the last 32 bits is what is reached.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 (2002::/16): the IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000; // 2000::/3; excludes ::, ::1, fc00::/7, fe80::/10, ff00::/8
    let teredo = s[0] == 0x2001 && s[1] == 0; // 2001::/32
    let documentation = s[0] == 0x2001 && s[1] == 0xdb8; // 2001:db8::/32
    let benchmarking = s[0] == 0x2001 && s[1] == 2 && s[2] == 0; // 2001:2::/48
    let orchid = s[0] == 0x2001 && (0x10..0x30).contains(&s[1]); // 2001:10::/28, 2001:20::/28
    global_unicast && !teredo && !documentation && !benchmarking && !orchid
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The host of a URI as an IP address, if it is a literal (`[::1]` without its brackets).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Why a URL may not be an endpoint's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Checks an endpoint's URL at creation (and again before every send): absolute `https` (or `http`
/// with the allowance), a host, no credentials, at most [`MAX_URL_LEN`] characters, and not a
/// literal address or a `localhost` name that [`is_public`] refuses (without the allowance).
/// Hostnames are resolved and checked at send time, by the sender's resolver.
pub fn validate_url(url: &str, allow_private: bool) -> Result<Uri, UrlRefused> {
    let refuse = |why: &str| Err(UrlRefused(why.to_string()));
    if url.len() > MAX_URL_LEN {
        return refuse("the URL is longer than 2048 characters");
    }
    let Ok(uri) = url.parse::<Uri>() else {
        return refuse("the URL is not an absolute http(s) URL");
    };
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_private => {}
        Some("http") => return refuse("the URL must use https"),
        _ => return refuse("the URL must be an absolute https URL"),
    }
    let Some(authority) = uri.authority() else {
        return refuse("the URL has no host");
    };
    if authority.as_str().contains('@') {
        return refuse("the URL must not carry credentials (user:password@)");
    }
    let host = authority.host();
    if host.is_empty() {
        return refuse("the URL has no host");
    }
    if !allow_private {
        // The functions' security group allows outbound 443 only: another port would time out
        // for the whole retry period.
        if uri.port_u16().is_some_and(|p| p != 443) {
            return refuse("the URL must use port 443 (the default for https)");
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = literal_ip(host) {
            if !is_public(ip) {
                return refuse("the URL's address is private, loopback, link-local or reserved");
            }
        } else if name == "localhost" || name.ends_with(".localhost") || !name.contains('.') {
            return refuse("the URL's host must be a public DNS name");
        }
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:0001::1",
            "2001:db8::1",
            "2001::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(s)), "{s} must be refused");
        }
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2a00:1450::1",
        ] {
            assert!(is_public(ip(s)), "{s} must be allowed");
        }
    }

    #[test]
    fn urls_are_checked_at_creation() {
        let refused = |u: &str| validate_url(u, false).is_err();
        assert!(validate_url("https://hooks.example.com/ledger?x=1", false).is_ok());
        assert!(validate_url("https://8.8.8.8:443/", false).is_ok());
        assert!(validate_url("https://8.8.8.8:8443/", false).is_err());
        assert!(validate_url("https://8.8.8.8:8443/", true).is_ok());
        for u in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "hooks.example.com/path",
            "/relative",
            "",
            "https://user:pw@hooks.example.com/",
            "https://user@hooks.example.com/",
            "https://127.0.0.1/",
            "https://10.0.0.8/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]:8443/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://intranet/",
            "https://exa mple.com/",
        ] {
            assert!(refused(u), "{u} must be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(refused(&long));
        // The devstack allowance: http and private addresses for local receivers.
        assert!(validate_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(validate_url("http://localhost:9000/hook", true).is_ok());
        assert!(validate_url("http://u:p@127.0.0.1/", true).is_err());
        assert!(validate_url("ftp://127.0.0.1/", true).is_err());
    }
}
