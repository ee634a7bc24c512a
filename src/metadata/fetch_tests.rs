//! The fetcher against a fake swarm on a virtual clock: honest peers, liars, silent peers,
//! peers that reject everything or leave, and lies about the size. Every run is bounded in
//! virtual time and in steps; outcomes and invariants are asserted, never durations.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::*;
use crate::types::InfoHash;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Honest,
    /// Flips a byte of every piece it sends.
    Liar,
    /// Never answers.
    Silent,
    /// Rejects every request.
    Rejecter,
    /// Advertises this size; serves junk of that size, or nothing.
    WrongSize {
        size: u64,
        answers: bool,
    },
    /// Answers this many requests honestly, then leaves.
    LeavesAfter(usize),
}

struct Sim {
    f: Fetcher,
    info: Vec<u8>,
    start: Instant,
    now: Instant,
    kinds: BTreeMap<PeerKey, Kind>,
    answered: BTreeMap<PeerKey, usize>,
    requests: BTreeMap<PeerKey, usize>,
    inbox: VecDeque<Event>,
    dropped: Vec<(PeerKey, &'static str)>,
    done: Option<Vec<u8>>,
    max_outstanding: usize,
}

impl Sim {
    fn new(info: &[u8]) -> Self {
        let now = Instant::now();
        Sim {
            f: Fetcher::new(InfoHash(Sha1::digest(info).into())),
            info: info.to_vec(),
            start: now,
            now,
            kinds: BTreeMap::new(),
            answered: BTreeMap::new(),
            requests: BTreeMap::new(),
            inbox: VecDeque::new(),
            dropped: Vec::new(),
            done: None,
            max_outstanding: 0,
        }
    }

    fn join(&mut self, peer: PeerKey, kind: Kind) {
        let size = match kind {
            Kind::WrongSize { size, .. } => size,
            _ => self.info.len() as u64,
        };
        self.kinds.insert(peer, kind);
        self.join_with(peer, Some(size));
    }

    fn join_with(&mut self, peer: PeerKey, metadata_size: Option<u64>) {
        let event = Event::PeerJoined {
            peer,
            metadata_size,
        };
        self.f.handle(self.now, event);
        self.pump();
    }

    /// Carry out every action; peers answer into the inbox.
    fn pump(&mut self) {
        while let Some(action) = self.f.poll_action() {
            assert!(self.done.is_none(), "{action:?} after Done");
            match action {
                Action::Request { peer, piece } => {
                    let out = self.f.outstanding(peer);
                    assert!(out <= MAX_OUTSTANDING_PER_PEER, "{out} to peer {peer}");
                    self.max_outstanding = self.max_outstanding.max(out);
                    *self.requests.entry(peer).or_default() += 1;
                    self.answer(peer, piece);
                }
                Action::Drop { peer, reason } => {
                    self.dropped.push((peer, reason));
                    self.kinds.remove(&peer);
                }
                Action::Done(bytes) => self.done = Some(bytes),
            }
        }
    }

    fn answer(&mut self, peer: PeerKey, piece: u32) {
        let Some(&kind) = self.kinds.get(&peer) else {
            return;
        };
        let size = self.info.len() as u32;
        let start = piece as usize * PIECE_SIZE as usize;
        let honest = || self.info[start..start + piece_len(size, piece)].to_vec();
        let data = |total_size: u64, bytes: Vec<u8>| Event::Data {
            peer,
            piece,
            total_size,
            bytes: Bytes::from(bytes),
        };
        let event = match kind {
            Kind::Honest => data(size.into(), honest()),
            Kind::Liar => {
                let mut bytes = honest();
                bytes[0] ^= 0xff;
                data(size.into(), bytes)
            }
            Kind::Silent | Kind::WrongSize { answers: false, .. } => return,
            Kind::Rejecter => Event::Reject { peer, piece },
            Kind::WrongSize { size, .. } => data(size, vec![0x55; piece_len(size as u32, piece)]),
            Kind::LeavesAfter(n) => {
                let answered = self.answered.entry(peer).or_default();
                if *answered < n {
                    *answered += 1;
                    data(size.into(), honest())
                } else {
                    self.kinds.remove(&peer);
                    Event::PeerLeft { peer }
                }
            }
        };
        self.inbox.push_back(event);
    }

    /// Deliver answers and fire deadlines until Done or `limit` of virtual time.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        for _ in 0..100_000 {
            self.pump();
            if let Some(event) = self.inbox.pop_front() {
                self.f.handle(self.now, event);
                continue;
            }
            if self.done.is_some() {
                return;
            }
            match self.f.next_deadline() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.f.handle_timeout(self.now);
                }
                _ => return,
            }
        }
        panic!("the simulation did not settle");
    }

    fn dropped_peers(&self) -> BTreeSet<PeerKey> {
        self.dropped.iter().map(|&(p, _)| p).collect()
    }

    fn assert_done(&self) {
        let done = self.done.as_ref().expect("metadata fetched");
        assert!(done == &self.info, "Done carries the info dictionary");
        assert!(self.f.is_done());
        assert_eq!(self.f.next_deadline(), None);
        assert!(self.max_outstanding <= MAX_OUTSTANDING_PER_PEER);
    }
}

