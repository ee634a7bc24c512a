//! File selection end to end (issue 17), on loopback with real `swarm` processes: a
//! multi-file torrent whose file boundaries fall inside pieces, fetched one middle file at
//! a time, then widened; the part file in the state directory holds the skipped files'
//! shares of boundary pieces, is served to others, and gives its bytes back when those
//! files become wanted. The last step (with `SWARM_INTEROP=1`) has a libtorrent leecher
//! take the whole content from the result.

mod interop;

use std::path::{Path, PathBuf};

use interop::*;

/// Piece length: 32 KiB. Every file boundary below falls inside a piece.
const PIECE: u32 = 32 * 1024;

/// Sorted by path, as the torrent lists them: file 2 is the middle of the byte range.
const TREE: &[(&str, usize)] = &[
    ("a.bin", 100_003),
    ("b/middle.bin", 300_007),
    ("c.bin", 200_001),
];

/// `swarm fetch` with its own (given) state directory, so a second run resumes the first.
fn fetch(torrent: &Path, out: &Path, state: &Path, extra: &[&str]) -> Proc {
    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["fetch", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--bind", "127.0.0.1", "--port", "0", "--state-dir"])
        .arg(state)
        .args(extra);
    Proc::spawn("swarm fetch", &mut c)
}

/// The `downloaded` total of a torrent's resume record (bytes received that we wanted,
/// over every run): read from the bencoded record, which is plain enough to scan.
fn recorded_downloaded(state: &Path, info_hash: &str) -> u64 {
    let path = state.join("resume").join(format!("{info_hash}.resume"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&bytes);
    let at = text.find("10:downloadedi").expect("a downloaded key") + "10:downloadedi".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(at).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Bytes of the pieces that touch bytes `[start, end)` of the torrent.
fn pieces_bytes(start: u64, end: u64, total: u64) -> u64 {
    let pl = u64::from(PIECE);
    let first = start / pl;
    let last = (end - 1) / pl;
    (first..=last)
        .map(|p| ((p + 1) * pl).min(total) - p * pl)
        .sum()
}

#[test]
fn a_middle_file_alone_then_the_rest_without_downloading_anything_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::tree(&tmp.path().join("src"), "pack", TREE, 17);
    let torrent = tmp.path().join("pack.torrent");
    let info_hash = swarm_create(&content.path(), &torrent, Some(PIECE), &[]);
    let seed_at = addr(2);
    let mut seed = swarm_seed(&torrent, &content.dir, seed_at, &[]);
    let peer = ["--peer", &seed_at.to_string()];

    // `swarm info` numbers the files as --files takes them.
    let info = swarm_cmd().arg("info").arg(&torrent).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let listed: Vec<&str> = info.lines().filter(|l| l.contains("pack/")).collect();
    assert_eq!(listed.len(), 3, "{info}");
    assert!(listed[1].trim_start().starts_with("2 "), "{info}");
    assert!(listed[1].ends_with("pack/b/middle.bin"), "{info}");
    let (a, b) = (TREE[0].1 as u64, TREE[1].1 as u64);
    let total = content.total;
    let middle = "pack/b/middle.bin";

    // 1. Only file 2 (bytes a..a+b of the torrent).
    let out = tmp.path().join("out");
    let state = tmp.path().join("state");
    let mut first = fetch(
        &torrent,
        &out,
        &state,
        &[&peer[..], &["--files", "2"]].concat(),
    );
    let line = swarm_finish(&mut first);
    assert!(line.contains("1 of 3 files"), "{line}");
    assert_eq!(files_under(&out), vec![PathBuf::from(middle)]);
    let want = sha1_file(&content.dir.join(middle));
    assert_eq!(sha1_file(&out.join(middle)), want, "{middle} differs");
    let got = recorded_downloaded(&state, &info_hash);
    let bound = pieces_bytes(a, a + b, total);
    println!(
        "figure: --files 2 of 3: wanted {b} B, downloaded {got} B (bound: the file plus its \
         two boundary pieces, {bound} B)"
    );
    assert!(
        got >= b && got <= bound,
        "downloaded {got} B; bound {bound}"
    );
    let part = state.join("parts").join(format!("{info_hash}.parts"));
    assert!(part.exists(), "no part file at {}", part.display());

    // 2. Someone else wants the same file; we are the only source left, and serve the
    //    boundary pieces from the part file.
    seed.stop();
    let serve_at = addr(3);
    let serve_state = tmp.path().join("serve-state");
    // A plain `seed` needs every piece; a partial seed is `fetch --seed` on what it has.
    let mut partial = {
        let mut c = swarm_cmd();
        c.arg("-v")
            .args([
                "fetch",
                "--no-lsd",
                "--no-dht",
                "--no-port-mapping",
                "--seed",
            ])
            .arg(&torrent)
            .arg("-o")
            .arg(&out)
            .args(["--files", "2", "--bind", &serve_at.ip().to_string()])
            .args(["--port", &serve_at.port().to_string(), "--state-dir"])
            .arg(&state);
        let mut p = Proc::spawn("swarm fetch --seed (partial)", &mut c);
        wait_listening(&mut p, serve_at);
        p
    };
    let other = tmp.path().join("other");
    let serve = ["--peer", &serve_at.to_string()];
    let mut second = fetch(
        &torrent,
        &other,
        &serve_state,
        &[&serve[..], &["--files", "2"]].concat(),
    );
    swarm_finish(&mut second);
    assert_eq!(sha1_file(&other.join(middle)), want);
    assert_eq!(files_under(&other), vec![PathBuf::from(middle)]);
    partial.stop();

    // 3. Everything: the rest arrives, the part file's bytes land in a.bin and c.bin,
    //    and nothing verified in step 1 is downloaded again.
    let seed_at = addr(5);
    let mut seed = swarm_seed(&torrent, &content.dir, seed_at, &[]);
    let peer = ["--peer", &seed_at.to_string()];
    let mut all = fetch(&torrent, &out, &state, &peer);
    let line = swarm_finish(&mut all);
    assert!(!line.contains("of 3 files"), "{line}");
    content.assert_same_in(&out, "swarm, widened");
    let total_downloaded = recorded_downloaded(&state, &info_hash);
    println!("figure: widened to all: downloaded {total_downloaded} B over both runs of {total} B");
    assert_eq!(
        total_downloaded, total,
        "over both runs exactly the torrent's bytes were downloaded"
    );
    assert!(
        !part.exists(),
        "the part file is left at {}",
        part.display()
    );
    seed.stop();

    // 4. The full content, as left, seeds to libtorrent.
    if !enabled("selection_then_libtorrent") {
        return;
    }
    require_libtorrent();
    let mut ours = swarm_seed(&torrent, &out, seed_at, &[]);
    let lt_out = tmp.path().join("lt");
    let o = LtOpts {
        peers: vec![seed_at],
        ..LtOpts::default()
    };
    let mut lt = lt_start("leech", &torrent, &lt_out, addr(4), &o);
    lt_leech_finish(&mut lt);
    content.assert_same_in(&lt_out, "libtorrent");
    ours.stop();
}

#[test]
fn a_selection_that_matches_nothing_names_the_patterns() {
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::tree(&tmp.path().join("src"), "pack", TREE, 3);
    let torrent = tmp.path().join("pack.torrent");
    swarm_create(&content.path(), &torrent, Some(PIECE), &[]);
    let out = swarm_cmd()
        .args([
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "--no-trackers",
        ])
        .arg(&torrent)
        .args(["-o"])
        .arg(tmp.path().join("out"))
        .args(["--state-dir"])
        .arg(tmp.path().join("state"))
        .args(["--only", "*.iso", "--exclude", "a.*"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("matches no file (--only \"*.iso\", --exclude \"a.*\")"),
        "{err}"
    );
    let out = swarm_cmd()
        .args(["fetch", "--no-lsd", "--no-dht", "--no-port-mapping"])
        .arg(&torrent)
        .args(["--state-dir"])
        .arg(tmp.path().join("state"))
        .args(["--files", "2-9"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("file index 9 is out of range"), "{err}");
}

/// A magnet's selection applies once its metadata has arrived; `--sequential` and
/// `--first-last` download the same bytes in another order.
#[test]
fn a_magnet_selection_and_streaming_order() {
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::tree(&tmp.path().join("src"), "pack", TREE, 29);
    let torrent = tmp.path().join("pack.torrent");
    let info_hash = swarm_create(&content.path(), &torrent, Some(PIECE), &[]);
    let seed_at = addr(6);
    let mut seed = swarm_seed(&torrent, &content.dir, seed_at, &[]);
    let link = format!("magnet:?xt=urn:btih:{info_hash}&x.pe={seed_at}");

    let out = tmp.path().join("magnet");
    let state = tmp.path().join("magnet-state");
    let mut m = fetch(Path::new(&link), &out, &state, &["--only", "b/*"]);
    let line = swarm_finish(&mut m);
    assert!(line.contains("1 of 3 files"), "{line}");
    assert_eq!(files_under(&out), vec![PathBuf::from("pack/b/middle.bin")]);
    let middle = content.dir.join("pack/b/middle.bin");
    assert_eq!(
        sha1_file(&out.join("pack/b/middle.bin")),
        sha1_file(&middle)
    );

    // Nothing matches once the files are known: the torrent fails, naming the pattern.
    let none = tmp.path().join("none");
    let mut n = fetch(
        Path::new(&link),
        &none,
        &tmp.path().join("none-state"),
        &["--only", "*.iso"],
    );
    let status = n.wait_exit(TRANSFER_TIMEOUT);
    assert!(!status.success(), "{}", n.logs());
    assert!(
        n.stderr().contains("matches no file (--only \"*.iso\")"),
        "{}",
        n.logs()
    );
    assert!(files_under(&none).is_empty(), "{:?}", files_under(&none));

    let ordered = tmp.path().join("ordered");
    let peer = ["--peer", &seed_at.to_string()];
    let extra = [&peer[..], &["--sequential", "--first-last"]].concat();
    let mut s = fetch(
        &torrent,
        &ordered,
        &tmp.path().join("ordered-state"),
        &extra,
    );
    swarm_finish(&mut s);
    content.assert_same_in(&ordered, "swarm --sequential --first-last");
    seed.stop();
}
