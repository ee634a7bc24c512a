//! swarm against libtorrent (python3-libtorrent, driven by `tests/interop/lt_driver.py`),
//! by direct peer address: no tracker. Torrent files: swarm's load in libtorrent and
//! Transmission, mktorrent's and transmission-create's load in swarm, all with one info-hash.
//!
//! Runs only with `SWARM_INTEROP=1` (see README.md, "Interop tests").

mod interop;

use std::path::Path;
use std::process::Command;

use interop::*;

/// Seeders get their own loopback address; leechers use 127.0.0.1.
const SEED_IP: u8 = 2;

fn setup(test: &str) -> Option<tempfile::TempDir> {
    if !enabled(test) {
        return None;
    }
    require_libtorrent();
    Some(tempfile::tempdir().unwrap())
}

/// Content with odd sizes in nested folders; the piece size divides none of them.
const ODD_TREE: &[(&str, usize)] = &[
    ("a.bin", 1_000_003),
    ("nested/deeper/b.bin", 3 * MIB + 17),
    ("nested/c.txt", 1),
    ("nested/d.bin", 777_777),
    ("z/e.bin", 2 * MIB - 5),
];

/// swarm downloads `content` from one libtorrent seed, and the files match.
fn swarm_from_lt_seed(cell: &str, content: &Content, torrent: &Path, tmp: &Path) {
    let seed_at = addr(SEED_IP);
    let mut seed = lt_seed(torrent, &content.dir, seed_at, &LtOpts::default());
    let out = tmp.join("out");
    let timer = Cell::start(cell, content.total);
    let mut fetch = swarm_fetch(torrent, &out, 0, &["--peer".into(), seed_at.to_string()]);
    let line = swarm_finish(&mut fetch);
    timer.done();
    content.assert_same_in(&out, "swarm");
    assert!(
        about(summary_field(&line, "downloaded "), content.total),
        "{line}"
    );
    let (up, _) = lt_seed_stop(&mut seed);
    assert!(up >= content.total, "libtorrent uploaded only {up} B");
}

// ---------------------------------------------------------------------------------------
// (a) swarm leeches from a libtorrent seed

#[test]
fn swarm_leeches_from_libtorrent() {
    let Some(tmp) = setup("swarm_leeches_from_libtorrent") else {
        return;
    };
    let content = Content::single(&tmp.path().join("src"), "movie.bin", 32 * MIB + 4321, 1);
    let torrent = tmp.path().join("movie.torrent");
    swarm_create(&content.path(), &torrent, Some(256 * 1024), &[]);
    swarm_from_lt_seed("swarm <- libtorrent", &content, &torrent, tmp.path());
}

// ---------------------------------------------------------------------------------------
// (b) libtorrent leeches from a swarm seed

#[test]
fn libtorrent_leeches_from_swarm() {
    let Some(tmp) = setup("libtorrent_leeches_from_swarm") else {
        return;
    };
    let content = Content::single(&tmp.path().join("src"), "movie.bin", 32 * MIB + 999, 2);
    let torrent = tmp.path().join("movie.torrent");
    swarm_create(&content.path(), &torrent, Some(256 * 1024), &[]);
    let seed_at = addr(SEED_IP);
    let mut seed = swarm_seed(&torrent, &content.dir, seed_at, &[]);

    let out = tmp.path().join("out");
    let timer = Cell::start("libtorrent <- swarm", content.total);
    let mut leech = lt_start(
        "leech",
        &torrent,
        &out,
        addr(1),
        &LtOpts {
            peers: vec![seed_at],
            ..LtOpts::default()
        },
    );
    let (_, down) = lt_leech_finish(&mut leech);
    timer.done();
    content.assert_same_in(&out, "libtorrent");
    assert!(down >= content.total, "libtorrent downloaded only {down} B");
    seed.stop_with("INT", std::time::Duration::from_secs(10));
}

