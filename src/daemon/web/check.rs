//! The request checks that come before authentication, pure: the Host header against the
//! address the client reached (DNS rebinding), Origin/Referer against the Host (CSRF), and
//! the session cookie.

use std::net::SocketAddr;

/// Whether `host` (the Host header) names the address the client reached, `local`: its
/// IP and port (as qBittorrent compares the Host with the connection's local address), or
/// `localhost`, `127.0.0.1` or `[::1]` with the port when `local` is a loopback address,
/// or one of `extra` (names the owner configured, e.g. a reverse proxy's). A missing
/// port means 80. Case-insensitive.
pub fn host_allowed(host: &str, local: SocketAddr, extra: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    if extra.iter().any(|e| e.eq_ignore_ascii_case(&host)) {
        return true;
    }
    let Some((name, port)) = split_host_port(&host) else {
        return false;
    };
    if port != local.port() {
        return false;
    }
    let ip = local.ip().to_canonical();
    let literal = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|a| a.to_canonical());
    if literal == Some(ip) {
        return true;
    }
    ip.is_loopback() && matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// `name:port` → (name, port); IPv6 literals keep their brackets; no port → 80.
fn split_host_port(host: &str) -> Option<(&str, u16)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        match &host[end + 1..] {
            "" => (&host[..=end], None),
            rest => (&host[..=end], Some(rest.strip_prefix(':')?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() || name.contains(['/', '@', ' ']) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 80,
    };
    Some((name, port))
}

/// Whether a request is cross-site: an `Origin` or, without one, a `Referer` whose
/// authority (`host[:port]`) differs from the Host header. Neither present (scripts,
/// API clients) is not cross-site; an unreadable one (`Origin: null`) is.
pub fn cross_site(host: &str, origin: Option<&str>, referer: Option<&str>) -> bool {
    let Some(source) = origin.or(referer) else {
        return false;
    };
    match authority(source) {
        Some(a) => !a.eq_ignore_ascii_case(host.trim()),
        None => true,
    }
}

/// The `host[:port]` of an absolute http(s) URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url
        .trim()
        .strip_prefix("http://")
        .or_else(|| url.trim().strip_prefix("https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let a = &rest[..end];
    (!a.is_empty() && !a.contains('@')).then_some(a)
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_on_loopback() {
        let l = a("127.0.0.1:8080");
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert!(host_allowed(ok, l, &[]), "{ok}");
        }
        for bad in [
            "127.0.0.1:8081",
            "evil.example:8080",
            "localhost",
            "localhost.evil.example:8080",
            "",
            ":8080",
            "127.0.0.1:x",
            "a@127.0.0.1:8080",
        ] {
            assert!(!host_allowed(bad, l, &[]), "{bad}");
        }
        assert!(host_allowed(
            "box.lan:8080",
            l,
            &["box.lan:8080".to_string()]
        ));
    }

    #[test]
    fn host_on_a_lan_address_is_that_address_only() {
        let l = a("192.168.1.5:8080");
        assert!(host_allowed("192.168.1.5:8080", l, &[]));
        assert!(!host_allowed("localhost:8080", l, &[]));
        assert!(!host_allowed("127.0.0.1:8080", l, &[]));
        let v6 = a("[fe80::1]:80");
        assert!(host_allowed("[fe80::1]", v6, &[]));
        assert!(host_allowed("[FE80::1]:80", v6, &[]));
        assert!(!host_allowed("[fe80::2]:80", v6, &[]));
    }

    #[test]
    fn csrf() {
        let h = "127.0.0.1:8080";
        assert!(!cross_site(h, None, None));
        assert!(!cross_site(h, Some("http://127.0.0.1:8080"), None));
        assert!(!cross_site(h, None, Some("http://127.0.0.1:8080/x?y")));
        assert!(cross_site(h, Some("http://evil.example"), None));
        assert!(cross_site(h, Some("null"), None));
        assert!(cross_site(h, None, Some("http://127.0.0.1:8081/")));
        assert!(cross_site(h, None, Some("http://127.0.0.1:8080@evil/")));
        // Origin wins over Referer.
        assert!(cross_site(
            h,
            Some("http://evil.example"),
            Some("http://127.0.0.1:8080/")
        ));
    }

    #[test]
    fn cookies() {
        assert_eq!(cookie("a=1; SID=abc; b=2", "SID"), Some("abc"));
        assert_eq!(cookie("XSID=abc", "SID"), None);
        assert_eq!(cookie("", "SID"), None);
    }
}
