//! Reading sizes back from swarm's summary line (`downloaded 3.01 MiB, …`), for the CLI
//! and interop tests. A leaf with no other helper's types, so `tests/interop` includes it
//! by path.
#![allow(dead_code)]

/// The size after `key` in the summary line, e.g. `downloaded 3.01 MiB` → 3156213 (as
/// precise as the line: sizes from 1 KiB on have three significant digits), or the bare
/// count after it (`uploaded=0` in a tracker's line).
pub fn summary_field(line: &str, key: &str) -> u64 {
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
        + key.len()..];
    let mut words = rest.split_whitespace();
    let number: f64 = words
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"));
    let unit = words.next().unwrap_or("").trim_end_matches([',', ';', ')']);
    let scale = match unit {
        "B" => 1u64,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        // A bare count (a tracker's `STATS uploaded=0 downloaded=25178169`): bytes.
        _ if number.fract() == 0.0 => 1,
        _ => panic!("no unit after {key:?} in {line:?}"),
    };
    (number * scale as f64).round() as u64
}

/// Whether a size read from a summary line is `exact` as far as the line can tell.
pub fn about(read: u64, exact: u64) -> bool {
    read.abs_diff(exact) <= exact / 200 + 1
}
