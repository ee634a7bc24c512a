//! What the outside world sees of a running torrent, once a second: plain data on a
//! `watch` channel, read by the progress bars and the tracker announcer (which also writes
//! the tracker fields).

use crate::engine::Stats;
use crate::types::Bitfield;

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
    /// How long the torrent has been complete (time seeded, when the session serves on).
    pub seeded: Option<std::time::Duration>,
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

    /// Uploaded ÷ content size (the share ratio as `--seed-ratio` counts it).
    pub fn ratio(&self) -> f64 {
        self.stats.uploaded as f64 / self.total_bytes.max(1) as f64
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
