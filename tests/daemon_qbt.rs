//! The Python client library `qbittorrent-api` (PyPI), unchanged, against `swarm daemon`
//! on loopback (`tests/interop/qbt_client.py`): log in, add a `.torrent` and a magnet,
//! complete both from swarm seeds (found through a `swarm tracker`), read files,
//! properties and trackers (each announce URL's own status: the live tracker working and
//! counting the seed, a dead one not working with its error), skip a file, pause,
//! resume, set its limits, delete with files. The same
//! script's reads against a real `qbittorrent-nox` give the same key set for every object
//! (shapes compared, not values).
//!
//! Runs only with `SWARM_INTEROP=1`; loopback only, own state directories, no DHT, LSD or
//! port mapping.

mod interop;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use interop::*;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/qbt_client.py")
}

fn require_qbittorrent_api() {
    let ok = Command::new(LT_PYTHON)
        .args(["-c", "import qbittorrentapi"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Python library qbittorrent-api is missing: \
         {LT_PYTHON} -m pip install --break-system-packages qbittorrent-api"
    );
}

/// The `SHAPES` line's object, key sets by object kind.
fn shapes(p: &Proc) -> BTreeMap<String, Vec<String>> {
    let out = p.stdout();
    let line = out
        .iter()
        .find_map(|l| l.strip_prefix("SHAPES "))
        .unwrap_or_else(|| panic!("no SHAPES line\n{}", p.logs()));
    serde_json::from_str(line).unwrap()
}

#[test]
fn qbittorrent_api_drives_the_daemon_like_qbittorrent() {
    if !enabled("daemon and qbittorrent-api") {
        return;
    }
    require_qbittorrent_api();
    let tmp = tempfile::tempdir().unwrap();
    let tracker_at = addr(5);
    let mut tracker = swarm_http_tracker(tracker_at);
    let announce = format!("http://{tracker_at}/announce");
    // A second tracker nobody listens on: its entry must say "not working".
    let dead = format!("http://{}/announce", addr(7));
    let files: &[(&str, usize)] = &[("a.bin", 200_003), ("b.bin", 300_007)];
    let one = Content::tree(&tmp.path().join("src"), "one", files, 3);
    let one_torrent = tmp.path().join("one.torrent");
    swarm_create(
        &one.path(),
        &one_torrent,
        Some(32 * 1024),
        &[&announce, &dead],
    );
    let two = Content::single(&tmp.path().join("src"), "two.bin", 400_009, 4);
    let two_torrent = tmp.path().join("two.torrent");
    let two_hash = swarm_create(&two.path(), &two_torrent, Some(32 * 1024), &[&announce]);
    let seed_at = addr(2);
    let mut seed = swarm_seed_many(&[&one_torrent, &two_torrent], &one.dir, seed_at, &[]);

    let dir = tmp.path().join("downloads");
    let pw = tmp.path().join("password");
    std::fs::write(&pw, "correct horse battery\n").unwrap();
    let web = addr(1);
    let mut daemon = swarm_daemon(&dir, &tmp.path().join("state"), web, &pw);

    let magnet = format!("magnet:?xt=urn:btih:{two_hash}&tr={announce}");
    let save = dir.join("tv");
    let mut client = Proc::spawn(
        "qbittorrent-api against swarm",
        Command::new(LT_PYTHON)
            .arg(script())
            .args([
                "full",
                &format!("http://{web}"),
                "admin",
                "correct horse battery",
            ])
            .arg(&one_torrent)
            .arg(&magnet)
            .arg(&save)
            .args(["--timeout", "90", "--trackers", &announce, &dead]),
    );
    let status = client.wait_exit(Duration::from_secs(240));
    assert!(status.success(), "{}\n{}", client.logs(), daemon.logs());
    for step in [
        "ADDED", "COMPLETE", "TRACKERS", "SKIPPED", "PAUSED", "RESUMED", "DELETED",
    ] {
        assert!(
            client.stdout().iter().any(|l| l.starts_with(step)),
            "{step}\n{}",
            client.logs()
        );
    }
    one.assert_same_in(&save, "swarm daemon");
    assert!(!save.join("two.bin").exists(), "deleted with its files");
    let ours = shapes(&client);
    daemon.stop();
    seed.stop();
    tracker.stop();

    // The same reads against qBittorrent itself.
    let mut qbit = Qbit::start(addr(6));
    let qsave = tmp.path().join("qbit");
    let mut reference = Proc::spawn(
        "qbittorrent-api against qbittorrent-nox",
        Command::new(LT_PYTHON)
            .arg(script())
            .args([
                "shapes",
                &format!("http://127.0.0.1:{}", qbit.web),
                "admin",
                "adminadmin",
            ])
            .arg(&one_torrent)
            .arg(&qsave),
    );
    let status = reference.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{}", reference.logs());
    let theirs = shapes(&reference);
    qbit.stop();
    for (kind, keys) in &theirs {
        let mine = ours
            .get(kind)
            .unwrap_or_else(|| panic!("swarm did not read {kind}"));
        let missing: Vec<_> = keys.iter().filter(|k| !mine.contains(k)).collect();
        let extra: Vec<_> = mine.iter().filter(|k| !keys.contains(k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{kind}: swarm lacks {missing:?}, has more {extra:?}"
        );
    }
}