/// BEP 16: two libtorrent leechers download everything from a super-seeding swarm seed
/// that offers them one piece at a time, trading the rest between themselves; the seed
/// sends well under the two copies a plain seed would.
#[test]
fn libtorrent_leechers_from_swarm_super_seed() {
    let Some(tmp) = setup("libtorrent_leechers_from_swarm_super_seed") else {
        return;
    };
    let content = Content::single(&tmp.path().join("src"), "first.bin", 8 * MIB + 77, 4);
    let torrent = tmp.path().join("first.torrent");
    swarm_create(&content.path(), &torrent, Some(64 * 1024), &[]);
    let seed_at = addr(SEED_IP);
    let mut seed = swarm_seed(&torrent, &content.dir, seed_at, &["--super-seed".into()]);
    let (a_at, b_at) = (addr(1), addr(3));
    let timer = Cell::start("2 libtorrent <- swarm super-seed", 2 * content.total);
    let mut leechers: Vec<_> = [(a_at, b_at, "lt-a"), (b_at, a_at, "lt-b")]
        .iter()
        .map(|&(at, other, dir)| {
            let out = tmp.path().join(dir);
            let opts = LtOpts {
                peers: vec![seed_at, other],
                ..LtOpts::default()
            };
            (lt_start("leech", &torrent, &out, at, &opts), out)
        })
        .collect();
    for (p, out) in leechers.iter_mut() {
        let (_, down) = lt_leech_finish(p);
        assert!(down >= content.total, "libtorrent downloaded {down} B");
        content.assert_same_in(out, "libtorrent leecher");
    }
    timer.done();
    seed.stop_with("INT", std::time::Duration::from_secs(10));
    let line = summary_line(&seed.stderr());
    let up = summary_field(&line, "uploaded ");
    say(&format!(
        "interop super-seed: seed uploaded {up} B = {:.2}x the content",
        up as f64 / content.total as f64
    ));
    // The summary's sizes have three significant digits: "at least" within that.
    assert!(
        up >= content.total || about(up, content.total),
        "every piece comes from the seed once: {line}"
    );
    assert!(
        up * 2 < 3 * content.total,
        "the leechers should have traded: {line}\n{}",
        seed.logs()
    );
}

// ---------------------------------------------------------------------------------------
// (c) mixed swarm: a slow libtorrent seed, a swarm leecher and a libtorrent leecher that
// must trade with each other.

#[test]
fn mixed_swarm_trades_with_libtorrent() {
    let Some(tmp) = setup("mixed_swarm_trades_with_libtorrent") else {
        return;
    };
    let content = Content::single(&tmp.path().join("src"), "mixed.bin", 16 * MIB, 3);
    let torrent = tmp.path().join("mixed.torrent");
    swarm_create(&content.path(), &torrent, Some(256 * 1024), &[]);
    // 2 MiB/s for the whole torrent: each leecher alone would need ~8 s from it, so pieces
    // that one leecher has and the other lacks are worth trading.
    let seed_at = addr(SEED_IP);
    let mut seed = lt_seed(
        &torrent,
        &content.dir,
        seed_at,
        &LtOpts {
            upload_limit: 2 * MIB as u64,
            ..LtOpts::default()
        },
    );

    // Both leechers' ports are fixed first so each can be told about the other.
    let swarm_port = free_port(ip(1));
    let swarm_at = std::net::SocketAddr::new(ip(1), swarm_port);
    let lt_at = addr(1);
    let timer = Cell::start(
        "mixed: swarm + libtorrent <- libtorrent seed",
        content.total,
    );
    let mut lt_leech = lt_start(
        "leech",
        &torrent,
        &tmp.path().join("lt-out"),
        lt_at,
        &LtOpts {
            peers: vec![seed_at, swarm_at],
            ..LtOpts::default()
        },
    );
    let out = tmp.path().join("swarm-out");
    let mut fetch = swarm_fetch(
        &torrent,
        &out,
        swarm_port,
        &[
            "--peer".into(),
            seed_at.to_string(),
            "--peer".into(),
            lt_at.to_string(),
            // Keep serving the libtorrent leecher if swarm finishes first.
            "--seed".into(),
        ],
    );
    let (lt_up, lt_down) = lt_leech_finish(&mut lt_leech);
    // swarm with --seed never exits by itself: wait for its data, then stop it.
    wait_until("swarm to complete", TRANSFER_TIMEOUT, || {
        content
            .files
            .iter()
            .all(|(rel, want)| sha1_file(&out.join(rel)).as_ref() == Some(want))
    });
    fetch.signal("INT");
    let status = fetch.wait_exit(std::time::Duration::from_secs(15));
    timer.done();
    let line = summary_line(&fetch.stderr());
    content.assert_same_in(&out, "swarm");
    content.assert_same_in(&tmp.path().join("lt-out"), "libtorrent leecher");
    let (seed_up, _) = lt_seed_stop(&mut seed);
    say(&format!(
        "interop mixed: {line}\n  libtorrent leecher: uploaded {lt_up} B, downloaded \
         {lt_down} B; libtorrent seed uploaded {seed_up} B"
    ));
    assert!(status.success(), "swarm: {status}\n{}", fetch.logs());
    let swarm_up = summary_field(&line, "uploaded ");
    assert!(
        swarm_up > 0,
        "swarm uploaded nothing to the libtorrent leecher: {line}"
    );
    assert!(
        lt_down >= content.total,
        "libtorrent downloaded {lt_down} B"
    );
}

