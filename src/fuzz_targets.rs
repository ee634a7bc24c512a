//! Fuzz entry points: one `pub fn NAME(data: &[u8])` per decoder that takes bytes from a
//! stranger (a peer, a tracker, a `.torrent`, a magnet link, an HTTP client, a file in the
//! state directory). Each feeds the bytes to the decoder and checks what must hold:
//!
//! - no panic, whatever the input;
//! - where there is an encoder, decode → encode → decode gives the same value;
//! - what a decoder keeps stays within its documented caps.
//!
//! The cargo-fuzz crate in `fuzz/` calls these (nightly only), and `tests/fuzz_corpus.rs`
//! replays every corpus and regression file through them on stable, so the targets keep
//! building and every committed input keeps passing. Nothing here is used by the client.

mod daemon;
mod net;
mod wire;

pub use daemon::{daemon_params, saved};
pub use net::{krpc, tracker_http, tracker_server_http, tracker_server_udp, tracker_udp};
pub use wire::{extension, mse, wire};

use crate::bencode;
use crate::magnet::{self, Magnet};
use crate::metainfo::Metainfo;
use crate::state::resume::{max_record_len, ResumeRecord};
use crate::types::InfoHash;

/// The names of every target, in the order `benches/fuzz.sh` runs them.
pub const TARGETS: [&str; 14] = [
    "bencode",
    "metainfo",
    "magnet",
    "wire",
    "extension",
    "mse",
    "krpc",
    "tracker_http",
    "tracker_udp",
    "tracker_server_http",
    "tracker_server_udp",
    "daemon_params",
    "resume",
    "saved",
];

/// The target called `name`, for replaying corpora by directory name.
pub fn by_name(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "bencode" => bencode,
        "metainfo" => metainfo,
        "magnet" => magnet,
        "wire" => wire,
        "extension" => extension,
        "mse" => mse,
        "krpc" => krpc,
        "tracker_http" => tracker_http,
        "tracker_udp" => tracker_udp,
        "tracker_server_http" => tracker_server_http,
        "tracker_server_udp" => tracker_server_udp,
        "daemon_params" => daemon_params,
        "resume" => resume,
        "saved" => saved,
        _ => return None,
    })
}

/// Splits `data` into the pieces a socket might deliver: each piece's length comes from
/// `seed` (1..=256 bytes), so one input exercises many ways of cutting the same stream.
pub(crate) fn chunks(data: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut state = u32::from(seed) | 1;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // xorshift: cheap, deterministic cut points.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 256 + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

/// Bencode: the strict decoder, then its encoder. Integers and lengths are canonical on
/// input, and only dictionary key order may differ (it is not enforced, the encoder sorts),
/// so the encoding has the input's length and decodes to a value that encodes the same.
/// The raw span of every top-level key is found again.
pub fn bencode(data: &[u8]) {
    if let Ok(v) = bencode::decode(data) {
        let out = bencode::to_vec(&v);
        assert_eq!(out.len(), data.len(), "same bytes, at most reordered");
        let again = bencode::decode(&out).expect("our own encoding decodes");
        assert_eq!(bencode::to_vec(&again), out);
        if let Some(entries) = v.as_dict() {
            for (k, _) in entries {
                let span = bencode::dict_value_span(data, k).expect("decoded once already");
                assert!(span.is_some(), "every key has a span");
            }
        }
    }
    if let Ok((v, used)) = bencode::decode_prefix(data) {
        assert!(used <= data.len());
        assert_eq!(bencode::to_vec(&v).len(), used);
    }
    let _ = bencode::excerpt(data);
}

/// `.torrent` files: parse; a torrent rebuilt around the same info dictionary and
/// trackers parses to the same torrent.
pub fn metainfo(data: &[u8]) {
    let Ok(m) = Metainfo::from_bytes(data) else {
        return;
    };
    assert_eq!(m.num_pieces() as usize, m.piece_hashes.len());
    let trackers: Vec<String> = m.tracker_tiers().into_iter().flatten().collect();
    let again = Metainfo::from_bytes(&Metainfo::torrent_bytes(&m.info_bytes, &trackers))
        .expect("a torrent rebuilt around an accepted info dictionary is accepted");
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(again.name, m.name);
    assert_eq!(again.files, m.files);
    assert_eq!(again.piece_length, m.piece_length);
    assert_eq!(again.piece_hashes, m.piece_hashes);
    assert_eq!(again.private, m.private);
}

/// Magnet links (the input as UTF-8): parse, caps, and `to_uri` parses back to the same.
pub fn magnet(data: &[u8]) {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    let _ = magnet::is_magnet(link);
    let Ok(m) = Magnet::parse(link) else {
        return;
    };
    assert!(m.trackers.len() <= magnet::MAX_TRACKERS);
    assert!(m.peers.len() + m.peer_hosts.len() <= magnet::MAX_PEERS);
    let again = Magnet::parse(&m.to_uri()).expect("our own URI parses");
    assert_eq!(again, m);
}

/// The info-hash the `resume` seeds are written for.
pub const RESUME_HASH: InfoHash = InfoHash([0x11; 20]);

/// Resume records: the first three bytes choose the torrent's shape (pieces: big-endian
/// u16, files: one byte), the rest is the record for [`RESUME_HASH`]. Accepted records
/// re-encode to a record that decodes to the same value.
pub fn resume(data: &[u8]) {
    let [p0, p1, files, record @ ..] = data else {
        return;
    };
    let pieces = u32::from(u16::from_be_bytes([*p0, *p1]));
    let files = usize::from(*files);
    let Ok(r) = ResumeRecord::decode(record, &RESUME_HASH, pieces, files) else {
        return;
    };
    assert!(record.len() <= max_record_len(pieces, files));
    assert_eq!(r.files.len(), files);
    let bytes = r.encode();
    let again =
        ResumeRecord::decode(&bytes, &RESUME_HASH, pieces, files).expect("our own record decodes");
    assert_eq!(again, r);
}
