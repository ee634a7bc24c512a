//! Rate limits: one token bucket per direction for the session, shared by every
//! connection, and one per direction for each torrent (its own cap, changeable while it
//! runs; off until set). A connection waits for both ([`Limits`]).
//!
//! The writer of a connection acquires a Piece's bytes before it sends it; the reader
//! acquires the bytes it has just read before it reads more (so a capped download stops
//! reading its sockets and TCP slows the senders). Only block traffic is counted on the
//! way up; every byte read is counted on the way down (a reader cannot tell cheaply).
//!
//! Fairness: waiters are served strictly in arrival order (tokio's `Mutex` is FIFO, and a
//! waiter sleeps while holding it), and each asks for one block (or one small read) at a
//! time, so every connection gets its turn every round and none can starve: the cap is
//! shared out block by block, round-robin over the connections that want to send.
//!
//! The arithmetic is [`Bucket`], pure and time-passed-in; [`RateLimiter`] adds the waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `rate` bytes/s, holding at most `burst` bytes of credit. A request
/// larger than `burst` may proceed once the bucket is full and leaves it in debt, so no
/// request size can wait forever.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Starts full. `rate` is at least 1 byte/s.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = burst.max(1) as f64;
        Bucket {
            rate: rate.max(1) as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// The burst we use for a rate: 100 ms of it (smooth at the scale of a progress bar
    /// and of TCP's windows), at least two blocks so one Piece never waits on rounding.
    pub fn default_burst(rate: u64) -> u64 {
        (rate / 10).max(2 * crate::types::BLOCK_SIZE as u64 + 64)
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Take `bytes` now if there is credit; otherwise how long until there will be.
    pub fn try_take(&mut self, bytes: u64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let need = (bytes as f64).min(self.burst);
        if self.tokens >= need {
            self.tokens -= bytes as f64;
            Ok(())
        } else {
            // Round up to whole microseconds so the next try surely succeeds.
            let secs = (need - self.tokens) / self.rate;
            Err(Duration::from_micros((secs * 1e6).ceil() as u64 + 1))
        }
    }
}

/// A [`Bucket`] that async callers wait on, first come first served. A rate of 0 is no
/// limit: callers pass at once, without queueing.
#[derive(Debug)]
pub struct RateLimiter {
    /// Bytes/s; 0: unlimited. Read before the bucket's lock, so an unlimited limiter costs
    /// one atomic load.
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    /// `rate` bytes/s with [`Bucket::default_burst`]; 0: unlimited.
    pub fn new(rate: u64) -> Self {
        RateLimiter {
            rate: AtomicU64::new(rate),
            bucket: Mutex::new(Bucket::new(
                rate,
                Bucket::default_burst(rate),
                Instant::now(),
            )),
        }
    }

    /// The rate in bytes/s (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// A new rate from now on (0: unlimited); waiters see it at their next try.
    pub async fn set_rate(&self, rate: u64) {
        let mut bucket = self.bucket.lock().await;
        *bucket = Bucket::new(rate, Bucket::default_burst(rate), Instant::now());
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Wait until `bytes` may pass. Callers queue in arrival order.
    pub async fn acquire(&self, bytes: u64) {
        if self.rate() == 0 {
            return;
        }
        let mut bucket = self.bucket.lock().await;
        loop {
            if self.rate() == 0 {
                return;
            }
            match bucket.try_take(bytes, Instant::now()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// One torrent's own caps, shared between whoever sets them (the daemon) and its
/// connections. Unlimited until set.
#[derive(Debug)]
pub struct TorrentRates {
    pub up: RateLimiter,
    pub down: RateLimiter,
}

impl Default for TorrentRates {
    fn default() -> Self {
        TorrentRates {
            up: RateLimiter::new(0),
            down: RateLimiter::new(0),
        }
    }
}

/// What a connection's bytes in one direction wait for: the session's cap and its
/// torrent's.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub session: Option<Arc<RateLimiter>>,
    pub torrent: Option<Arc<TorrentRates>>,
    /// Which of the torrent's two limiters: upload (`true`) or download.
    pub up: bool,
}

impl Limits {
    fn torrent(&self) -> Option<&RateLimiter> {
        let t = self.torrent.as_deref()?;
        Some(if self.up { &t.up } else { &t.down })
    }

    /// Whether any cap applies now.
    pub fn active(&self) -> bool {
        self.session.is_some() || self.torrent().is_some_and(|t| t.rate() > 0)
    }

    /// Wait until `bytes` may pass both caps.
    pub async fn acquire(&self, bytes: u64) {
        if let Some(t) = self.torrent() {
            t.acquire(bytes).await;
        }
        if let Some(s) = &self.session {
            s.acquire(bytes).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_torrents_cap_is_off_until_set_and_changes_while_in_use() {
        let rates = Arc::new(TorrentRates::default());
        let up = Limits {
            session: None,
            torrent: Some(rates.clone()),
            up: true,
        };
        assert!(!up.active());
        let t0 = Instant::now();
        up.acquire(u64::MAX / 2).await;
        assert_eq!(Instant::now(), t0, "unlimited waits for nothing");
        rates.up.set_rate(1000).await;
        assert!(up.active());
        let burst = Bucket::default_burst(1000);
        up.acquire(burst).await;
        assert_eq!(Instant::now(), t0, "a full bucket's burst passes at once");
        up.acquire(1000).await;
        let waited = Instant::now() - t0;
        assert!(waited >= Duration::from_millis(999), "{waited:?}");
        // The download side is its own.
        let down = Limits {
            up: false,
            ..up.clone()
        };
        assert!(!down.active());
        rates.up.set_rate(0).await;
        assert!(!up.active());
    }

    #[test]
    fn bucket_refills_at_its_rate_and_caps_at_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 500, t0);
        assert!(b.try_take(500, t0).is_ok());
        let wait = b.try_take(100, t0).unwrap_err();
        assert!(
            (99_000..=101_000).contains(&(wait.as_micros() as u64)),
            "{wait:?}"
        );
        assert!(b.try_take(100, t0 + Duration::from_millis(100)).is_ok());
        // A long idle time gives no more than the burst.
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_take(500, later).is_ok());
        assert!(b.try_take(1, later).is_err());
    }

    #[test]
    fn a_request_larger_than_the_burst_goes_into_debt() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 100, t0);
        assert!(
            b.try_take(1000, t0).is_ok(),
            "a full bucket lets it through"
        );
        // Now 900 bytes of debt: the next 100 wait a whole second.
        let wait = b.try_take(100, t0).unwrap_err();
        assert!(wait >= Duration::from_millis(999), "{wait:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_order_and_none_starves() {
        use std::sync::Arc;
        // 160 KiB/s, three connections each sending 10 blocks as fast as allowed.
        let lim = Arc::new(RateLimiter::new(160 * 1024));
        let t0 = Instant::now();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for id in 0..3 {
            let (lim, order) = (lim.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    lim.acquire(16 * 1024).await;
                    order.lock().unwrap().push(id);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = t0.elapsed().as_secs_f64();
        // 480 KiB at 160 KiB/s, less the initial burst (32 KiB + 64): about 2.8 s.
        assert!((2.6..3.1).contains(&elapsed), "{elapsed}");
        // Round-robin: in every window of three grants (after the first one, which ran
        // before the others were polled, and until the first one is done) each
        // connection appears once.
        let order = order.lock().unwrap();
        let counts = |w: &[usize]| {
            (0..3)
                .map(|i| w.iter().filter(|&&x| x == i).count())
                .collect::<Vec<_>>()
        };
        for w in order[3..24].chunks(3) {
            assert_eq!(counts(w), vec![1, 1, 1], "{order:?}");
        }
    }
}
