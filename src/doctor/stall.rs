//! When a torrent counts as stalled, so the display and the daemon know when to say why
//! (issue 19, live diagnosis). Pure: fed the time and the torrent's snapshot each tick,
//! with made-up `Instant`s in the tests.
//!
//! A torrent is stalled when it is downloading (or fetching a magnet's metadata) and,
//! for [`Stall::after`] on end, either nothing arrived (payload bytes, or metadata pieces
//! while fetching metadata), or its rate over the last [`WINDOW`] stayed below
//! [`SLOW_FRACTION`] of its recent best. Checking, complete and seeding torrents are never
//! stalled.
//!
//! Invariants: memory is bounded ([`MAX_SAMPLES`]) however often it is fed; a phase change
//! starts the watch afresh (metadata pieces and payload bytes are not one counter); the
//! no-progress stall ends on the first tick that shows progress.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::snapshot::{Phase, Snapshot};

/// How long without progress before a torrent is stalled, unless told otherwise: long
/// enough that a tracker's first answer and the first connections (each a few seconds)
/// are not taken for a stall; issue 19 asks for 30 s.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(30);

/// The span the current rate is measured over: long enough to smooth piece-sized bursts
/// (a 4 MiB piece at 1 MiB/s arrives in 4 s), short enough to notice a stall soon (the
/// issue's "last ~10 s").
pub const WINDOW: Duration = Duration::from_secs(10);

/// Below this fraction of its recent best rate a torrent is crawling (issue 19: 1 %).
pub const SLOW_FRACTION: f64 = 0.01;

/// The recent best rate halves every this long without being matched again, so a burst
/// long ago does not make today's steady rate look like a stall forever.
const BEST_HALF_LIFE: Duration = Duration::from_secs(120);

/// Samples kept at most: the window at the display's 4 Hz is ~40; the cap only guards
/// against a caller feeding far more often.
const MAX_SAMPLES: usize = 256;

/// One torrent's stall watch.
#[derive(Debug, Clone)]
pub struct Stall {
    after: Duration,
    /// The phase being watched (`None`: not one that can stall).
    phase: Option<Phase>,
    /// (when, progress counter), oldest first, covering a bit more than [`WINDOW`].
    samples: VecDeque<(Instant, u64)>,
    /// When the counter last went up (or the watch started).
    last_progress: Option<Instant>,
    /// The best rate over a full window, decayed, and when it was last updated.
    best: f64,
    best_at: Option<Instant>,
    /// Since when the rate has been below [`SLOW_FRACTION`] of the best.
    slow_since: Option<Instant>,
    stalled: bool,
}

impl Default for Stall {
    fn default() -> Self {
        Stall::new(DEFAULT_AFTER)
    }
}

impl Stall {
    pub fn new(after: Duration) -> Self {
        Stall {
            after,
            phase: None,
            samples: VecDeque::new(),
            last_progress: None,
            best: 0.0,
            best_at: None,
            slow_since: None,
            stalled: false,
        }
    }

    pub fn after(&self) -> Duration {
        self.after
    }

