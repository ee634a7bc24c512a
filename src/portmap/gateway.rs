//! The default IPv4 gateway, read from Linux's `/proc/net/route`.
//!
//! Owns one pure parser ([`parse_default_gateway`]) and a bounded file read. The table is
//! read as untrusted text: malformed lines are skipped, never a panic. Among several default
//! routes the one with the lowest metric wins, as the kernel would pick it.

use std::io::Read;
use std::net::Ipv4Addr;

/// `/proc/net/route` is one line per route (~128 bytes); 64 KiB holds ~500 routes, far
/// more than a host that maps ports through a home router has.
const MAX_ROUTE_TABLE: u64 = 64 * 1024;
/// `RTF_UP | RTF_GATEWAY` from `<linux/route.h>`.
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;

/// The default gateway of this host, or `None` when there is no default route (or not Linux).
pub fn default_gateway() -> Option<Ipv4Addr> {
    let file = std::fs::File::open("/proc/net/route").ok()?;
    let mut text = String::new();
    file.take(MAX_ROUTE_TABLE).read_to_string(&mut text).ok()?;
    parse_default_gateway(&text)
}

/// Parses the table's text: columns `Iface Destination Gateway Flags RefCnt Use Metric Mask
/// ...`, addresses as 8 hex digits of the address's bytes read as a host-order integer.
pub fn parse_default_gateway(table: &str) -> Option<Ipv4Addr> {
    table
        .lines()
        .skip(1) // the header
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().take(8).collect();
            if f.len() < 8 {
                return None;
            }
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            let (dest, gw, flags, metric, mask) = (
                hex(f[1])?,
                hex(f[2])?,
                hex(f[3])?,
                f[6].parse::<u32>().ok()?,
                hex(f[7])?,
            );
            let default_route =
                dest == 0 && mask == 0 && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            // The kernel prints the network-order word as a native integer, so the native
            // bytes are the address's bytes.
            let ip = Ipv4Addr::from(gw.to_ne_bytes());
            (default_route && !ip.is_unspecified()).then_some((metric, ip))
        })
        .min_by_key(|&(metric, _)| metric)
        .map(|(_, ip)| ip)
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    fn picks_default_route_gateway() {
        let t = format!(
            "{HEADER}eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
             eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        );
        assert_eq!(
            parse_default_gateway(&t),
            Some(Ipv4Addr::new(192, 168, 0, 1))
        );
    }

    #[test]
    fn lowest_metric_wins_and_down_routes_skipped() {
        let t = format!(
            "{HEADER}wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t010010AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eth1\t00000000\t0100000A\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"
        );
        assert_eq!(
            parse_default_gateway(&t),
            Some(Ipv4Addr::new(172, 16, 0, 1))
        );
    }

    #[test]
    fn none_without_default_route_or_on_garbage() {
        let t = format!("{HEADER}eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n");
        assert_eq!(parse_default_gateway(&t), None);
        assert_eq!(parse_default_gateway(""), None);
        assert_eq!(
            parse_default_gateway(&format!(
                "{HEADER}eth0 zz 0100A8C0 3 0 0 x 0\n\u{0}\u{ffff}"
            )),
            None
        );
    }
}
