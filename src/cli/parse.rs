//! Parsing of what is given on the command line: human-friendly sizes (rates, piece
//! lengths), durations, ratios and tracker URLs, each with an error that says what would do.

use std::time::Duration;

/// A byte count or rate: `2MiB`, `500KiB`, `1.5M`, `800kB`, `1048576`, with an optional
/// `/s`. Binary units (`KiB`, `MiB`, `GiB`, and the short `K`, `M`, `G` as curl's
/// `--limit-rate` reads them) are powers of 1024; `kB`/`KB`, `MB`, `GB` are powers of 1000.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t).trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 2MiB, 500KiB or a number of bytes)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "K" | "k" | "KiB" | "kiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use B, KiB, MiB, GiB, kB, MB or GB)"
            ))
        }
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range (at least 1 byte)"));
    }
    Ok(bytes.round() as u64)
}

/// A rate cap: a size per second as [`parse_size`] reads it, or `0` for no cap (as in
/// Transmission and qBittorrent), given back as `0`; the caller maps it to "unlimited".
pub fn parse_rate(s: &str) -> Result<u64, String> {
    match s.trim().strip_suffix("/s").unwrap_or(s.trim()).trim() {
        "0" | "0B" => Ok(0),
        _ => parse_size(s),
    }
}

/// A piece length: a size as [`parse_size`] reads it (`1MiB`, `256K`, `16384`), which
/// must be a power of two from 16 KiB (one block) up to what fits in 32 bits.
pub fn parse_piece_length(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    match u32::try_from(n) {
        Ok(n) if n >= 16 * 1024 && n.is_power_of_two() => Ok(n),
        _ => Err(format!(
            "{s:?} is {n} bytes; a piece length is a power of two of at least 16KiB (e.g. 256KiB, 1MiB)"
        )),
    }
}

/// A tracker announce URL: http, https or udp, with a host.
pub fn parse_tracker_url(s: &str) -> Result<String, String> {
    crate::create::check_tracker_url(s).map(|()| s.to_string())
}

/// A duration: `90s`, `30m`, `2h`, `1d`, combinations such as `1h30m`, or a plain number
/// of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration (try 90s, 30m, 2h or 1h30m)");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A share ratio: a finite number ≥ 0.
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a ratio (a number such as 1.5)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("500KiB"), Ok(500 << 10));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("20MiB/s"), Ok(20 << 20));
        assert_eq!(parse_size("800kB"), Ok(800_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "MiB", "2 parsecs", "0", "-1K", "1e400", "2XiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates_take_zero_for_unlimited() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("0/s"), Ok(0));
        assert_eq!(parse_rate("2MiB/s"), Ok(2 << 20));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn piece_lengths() {
        assert_eq!(parse_piece_length("1MiB"), Ok(1 << 20));
        assert_eq!(parse_piece_length("256K"), Ok(256 << 10));
        assert_eq!(parse_piece_length("16384"), Ok(16384));
        for bad in ["1000kB", "8KiB", "3MiB", "8GiB", "x"] {
            assert!(parse_piece_length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "h", "5x", "1.5h", "10m5", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ratios() {
        assert_eq!(parse_ratio("1.5"), Ok(1.5));
        assert_eq!(parse_ratio("0"), Ok(0.0));
        assert!(parse_ratio("-1").is_err());
        assert!(parse_ratio("inf").is_err());
        assert!(parse_ratio("x").is_err());
    }
}
