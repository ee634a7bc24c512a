//! Parameter parsing as qBittorrent does it: lenient where qBittorrent is lenient (a
//! number that does not parse counts as 0, a boolean is `true` or not), strict where it
//! answers 400. Every input is hostile: nothing here panics or allocates by a number the
//! request chose.

use crate::daemon::api::ApiRequest;
use crate::daemon::model::Hashes;
use crate::types::InfoHash;

use super::Fail;

/// A 40-hex-digit info-hash, any case (spaces around it allowed); anything else is `None`.
pub fn parse_hash(s: &str) -> Option<InfoHash> {
    InfoHash::from_hex(s.trim())
}

/// A required parameter: missing is qBittorrent's bare 400.
pub fn required<'a>(req: &'a ApiRequest, name: &str) -> Result<&'a str, Fail> {
    req.param(name).ok_or_else(Fail::bad_request)
}

/// qBittorrent's `parseBool`: `true` in any case is true, anything else false.
pub fn flag(req: &ApiRequest, name: &str) -> bool {
    req.param(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// An integer, 0 when absent or malformed (qBittorrent's `toInt`/`toLongLong` without a
/// check); saturates rather than wraps.
pub fn int(req: &ApiRequest, name: &str) -> i64 {
    req.param(name).map_or(0, parse_int)
}

pub fn parse_int(s: &str) -> i64 {
    let s = s.trim();
    match s.parse::<i64>() {
        Ok(v) => v,
        // All digits but too long: saturate; anything else is 0.
        Err(_) => {
            let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                if neg {
                    i64::MIN
                } else {
                    i64::MAX
                }
            } else {
                0
            }
        }
    }
}

/// A rate cap in bytes per second: 0 or negative means none (qBittorrent's convention).
pub fn limit(v: i64) -> Option<u64> {
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// The `|`-separated hashes of a command, or `all`. Malformed entries are skipped, as
/// qBittorrent skips hashes it does not know; duplicates are dropped.
pub fn hashes(req: &ApiRequest, name: &str) -> Result<Hashes, Fail> {
    let raw = required(req, name)?;
    if raw.trim().eq_ignore_ascii_case("all") {
        return Ok(Hashes::All);
    }
    let mut list: Vec<InfoHash> = raw.split('|').filter_map(parse_hash).collect();
    list.sort_unstable();
    list.dedup();
    Ok(Hashes::Some(list))
}

/// The hashes `torrents/info` filters on; `None`: no filter.
pub fn hash_filter(req: &ApiRequest) -> Option<Vec<InfoHash>> {
    let raw = req.param("hashes")?;
    if raw.trim().eq_ignore_ascii_case("all") {
        return None;
    }
    Some(raw.split('|').filter_map(parse_hash).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_any_case_and_junk() {
        let h = "0123456789ABCDEF0123456789abcdef01234567";
        assert_eq!(parse_hash(h).unwrap().to_hex(), h.to_lowercase());
        for bad in [
            "",
            "zz",
            &h[..39],
            &format!("{h}0"),
            "g123456789abcdef0123456789abcdef01234567",
        ] {
            assert_eq!(parse_hash(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ints_never_panic() {
        assert_eq!(parse_int("12"), 12);
        assert_eq!(parse_int(" -3 "), -3);
        assert_eq!(parse_int("abc"), 0);
        assert_eq!(parse_int("99999999999999999999999"), i64::MAX);
        assert_eq!(parse_int("-99999999999999999999999"), i64::MIN);
        assert_eq!(parse_int("-"), 0);
        assert_eq!(limit(0), None);
        assert_eq!(limit(-1), None);
        assert_eq!(limit(5), Some(5));
    }
}
