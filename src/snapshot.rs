//! What the outside world sees of a running torrent, once a second: plain data on a
//! `watch` channel, read by the progress bars, the resume writer and the tracker announcer
//! (which also writes the tracker fields).
//!
//! A leaf: it names no engine, store or session type, so whatever displays or records a
//! torrent depends on this module alone.

use std::sync::Arc;
use std::time::Duration;

use crate::types::Bitfield;

pub use crate::selection::Wanted;

/// Totals and rates for progress display and tracker announces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Payload bytes received that we wanted.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Bytes received that we did not need (duplicates, unrequested, failed pieces).
    pub wasted: u64,
    pub failed_pieces: u32,
    pub verified_bytes: u64,
    pub pieces_have: u32,
    pub down_rate: f64,
    pub up_rate: f64,
    pub peers_connected: usize,
    /// Connections that completed a handshake and were admitted, ever.
    pub peers_seen: usize,
    pub peers_known: usize,
    pub peers_banned: usize,
    /// Peers dropped to free their slot for a newcomer or a dial, ever.
    pub peers_evicted: u64,
    /// Interested peers we have unchoked now (being served).
    pub peers_unchoked: usize,
    /// Peers we sent at least one block, ever.
    pub peers_served: usize,
    /// Bytes the store may buffer now (the engine grows it for far peers).
    pub buffer: usize,
    /// Bytes of the pieces a file selection wants (pieces straddling a wanted file count
    /// whole), and how many of them are verified: what "complete" and the tracker's `left`
    /// are judged on. Without a selection, the whole torrent.
    pub wanted_bytes: u64,
    pub wanted_verified_bytes: u64,
    /// Distinct addresses learnt, by where they came from, this run.
    pub found: Found,
    /// Connected peers with pieces we lack and want, and how many of them have us choked.
    pub peers_useful: usize,
    pub peers_choking_us: usize,
    /// Wanted pieces we lack that no connected peer has, and all wanted pieces we lack.
    pub missing_everywhere: u32,
    pub lacking: u32,
}

/// Distinct peer addresses learnt from each source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    pub tracker: usize,
    pub dht: usize,
    pub lsd: usize,
    pub pex: usize,
    /// `--peer` and a magnet's `x.pe`.
    pub given: usize,
}

/// Where a torrent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Re-hashing data already on disk.
    #[default]
    Checking,
    /// A magnet: fetching the info dictionary from peers (BEP 9).
    Metadata,
    Downloading,
    /// Complete and serving until stopped.
    Seeding,
    /// Complete; the session is ending.
    Done,
}

/// A point-in-time copy of a torrent's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub name: String,
    pub phase: Phase,
    pub total_bytes: u64,
    pub pieces_total: u32,
    /// Bytes re-hashed so far while [`Phase::Checking`].
    pub checked_bytes: u64,
    pub stats: Stats,
    /// Pieces verified (empty until the download starts).
    pub have: Bitfield,
    /// How long the torrent has been complete in this run (time seeded, when it serves on).
    pub seeded: Option<Duration>,
    /// Totals from earlier runs (resume data), so ratio and seeding goals carry over.
    pub before: Totals,
    /// Our listen port, once bound.
    pub listen_port: Option<u16>,
    /// Trackers this torrent announces to.
    pub trackers_total: usize,
    /// Trackers whose last announce succeeded.
    pub trackers_ok: usize,
    /// The last tracker error, prefixed with the tracker's URL.
    pub tracker_error: Option<String>,
    /// The last tracker error for the display: the tracker's host and a short cause
    /// (`tracker.invalid: DNS lookup failed`); never the announce query (our peer id, key).
    pub tracker_status: Option<String>,
    /// Bytes already verified on disk when the download started (resume or recheck).
    pub resumed_bytes: u64,
    /// Where the content is (the download directory joined with the torrent's name).
    pub save_path: String,
    /// The torrent's piece length, and its files' sizes in order when it has several
    /// (empty for a single file): enough to derive each file's progress from `have`.
    pub piece_len: u32,
    pub files: Arc<[FileSize]>,
    /// How much of the torrent a file selection wants; `None`: all of it.
    pub selection: Option<Wanted>,
    /// What the display states about the goals and caps in force.
    pub limits: Limits,
    /// While fetching a magnet's metadata: from how many peers, how far.
    pub metadata: Option<MetadataStatus>,
    /// The connected peers (at most the torrent's peer cap).
    pub peers: Arc<[PeerInfo]>,
    /// Trackers' answers and connection outcomes, for the doctor.
    pub health: Health,
    /// A private torrent (BEP 27): peers from its trackers only.
    pub private: bool,
}

