//! Magnet links against real clients: swarm fetches a magnet's metadata (BEP 9) from a
//! libtorrent seed, libtorrent and aria2 fetch a magnet whose metadata swarm serves, and a
//! swarm leecher takes the metadata from two swarm seeds at once.
//!
//! Runs only with `SWARM_INTEROP=1` (see README.md, "Interop tests"). Every process is on
//! loopback with its own state; no tracker except a loopback opentracker for aria2 (which
//! cannot be given a peer).

mod interop;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interop::*;

/// Seeders get their own loopback addresses; leechers use 127.0.0.1.
const SEED_IP: u8 = 2;
const SEED2_IP: u8 = 3;

fn setup(test: &str) -> Option<tempfile::TempDir> {
    if !enabled(test) {
        return None;
    }
    Some(tempfile::tempdir().unwrap())
}

fn magnet(hash: &str, peers: &[SocketAddr], trackers: &[String]) -> String {
    let mut m = format!("magnet:?xt=urn:btih:{hash}&dn=interop");
    for p in peers {
        m.push_str(&format!("&x.pe={p}"));
    }
    for t in trackers {
        let enc: String = t
            .bytes()
            .map(|b| match b {
                b':' | b'/' | b'?' | b'&' | b'=' | b'%' => format!("%{b:02X}"),
                _ => (b as char).to_string(),
            })
            .collect();
        m.push_str(&format!("&tr={enc}"));
    }
    m
}

/// The raw info dictionary of a `.torrent` file.
fn info_dict(torrent: &Path) -> Vec<u8> {
    let bytes = std::fs::read(torrent).unwrap();
    swarm::metainfo::Metainfo::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("{} does not load: {e}", torrent.display()))
        .info_bytes
        .to_vec()
}

/// `swarm -v fetch MAGNET -o OUT --bind 127.0.0.1 --port P --state-dir STATE [extra…]`.
/// The caller owns `state`, so a second fetch can reuse it.
fn fetch_magnet(link: &str, out: &Path, state: &Path, extra: &[&str]) -> Proc {
    let mut c = swarm_cmd();
    let port = free_port(ip(1));
    c.arg("-v")
        .arg("fetch")
        .arg(link)
        .arg("-o")
        .arg(out)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--state-dir")
        .arg(state)
        .args(["--no-lsd", "--no-dht", "--no-port-mapping"])
        .args(extra);
    Proc::spawn("swarm fetch (magnet)", &mut c)
}

/// The `metadata verified` log line of a `-v` fetch, if any.
fn metadata_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find(|l| l.contains("metadata verified"))
        .map(str::to_owned)
}

/// `key=N` in a log line.
fn log_field(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"));
    line[at + key.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key}= is not a number in {line:?}"))
}

