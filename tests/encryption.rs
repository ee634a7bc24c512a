//! MSE/PE at the connection edge (`--encryption prefer|require|off`), between swarm
//! processes on loopback, and (with `SWARM_INTEROP=1`) against libtorrent with encryption
//! forced, Transmission with encryption required (`"encryption": 2`), and aria2 with
//! `--bt-require-crypto`.
//!
//! Every process binds to 127.0.0.x with its own `--state-dir`, `--no-dht --no-lsd --no-port-mapping`, peers
//! by `--peer` only; every wait has a deadline.

mod interop;

use std::path::Path;
use std::time::Duration;

use interop::*;

/// How long a refusal may take to show in a log: only a hang guard.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

fn enc(mode: &str) -> Vec<String> {
    vec!["--encryption".into(), mode.into()]
}

fn peer(at: std::net::SocketAddr) -> Vec<String> {
    vec!["--peer".into(), at.to_string()]
}

fn small_torrent(tmp: &Path, len: usize, seed: u64) -> (Content, std::path::PathBuf) {
    let content = Content::single(&tmp.join("src"), "data.bin", len, seed);
    let torrent = tmp.join("data.torrent");
    swarm_create(&content.path(), &torrent, Some(64 * 1024), &[]);
    (content, torrent)
}

/// `p` logged an encrypted connection (`peer connected ... encrypted=true`).
fn assert_encrypted(p: &Proc, why: &str) {
    assert!(p.stderr().contains("encrypted=true"), "{why}\n{}", p.logs());
}

fn wait_log(p: &Proc, needle: &str) {
    wait_until(
        &format!("{} to log {needle:?}", p.name),
        LOG_TIMEOUT,
        || p.stderr().contains(needle),
    );
}

/// A seed that requires encryption serves a leecher that prefers it, over RC4.
#[test]
fn require_seed_serves_prefer_leecher() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = small_torrent(tmp.path(), 3 * MIB + 777, 11);
    let seed_at = addr(2);
    let seed = swarm_seed(&torrent, &content.dir, seed_at, &enc("require"));
    let out = tmp.path().join("out");
    let mut fetch = swarm_fetch(&torrent, &out, 0, &peer(seed_at));
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm leecher");
    assert_encrypted(&seed, "the seed's connection was not encrypted");
}

/// A leecher that prefers encryption falls back to plaintext with a seed that has it off.
#[test]
fn prefer_leecher_falls_back_to_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = small_torrent(tmp.path(), 2 * MIB + 5, 12);
    let seed_at = addr(3);
    let seed = swarm_seed(&torrent, &content.dir, seed_at, &enc("off"));
    let out = tmp.path().join("out");
    let mut fetch = swarm_fetch(&torrent, &out, 0, &peer(seed_at));
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm leecher");
    let log = fetch.stderr();
    assert!(
        log.contains("dialling again in plaintext"),
        "no fallback\n{}",
        fetch.logs()
    );
    assert!(seed.stderr().contains("refusing encrypted connection from"));
}

/// Policies that cannot meet: the side that refuses says why, and nothing is downloaded.
#[test]
fn incompatible_policies_refuse_with_a_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = small_torrent(tmp.path(), MIB, 13);

    // A plaintext leecher and a seed that requires encryption.
    let seed_at = addr(4);
    let seed = swarm_seed(&torrent, &content.dir, seed_at, &enc("require"));
    let out = tmp.path().join("out1");
    let mut extra = enc("off");
    extra.extend(peer(seed_at));
    let mut fetch = swarm_fetch(&torrent, &out, 0, &extra);
    wait_log(&seed, "refusing plaintext connection from 127.0.0.1:");
    wait_log(&seed, ": --encryption require");
    assert!(fetch.try_status().is_none(), "{}", fetch.logs());
    fetch.stop();
    drop(seed);

    // A leecher that requires encryption and a seed that has it off.
    let seed_at = addr(5);
    let seed = swarm_seed(&torrent, &content.dir, seed_at, &enc("off"));
    let out = tmp.path().join("out2");
    let mut extra = enc("require");
    extra.extend(peer(seed_at));
    let mut fetch = swarm_fetch(&torrent, &out, 0, &extra);
    wait_log(&seed, "refusing encrypted connection from 127.0.0.1:");
    wait_log(&fetch, "handshake failed");
    assert!(
        !fetch.stderr().contains("dialling again in plaintext"),
        "require must not fall back\n{}",
        fetch.logs()
    );
    fetch.stop();
}

