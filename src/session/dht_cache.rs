//! The DHT edge's pure parts: the node cache file (our id and the nodes of our routing
//! table, so the next run bootstraps without the routers) and the timing policies
//! (bootstrap back-off, when a torrent is looked up again).
//!
//! The cache format, version 1: `b"swarm-dht 1\n"`, our 20-byte id, then entries of a
//! family byte (4 or 6), a 20-byte node id and the compact address (6 or 18 bytes). It is
//! read back strictly: any unknown family, truncated entry or more than [`MAX_CACHED`]
//! entries rejects the whole file (it is rebuilt at the next save), so a damaged file
//! never seeds the table with garbage; the read itself is capped at [`MAX_CACHE_FILE`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::dht::NodeId;

/// Nodes saved at most: a full table near our id is a few dozen; 200 is libtorrent's order
/// for its saved `dht state` nodes and plenty to bootstrap from.
pub(super) const MAX_CACHED: usize = 200;

const MAGIC: &[u8] = b"swarm-dht 1\n";

/// The largest valid cache file: the header and [`MAX_CACHED`] IPv6 entries.
pub(super) const MAX_CACHE_FILE: u64 = (MAGIC.len() + 20 + MAX_CACHED * (1 + 20 + 18)) as u64;

/// The first bootstrap retry when the table stays empty, and the longest wait between
/// retries (libtorrent retries its routers on a similar doubling schedule).
pub(super) const BOOTSTRAP_FIRST: Duration = Duration::from_secs(30);
pub(super) const BOOTSTRAP_MAX: Duration = Duration::from_secs(10 * 60);

/// A torrent is looked up (and announced) again this often: BEP 5 peers expire after
/// 30 minutes, and libtorrent's `dht_announce_interval` is 15 minutes.
pub(super) const RELOOKUP: Duration = Duration::from_secs(15 * 60);

/// A lookup that could not start (every lookup slot taken) is tried again this soon.
pub(super) const LOOKUP_RETRY: Duration = Duration::from_secs(5);

/// A lookup that found no peer is repeated sooner: first after this, doubling up to
/// [`RELOOKUP`] (a new swarm's first announce may land just after our first look).
pub(super) const EMPTY_FIRST: Duration = Duration::from_secs(10);

/// Doubling waits from `first` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub(super) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first,
            first,
            max,
        }
    }

    /// The wait before the next attempt; the one after is twice as long (up to the max).
    pub(super) fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Success: the next failure starts from the first wait again.
    pub(super) fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The cache file's bytes for our id and these nodes (at most [`MAX_CACHED`] are kept).
pub(super) fn encode(me: NodeId, nodes: &[(NodeId, SocketAddr)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 20 + nodes.len().min(MAX_CACHED) * 39);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&me.0);
    for (id, addr) in nodes.iter().take(MAX_CACHED) {
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&addr.port().to_be_bytes());
    }
    out
}

/// Our id and the nodes of a cache file; `None` for anything but a valid one.
pub(super) fn decode(bytes: &[u8]) -> Option<(NodeId, Vec<(NodeId, SocketAddr)>)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let me = NodeId::from_slice(rest.get(..20)?)?;
    let mut rest = &rest[20..];
    let mut nodes = Vec::new();
    while let Some((&family, tail)) = rest.split_first() {
        if nodes.len() >= MAX_CACHED {
            return None;
        }
        let ip_len = match family {
            4 => 4,
            6 => 16,
            _ => return None,
        };
        let entry = tail.get(..20 + ip_len + 2)?;
        let id = NodeId::from_slice(&entry[..20])?;
        let ip_bytes = &entry[20..20 + ip_len];
        let ip = match family {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip_bytes).ok()?)),
            _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip_bytes).ok()?)),
        };
        let port = u16::from_be_bytes([entry[20 + ip_len], entry[21 + ip_len]]);
        nodes.push((id, SocketAddr::new(ip, port)));
        rest = &tail[entry.len()..];
    }
    Some((me, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<(NodeId, SocketAddr)> {
        (0..n)
            .map(|i| {
                let addr: SocketAddr = if i % 2 == 0 {
                    format!("10.0.{}.{}:{}", i / 256, i % 256, 1000 + i)
                } else {
                    format!("[2001:db8::{i:x}]:{}", 2000 + i)
                }
                .parse()
                .unwrap();
                (NodeId([i as u8; 20]), addr)
            })
            .collect()
    }

    #[test]
    fn the_cache_round_trips() {
        let me = NodeId([7; 20]);
        let ns = nodes(9);
        assert_eq!(decode(&encode(me, &ns)), Some((me, ns)));
        assert_eq!(decode(&encode(me, &[])), Some((me, vec![])));
    }

    #[test]
    fn at_most_max_cached_are_saved_and_the_largest_file_fits_the_cap() {
        let ns = nodes(MAX_CACHED + 50);
        let bytes = encode(NodeId::default(), &ns);
        let (_, back) = decode(&bytes).unwrap();
        assert_eq!(back.len(), MAX_CACHED);
        assert!(bytes.len() as u64 <= MAX_CACHE_FILE);
    }

    #[test]
    fn a_damaged_cache_is_refused_whole() {
        let good = encode(NodeId([1; 20]), &nodes(3));
        // Truncated inside an entry or the header, an unknown family, a wrong header, or
        // too many entries: nothing is taken. (Cut between entries, it is a shorter cache.)
        let head = MAGIC.len() + 20;
        let boundaries = [head, head + 27, head + 27 + 39];
        for cut in 0..good.len() {
            let n = decode(&good[..cut]).map(|(_, n)| n.len());
            match boundaries.iter().position(|&b| b == cut) {
                Some(i) => assert_eq!(n, Some(i), "cut at {cut}"),
                None => assert_eq!(n, None, "cut at {cut}"),
            }
        }
        let mut bad_family = good.clone();
        bad_family[MAGIC.len() + 20] = 5;
        assert_eq!(decode(&bad_family), None);
        assert_eq!(decode(b"swarm-dht 2\n"), None);
        assert_eq!(decode(b""), None);
        let mut too_many = encode(NodeId::default(), &nodes(MAX_CACHED));
        too_many.extend_from_slice(&encode(NodeId::default(), &nodes(1))[MAGIC.len() + 20..]);
        assert_eq!(decode(&too_many), None);
    }

    #[test]
    fn bootstrap_backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(BOOTSTRAP_FIRST, BOOTSTRAP_MAX);
        let waits: Vec<u64> = (0..7).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        b.reset();
        assert_eq!(b.next(), BOOTSTRAP_FIRST);
    }
}