/// A real info dictionary of several pieces (the last one short): a torrent of 1,500 small
/// files with long names, made by `crate::create`.
fn big_info() -> &'static [u8] {
    static INFO: OnceLock<Vec<u8>> = OnceLock::new();
    INFO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..1500u32 {
            let name =
                format!("{i:04}-a-name-long-enough-that-the-info-dictionary-spans-pieces.txt");
            std::fs::write(dir.path().join(name), [i as u8]).unwrap();
        }
        let opts = crate::create::CreateOptions {
            path: dir.path().to_path_buf(),
            ..Default::default()
        };
        let torrent = crate::create::create_torrent(&opts).unwrap();
        let info = crate::bencode::dict_value_span(&torrent, b"info").unwrap();
        let info = info.unwrap().to_vec();
        assert!(
            piece_count(info.len() as u32) > 3 * MAX_OUTSTANDING_PER_PEER as u32,
            "{} bytes",
            info.len()
        );
        assert_ne!(info.len() % PIECE_SIZE as usize, 0, "a short last piece");
        info
    })
}

#[test]
fn honest_peers_share_the_work_and_need_no_timeout() {
    let mut sim = Sim::new(big_info());
    for peer in 1..=3 {
        sim.join(peer, Kind::Honest);
    }
    assert_eq!(sim.f.serving_peers(), 3);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert!(sim.dropped.is_empty(), "{:?}", sim.dropped);
    for peer in 1..=3 {
        assert!(
            sim.requests.get(&peer).is_some_and(|&n| n > 0),
            "peer {peer}"
        );
    }
    assert_eq!(sim.max_outstanding, MAX_OUTSTANDING_PER_PEER);
    assert_eq!(sim.f.buffer_allocations(), 1);
    assert_eq!(sim.now, sim.start);
}

#[test]
fn a_fixture_torrents_single_piece_info() {
    let torrent = include_bytes!("../../fixtures/single.torrent");
    let info = crate::bencode::dict_value_span(torrent, b"info").unwrap();
    let mut sim = Sim::new(info.unwrap());
    sim.join(7, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(sim.requests[&7], 1);
}

#[test]
fn a_liar_among_honest_peers_is_dropped() {
    // First: it is the first single source tried after the mixed failure.
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Liar);
    sim.join(2, Kind::Honest);
    sim.join(3, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(sim.dropped_peers(), BTreeSet::from([1]));
    assert_eq!(sim.f.buffer_allocations(), 1);

    // Last: an honest single source succeeds, and the evidence convicts the liar.
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Honest);
    sim.join(2, Kind::Liar);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(sim.dropped_peers(), BTreeSet::from([2]));
}

#[test]
fn every_liar_is_dropped_and_the_honest_peer_wins() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Liar);
    sim.join(2, Kind::Liar);
    sim.join(3, Kind::Liar);
    sim.join(4, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(sim.dropped_peers(), BTreeSet::from([1, 2, 3]));
}

#[test]
fn a_lone_liar_is_dropped_and_nothing_is_done() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Liar);
    sim.run(Duration::from_secs(600));
    assert!(sim.done.is_none());
    assert_eq!(sim.dropped, [(1, "metadata failed the info-hash check")]);
}

#[test]
fn a_silent_peer_does_not_stall_the_fetch() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Silent);
    sim.join(2, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert!(sim.dropped.is_empty(), "silence is not a lie");
    assert!(
        sim.now > sim.start,
        "the silent peer's pieces came after a timeout"
    );
}

#[test]
fn a_peer_that_rejects_everything_does_not_stall_the_fetch() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Rejecter);
    sim.join(2, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert!(sim.dropped.is_empty());
}

#[test]
fn useless_peers_are_asked_sparingly_until_an_honest_one_comes() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Silent);
    sim.join(2, Kind::Rejecter);
    let hour = Duration::from_secs(3600);
    sim.run(hour);
    assert!(sim.done.is_none());
    // After its first failure a peer has one request at a time: one per timeout, one
    // per rest (plus the first two each).
    let silent_cap = 2 + (hour.as_secs() / REQUEST_TIMEOUT.as_secs()) as usize;
    let reject_cap = 2 + (hour.as_secs() / REJECT_BACKOFF.as_secs()) as usize;
    assert!(sim.requests[&1] <= silent_cap, "{}", sim.requests[&1]);
    assert!(sim.requests[&2] <= reject_cap, "{}", sim.requests[&2]);
    assert!(sim.f.outstanding(1) <= 1);

    sim.join(3, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert!(sim.dropped.is_empty());
    assert_eq!(sim.f.buffer_allocations(), 1);
}