// ---------------------------------------------------------------------------------------
// (d) torrent files across tools, and odd multi-file geometry

/// `transmission-show`'s `Hash:` line.
fn transmission_show_hash(torrent: &Path) -> String {
    require("transmission-show", "transmission-cli");
    let o = Command::new("transmission-show")
        .arg(torrent)
        .output()
        .expect("running transmission-show");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "transmission-show {} failed: {text}{}",
        torrent.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Hash: "))
        .unwrap_or_else(|| panic!("no Hash line in {text}"))
        .trim()
        .to_owned()
}

#[test]
fn swarm_torrents_load_in_libtorrent_and_transmission() {
    let Some(tmp) = setup("swarm_torrents_load_in_libtorrent_and_transmission") else {
        return;
    };
    let single = Content::single(&tmp.path().join("s"), "one file.bin", 700_001, 4);
    let tree = Content::tree(&tmp.path().join("t"), "pack", ODD_TREE, 5);
    for (content, piece) in [(&single, None), (&tree, Some(64 * 1024)), (&tree, None)] {
        let torrent = tmp.path().join("x.torrent");
        let printed = swarm_create(&content.path(), &torrent, piece, &[]);
        let ours = swarm_info_hash(&torrent);
        assert_eq!(printed, ours);
        assert_eq!(lt_info_hash(&torrent), ours, "libtorrent, {}", content.name);
        assert_eq!(
            transmission_show_hash(&torrent),
            ours,
            "transmission-show, {}",
            content.name
        );
    }
}

#[test]
fn mktorrent_and_transmission_create_torrents_load_in_swarm() {
    let Some(tmp) = setup("mktorrent_and_transmission_create_torrents_load_in_swarm") else {
        return;
    };
    require("mktorrent", "mktorrent");
    require("transmission-create", "transmission-cli");
    let single = Content::single(&tmp.path().join("s"), "one.bin", 1_234_567, 6);
    let tree = Content::tree(&tmp.path().join("t"), "pack", ODD_TREE, 7);
    for content in [&single, &tree] {
        // mktorrent: 2^15 = 32 KiB pieces, a tracker (never contacted).
        let mk = tmp.path().join(format!("{}-mk.torrent", content.name));
        let o = Command::new("mktorrent")
            .args(["-l", "15", "-a", "http://127.0.0.1:1/announce", "-o"])
            .arg(&mk)
            .arg(content.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "mktorrent: {o:?}");
        // transmission-create: 32 KiB pieces.
        let tc = tmp.path().join(format!("{}-tc.torrent", content.name));
        let o = Command::new("transmission-create")
            .args(["-s", "32", "-o"])
            .arg(&tc)
            .arg(content.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "transmission-create: {o:?}");
        for torrent in [&mk, &tc] {
            let theirs = transmission_show_hash(torrent);
            assert_eq!(lt_info_hash(torrent), theirs, "{}", torrent.display());
            assert_eq!(swarm_info_hash(torrent), theirs, "{}", torrent.display());
        }
    }
}

#[test]
fn odd_multi_file_content_downloads_from_libtorrent() {
    let Some(tmp) = setup("odd_multi_file_content_downloads_from_libtorrent") else {
        return;
    };
    let content = Content::tree(&tmp.path().join("src"), "pack", ODD_TREE, 8);
    let torrent = tmp.path().join("pack.torrent");
    // 48 KiB is no power of two; 32 KiB is the largest that keeps many piece/file
    // boundaries unaligned: no file size is a multiple of it.
    swarm_create(&content.path(), &torrent, Some(32 * 1024), &[]);
    swarm_from_lt_seed(
        "swarm <- libtorrent (odd multi-file)",
        &content,
        &torrent,
        tmp.path(),
    );
}

#[test]
fn mktorrent_multi_file_downloads_from_libtorrent() {
    let Some(tmp) = setup("mktorrent_multi_file_downloads_from_libtorrent") else {
        return;
    };
    require("mktorrent", "mktorrent");
    let content = Content::tree(&tmp.path().join("src"), "pack", ODD_TREE, 9);
    let torrent = tmp.path().join("pack.torrent");
    let o = Command::new("mktorrent")
        .args(["-l", "16", "-o"])
        .arg(&torrent)
        .arg(content.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "mktorrent: {o:?}");
    swarm_from_lt_seed(
        "swarm <- libtorrent (mktorrent multi-file)",
        &content,
        &torrent,
        tmp.path(),
    );
}