    /// Whether the last [`update`](Self::update) found it stalled.
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// Reads one tick; returns whether the torrent is stalled now.
    pub fn update(&mut self, now: Instant, s: &Snapshot) -> bool {
        let counter = match s.phase {
            Phase::Downloading => s.stats.downloaded,
            Phase::Metadata => s.metadata.map_or(0, |m| m.pieces_have as u64),
            Phase::Checking | Phase::Seeding | Phase::Done => {
                *self = Stall::new(self.after);
                return false;
            }
        };
        if self.phase != Some(s.phase) {
            *self = Stall::new(self.after);
            self.phase = Some(s.phase);
        }
        let progressed = match self.samples.back() {
            Some(&(_, last)) => counter > last,
            None => false,
        };
        if progressed || self.last_progress.is_none() {
            self.last_progress = Some(now);
        }
        self.samples.push_back((now, counter));
        // Keep one sample at or before the window's start as the base to measure from.
        while self.samples.len() > MAX_SAMPLES
            || (self.samples.len() > 2
                && self
                    .samples
                    .get(1)
                    .is_some_and(|&(t, _)| now.saturating_duration_since(t) >= WINDOW))
        {
            self.samples.pop_front();
        }
        let slow = self.slow(now, counter);
        let idle = self
            .last_progress
            .is_some_and(|t| now.saturating_duration_since(t) >= self.after);
        let crawling = self
            .slow_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.after);
        self.stalled = !progressed && idle || slow && crawling;
        self.stalled
    }

    /// Updates the best rate and whether the current one is below a fraction of it.
    fn slow(&mut self, now: Instant, counter: u64) -> bool {
        let Some(&(base_t, base)) = self.samples.front() else {
            return false;
        };
        let span = now.saturating_duration_since(base_t);
        if span < WINDOW {
            // Not a full window yet: no rate worth comparing.
            return false;
        }
        let rate = counter.saturating_sub(base) as f64 / span.as_secs_f64();
        if let Some(at) = self.best_at {
            let halvings =
                now.saturating_duration_since(at).as_secs_f64() / BEST_HALF_LIFE.as_secs_f64();
            self.best *= 0.5f64.powf(halvings);
        }
        self.best_at = Some(now);
        self.best = self.best.max(rate);
        let slow = self.best > 0.0 && rate < self.best * SLOW_FRACTION;
        if !slow {
            self.slow_since = None;
        } else if self.slow_since.is_none() {
            self.slow_since = Some(now);
        }
        slow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::MetadataStatus;

    const AFTER: Duration = Duration::from_secs(30);

    fn snap(phase: Phase, downloaded: u64) -> Snapshot {
        let mut s = Snapshot {
            phase,
            ..Snapshot::default()
        };
        s.stats.downloaded = downloaded;
        s
    }

    /// Feeds one tick a second from `from` to `to` seconds, with `bytes(t)` downloaded.
    fn run(
        st: &mut Stall,
        t0: Instant,
        secs: std::ops::Range<u64>,
        phase: Phase,
        bytes: impl Fn(u64) -> u64,
    ) -> Vec<bool> {
        secs.map(|t| st.update(t0 + Duration::from_secs(t), &snap(phase, bytes(t))))
            .collect()
    }

    #[test]
    fn no_progress_stalls_after_the_delay_and_progress_ends_it() {
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        let seen = run(&mut st, t0, 0..40, Phase::Downloading, |_| 0);
        assert!(!seen[..30].iter().any(|&s| s), "{seen:?}");
        assert!(seen[30..].iter().all(|&s| s), "{seen:?}");
        // The first tick with a byte more is not stalled.
        assert!(!st.update(t0 + Duration::from_secs(40), &snap(Phase::Downloading, 1)));
    }

    #[test]
    fn steady_progress_never_stalls() {
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        let seen = run(&mut st, t0, 0..300, Phase::Downloading, |t| t * 1_000_000);
        assert!(!seen.iter().any(|&s| s));
    }

    #[test]
    fn a_trickle_below_one_percent_of_the_best_rate_stalls() {
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        // 60 s at 1 MB/s, then 1 kB/s (0.1 %): bytes still arrive every second.
        let bytes = |t: u64| {
            if t < 60 {
                t * 1_000_000
            } else {
                60_000_000 + (t - 60) * 1_000
            }
        };
        let seen = run(&mut st, t0, 0..120, Phase::Downloading, bytes);
        assert!(!seen[..60].iter().any(|&s| s), "{seen:?}");
        assert!(seen[110..].iter().all(|&s| s), "{seen:?}");
        // Back to speed: no longer stalled once the window's rate recovers.
        let fast = |t: u64| 60_060_000 + (t - 120) * 1_000_000;
        let seen = run(&mut st, t0, 120..135, Phase::Downloading, fast);
        assert!(!*seen.last().unwrap(), "{seen:?}");
    }

    #[test]
    fn a_slower_but_not_crawling_rate_is_not_a_stall() {
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        // From 1 MB/s to 50 kB/s (5 %).
        let bytes = |t: u64| {
            if t < 60 {
                t * 1_000_000
            } else {
                60_000_000 + (t - 60) * 50_000
            }
        };
        let seen = run(&mut st, t0, 0..200, Phase::Downloading, bytes);
        assert!(!seen.iter().any(|&s| s), "{seen:?}");
    }

    #[test]
    fn checking_and_seeding_never_stall() {
        for phase in [Phase::Checking, Phase::Seeding, Phase::Done] {
            let (mut st, t0) = (Stall::new(AFTER), Instant::now());
            let seen = run(&mut st, t0, 0..100, phase, |_| 0);
            assert!(!seen.iter().any(|&s| s), "{phase:?}");
        }
        // Stalled, then complete: not stalled any more.
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        assert!(run(&mut st, t0, 0..40, Phase::Downloading, |_| 0)[39]);
        assert!(!st.update(t0 + Duration::from_secs(41), &snap(Phase::Seeding, 0)));
    }

    #[test]
    fn a_metadata_fetch_stalls_on_its_pieces_and_restarts_at_the_download() {
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        let meta = |pieces| Snapshot {
            phase: Phase::Metadata,
            metadata: Some(MetadataStatus {
                peers: 1,
                pieces_have: pieces,
                pieces_total: 4,
            }),
            ..Snapshot::default()
        };
        for t in 0..31 {
            st.update(t0 + Duration::from_secs(t), &meta(1));
        }
        assert!(st.stalled());
        assert!(!st.update(t0 + Duration::from_secs(31), &meta(2)));
        // The download starts: a fresh watch, not stalled at once.
        assert!(!st.update(t0 + Duration::from_secs(32), &snap(Phase::Downloading, 0)));
        assert!(st.update(t0 + Duration::from_secs(62), &snap(Phase::Downloading, 0)));
    }

    #[test]
    fn memory_stays_bounded_when_fed_fast() {
        let (mut st, t0) = (Stall::new(AFTER), Instant::now());
        for i in 0..10_000u64 {
            st.update(t0 + Duration::from_millis(i), &snap(Phase::Downloading, i));
        }
        assert!(st.samples.len() <= MAX_SAMPLES);
    }
}