// ---------------------------------------------------------------------------------------
// libtorrent with encryption forced (tests/interop/lt_encrypted.py), SWARM_INTEROP=1

/// swarm fetches `torrent` from `seed_at`; returns MB/s (printed, never asserted).
fn timed_fetch(
    what: &str,
    content: &Content,
    torrent: &Path,
    out: &Path,
    seed_at: std::net::SocketAddr,
) -> f64 {
    let start = std::time::Instant::now();
    let mut extra = peer(seed_at);
    if !what.contains("RC4") {
        extra.extend(enc("off"));
    }
    let mut fetch = swarm_fetch(torrent, out, 0, &extra);
    swarm_finish(&mut fetch);
    let secs = start.elapsed().as_secs_f64();
    let log = fetch.stderr();
    let rc4 = what.contains("RC4");
    assert_eq!(log.contains("encrypted=true"), rc4, "{}", fetch.logs());
    assert!(
        !log.contains("dialling again in plaintext"),
        "{}",
        fetch.logs()
    );
    content.assert_same_in(out, "swarm");
    let rate = content.total as f64 / secs.max(1e-6) / 1e6;
    say(&format!(
        "encryption {what}: {} MiB in {secs:.2} s ({rate:.1} MB/s, process start included)",
        content.total / MIB as u64
    ));
    rate
}

