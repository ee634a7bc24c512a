//! Fetching a magnet's info dictionary from the peers that offer it (BEP 9).
//!
//! One [`Fetcher`] per torrent without metadata. The edge feeds it [`Event`]s and
//! [`Fetcher::handle_timeout`] with the current time, and carries out the [`Action`]s it
//! hands back; it reads no clock and does no I/O.
//!
//! Policy:
//! - Pieces are spread over every peer advertising the size being fetched, at most
//!   [`MAX_OUTSTANDING_PER_PEER`] in flight per peer (one for a peer that has failed us
//!   since its last good answer), best peers first (fewest failures, fewest in flight).
//! - A request unanswered after [`REQUEST_TIMEOUT`] goes back to the pool (a late answer
//!   is still taken); a rejected piece too, and the peer rests for [`REJECT_BACKOFF`].
//! - Size: the first size offered (later: the one most responsive peers offer) is fetched
//!   until no responsive peer offers it any more or it fails its hash.
//! - Blame: a failed hash with one contributor drops that peer. With several, the pieces'
//!   digests and senders are kept as evidence and every later attempt comes from a single
//!   peer, so each failure names its liar; once the metadata verifies, every sender whose
//!   evidence differs from the verified bytes, and every peer that advertised another
//!   size, is dropped before [`Action::Done`].
//!
//! Invariants: at most one metadata buffer exists, sized only once a size ≤
//! [`MAX_METADATA_SIZE`] is accepted (the old one is freed before a new one is made);
//! evidence and per-peer sets are bounded by the piece count; no peer ever has more than
//! [`MAX_OUTSTANDING_PER_PEER`] requests outstanding; `Done` is emitted once, with bytes
//! whose SHA-1 is the info-hash, and nothing is emitted after it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};

mod schedule;

use super::{piece_count, piece_len, MAX_METADATA_SIZE, PIECE_SIZE};
use crate::types::InfoHash;

/// One connection, as the engine numbers them (never reused).
pub type PeerKey = u64;

/// Requests in flight per peer: libtorrent's `ut_metadata` keeps fewer than 2 per peer, and
/// 2 × 16 KiB is already more than one round trip of any link serving metadata.
pub const MAX_OUTSTANDING_PER_PEER: usize = 2;

/// A request unanswered this long is sent elsewhere. Our choice (issue 14): a live peer
/// answers one 16 KiB piece in well under a second, and a silent one costs only this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that rejected a request is not asked again for this long: 20 s is the base of
/// libtorrent's back-off for a peer whose metadata failed (BEP 9 lets a peer reject to
/// limit its load, so asking again at once would only be rejected again).
pub const REJECT_BACKOFF: Duration = Duration::from_secs(20);

/// Consecutive failures (timeouts, rejects) after which a peer's advertised size no longer
/// holds the fetch: a silent peer cannot keep us on a size nobody else confirms.
pub const UNRESPONSIVE_AFTER: u32 = 3;

/// Something that happened at the edge.
#[derive(Debug, Clone)]
pub enum Event {
    /// A peer's extension handshake: `metadata_size` when it offers `ut_metadata` with a
    /// size (`None` or 0: it cannot serve). A second handshake replaces the first.
    PeerJoined {
        peer: PeerKey,
        metadata_size: Option<u64>,
    },
    /// The connection ended.
    PeerLeft { peer: PeerKey },
    /// A `data` message.
    Data {
        peer: PeerKey,
        piece: u32,
        total_size: u64,
        bytes: Bytes,
    },
    /// A `reject` message.
    Reject { peer: PeerKey, piece: u32 },
}

/// Something the edge must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a `request` for `piece`.
    Request { peer: PeerKey, piece: u32 },
    /// Disconnect this peer: it lied (the fetcher has already forgotten it).
    Drop { peer: PeerKey, reason: &'static str },
    /// The verified info dictionary (emitted once, last).
    Done(Vec<u8>),
}

#[derive(Debug)]
struct Peer {
    size: u32,
    /// Join order: ties go to the peer that came first.
    seq: u64,
    /// Pieces asked and when.
    outstanding: Vec<(u32, Instant)>,
    /// Pieces whose request timed out: an answer is still welcome.
    late: BTreeSet<u32>,
    /// Timeouts and rejects since its last good answer.
    failures: u32,
    /// Not asked before this (after a reject).
    rest_until: Option<Instant>,
}

impl Peer {
    fn limit(&self) -> usize {
        if self.failures == 0 {
            MAX_OUTSTANDING_PER_PEER
        } else {
            1
        }
    }

    fn responsive(&self) -> bool {
        self.failures < UNRESPONSIVE_AFTER
    }