/// A swarm seed of `torrent` from `dir` on `at`, no trackers.
fn seed_no_trackers(torrent: &Path, dir: &Path, at: SocketAddr, extra: &[&str]) -> Proc {
    let mut args = vec!["--no-trackers".to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    swarm_seed(torrent, dir, at, &args)
}

// ---------------------------------------------------------------------------------------
// (a) swarm fetches a magnet from a libtorrent seed; a second start uses the saved torrent

#[test]
fn swarm_fetches_a_magnet_from_libtorrent() {
    let Some(tmp) = setup("swarm_fetches_a_magnet_from_libtorrent") else {
        return;
    };
    require_libtorrent();
    let tmp = tmp.path();
    let content = Content::single(&tmp.join("src"), "movie.bin", 8 * MIB + 4321, 11);
    let torrent = tmp.join("movie.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(64 * 1024), &[]);
    let seed_at = addr(SEED_IP);
    let mut seed = lt_seed(&torrent, &content.dir, seed_at, &LtOpts::default());

    let link = magnet(&hash, &[seed_at], &[]);
    let out = tmp.join("out");
    let state = tmp.join("state");
    let saved = tmp.join("saved.torrent");
    let saved_arg = saved.to_str().unwrap();
    let timer = Cell::start("swarm <- libtorrent (magnet)", content.total);
    let mut fetch = fetch_magnet(
        &link,
        &out,
        &state,
        &["--no-trackers", "--save-torrent", saved_arg],
    );
    let line = swarm_finish(&mut fetch);
    timer.done();
    content.assert_same_in(&out, "swarm");
    assert!(
        about(summary_field(&line, "downloaded "), content.total),
        "{line}"
    );
    let verified = metadata_line(&fetch.stderr())
        .unwrap_or_else(|| panic!("no `metadata verified` line\n{}", fetch.logs()));
    assert_eq!(log_field(&verified, "suppliers"), 1, "{verified}");

    // The saved .torrent carries the very info dictionary the seed has.
    assert_eq!(swarm_info_hash(&saved), hash);
    assert_eq!(info_dict(&saved), info_dict(&torrent));
    let kept = state.join("torrents").join(format!("{hash}.torrent"));
    assert_eq!(info_dict(&kept), info_dict(&torrent), "{}", kept.display());

    // Same magnet, same state, data in place: no metadata fetched this time.
    let mut again = fetch_magnet(&link, &out, &state, &["--no-trackers"]);
    let line = swarm_finish(&mut again);
    let stderr = again.stderr();
    assert!(
        metadata_line(&stderr).is_none() && !stderr.contains("fetching metadata"),
        "the second start fetched metadata again\n{}",
        again.logs()
    );
    assert_eq!(summary_field(&line, "downloaded "), 0, "{line}");
    content.assert_same_in(&out, "swarm (second start)");
    lt_seed_stop(&mut seed);
}

// ---------------------------------------------------------------------------------------
// (b) libtorrent fetches a magnet from a swarm seed (metadata served by swarm)

fn lt_magnet_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_magnet.py")
}

#[test]
fn libtorrent_fetches_a_magnet_from_swarm() {
    let Some(tmp) = setup("libtorrent_fetches_a_magnet_from_swarm") else {
        return;
    };
    require_libtorrent();
    let tmp = tmp.path();
    let content = Content::single(&tmp.join("src"), "movie.bin", 8 * MIB + 999, 12);
    let torrent = tmp.join("movie.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(64 * 1024), &[]);
    let seed_at = addr(SEED_IP);
    let mut seed = seed_no_trackers(&torrent, &content.dir, seed_at, &[]);

    let out = tmp.join("out");
    let at = addr(1);
    let timer = Cell::start("libtorrent <- swarm (magnet)", content.total);
    let mut c = Command::new(LT_PYTHON);
    c.arg(lt_magnet_script())
        .arg(magnet(&hash, &[], &[]))
        .arg(&out)
        .arg(at.to_string())
        .args(["--peer", &seed_at.to_string()])
        .args(["--timeout", &TRANSFER_TIMEOUT.as_secs().to_string()]);
    let mut lt = Proc::spawn("libtorrent magnet leech", &mut c);
    lt.wait_line("LISTEN ", START_TIMEOUT);
    lt.wait_line("METADATA ", TRANSFER_TIMEOUT);
    lt.wait_line("DONE ", TRANSFER_TIMEOUT);
    let status = lt.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "libtorrent failed ({status})\n{}",
        lt.logs()
    );
    timer.done();
    content.assert_same_in(&out, "libtorrent");
    seed.stop();
}

// ---------------------------------------------------------------------------------------
// (c) aria2 fetches a magnet from a swarm seed, finding it through a loopback tracker

#[test]
fn aria2_fetches_a_magnet_from_swarm() {
    let Some(tmp) = setup("aria2_fetches_a_magnet_from_swarm") else {
        return;
    };
    require("aria2c", "aria2");
    let tmp = tmp.path();
    let content = Content::single(&tmp.join("src"), "movie.bin", 8 * MIB + 77, 13);
    let torrent = tmp.join("movie.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(64 * 1024), &[]);
    let tracker = Tracker::start(&[&hash]);
    let seed_at = addr(SEED_IP);
    let mut seed = swarm_seed(
        &torrent,
        &content.dir,
        seed_at,
        &["--tracker".into(), tracker.http()],
    );
    tracker.wait_registered(&hash, 1, 0);

    let out = tmp.join("out");
    let at = addr(1);
    let timer = Cell::start("aria2 <- swarm (magnet)", content.total);
    let mut c = aria2_cmd(&out, at);
    c.args([
        "--bt-save-metadata=false",
        "--bt-load-saved-metadata=false",
        "--seed-time=0",
    ])
    .arg(magnet(&hash, &[], &[tracker.http()]));
    let mut aria = Proc::spawn("aria2c magnet leech", &mut c);
    let status = aria.wait_exit(TRANSFER_TIMEOUT);
    assert!(
        status.success(),
        "aria2c failed ({status})\n{}",
        aria.logs()
    );
    timer.done();
    content.assert_same_in(&out, "aria2");
    seed.stop();
}

// ---------------------------------------------------------------------------------------
// (d) metadata from two swarm seeds at once

/// A few hundred files with long names: an info dictionary of several metadata pieces.
fn many_long_names() -> Vec<(String, usize)> {
    (0..360)
        .map(|i| {
            let name = format!("file-{i:04}-{}.dat", "long-name-".repeat(18));
            (format!("dir-{}/{name}", i % 6), 700 + i * 13)
        })
        .collect()
}

#[test]
fn swarm_takes_metadata_from_two_swarm_seeds() {
    let Some(tmp) = setup("swarm_takes_metadata_from_two_swarm_seeds") else {
        return;
    };
    let tmp = tmp.path();
    let files = many_long_names();
    let files: Vec<(&str, usize)> = files.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let content = Content::tree(&tmp.join("src"), "many", &files, 14);
    let torrent = tmp.join("many.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16 * 1024), &[]);
    let info_len = info_dict(&torrent).len();
    assert!(
        info_len > 4 * 16 * 1024,
        "the info dict is only {info_len} B: fewer than 4 metadata pieces"
    );
    let a = addr(SEED_IP);
    let b = addr(SEED2_IP);
    let mut seed_a = seed_no_trackers(&torrent, &content.dir, a, &[]);
    let mut seed_b = seed_no_trackers(&torrent, &content.dir, b, &[]);

    let out = tmp.join("out");
    let state = tmp.join("state");
    // The cap paces metadata too, so the second seed is connected before the first one
    // could have answered every piece.
    let mut fetch = fetch_magnet(
        &magnet(&hash, &[a, b], &[]),
        &out,
        &state,
        &["--no-trackers", "--max-download-rate", "64KiB"],
    );
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm");
    let verified = metadata_line(&fetch.stderr())
        .unwrap_or_else(|| panic!("no `metadata verified` line\n{}", fetch.logs()));
    say(&format!("interop two seeds: {verified}"));
    assert_eq!(log_field(&verified, "bytes"), info_len as u64, "{verified}");
    assert_eq!(
        log_field(&verified, "suppliers"),
        2,
        "metadata did not come from both seeds\n{}",
        fetch.logs()
    );
    seed_a.stop();
    seed_b.stop();
}