// ---------------------------------------------------------------------------------------
// (e) one swarm seed process, three torrents on one port

/// The `swarm: complete "NAME": ...` line of a multi-torrent process's stderr.
fn summary_line_of(stderr: &str, name: &str) -> String {
    let prefix = format!("swarm: complete {name:?}:");
    stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {stderr:?}"))
        .to_owned()
}

/// Open a connection to `at`, send a handshake for an info-hash nobody serves, and assert
/// the peer closes it without a byte in answer.
fn assert_unknown_hash_refused(at: std::net::SocketAddr) {
    use std::io::{Read, Write};
    let mut hs = Vec::with_capacity(68);
    hs.push(19u8);
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0u8; 8]);
    hs.extend_from_slice(&random_bytes(20, 0x5eed_0bad)); // unknown info-hash
    hs.extend_from_slice(b"-XX0000-unknownhash!"); // peer id
    assert_eq!(hs.len(), 68);
    let mut s = std::net::TcpStream::connect_timeout(&at, START_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(&hs).expect("sending the handshake");
    let mut buf = [0u8; 68];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "the seed answered a handshake for an unknown info-hash with {n} bytes: {:?}",
            &buf[..n]
        ),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("the seed kept a connection for an unknown info-hash open for 5 s")
        }
        // Reset: closed with unread data, also a refusal.
        Err(_) => {}
    }
}

/// One `swarm seed` process serves three torrents on one port: two `swarm fetch` processes
/// and a libtorrent leecher each download a different one, at the same time, after a
/// handshake for an unknown info-hash was refused.
#[test]
fn one_swarm_seed_serves_three_torrents() {
    let Some(tmp) = setup("one_swarm_seed_serves_three_torrents") else {
        return;
    };
    let src = tmp.path().join("src");
    let contents = [
        Content::single(&src, "alpha.bin", 3 * MIB + 101, 11),
        Content::tree(
            &src,
            "beta",
            &[("one.bin", 2 * MIB + 7), ("sub/two.bin", 2 * MIB - 3)],
            12,
        ),
        Content::single(&src, "gamma.bin", 5 * MIB - 55, 13),
    ];
    let torrents: Vec<_> = contents
        .iter()
        .map(|c| {
            let t = tmp.path().join(format!("{}.torrent", c.name));
            swarm_create(&c.path(), &t, Some(64 * 1024), &[]);
            t
        })
        .collect();
    let total: u64 = contents.iter().map(|c| c.total).sum();
    let seed_at = addr(SEED_IP);
    let refs: Vec<&Path> = torrents.iter().map(|t| t.as_path()).collect();
    let mut seed = swarm_seed_many(&refs, &src, seed_at, &[]);

    assert_unknown_hash_refused(seed_at);

    let timer = Cell::start(
        "swarm, swarm, libtorrent <- one swarm seed, 3 torrents",
        total,
    );
    let peer = ["--peer".to_string(), seed_at.to_string()];
    let mut fetches: Vec<_> = (0..2)
        .map(|i| {
            let out = tmp.path().join(format!("swarm-out-{i}"));
            (swarm_fetch(&torrents[i], &out, 0, &peer), out)
        })
        .collect();
    let lt_out = tmp.path().join("lt-out");
    let mut leech = lt_start(
        "leech",
        &torrents[2],
        &lt_out,
        addr(1),
        &LtOpts {
            peers: vec![seed_at],
            ..LtOpts::default()
        },
    );
    for (i, (fetch, out)) in fetches.iter_mut().enumerate() {
        let line = swarm_finish(fetch);
        contents[i].assert_same_in(out, "swarm");
        assert!(
            about(summary_field(&line, "downloaded "), contents[i].total),
            "{line}"
        );
    }
    let (_, down) = lt_leech_finish(&mut leech);
    timer.done();
    contents[2].assert_same_in(&lt_out, "libtorrent");
    assert!(
        down >= contents[2].total,
        "libtorrent downloaded only {down} B"
    );

    seed.stop_with("INT", std::time::Duration::from_secs(10));
    let stderr = seed.stderr();
    for c in &contents {
        let line = summary_line_of(&stderr, &c.name);
        let up = summary_field(&line, "uploaded ");
        assert!(
            up >= c.total || about(up, c.total),
            "the seed uploaded only {up} B of {}: {line}\n{}",
            c.name,
            seed.logs()
        );
    }
}