    fn can_ask(&self, now: Instant) -> bool {
        self.rest_until.is_none_or(|t| now >= t) && self.outstanding.len() < self.limit()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Pieces from every peer at once.
    Parallel,
    /// After a failure with several contributors: all pieces from one peer (`None` until
    /// one is chosen), so the next failure names its liar.
    Single(Option<PeerKey>),
}

/// A piece of a failed attempt, kept to judge its sender once the metadata verifies.
#[derive(Debug)]
struct Evidence {
    piece: u32,
    digest: [u8; 20],
    peer: PeerKey,
}

/// The metadata fetch of one torrent.
#[derive(Debug)]
pub struct Fetcher {
    info_hash: InfoHash,
    peers: BTreeMap<PeerKey, Peer>,
    dropped: BTreeSet<PeerKey>,
    next_seq: u64,
    /// The size being fetched, once one is accepted.
    size: Option<u32>,
    buf: Vec<u8>,
    /// Per piece, who sent what `buf` holds.
    sources: Vec<Option<PeerKey>>,
    received: u32,
    mode: Mode,
    evidence: Vec<Evidence>,
    allocations: u32,
    actions: VecDeque<Action>,
    done: bool,
}

impl Fetcher {
    pub fn new(info_hash: InfoHash) -> Self {
        Fetcher {
            info_hash,
            peers: BTreeMap::new(),
            dropped: BTreeSet::new(),
            next_seq: 0,
            size: None,
            buf: Vec::new(),
            sources: Vec::new(),
            received: 0,
            mode: Mode::Parallel,
            evidence: Vec::new(),
            allocations: 0,
            actions: VecDeque::new(),
            done: false,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Fetcher::handle_timeout`] has something to do (`None`: nothing pending).
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next = None::<Instant>;
        for p in self.peers.values() {
            let times = p.outstanding.iter().map(|&(_, at)| at + REQUEST_TIMEOUT);
            for t in times.chain(p.rest_until) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The size being fetched, once one is accepted.
    pub fn metadata_size(&self) -> Option<u32> {
        self.size
    }

    /// Peers offering the size being fetched (the progress bar's "from N peers").
    pub fn serving_peers(&self) -> usize {
        self.peers
            .values()
            .filter(|p| Some(p.size) == self.size)
            .count()
    }

    /// Pieces held and pieces in all, of the current attempt.
    pub fn progress(&self) -> (u32, u32) {
        (self.received, self.size.map_or(0, piece_count))
    }

    /// Requests outstanding to `peer`.
    pub fn outstanding(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.outstanding.len())
    }

    /// How many times a metadata buffer was sized (1 unless a size was abandoned).
    pub fn buffer_allocations(&self) -> u32 {
        self.allocations
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        if self.done {
            return;
        }
        match event {
            Event::PeerJoined {
                peer,
                metadata_size,
            } => self.joined(peer, metadata_size),
            Event::PeerLeft { peer } => self.forget(peer),
            Event::Data {
                peer,
                piece,
                total_size,
                bytes,
            } => self.data(peer, piece, total_size, &bytes),
            Event::Reject { peer, piece } => self.reject(now, peer, piece),
        }
        self.step(now);
    }

    /// Expire requests and rests that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        let mut solo_failed = false;
        for (&key, p) in &mut self.peers {
            let before = p.outstanding.len();
            let late = &mut p.late;
            p.outstanding.retain(|&(piece, at)| {
                let alive = now < at + REQUEST_TIMEOUT;
                if !alive {
                    late.insert(piece);
                }
                alive
            });
            let expired = before - p.outstanding.len();
            if expired > 0 {
                p.failures = p.failures.saturating_add(expired as u32);
                solo_failed |= self.mode == Mode::Single(Some(key));
            }
            if p.rest_until.is_some_and(|t| now >= t) {
                p.rest_until = None;
            }
        }
        if solo_failed {
            self.next_solo();
        }
        self.step(now);
    }

    fn step(&mut self, now: Instant) {
        if self.done {
            return;
        }
        self.choose_size();
        self.fill(now);
    }

    fn joined(&mut self, peer: PeerKey, metadata_size: Option<u64>) {
        if self.dropped.contains(&peer) {
            return;
        }
        self.forget(peer);
        let size = match metadata_size {
            None | Some(0) => return,
            Some(s) if s > u64::from(MAX_METADATA_SIZE) => {
                return self.drop_peer(peer, "metadata_size above the cap");
            }
            Some(s) => s as u32,
        };
        self.next_seq += 1;
        self.peers.insert(
            peer,
            Peer {
                size,
                seq: self.next_seq,
                outstanding: Vec::new(),
                late: BTreeSet::new(),
                failures: 0,
                rest_until: None,
            },
        );
    }

    /// The peer is gone: forget it (its pieces already held stay, credited to it).
    fn forget(&mut self, peer: PeerKey) {
        if self.peers.remove(&peer).is_some() && self.mode == Mode::Single(Some(peer)) {
            self.next_solo();
        }
    }

    fn drop_peer(&mut self, peer: PeerKey, reason: &'static str) {
        self.forget(peer);
        self.dropped.insert(peer);
        self.actions.push_back(Action::Drop { peer, reason });
    }

    /// The single source failed or left: start over with another, so that one attempt
    /// never mixes two senders.
    fn next_solo(&mut self) {
        self.mode = Mode::Single(None);
        self.reset_attempt();
    }

    fn reset_attempt(&mut self) {
        self.sources.iter_mut().for_each(|s| *s = None);
        self.received = 0;
    }

    fn data(&mut self, peer: PeerKey, piece: u32, total_size: u64, bytes: &[u8]) {
        let Some(size) = self.size else { return };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let asked = match p.outstanding.iter().position(|&(q, _)| q == piece) {
            Some(i) => {
                p.outstanding.swap_remove(i);
                true
            }
            None => p.late.remove(&piece),
        };
        // Unsolicited data is ignored: we only ever ask for pieces in range of the size
        // the peer itself advertised.
        if !asked {
            return;
        }
        if total_size != u64::from(p.size) {
            return self.drop_peer(peer, "total_size differs from its metadata_size");
        }
        if bytes.len() != piece_len(p.size, piece) {
            return self.drop_peer(peer, "metadata piece of the wrong length");
        }
        p.failures = 0;
        let wanted = p.size == size
            && !matches!(self.mode, Mode::Single(s) if s != Some(peer))
            && self.sources.get(piece as usize) == Some(&None);
        if !wanted {
            return;
        }
        let start = piece as usize * PIECE_SIZE as usize;
        self.buf[start..start + bytes.len()].copy_from_slice(bytes);
        self.sources[piece as usize] = Some(peer);
        self.received += 1;
        if self.received == piece_count(size) {
            self.verify();
        }
    }

    fn reject(&mut self, now: Instant, peer: PeerKey, piece: u32) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(i) = p.outstanding.iter().position(|&(q, _)| q == piece) else {
            p.late.remove(&piece);
            return;
        };
        p.outstanding.swap_remove(i);
        p.failures = p.failures.saturating_add(1);
        p.rest_until = Some(now + REJECT_BACKOFF);
        if self.mode == Mode::Single(Some(peer)) {
            self.next_solo();
        }
    }

    fn verify(&mut self) {
        if Sha1::digest(&self.buf)[..] == self.info_hash.0[..] {
            return self.finish();
        }
        let senders: BTreeSet<PeerKey> = self.sources.iter().flatten().copied().collect();
        if let [liar] = senders.iter().copied().collect::<Vec<_>>()[..] {
            self.drop_peer(liar, "metadata failed the info-hash check");
        } else {
            // Several senders: keep what each sent (digests only: bounded by the piece
            // count) and go on one sender at a time.
            for (piece, peer) in self.sources.iter().enumerate() {
                if let Some(peer) = *peer {
                    let digest = Sha1::digest(self.piece_bytes(piece as u32)).into();
                    let piece = piece as u32;
                    self.evidence.push(Evidence {
                        piece,
                        digest,
                        peer,
                    });
                }
            }
            self.mode = Mode::Single(None);
        }
        self.reset_attempt();
    }

    fn piece_bytes(&self, piece: u32) -> &[u8] {
        let start = piece as usize * PIECE_SIZE as usize;
        let size = self.size.unwrap_or(0);
        &self.buf[start..start + piece_len(size, piece)]
    }

    fn finish(&mut self) {
        let size = self.size.unwrap_or(0);
        let mut liars = BTreeSet::new();
        for e in &self.evidence {
            let digest: [u8; 20] = Sha1::digest(self.piece_bytes(e.piece)).into();
            if digest != e.digest {
                liars.insert(e.peer);
            }
        }
        for liar in liars {
            if self.peers.contains_key(&liar) {
                self.drop_peer(liar, "metadata failed the info-hash check");
            }
        }
        let wrong_size: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.size != size)
            .map(|(&k, _)| k)
            .collect();
        for peer in wrong_size {
            self.drop_peer(peer, "metadata_size differs from the verified metadata");
        }
        self.done = true;
        self.peers.clear();
        self.evidence = Vec::new();
        self.sources = Vec::new();
        self.actions
            .push_back(Action::Done(std::mem::take(&mut self.buf)));
    }
}
