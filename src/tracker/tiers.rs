//! Multitracker bookkeeping (BEP 12): which tracker of each tier to try next, and when a
//! failing tracker may be tried again. Pure: the time and the randomness are passed in.
//!
//! Strategy (the one libtorrent calls `announce_to_all_tiers`): **every tier is announced to
//! concurrently**, and within a tier the trackers are tried strictly in order, so each tier
//! has at most one working tracker at a time. Strict BEP 12 would stop at the first tier that
//! answers; announcing to all tiers finds more peers and means a dead first tier costs
//! nothing, at the price of a few more announces (torrents list one tracker per tier far more
//! often than backups within a tier).
//!
//! - Each tier is shuffled once at construction.
//! - A tracker that answers moves to the front of its tier ([`Tiers::record_success`]).
//! - A tracker that fails backs off exponentially from [`BACKOFF_BASE`] up to [`BACKOFF_MAX`],
//!   with "equal jitter" (half the delay fixed, half random) so a swarm of clients whose
//!   tracker went down does not come back in lock-step. The tier moves on to its next
//!   tracker that is not backing off.
//!
//! Invariant: every [`TrackerId`] appears in exactly one tier, exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

/// First back-off after a failure (libtorrent's `tracker_backoff` starts near here too).
pub const BACKOFF_BASE: Duration = Duration::from_secs(15);
/// Longest back-off: a dead tracker is still retried twice an hour.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);
/// Most trackers kept from one torrent; a hostile `.torrent` cannot make us hold thousands.
pub const MAX_TRACKERS: usize = 64;

/// Stable index of one tracker for the lifetime of a [`Tiers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackerId(pub usize);

#[derive(Debug, Clone)]
struct Entry {
    url: String,
    tier: usize,
    failures: u32,
    retry_at: Option<Instant>,
    /// Never tried again (an unusable URL).
    disabled: bool,
}

/// The trackers of one torrent, by tier.
#[derive(Debug, Clone)]
pub struct Tiers {
    entries: Vec<Entry>,
    tiers: Vec<Vec<TrackerId>>,
}

impl Tiers {
    /// Build from the torrent's tiers (`announce-list`, or one tier with `announce`).
    /// Empty tiers and duplicate URLs (a URL kept only in its first tier) are dropped, at most
    /// [`MAX_TRACKERS`] are kept, and each tier is shuffled with `rng`.
    pub fn new<R: Rng + ?Sized>(tiers: Vec<Vec<String>>, rng: &mut R) -> Self {
        let mut seen = HashSet::new();
        let mut out = Tiers {
            entries: Vec::new(),
            tiers: Vec::new(),
        };
        for tier in tiers {
            let mut ids = Vec::new();
            for url in tier {
                let url = url.trim().to_string();
                if url.is_empty() || out.entries.len() >= MAX_TRACKERS || !seen.insert(url.clone())
                {
                    continue;
                }
                ids.push(TrackerId(out.entries.len()));
                out.entries.push(Entry {
                    url,
                    tier: out.tiers.len(),
                    failures: 0,
                    retry_at: None,
                    disabled: false,
                });
            }
            if !ids.is_empty() {
                ids.shuffle(rng);
                out.tiers.push(ids);
            }
        }
        out
    }

    /// Number of trackers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of (non-empty) tiers.
    pub fn num_tiers(&self) -> usize {
        self.tiers.len()
    }

    /// The trackers of `tier`, in the order they are tried.
    pub fn tier(&self, tier: usize) -> &[TrackerId] {
        self.tiers.get(tier).map_or(&[], Vec::as_slice)
    }

    /// The tier `id` belongs to.
    pub fn tier_of(&self, id: TrackerId) -> usize {
        self.entries[id.0].tier
    }

    pub fn url(&self, id: TrackerId) -> &str {
        &self.entries[id.0].url
    }

    /// Every tracker id.
    pub fn ids(&self) -> impl Iterator<Item = TrackerId> {
        (0..self.entries.len()).map(TrackerId)
    }

    /// Consecutive failures of `id`.
    pub fn failures(&self, id: TrackerId) -> u32 {
        self.entries[id.0].failures
    }

    /// When `id` may be tried again, if it is backing off.
    pub fn retry_at(&self, id: TrackerId) -> Option<Instant> {
        self.entries[id.0].retry_at
    }

    /// The first tracker of `tier` that is not backing off at `now`.
    pub fn next_in_tier(&self, tier: usize, now: Instant) -> Option<TrackerId> {
        self.tier(tier).iter().copied().find(|id| {
            let e = &self.entries[id.0];
            !e.disabled && e.retry_at.is_none_or(|t| t <= now)
        })
    }

    /// When some tracker of `tier` can next be tried (`now` if one can already); `None` when
    /// every tracker of the tier is disabled.
    pub fn tier_ready_at(&self, tier: usize, now: Instant) -> Option<Instant> {
        self.tier(tier)
            .iter()
            .filter(|id| !self.entries[id.0].disabled)
            .map(|id| self.entries[id.0].retry_at.map_or(now, |t| t.max(now)))
            .min()
    }

    /// `id` answered: clear its back-off and move it to the front of its tier.
    pub fn record_success(&mut self, id: TrackerId) {
        let e = &mut self.entries[id.0];
        e.failures = 0;
        e.retry_at = None;
        let tier = &mut self.tiers[e.tier];
        if let Some(pos) = tier.iter().position(|&t| t == id) {
            tier[..=pos].rotate_right(1);
        }
    }

