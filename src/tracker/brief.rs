//! A tracker error as the progress line shows it: the tracker's host and a short cause
//! (`tracker.example: DNS lookup failed`), never the announce query or an HTTP library's
//! whole error chain. The full chain stays in the `-v` log.

use std::error::Error;
use std::io::ErrorKind;

use super::TrackerError;

/// Longest cause shown; a tracker's own failure reason may be any length.
const MAX_CAUSE: usize = 60;

/// `HOST[:PORT]: cause` for the tracker at `url` that failed with `e`.
pub fn brief(url: &str, e: &TrackerError) -> String {
    format!("{}: {}", host_of(url), cause(e))
}

/// The authority of `url` without user info (`http://u:p@h:80/a` → `h:80`); the URL itself
/// when it has none.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        url
    } else {
        host
    }
}

/// The short cause alone (`DNS lookup failed`, `refused: unregistered torrent`).
pub fn cause(e: &TrackerError) -> String {
    match e {
        TrackerError::Failure(reason) => shorten(&format!("refused: {reason}")),
        TrackerError::Resolve(_) => "DNS lookup failed".into(),
        TrackerError::Io(io) => io_cause(io),
        TrackerError::Timeout => "timed out".into(),
        TrackerError::HttpStatus(code) => format!("HTTP {code}"),
        TrackerError::Http(h) => http_cause(h),
        TrackerError::UnsupportedScheme(_) => "unsupported URL scheme".into(),
        TrackerError::InvalidUrl { reason, .. } => shorten(&format!("invalid URL: {reason}")),
        TrackerError::Bencode(_) | TrackerError::Malformed(_) => "malformed reply".into(),
        TrackerError::TransactionMismatch => "malformed reply".into(),
        TrackerError::BodyTooLarge => "reply too large".into(),
        TrackerError::NoScrape => "no scrape URL".into(),
    }
}

/// The innermost useful cause of an HTTP client error, in a few words.
fn http_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut next: Option<&(dyn Error + 'static)> = e.source();
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() != ErrorKind::Other {
                return io_cause(io);
            }
        }
        let text = err.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            return "DNS lookup failed".into();
        }
        next = err.source();
    }
    if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "bad reply".into()
    } else {
        "request failed".into()
    }
}

fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::TimedOut => "timed out".into(),
        ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => "unreachable".into(),
        _ => {
            // `Connection refused (os error 111)` → `connection refused`.
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            shorten(&text.to_lowercase())
        }
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_CAUSE {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_CAUSE - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_leave_out_query_and_user_info() {
        assert_eq!(
            host_of("http://tracker.invalid/announce"),
            "tracker.invalid"
        );
        let url = "http://u:p@127.0.0.1:1/announce?info_hash=%12&peer_id=-SW&key=9";
        assert_eq!(host_of(url), "127.0.0.1:1");
        assert_eq!(host_of("udp://[::1]:6969"), "[::1]:6969");
        assert_eq!(host_of("nonsense"), "nonsense");
        assert_eq!(host_of("http://"), "http://");
    }

    #[test]
    fn causes_are_short() {
        let url = "http://t.example:80/announce";
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(
            brief(url, &TrackerError::Io(refused)),
            "t.example:80: connection refused"
        );
        let r = TrackerError::Resolve("t.example".into());
        assert_eq!(brief(url, &r), "t.example:80: DNS lookup failed");
        let long = TrackerError::Failure("x".repeat(500));
        assert!(brief(url, &long).chars().count() < 80);
        assert_eq!(
            brief(url, &TrackerError::HttpStatus(404)),
            "t.example:80: HTTP 404"
        );
    }
}