#[test]
fn oversize_and_missing_sizes_are_refused() {
    let mut sim = Sim::new(big_info());
    sim.join_with(1, Some(u64::from(MAX_METADATA_SIZE) + 1));
    sim.join_with(2, Some(u64::MAX));
    sim.join_with(3, Some(0));
    sim.join_with(4, None);
    assert_eq!(
        sim.dropped,
        [
            (1, "metadata_size above the cap"),
            (2, "metadata_size above the cap")
        ]
    );
    assert_eq!(sim.f.metadata_size(), None);
    assert_eq!(
        sim.f.buffer_allocations(),
        0,
        "no buffer for a refused size"
    );
    assert_eq!(sim.f.serving_peers(), 0);
    assert!(sim.requests.is_empty());
    // A dropped peer stays dropped, even if it says something else.
    sim.join_with(1, Some(big_info().len() as u64));
    assert_eq!(sim.f.serving_peers(), 0);

    sim.join(5, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(sim.f.buffer_allocations(), 1);
}

#[test]
fn peers_leaving_midway_keep_what_they_gave() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::LeavesAfter(1));
    sim.join(2, Kind::LeavesAfter(2));
    sim.run(Duration::from_secs(600));
    assert!(sim.done.is_none());
    assert_eq!(sim.f.progress().0, 3);
    assert_eq!(sim.f.serving_peers(), 0);
    sim.join(3, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    let total = piece_count(big_info().len() as u32) as usize;
    assert_eq!(sim.requests[&3], total - 3, "only what was missing");
}

#[test]
fn a_size_liar_serving_junk_is_dropped_and_the_true_size_fetched() {
    let true_size = big_info().len() as u64;
    let mut sim = Sim::new(big_info());
    let lie = Kind::WrongSize {
        size: true_size + 100,
        answers: true,
    };
    sim.join(1, lie);
    sim.join(2, Kind::Honest);
    assert_eq!(sim.f.metadata_size(), Some(true_size as u32 + 100));
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(sim.dropped, [(1, "metadata failed the info-hash check")]);
    assert_eq!(
        sim.f.buffer_allocations(),
        2,
        "one per size, never two at once"
    );
}

#[test]
fn a_silent_size_liar_gives_way_and_is_dropped_at_the_end() {
    let true_size = big_info().len() as u64;
    let mut sim = Sim::new(big_info());
    let lie = Kind::WrongSize {
        size: 100,
        answers: false,
    };
    sim.join(1, lie);
    sim.join(2, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    assert_eq!(
        sim.dropped,
        [(1, "metadata_size differs from the verified metadata")]
    );
    assert_eq!(sim.f.metadata_size(), Some(true_size as u32));
}

#[test]
fn bad_data_messages_drop_their_sender() {
    let info = big_info();
    let size = info.len() as u64;
    for (total_size, len, reason) in [
        (
            size + 1,
            PIECE_SIZE as usize,
            "total_size differs from its metadata_size",
        ),
        (size, 10, "metadata piece of the wrong length"),
    ] {
        let now = Instant::now();
        let mut f = Fetcher::new(InfoHash(Sha1::digest(info).into()));
        let joined = Event::PeerJoined {
            peer: 1,
            metadata_size: Some(size),
        };
        f.handle(now, joined);
        assert_eq!(f.poll_action(), Some(Action::Request { peer: 1, piece: 0 }));
        let bytes = Bytes::from(vec![0; len]);
        let data = Event::Data {
            peer: 1,
            piece: 0,
            total_size,
            bytes,
        };
        while f.poll_action().is_some() {}
        f.handle(now, data);
        assert_eq!(f.poll_action(), Some(Action::Drop { peer: 1, reason }));
        assert_eq!(f.poll_action(), None);
        assert_eq!(f.serving_peers(), 0);
    }
}

#[test]
fn unsolicited_data_and_rejects_are_ignored() {
    let info = big_info();
    let now = Instant::now();
    let mut f = Fetcher::new(InfoHash(Sha1::digest(info).into()));
    let size = info.len() as u64;
    // Before any size: nothing to do with data.
    let stray = |piece| Event::Data {
        peer: 1,
        piece,
        total_size: size,
        bytes: Bytes::from(vec![0; PIECE_SIZE as usize]),
    };
    f.handle(now, stray(0));
    assert_eq!(f.poll_action(), None);
    f.handle(
        now,
        Event::PeerJoined {
            peer: 1,
            metadata_size: Some(size),
        },
    );
    while f.poll_action().is_some() {}
    for event in [
        stray(3),
        stray(u32::MAX),
        Event::Reject { peer: 1, piece: 3 },
    ] {
        f.handle(now, event);
        assert_eq!(f.poll_action(), None);
    }
    assert_eq!(f.progress().0, 0);
    assert_eq!(f.outstanding(1), MAX_OUTSTANDING_PER_PEER);
}

#[test]
fn nothing_happens_after_done() {
    let mut sim = Sim::new(big_info());
    sim.join(1, Kind::Honest);
    sim.run(Duration::from_secs(600));
    sim.assert_done();
    sim.join(2, Kind::Honest);
    sim.f.handle_timeout(sim.now + Duration::from_secs(3600));
    sim.pump();
    assert!(!sim.requests.contains_key(&2));
}
