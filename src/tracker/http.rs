//! HTTP tracker formats (BEP 3, BEP 7, BEP 23, BEP 48): building announce and scrape URLs and
//! parsing their bencoded responses. Pure: no I/O.
//!
//! The query string is built here byte for byte (unreserved characters literal, everything
//! else `%XX`) and appended to the announce URL as given, so no URL library can re-encode the
//! binary `info_hash` and `peer_id`. Responses go through the strict zero-copy bencode
//! decoder; peers come from compact `peers` (6-byte entries), `peers6` (18-byte entries) and
//! the dictionary form (`ip` string, `port`), with port-0 and unparsable entries dropped.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{clamp_interval, compact_v4, compact_v6, message, AnnounceParams, AnnounceResponse};
use super::{PeerList, ScrapeStats, TrackerError};
use crate::bencode::{self, Value};
use crate::types::InfoHash;

/// Used when a tracker gives no `interval`, or one that is not an integer (libtorrent's
/// default too).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);

/// Append `bytes` to `out` percent-encoded: `A-Za-z0-9.-_~` literal, everything else `%XX`.
pub fn percent_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Check that `base` is an http(s) URL we can append a query to.
fn check_base(base: &str) -> Result<(), TrackerError> {
    let lower = base.get(..8).unwrap_or(base).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(TrackerError::UnsupportedScheme(base.to_string()));
    }
    if base.contains('#') {
        return Err(TrackerError::InvalidUrl {
            url: base.to_string(),
            reason: "has a fragment",
        });
    }
    if base.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TrackerError::InvalidUrl {
            url: base.to_string(),
            reason: "contains whitespace or control characters",
        });
    }
    Ok(())
}

/// `base` followed by the separator for a new query parameter (`?`, `&` or nothing).
fn with_separator(base: &str) -> String {
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    match base.find('?') {
        None => url.push('?'),
        Some(_) if base.ends_with('?') || base.ends_with('&') => {}
        Some(_) => url.push('&'),
    }
    url
}

/// The full announce URL: `base` (its own query kept) plus our parameters.
pub fn announce_url(
    base: &str,
    p: &AnnounceParams,
    tracker_id: Option<&[u8]>,
) -> Result<String, TrackerError> {
    check_base(base)?;
    let mut url = with_separator(base);
    url.push_str("info_hash=");
    percent_encode(&p.info_hash.0, &mut url);
    url.push_str("&peer_id=");
    percent_encode(&p.peer_id.0, &mut url);
    // Writing to a String cannot fail.
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}&key={:08x}",
        p.port, p.uploaded, p.downloaded, p.left, p.numwant, p.key
    );
    if let Some(event) = p.event.as_str() {
        url.push_str("&event=");
        url.push_str(event);
    }
    if let Some(id) = tracker_id {
        url.push_str("&trackerid=");
        percent_encode(id, &mut url);
    }
    Ok(url)
}

/// The scrape URL for an announce URL (BEP 48 convention): the last path segment must start
/// with `announce`, which becomes `scrape`; otherwise the tracker does not support scrape.
pub fn scrape_url(announce: &str) -> Option<String> {
    let query_at = announce.find('?').unwrap_or(announce.len());
    let path = &announce[..query_at];
    let slash = path.rfind('/')?;
    // The slash must be in the path, not the `//` after the scheme.
    if path[..slash].ends_with('/') || !path[..slash].contains("//") {
        return None;
    }
    let segment = &path[slash + 1..];
    let rest = segment.strip_prefix("announce")?;
    Some(format!(
        "{}scrape{}{}",
        &announce[..=slash],
        rest,
        &announce[query_at..]
    ))
}

/// A scrape URL with the `info_hash` parameter for one torrent.
pub fn scrape_request_url(scrape: &str, info_hash: &InfoHash) -> Result<String, TrackerError> {
    check_base(scrape)?;
    let mut url = with_separator(scrape);
    url.push_str("info_hash=");
    percent_encode(&info_hash.0, &mut url);
    Ok(url)
}

