//! Per-connection rules that no single frame can show: how often a peer may repeat its
//! extension handshake, how many extension messages a second it may send, and how often it
//! may send a whole new bitfield. Pure: the caller passes the time in.
//!
//! Why: every message a peer sends is work for the one driver task that serves all peers of
//! a torrent (or for the connection's own task, for extension handshakes). A frame cap bounds
//! one message; these bound the rate, so a handful of connections cannot turn a cheap stream
//! of bytes into an expensive stream of decodes and picker updates for everybody.
//!
//! Extension floods end the connection (no honest client comes near the caps). Whole
//! bitfields (Bitfield, HaveAll, HaveNone) are throttled instead: aria2 sends replacement
//! bitfields, and a throttled reader only slows that one peer down.

use std::time::{Duration, Instant};

use super::{Message, WireError};

/// Extension handshakes accepted per connection. BEP 10 allows a peer to send it again to
/// update what it said (e.g. once it has the metadata); libtorrent sends one. Four leave
/// room for updates; a peer that keeps re-sending it only makes us decode.
pub const MAX_EXT_HANDSHAKES: u32 = 4;

/// Extension messages (other than the handshake and `ut_metadata`) a second, sustained,
/// and in a burst. PEX sends one a minute; nothing honest comes near.
pub const EXT_RATE: f64 = 50.0;
pub const EXT_BURST: f64 = 200.0;

/// BEP 9 `ut_metadata` messages a second, and in a burst. A metadata transfer is one
/// message per 16 KiB piece, up to 1,920 for the largest info dictionary we accept (30 MiB),
/// asked for in one go by a peer fetching ours: the burst takes a whole one. Beyond the rate
/// the peer is throttled, not dropped (an honest transfer may be larger than any cap; how
/// much of our metadata one peer may have is the engine's rule).
pub const METADATA_RATE: f64 = 500.0;
pub const METADATA_BURST: f64 = 2048.0;

/// Whole bitfields a second, sustained, and in a burst: each one makes the engine walk
/// every piece. One at the start and a rare replacement is all honest peers send.
pub const BITFIELD_RATE: f64 = 0.5;
pub const BITFIELD_BURST: f64 = 4.0;

/// A small token bucket on the caller's clock.
#[derive(Debug, Clone)]
struct Tokens {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Tokens {
    fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Tokens {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// What the reader does with a message the guard has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on now.
    Pass,
    /// Pass it on after this long (the peer is throttled meanwhile).
    Wait(Duration),
}

/// One connection's counters.
#[derive(Debug, Clone)]
pub struct PeerGuard {
    ext_handshakes: u32,
    ext: Tokens,
    metadata: Tokens,
    bitfields: Tokens,
}

impl PeerGuard {
    pub fn new(now: Instant) -> Self {
        PeerGuard {
            ext_handshakes: 0,
            ext: Tokens::new(EXT_RATE, EXT_BURST, now),
            metadata: Tokens::new(METADATA_RATE, METADATA_BURST, now),
            bitfields: Tokens::new(BITFIELD_RATE, BITFIELD_BURST, now),
        }
    }

    /// Judges the next message from the peer. An error ends the connection.
    pub fn check(&mut self, msg: &Message, now: Instant) -> Result<Verdict, WireError> {
        match msg {
            Message::Extended { id: 0, .. } => {
                self.ext_handshakes += 1;
                if self.ext_handshakes > MAX_EXT_HANDSHAKES {
                    return Err(WireError::TooManyExtHandshakes {
                        max: MAX_EXT_HANDSHAKES,
                    });
                }
                Ok(Verdict::Pass)
            }
            Message::Extended {
                id: super::OUR_UT_METADATA,
                ..
            } => Ok(throttle(&mut self.metadata, now)),
            Message::Extended { .. } => match self.ext.take(now) {
                Ok(()) => Ok(Verdict::Pass),
                Err(_) => Err(WireError::ExtensionFlood {
                    per_sec: EXT_RATE as u32,
                }),
            },
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {
                Ok(throttle(&mut self.bitfields, now))
            }
            _ => Ok(Verdict::Pass),
        }
    }
}

/// Passes a message at once while `bucket` has a token, else after the wait for one.
fn throttle(bucket: &mut Tokens, now: Instant) -> Verdict {
    match bucket.take(now) {
        Ok(()) => Verdict::Pass,
        Err(wait) => {
            // The wait is paid for: the token it waits for is spent now.
            bucket.tokens -= 1.0;
            Verdict::Wait(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ext(id: u8) -> Message {
        Message::Extended {
            id,
            payload: Bytes::from_static(b"de"),
        }
    }

    #[test]
    fn a_repeated_extension_handshake_ends_the_connection() {
        let t = Instant::now();
        let mut g = PeerGuard::new(t);
        for _ in 0..MAX_EXT_HANDSHAKES {
            assert_eq!(g.check(&ext(0), t), Ok(Verdict::Pass));
        }
        assert!(matches!(
            g.check(&ext(0), t + Duration::from_secs(3600)),
            Err(WireError::TooManyExtHandshakes { .. })
        ));
    }

    #[test]
    fn extension_messages_are_capped_per_second() {
        let t = Instant::now();
        let mut g = PeerGuard::new(t);
        for _ in 0..EXT_BURST as usize {
            assert_eq!(g.check(&ext(3), t), Ok(Verdict::Pass));
        }
        assert!(matches!(
            g.check(&ext(3), t),
            Err(WireError::ExtensionFlood { .. })
        ));
        // At the sustained rate a peer is never dropped.
        let mut g = PeerGuard::new(t);
        for i in 0..10_000u64 {
            let now = t + Duration::from_millis(i * 1000 / EXT_RATE as u64);
            assert_eq!(g.check(&ext(3), now), Ok(Verdict::Pass), "message {i}");
        }
    }

    #[test]
    fn bitfields_beyond_the_burst_are_throttled_and_each_wait_is_paid() {
        let t = Instant::now();
        let mut g = PeerGuard::new(t);
        for _ in 0..BITFIELD_BURST as usize {
            assert_eq!(g.check(&Message::HaveAll, t), Ok(Verdict::Pass));
        }
        let Ok(Verdict::Wait(first)) = g.check(&Message::HaveNone, t) else {
            panic!("not throttled");
        };
        let Ok(Verdict::Wait(second)) = g.check(&Message::HaveNone, t) else {
            panic!("not throttled");
        };
        assert!(second > first, "{first:?} then {second:?}");
        // Other messages are never held back.
        assert_eq!(g.check(&Message::Have(1), t), Ok(Verdict::Pass));
    }

    #[test]
    fn a_whole_metadata_transfer_passes_and_more_is_throttled_not_dropped() {
        let t = Instant::now();
        let mut g = PeerGuard::new(t);
        let meta = ext(crate::wire::OUR_UT_METADATA);
        // The largest info dictionary we accept, 1,920 pieces, asked for at once.
        for i in 0..1920 {
            assert_eq!(g.check(&meta, t), Ok(Verdict::Pass), "message {i}");
        }
        for _ in 1920..METADATA_BURST as usize {
            g.check(&meta, t).unwrap();
        }
        assert!(matches!(g.check(&meta, t), Ok(Verdict::Wait(_))));
        // Other extensions keep their own budget.
        assert_eq!(g.check(&ext(3), t), Ok(Verdict::Pass));
    }
}