/// One connected peer, as a peer list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub addr: std::net::SocketAddr,
    /// From its peer id (`-qB4520-` → `qB 4.5.2.0`), else the id's printable start.
    pub client: String,
    /// Fraction of the torrent it has.
    pub progress: f64,
    pub down_rate: f64,
    pub up_rate: f64,
    pub downloaded: u64,
    pub uploaded: u64,
    /// qBittorrent's flag letters: `D`/`d` (we download / would but are choked), `U`/`u`
    /// (we upload / it would but is choked), `I` (it dialled us), `X` (from PEX) is not
    /// tracked, `E` (encrypted) is not tracked here.
    pub flags: String,
}

/// A metadata fetch, as the display shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataStatus {
    /// Peers that offer the metadata.
    pub peers: usize,
    /// 16 KiB metadata pieces received, of how many (0 until a size is accepted).
    pub pieces_have: u32,
    pub pieces_total: u32,
}

/// One file of a multi-file torrent, for per-file progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSize {
    /// The file's path inside the torrent, `/`-separated, without the torrent's name.
    pub path: String,
    pub len: u64,
    /// Selected for download (every file without a selection).
    pub wanted: bool,
}

/// Seeding goals and rate caps (session-wide caps: every torrent shows the same).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub seed_ratio: Option<f64>,
    pub seed_time: Option<Duration>,
    pub max_down_rate: Option<u64>,
    pub max_up_rate: Option<u64>,
}

impl Snapshot {
    /// Bytes to have when done and bytes verified of them: the wanted pieces with a file
    /// selection, the whole torrent without.
    pub fn target(&self) -> (u64, u64) {
        match self.selection {
            Some(_) => (self.stats.wanted_bytes, self.stats.wanted_verified_bytes),
            None => (self.total_bytes, self.stats.verified_bytes),
        }
    }

    /// Bytes still to verify (the tracker's `left`).
    pub fn left(&self) -> u64 {
        let (target, done) = self.target();
        target.saturating_sub(done)
    }

    /// Fraction of the target verified, 0.0..=1.0.
    pub fn progress(&self) -> f64 {
        let (target, done) = self.target();
        if target == 0 {
            return 1.0;
        }
        done as f64 / target as f64
    }

    /// Uploaded ÷ content size over every run (the share ratio as `--seed-ratio` counts it).
    pub fn ratio(&self) -> f64 {
        self.totals().uploaded as f64 / self.total_bytes.max(1) as f64
    }

    /// Totals over every run: earlier runs' plus this one's.
    pub fn totals(&self) -> Totals {
        Totals {
            uploaded: self.before.uploaded + self.stats.uploaded,
            downloaded: self.before.downloaded + self.stats.downloaded,
            seeded: self.before.seeded + self.seeded.unwrap_or_default(),
        }
    }

    /// Seconds left at the current download rate, if it can be estimated.
    pub fn eta_secs(&self) -> Option<u64> {
        let left = self.left();
        if left == 0 {
            return Some(0);
        }
        (self.stats.down_rate >= 1.0).then(|| (left as f64 / self.stats.down_rate).ceil() as u64)
    }
}

/// What a torrent has done over its life, across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub uploaded: u64,
    pub downloaded: u64,
    /// Time spent complete while running.
    pub seeded: Duration,
}

/// What a torrent's connectivity looks like, for the doctor (`crate::doctor`): written by
/// the announcer (`trackers`) and the driver (`attempts`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Every tracker the torrent announces to, in tier order.
    pub trackers: Arc<[TrackerState]>,
    /// Our connection attempts by outcome, since the run started.
    pub attempts: Attempts,
}

/// One tracker and what it did last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerState {
    /// The announce URL, as the torrent (or `--tracker`) gives it: what the daemon lists.
    pub url: String,
    /// The host, as the display shows it (never the query with our peer id).
    pub host: String,
    pub outcome: TrackerOutcome,
}

/// What one tracker did last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerOutcome {
    /// Not asked yet (or no answer yet).
    Pending,
    Answered {
        /// Peer addresses in its last reply.
        peers: usize,
        /// Seeders and leechers it counts in the swarm, when its reply said.
        seeds: Option<u32>,
        leechers: Option<u32>,
    },
    /// An error: the tracker's failure reason, or why it could not be reached, short.
    Failed(String),
}

/// Connection attempts we made, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Handshakes completed.
    pub connected: usize,
    pub refused: usize,
    /// The connect or the handshake timed out.
    pub timed_out: usize,
    /// The peer closed the connection at our plaintext handshake: most likely it requires
    /// encryption.
    pub peer_requires_encryption: usize,
    /// Refused by our `--encryption` setting: the peer dropped the encrypted handshake
    /// `require` insists on, or dialled us in the kind our setting refuses.
    pub refused_by_our_encryption: usize,
    pub wrong_info_hash: usize,
    /// Addresses that turned out to be ourselves.
    pub ourselves: usize,
    pub other_failures: usize,
}

impl Attempts {
    /// Attempts that did not end in a handshake (ourselves excluded).
    pub fn failed(&self) -> usize {
        self.refused
            + self.timed_out
            + self.peer_requires_encryption
            + self.refused_by_our_encryption
            + self.wrong_info_hash
            + self.other_failures
    }
}
