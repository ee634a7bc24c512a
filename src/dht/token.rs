//! `announce_peer` tokens (BEP 5): a token handed out with `get_peers` is a keyed hash of
//! the asker's IP, so only a node that really received our reply at that address can
//! announce. The secret rotates every [`ROTATE_EVERY`]; a token made with the previous
//! secret is still accepted, so a token lives between 5 and 10 minutes. No state per
//! asker: a flood of `get_peers` costs nothing to remember.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// How often the secret changes (BEP 5: every five minutes; tokens up to ten minutes old
/// are accepted).
pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);

/// Bytes of the tokens we hand out (libtorrent: 4; Transmission: 8).
pub const TOKEN_LEN: usize = 8;

/// Our token secrets (see the module docs).
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated: Instant,
}

impl Tokens {
    /// `secret`: random bytes from the caller (the core draws no randomness itself).
    pub fn new(now: Instant, secret: [u8; 16]) -> Tokens {
        Tokens {
            current: secret,
            previous: secret,
            rotated: now,
        }
    }

    /// Whether [`Self::rotate`] is due.
    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.rotated) >= ROTATE_EVERY
    }

    pub fn next_rotation(&self) -> Instant {
        self.rotated + ROTATE_EVERY
    }

    /// A new secret: the current one becomes the previous one.
    pub fn rotate(&mut self, now: Instant, secret: [u8; 16]) {
        self.previous = self.current;
        self.current = secret;
        self.rotated = now;
    }

    /// The token for a node at `ip`.
    pub fn issue(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        make(&self.current, ip)
    }

    /// Whether `token` is one we gave a node at `ip` within the last two secrets.
    pub fn check(&self, ip: IpAddr, token: &[u8]) -> bool {
        token.len() == TOKEN_LEN
            && (token == make(&self.current, ip) || token == make(&self.previous, ip))
    }
}

fn make(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_for_one_address_and_lives_two_rotations() {
        let now = Instant::now();
        let mut t = Tokens::new(now, [1; 16]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let tok = t.issue(a);
        assert!(t.check(a, &tok));
        assert!(!t.check(b, &tok));
        assert!(!t.check(a, &tok[..4]));
        assert!(!t.due(now + Duration::from_secs(299)));
        let later = now + ROTATE_EVERY;
        assert!(t.due(later));
        t.rotate(later, [2; 16]);
        assert!(t.check(a, &tok), "the previous secret still counts");
        assert_ne!(t.issue(a), tok);
        t.rotate(later + ROTATE_EVERY, [3; 16]);
        assert!(!t.check(a, &tok), "two rotations later it has expired");
    }
}