    /// Never try `id` again (its URL cannot be used).
    pub fn disable(&mut self, id: TrackerId) {
        self.entries[id.0].disabled = true;
    }

    /// `id` failed at `now`: back it off. Returns the delay chosen.
    pub fn record_failure<R: Rng + ?Sized>(
        &mut self,
        id: TrackerId,
        now: Instant,
        rng: &mut R,
    ) -> Duration {
        let e = &mut self.entries[id.0];
        e.failures = e.failures.saturating_add(1);
        let delay = backoff(e.failures, rng);
        e.retry_at = Some(now + delay);
        delay
    }
}

/// The delay after `failures` consecutive failures: `BACKOFF_BASE · 2^(failures−1)` capped at
/// [`BACKOFF_MAX`], then jittered into `[d/2, d]`.
pub fn backoff<R: Rng + ?Sized>(failures: u32, rng: &mut R) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX);
    let half = full / 2;
    half + half.mul_f64(rng.gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn urls(tiers: &[&[&str]]) -> Vec<Vec<String>> {
        tiers
            .iter()
            .map(|t| t.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn order(t: &Tiers, tier: usize) -> Vec<&str> {
        t.tier(tier).iter().map(|&id| t.url(id)).collect()
    }

    #[test]
    fn shuffle_is_deterministic_per_seed_and_keeps_tiers_apart() {
        let input = urls(&[&["a", "b", "c", "d", "e"], &["f"], &[], &["g", "h"]]);
        let a = Tiers::new(input.clone(), &mut StdRng::seed_from_u64(7));
        let b = Tiers::new(input.clone(), &mut StdRng::seed_from_u64(7));
        assert_eq!(a.num_tiers(), 3, "empty tier dropped");
        assert_eq!(a.len(), 8);
        for tier in 0..3 {
            assert_eq!(order(&a, tier), order(&b, tier));
        }
        let mut first = order(&a, 0);
        first.sort();
        assert_eq!(first, ["a", "b", "c", "d", "e"]);
        assert_eq!(order(&a, 1), ["f"]);
        // Some seed reorders the first tier (shuffling does something).
        let moved = (0..20u64).any(|s| {
            order(&Tiers::new(input.clone(), &mut StdRng::seed_from_u64(s)), 0)
                != ["a", "b", "c", "d", "e"]
        });
        assert!(moved);
    }

    #[test]
    fn duplicates_and_blanks_dropped_and_count_capped() {
        let t = Tiers::new(
            urls(&[&["a", " ", "a"], &["a", "b"]]),
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(t.len(), 2);
        assert_eq!(order(&t, 0), ["a"]);
        assert_eq!(order(&t, 1), ["b"]);
        let many = vec![(0..1000).map(|i| format!("http://t{i}/")).collect()];
        assert_eq!(
            Tiers::new(many, &mut StdRng::seed_from_u64(1)).len(),
            MAX_TRACKERS
        );
    }

    #[test]
    fn answering_tracker_moves_to_front_of_its_tier() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut t = Tiers::new(urls(&[&["a", "b", "c"], &["d"]]), &mut rng);
        let before = t.tier(0).to_vec();
        let third = before[2];
        t.record_success(third);
        assert_eq!(t.tier(0), &[third, before[0], before[1]]);
        assert_eq!(t.tier_of(third), 0);
        assert_eq!(order(&t, 1), ["d"], "other tiers untouched");
    }

    #[test]
    fn failure_backs_off_and_tier_moves_on() {
        let mut rng = StdRng::seed_from_u64(5);
        let now = Instant::now();
        let mut t = Tiers::new(urls(&[&["a", "b"]]), &mut rng);
        let [first, second] = [t.tier(0)[0], t.tier(0)[1]];
        assert_eq!(t.next_in_tier(0, now), Some(first));
        let d = t.record_failure(first, now, &mut rng);
        assert!(d >= BACKOFF_BASE / 2 && d <= BACKOFF_BASE);
        assert_eq!(t.next_in_tier(0, now), Some(second));
        t.record_failure(second, now, &mut rng);
        assert_eq!(t.next_in_tier(0, now), None);
        let ready = t.tier_ready_at(0, now).unwrap();
        assert!(ready > now && ready <= now + BACKOFF_BASE);
        assert!(t.next_in_tier(0, now + BACKOFF_BASE).is_some());
        t.record_success(second);
        assert_eq!(t.failures(second), 0);
        assert_eq!(t.next_in_tier(0, now), Some(second));
        t.disable(second);
        assert_eq!(t.next_in_tier(0, now), None);
        t.disable(first);
        assert_eq!(t.tier_ready_at(0, now), None);
    }

    #[test]
    fn backoff_grows_exponentially_jittered_and_capped() {
        let mut rng = StdRng::seed_from_u64(9);
        for n in 1..40u32 {
            let full = BACKOFF_BASE
                .saturating_mul(1 << (n - 1).min(16))
                .min(BACKOFF_MAX);
            for _ in 0..20 {
                let d = backoff(n, &mut rng);
                assert!(d >= full / 2 && d <= full, "n={n} d={d:?}");
            }
        }
        assert_eq!(backoff(40, &mut rng).max(BACKOFF_MAX), BACKOFF_MAX);
        // Jitter: not every delay is the same.
        let ds: HashSet<_> = (0..10).map(|_| backoff(3, &mut rng)).collect();
        assert!(ds.len() > 1);
    }
}
