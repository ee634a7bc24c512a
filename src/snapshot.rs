//! What the outside world sees of a running torrent, once a second: plain data on a
//! `watch` channel, read by the progress bars, the resume writer and the tracker announcer
//! (which also writes the tracker fields).
//!
//! A leaf: it names no engine, store or session type, so whatever displays or records a
//! torrent depends on this module alone.

use std::time::Duration;

use crate::types::Bitfield;

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
}

/// Where a torrent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Re-hashing data already on disk.
    #[default]
    Checking,
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
}

impl Snapshot {
    /// Fraction verified, 0.0..=1.0.
    pub fn progress(&self) -> f64 {
        if self.total_bytes == 0 {
            return 1.0;
        }
        self.stats.verified_bytes as f64 / self.total_bytes as f64
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
        let left = self.total_bytes.saturating_sub(self.stats.verified_bytes);
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
