//! Authentication state of the web edge: the password hash, the session table and the
//! per-address login limiter. Pure: every method takes the current time, nothing here
//! reads a clock, a socket or the disk.
//!
//! Invariants: the session table never holds more than [`MAX_SESSIONS`] entries nor a
//! session idle for longer than the timeout once it has been looked at; the limiter never
//! holds more than [`MAX_TRACKED_ADDRS`] addresses. A session id is 128 random bits from
//! the OS generator, in hex; ids are compared by hash-map lookup of the whole id.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;

use crate::daemon::api::SyncState;

/// Idle time after which a session ends: qBittorrent's default `WebUI\SessionTimeout`
/// (3600 s).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(3600);
/// Sessions held at once. One person with a few browsers and tools needs a handful; the
/// cap bounds memory against a client that logs in in a loop (the oldest idle goes).
pub const MAX_SESSIONS: usize = 256;
/// Failed logins from one address before it is banned: qBittorrent's default
/// `WebUI\MaxAuthenticationFailCount` (5).
pub const MAX_FAILURES: u32 = 5;
/// How long a ban lasts: qBittorrent's default `WebUI\BanDuration` (3600 s).
pub const BAN_DURATION: Duration = Duration::from_secs(3600);
/// Addresses the limiter remembers. Past this, the entry with the fewest failures (never
/// a banned one if another can go) is dropped: an attacker rotating addresses can only
/// evict its own half-counted entries, never lift a ban early while room remains.
pub const MAX_TRACKED_ADDRS: usize = 4096;
/// Length of a random first-start password: 16 alphanumerics ≈ 95 bits.
const RANDOM_PASSWORD_LEN: usize = 16;

/// The password as stored: argon2id (the crate's default parameters, RFC 9106's second
/// recommended set scaled for interactive use) with a random 128-bit salt, as a PHC string.
pub fn hash_password(pw: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        // Only fails on parameters out of range, and ours are the crate's defaults.
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Whether `pw` matches the PHC string `phc` (argon2 compares in constant time). A
/// malformed `phc` matches nothing.
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A password for the first start (printed once by the CLI): alphanumeric, from the OS
/// generator.
pub fn random_password() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..RANDOM_PASSWORD_LEN)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect()
}