/// Decode a body as a dictionary, turning `failure reason` into [`TrackerError::Failure`].
fn decode_dict(body: &[u8]) -> Result<Value<'_>, TrackerError> {
    let v = bencode::decode(body)?;
    if v.as_dict().is_none() {
        return Err(TrackerError::Malformed("response is not a dictionary"));
    }
    if let Some(reason) = v.get(b"failure reason") {
        let text = reason
            .as_bytes()
            .ok_or(TrackerError::Malformed("failure reason is not a string"))?;
        return Err(TrackerError::Failure(message(text)));
    }
    Ok(v)
}

/// A non-negative integer that fits `u32`; `Ok(None)` when absent.
fn opt_u32(v: &Value, key: &[u8], what: &'static str) -> Result<Option<u32>, TrackerError> {
    match v.get(key) {
        None => Ok(None),
        Some(x) => x
            .as_int()
            .and_then(|i| u32::try_from(i).ok())
            .map(Some)
            .ok_or(TrackerError::Malformed(what)),
    }
}

/// Parse an announce response body. An `interval` or `min interval` that is not an integer
/// is ignored (the default applies) and one out of range is clamped into
/// [[`MIN_INTERVAL`](super::MIN_INTERVAL), [`MAX_INTERVAL`](super::MAX_INTERVAL)]: the peers
/// of such a reply are still good.
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let v = decode_dict(body)?;
    let secs = |key: &[u8]| v.get(key).and_then(Value::as_int).map(clamp_interval);
    let interval = secs(b"interval").unwrap_or(DEFAULT_INTERVAL);
    let min_interval = secs(b"min interval");
    // Counts are informational: a bad one is ignored rather than failing the announce.
    let complete = opt_u32(&v, b"complete", "complete").ok().flatten();
    let incomplete = opt_u32(&v, b"incomplete", "incomplete").ok().flatten();
    let warning = v
        .get(b"warning message")
        .and_then(Value::as_bytes)
        .map(message);
    let tracker_id = v
        .get(b"tracker id")
        .and_then(Value::as_bytes)
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .map(<[u8]>::to_vec);

    let mut peers = PeerList::default();
    match v.get(b"peers") {
        None => {}
        Some(Value::Bytes(b)) => peers.extend(compact_v4(b).map(Some)),
        Some(Value::List(list)) => peers.extend(list.iter().map(dict_peer)),
        Some(_) => {
            return Err(TrackerError::Malformed(
                "peers is neither a string nor a list",
            ))
        }
    }
    if let Some(b) = v.get(b"peers6").and_then(Value::as_bytes) {
        peers.extend(compact_v6(b).map(Some));
    }
    let (peers, peers_dropped) = peers.into_parts();
    Ok(AnnounceResponse {
        interval,
        min_interval,
        tracker_id,
        complete,
        incomplete,
        warning,
        peers,
        peers_dropped,
    })
}

/// One entry of the dictionary peer list; `None` when unusable (hostnames included: we do
/// not resolve names a tracker hands us).
fn dict_peer(v: &Value) -> Option<SocketAddr> {
    let ip: IpAddr = v.get(b"ip")?.as_str()?.trim().parse().ok()?;
    let port = u16::try_from(v.get(b"port")?.as_int()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Parse a scrape response body for `info_hash`.
pub fn parse_scrape(body: &[u8], info_hash: &InfoHash) -> Result<ScrapeStats, TrackerError> {
    let v = decode_dict(body)?;
    let files = v
        .get(b"files")
        .and_then(Value::as_dict)
        .ok_or(TrackerError::Malformed("scrape has no files dictionary"))?;
    let entry = files
        .iter()
        .find(|(k, _)| *k == info_hash.0)
        .map(|(_, e)| e)
        .ok_or(TrackerError::Malformed("scrape does not list this torrent"))?;
    if entry.as_dict().is_none() {
        return Err(TrackerError::Malformed("scrape entry is not a dictionary"));
    }
    let count = |key: &[u8], what| opt_u32(entry, key, what).map(Option::unwrap_or_default);
    Ok(ScrapeStats {
        complete: count(b"complete", "scrape complete")?,
        downloaded: count(b"downloaded", "scrape downloaded")?,
        incomplete: count(b"incomplete", "scrape incomplete")?,
    })
}