#[test]
fn swarm_leeches_from_libtorrent_forced_rc4() {
    if !enabled("swarm_leeches_from_libtorrent_forced_rc4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::single(&tmp.path().join("src"), "big.bin", 64 * MIB, 21);
    let torrent = tmp.path().join("big.torrent");
    swarm_create(&content.path(), &torrent, Some(256 * 1024), &[]);

    let at = addr(6);
    let mut seed = lt_encrypted("seed", &torrent, &content.dir, at, &[]);
    seed.wait_line("SEEDING", START_TIMEOUT);
    timed_fetch(
        "swarm <- libtorrent, RC4",
        &content,
        &torrent,
        &tmp.path().join("rc4"),
        at,
    );
    let (up, _) = lt_seed_stop(&mut seed);
    assert!(up >= content.total, "libtorrent uploaded only {up} B");

    // The same transfer in plaintext, for comparison.
    let at = addr(7);
    let mut seed = lt_seed(&torrent, &content.dir, at, &LtOpts::default());
    timed_fetch(
        "swarm <- libtorrent, plaintext",
        &content,
        &torrent,
        &tmp.path().join("plain"),
        at,
    );
    lt_seed_stop(&mut seed);
}

#[test]
fn libtorrent_forced_rc4_leeches_from_swarm() {
    if !enabled("libtorrent_forced_rc4_leeches_from_swarm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::single(&tmp.path().join("src"), "data.bin", 8 * MIB + 99, 22);
    let torrent = tmp.path().join("data.torrent");
    swarm_create(&content.path(), &torrent, Some(256 * 1024), &[]);
    let seed_at = addr(8);
    let seed = swarm_seed(&torrent, &content.dir, seed_at, &enc("require"));

    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut leech = lt_encrypted("leech", &torrent, &out, addr(1), &[seed_at]);
    let (_, down) = lt_leech_finish(&mut leech);
    content.assert_same_in(&out, "libtorrent");
    assert!(down >= content.total, "libtorrent downloaded only {down} B");
    assert_encrypted(&seed, "the seed's connection was not encrypted");
}

#[test]
fn aria2_requiring_crypto_leeches_from_swarm() {
    if !enabled("aria2_requiring_crypto_leeches_from_swarm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::single(&tmp.path().join("src"), "data.bin", 4 * MIB + 3, 23);
    let torrent = tmp.path().join("data.torrent");
    swarm_create(&content.path(), &torrent, Some(256 * 1024), &[]);
    let out = tmp.path().join("out");
    let at = addr(1);
    let mut c = aria2_cmd(&out, at);
    c.args([
        "--bt-require-crypto=true",
        "--bt-min-crypto-level=arc4",
        "--seed-time=0",
        "--follow-torrent=false",
    ])
    .arg(&torrent);
    let mut leech = Proc::spawn("aria2c leech (crypto required)", &mut c);
    wait_listening(&mut leech, at);
    // aria2 cannot be given a peer: the swarm seed dials it (MSE, RC4 only).
    let mut extra = enc("require");
    extra.extend(peer(at));
    let seed = swarm_seed(&torrent, &content.dir, addr(9), &extra);
    let status = leech.wait_exit(TRANSFER_TIMEOUT);
    assert!(
        status.success(),
        "aria2c failed ({status})\n{}\n{}",
        leech.logs(),
        seed.logs()
    );
    content.assert_same_in(&out, "aria2");
    assert_encrypted(&seed, "the seed's connection to aria2 was not encrypted");
}

#[test]
fn swarm_leeches_from_transmission_requiring_encryption() {
    if !enabled("swarm_leeches_from_transmission_requiring_encryption") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = small_torrent(tmp.path(), 4 * MIB + 5, 24);
    let at = addr(2);
    let mut seed = Transmission::start_with(&torrent, &content.dir, at, true);
    // A complete torrent runs the finish script once verified: then it serves.
    seed.wait_done();
    wait_listening(&mut seed.proc, at);
    let out = tmp.path().join("out");
    // swarm's default policy (prefer): an encrypted dial, which Transmission requires.
    let mut fetch = swarm_fetch(&torrent, &out, 0, &peer(at));
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm leecher");
    assert_encrypted(
        &fetch,
        "swarm's connection to Transmission was not encrypted",
    );
    seed.stop();
}

#[test]
fn transmission_requiring_encryption_leeches_from_swarm() {
    if !enabled("transmission_requiring_encryption_leeches_from_swarm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = small_torrent(tmp.path(), 4 * MIB + 6, 25);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let at = addr(1);
    let mut leech = Transmission::start_with(&torrent, &out, at, true);
    wait_listening(&mut leech.proc, at);
    // Transmission 3.00 never dials loopback peers it did not learn by itself: the swarm
    // seed dials it, encrypted only.
    let mut extra = enc("require");
    extra.extend(peer(at));
    let seed = swarm_seed(&torrent, &content.dir, addr(2), &extra);
    leech.wait_done();
    leech.stop();
    content.assert_same_in(&out, "transmission");
    assert_encrypted(&seed, "the seed's connection was not encrypted");
}

#[test]
fn swarm_leeches_from_aria2_requiring_crypto() {
    if !enabled("swarm_leeches_from_aria2_requiring_crypto") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent) = small_torrent(tmp.path(), 4 * MIB + 7, 26);
    let at = addr(3);
    let mut c = aria2_cmd(&content.dir, at);
    c.args([
        "--bt-require-crypto=true",
        "--bt-min-crypto-level=arc4",
        "--follow-torrent=false",
        "--check-integrity=true",
        "--bt-seed-unverified=false",
        "--seed-ratio=0.0",
    ])
    .arg(&torrent);
    let mut seed = Proc::spawn("aria2c seed (crypto required)", &mut c);
    wait_listening(&mut seed, at);
    let out = tmp.path().join("out");
    // swarm's default policy (prefer): an encrypted dial, which aria2 requires.
    let mut fetch = swarm_fetch(&torrent, &out, 0, &peer(at));
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm leecher");
    assert_encrypted(&fetch, "swarm's connection to aria2 was not encrypted");
    seed.stop();
}