/// Constant-time equality of two byte strings (the user name; lengths may leak).
pub fn slow_equals(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new session id: 128 bits from the OS generator, lowercase hex.
pub fn new_sid() -> String {
    let bytes: [u8; 16] = rand::rngs::OsRng.gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Session {
    last_seen: Instant,
    /// `None` while a request of this session holds it (see [`Sessions::take_sync`]).
    sync: Option<SyncState>,
}

/// The logged-in sessions by id.
#[derive(Default)]
pub struct Sessions {
    map: HashMap<String, Session>,
}

impl Sessions {
    /// Starts a session and returns its id, dropping expired ones and, at the cap, the
    /// one idle longest.
    pub fn start(&mut self, now: Instant) -> String {
        self.expire(now);
        if self.map.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let sid = new_sid();
        self.map.insert(
            sid.clone(),
            Session {
                last_seen: now,
                sync: Some(SyncState::default()),
            },
        );
        sid
    }

    /// Whether `sid` is a live session; touching it resets its idle time. An expired one
    /// is removed.
    pub fn touch(&mut self, sid: &str, now: Instant) -> bool {
        match self.map.get_mut(sid) {
            Some(s) if now.saturating_duration_since(s.last_seen) < SESSION_TIMEOUT => {
                s.last_seen = now;
                true
            }
            Some(_) => {
                self.map.remove(sid);
                false
            }
            None => false,
        }
    }

    /// Lends out the session's `sync/maindata` position for one request (a fresh one if
    /// another request of the same session holds it: that client then gets a full update,
    /// which is always correct).
    pub fn take_sync(&mut self, sid: &str) -> SyncState {
        self.map
            .get_mut(sid)
            .and_then(|s| s.sync.take())
            .unwrap_or_default()
    }

    /// Gives the position back, if the session still exists.
    pub fn put_sync(&mut self, sid: &str, sync: SyncState) {
        if let Some(s) = self.map.get_mut(sid) {
            s.sync = Some(sync);
        }
    }

    pub fn end(&mut self, sid: &str) {
        self.map.remove(sid);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        self.map
            .retain(|_, s| now.saturating_duration_since(s.last_seen) < SESSION_TIMEOUT);
    }
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    banned_until: Option<Instant>,
}

/// Failed logins per client address, and bans.
#[derive(Default)]
pub struct LoginLimiter {
    map: HashMap<IpAddr, Failures>,
}

impl LoginLimiter {
    /// Whether `ip` is banned now. An expired ban is forgotten.
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.map.get(&ip).and_then(|f| f.banned_until) {
            Some(until) if now < until => true,
            Some(_) => {
                self.map.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failed login; the [`MAX_FAILURES`]th starts a ban of [`BAN_DURATION`].
    pub fn fail(&mut self, ip: IpAddr, now: Instant) {
        if !self.map.contains_key(&ip) && self.map.len() >= MAX_TRACKED_ADDRS {
            self.evict(now);
        }
        let f = self.map.entry(ip).or_insert(Failures {
            count: 0,
            banned_until: None,
        });
        f.count = f.count.saturating_add(1);
        if f.count >= MAX_FAILURES && f.banned_until.is_none() {
            f.banned_until = Some(now + BAN_DURATION);
        }
    }

    /// A successful login clears the address's count (as qBittorrent does).
    pub fn succeed(&mut self, ip: IpAddr) {
        self.map.remove(&ip);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn evict(&mut self, now: Instant) {
        self.map
            .retain(|_, f| f.banned_until.is_none_or(|until| now < until));
        if self.map.len() < MAX_TRACKED_ADDRS {
            return;
        }
        let victim = self
            .map
            .iter()
            .min_by_key(|(_, f)| (f.banned_until.is_some(), f.count))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn password_round_trip_and_salted() {
        let a = hash_password("hunter2hunter2");
        let b = hash_password("hunter2hunter2");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("hunter2hunter2", &a));
        assert!(!verify_password("hunter2hunter3", &a));
        assert!(!verify_password("x", "not a phc string"));
        assert!(!verify_password("x", ""));
    }

    #[test]
    fn random_passwords_are_long_alphanumeric_and_differ() {
        let a = random_password();
        assert!(a.len() >= 12 && a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_password());
    }

    #[test]
    fn sids_are_128_bit_hex() {
        let s = new_sid();
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn sessions_expire_after_idle_time_and_touch_extends() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let id = s.start(t0);
        assert!(s.touch(&id, t0 + SESSION_TIMEOUT / 2));
        assert!(s.touch(&id, t0 + SESSION_TIMEOUT));
        assert!(!s.touch(&id, t0 + SESSION_TIMEOUT * 3));
        assert!(s.is_empty());
        assert!(!s.touch("nope", t0));
    }

    #[test]
    fn session_table_is_capped_dropping_the_idlest() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let first = s.start(t0);
        for i in 1..(MAX_SESSIONS as u64 + 10) {
            s.start(t0 + Duration::from_millis(i));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(!s.touch(&first, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn sync_state_is_lent_and_returned() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let id = s.start(t0);
        let mut st = s.take_sync(&id);
        st.rid = 7;
        s.put_sync(&id, st);
        assert_eq!(s.take_sync(&id).rid, 7);
        s.end(&id);
        assert!(!s.touch(&id, t0));
    }

    #[test]
    fn limiter_bans_after_max_failures_until_the_ban_ends() {
        let t0 = Instant::now();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
        let mut l = LoginLimiter::default();
        for _ in 0..MAX_FAILURES - 1 {
            l.fail(ip, t0);
            assert!(!l.is_banned(ip, t0));
        }
        l.fail(ip, t0);
        assert!(l.is_banned(ip, t0 + BAN_DURATION / 2));
        assert!(!l.is_banned(ip, t0 + BAN_DURATION));
        assert!(l.is_empty());
    }

    #[test]
    fn limiter_is_capped_and_keeps_bans() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        let banned = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        for _ in 0..MAX_FAILURES {
            l.fail(banned, t0);
        }
        for i in 0..(MAX_TRACKED_ADDRS as u32 + 100) {
            l.fail(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)), t0);
        }
        assert!(l.len() <= MAX_TRACKED_ADDRS);
        assert!(l.is_banned(banned, t0));
    }
}
