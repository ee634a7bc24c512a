//! UDP tracker packets (BEP 15): encoding connect, announce and scrape requests and parsing
//! their responses. Pure: no sockets, no clock.
//!
//! Every parser checks the transaction id first ([`TrackerError::TransactionMismatch`] means
//! "not ours, keep waiting"), then the action: action 3 is the tracker's error message,
//! returned as [`TrackerError::Failure`]. Announce responses carry 6-byte peers when the
//! tracker was reached over IPv4 and 18-byte peers over IPv6; a partial trailing entry is
//! ignored and at most [`MAX_PEERS`](super::MAX_PEERS) peers are kept.

use super::Event;
use super::{clamp_interval, compact_v4, compact_v6, message, AnnounceParams, AnnounceResponse};
use super::{PeerList, ScrapeStats, TrackerError};
use crate::types::InfoHash;

/// The magic constant that opens a connect request.
pub const PROTOCOL_ID: u64 = 0x417_2710_1980;

/// Most info-hashes in one scrape request (BEP 15: about 74 fit a safe datagram).
pub const MAX_SCRAPE_HASHES: usize = 74;

/// Receive buffer size: any legal UDP datagram fits whole, so a long peer list is never
/// silently truncated by the kernel (peers past [`MAX_PEERS`](super::MAX_PEERS) are dropped).
pub const MAX_DATAGRAM: usize = 65_536;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// The address family the tracker was reached over, which fixes the peer entry size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// A connect request.
pub fn connect_request(txid: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    b[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    b[12..].copy_from_slice(&txid.to_be_bytes());
    b
}

fn event_code(e: Event) -> u32 {
    match e {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    }
}

/// An announce request (98 bytes).
pub fn announce_request(conn_id: u64, txid: u32, p: &AnnounceParams) -> Vec<u8> {
    let mut b = Vec::with_capacity(98);
    b.extend_from_slice(&conn_id.to_be_bytes());
    b.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    b.extend_from_slice(&txid.to_be_bytes());
    b.extend_from_slice(&p.info_hash.0);
    b.extend_from_slice(&p.peer_id.0);
    b.extend_from_slice(&p.downloaded.to_be_bytes());
    b.extend_from_slice(&p.left.to_be_bytes());
    b.extend_from_slice(&p.uploaded.to_be_bytes());
    b.extend_from_slice(&event_code(p.event).to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's address
    b.extend_from_slice(&p.key.to_be_bytes());
    let numwant = i32::try_from(p.numwant).unwrap_or(i32::MAX);
    b.extend_from_slice(&numwant.to_be_bytes());
    b.extend_from_slice(&p.port.to_be_bytes());
    b
}

/// A scrape request for up to [`MAX_SCRAPE_HASHES`] torrents (extra hashes are left out).
pub fn scrape_request(conn_id: u64, txid: u32, hashes: &[InfoHash]) -> Vec<u8> {
    let hashes = &hashes[..hashes.len().min(MAX_SCRAPE_HASHES)];
    let mut b = Vec::with_capacity(16 + 20 * hashes.len());
    b.extend_from_slice(&conn_id.to_be_bytes());
    b.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    b.extend_from_slice(&txid.to_be_bytes());
    for h in hashes {
        b.extend_from_slice(&h.0);
    }
    b
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Check the header of a response: transaction id, then action (3 → the tracker's error).
/// Returns the body after the 8-byte header.
fn body(buf: &[u8], txid: u32, action: u32) -> Result<&[u8], TrackerError> {
    let (Some(got_action), Some(got_txid)) = (u32_at(buf, 0), u32_at(buf, 4)) else {
        return Err(TrackerError::Malformed(
            "UDP response shorter than its header",
        ));
    };
    if got_txid != txid {
        return Err(TrackerError::TransactionMismatch);
    }
    if got_action == ACTION_ERROR {
        return Err(TrackerError::Failure(message(&buf[8..])));
    }
    if got_action != action {
        return Err(TrackerError::Malformed("UDP response has the wrong action"));
    }
    Ok(&buf[8..])
}

/// Parse a connect response; returns the connection id.
pub fn parse_connect(buf: &[u8], txid: u32) -> Result<u64, TrackerError> {
    let b = body(buf, txid, ACTION_CONNECT)?;
    let id = b
        .get(..8)
        .ok_or(TrackerError::Malformed("connect response too short"))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(id);
    Ok(u64::from_be_bytes(a))
}

/// Parse an announce response from a tracker reached over `family`.
pub fn parse_announce(
    buf: &[u8],
    txid: u32,
    family: Family,
) -> Result<AnnounceResponse, TrackerError> {
    let b = body(buf, txid, ACTION_ANNOUNCE)?;
    let (Some(interval), Some(leechers), Some(seeders)) =
        (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8))
    else {
        return Err(TrackerError::Malformed("announce response too short"));
    };
    let mut peers = PeerList::default();
    match family {
        Family::V4 => peers.extend(compact_v4(&b[12..]).map(Some)),
        Family::V6 => peers.extend(compact_v6(&b[12..]).map(Some)),
    }
    let (peers, peers_dropped) = peers.into_parts();
    Ok(AnnounceResponse {
        interval: clamp_interval(interval.into()),
        min_interval: None,
        tracker_id: None,
        complete: Some(seeders),
        incomplete: Some(leechers),
        warning: None,
        peers,
        peers_dropped,
    })
}

/// Parse a scrape response; one entry per requested hash, in request order (a tracker may
/// answer fewer; more are ignored).
pub fn parse_scrape(buf: &[u8], txid: u32, n: usize) -> Result<Vec<ScrapeStats>, TrackerError> {
    let b = body(buf, txid, ACTION_SCRAPE)?;
    let stats: Vec<ScrapeStats> = b
        .chunks_exact(12)
        .take(n.min(MAX_SCRAPE_HASHES))
        .map(|c| ScrapeStats {
            complete: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            downloaded: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            incomplete: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
        })
        .collect();
    if stats.is_empty() && n > 0 {
        return Err(TrackerError::Malformed("scrape response too short"));
    }
    Ok(stats)
}
