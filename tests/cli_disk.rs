//! What `fetch` and `seed` say about where they listen, why they wait, why they give up,
//! and about the directory they work in: wrong directories, files too long or missing,
//! free space, and a second download of the same torrent into the same place. Each test
//! asserts that the message names the cause. Everything listens on 127.0.0.x, every
//! process has its own `--state-dir` (the lock test shares one on purpose), and every wait
//! is bounded.

mod cli_support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use cli_support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `seed TORRENT -d DIR` on 127.0.0.5 (default port: 6881 or the fallback), trackerless,
/// with its own state. Only the test of the fallback uses it as is; the others add
/// `--port 0`, so as not to take 6881 from it.
fn seed_args<'a>(torrent: &'a str, dir: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "seed",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        torrent,
        "-d",
        dir,
        "--bind",
        "127.0.0.5",
        "--no-trackers",
        "--state-dir",
        state,
    ]
}

/// [`seed_args`] on a port the OS picks.
fn seed_args_any_port<'a>(torrent: &'a str, dir: &'a str, state: &'a str) -> Vec<&'a str> {
    let mut v = seed_args(torrent, dir, state);
    v.extend(["--port", "0"]);
    v
}

#[test]
fn a_seed_says_where_it_listens_and_that_the_default_port_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(&dir.path().join("d"), &[("one.bin", 30_000)]);
    let torrent = dir.path().join("one.torrent");
    create(&root.join("one.bin"), &torrent);
    // Hold 6881 on the seed's address (if something else holds it, the seed falls back
    // all the same).
    let _holder = TcpListener::bind(SocketAddr::new(ip(5), 6881));
    let state = dir.path().join("state");
    let mut seed = Live::start(&seed_args(s(&torrent), s(&root), s(&state)));
    let line = seed.wait_for("listening on");
    assert!(line.contains("port 6881 is taken"), "{line}");
    let addr: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(addr.ip(), ip(5));
    assert_ne!(addr.port(), 6881);
    // No tracker and no --peer: it says it waits for peers to dial it, and why.
    let line = seed.wait_for("waiting for peers");
    assert!(line.contains("--no-trackers"), "{line}");
    let (status, all) = seed.interrupt();
    assert!(status.success(), "{status}: {all}");
}

#[test]
fn a_trackerless_fetch_says_why_it_waits_and_ctrl_c_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(&dir.path().join("d"), &[("two.bin", 30_000)]);
    let torrent = dir.path().join("two.torrent");
    create(&root.join("two.bin"), &torrent);
    let out = dir.path().join("out");
    let mut fetch = Live::start(&[
        "fetch",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        s(&torrent),
        "-o",
        s(&out),
        "--bind",
        "127.0.0.5",
        "--port",
        "0",
        "--state-dir",
        s(&dir.path().join("state")),
    ]);
    let line = fetch.wait_for("listening on 127.0.0.5:");
    assert!(!line.contains("taken"), "{line}");
    let line = fetch.wait_for("waiting for peers");
    assert!(
        line.contains("names no tracker") && line.contains("--peer"),
        "{line}"
    );
    let (status, all) = fetch.interrupt();
    assert_eq!(status.code(), Some(130), "{all}");
    assert!(
        all.contains("stopped before the download completed"),
        "{all}"
    );
}

#[test]
fn giving_up_names_each_peers_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(
        &dir.path().join("d"),
        &[("album/a.bin", 40_000), ("album/b.bin", 9)],
    );
    let torrent = dir.path().join("album.torrent");
    create(&root.join("album"), &torrent);
    let closed = SocketAddr::new(ip(2), free_port(ip(2)));
    let out = dir.path().join("new-out");
    let o = swarm()
        .args([
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            s(&torrent),
            "-o",
            s(&out),
            "-v",
        ])
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-trackers"])
        .args(["--peer", &closed.to_string(), "--peer-timeout", "1"])
        .args(["--state-dir", s(&dir.path().join("state"))])
        .output()
        .unwrap();
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("swarm: error: "), "{stderr}");
    assert!(
        last.contains(&format!("{closed}: connection refused")),
        "{last}"
    );
    // -v logs each connection attempt, with the peer's address.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("connect failed") && l.contains(&closed.to_string())),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "the failed run removed the directory it created"
    );
}

#[test]
fn an_output_path_inside_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(&dir.path().join("d"), &[("x.bin", 20_000)]);
    let torrent = dir.path().join("x.torrent");
    create(&root.join("x.bin"), &torrent);
    let afile = dir.path().join("afile");
    std::fs::write(&afile, b"x").unwrap();
    let o = swarm()
        .args([
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            s(&torrent),
            "-o",
            s(&afile.join("sub")),
            "--no-trackers",
        ])
        .args(["--state-dir", s(&dir.path().join("state"))])
        .output()
        .unwrap();
    let stderr = stderr_of(&o);
    assert!(
        stderr.contains("cannot create output directory") && stderr.contains("afile is a file"),
        "{stderr}"
    );
}

#[test]
fn seed_dir_pointing_at_the_content_folder_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(
        &dir.path().join("data"),
        &[
            ("My Album/01.flac", 40_000),
            ("My Album/cd2/02.flac", 20_000),
        ],
    );
    let torrent = dir.path().join("album.torrent");
    create(&root.join("My Album"), &torrent);
    let content = root.join("My Album");
    let o = swarm()
        .args(seed_args_any_port(
            s(&torrent),
            s(&content),
            s(&dir.path().join("state")),
        ))
        .output()
        .unwrap();
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("-d is the directory that contains"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("try -d {}", root.display())),
        "{stderr}"
    );
}

#[test]
fn a_seed_recreates_a_missing_empty_file_and_keeps_a_long_one_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(
        &dir.path().join("data"),
        &[
            ("pack/a.bin", 40_000),
            ("pack/empty.txt", 0),
            ("pack/z.bin", 5_000),
        ],
    );
    let torrent = dir.path().join("pack.torrent");
    create(&root.join("pack"), &torrent);
    std::fs::remove_file(root.join("pack/empty.txt")).unwrap();
    let z = root.join("pack/z.bin");
    let mut long = std::fs::read(&z).unwrap();
    long.extend_from_slice(b"user data");
    std::fs::write(&z, &long).unwrap();

    let mut seed = Live::start(&seed_args_any_port(
        s(&torrent),
        s(&root),
        s(&dir.path().join("state")),
    ));
    let line = seed.wait_for("z.bin");
    assert!(
        line.contains("9 more") && line.contains("left as it is"),
        "{line}"
    );
    seed.wait_for("waiting for peers");
    let (status, all) = seed.interrupt();
    assert!(status.success(), "{status}: {all}");
    assert!(all.contains("(empty) was missing: recreated"), "{all}");
    assert!(root.join("pack/empty.txt").exists());
    assert_eq!(
        std::fs::read(&z).unwrap(),
        long,
        "a seed never cuts user data"
    );

    // fetch truncates it, and finds everything else there complete.
    let o = swarm()
        .args([
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            s(&torrent),
            "-o",
            s(&root),
            "--no-trackers",
        ])
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(["--state-dir", s(&dir.path().join("fstate"))])
        .output()
        .unwrap();
    let stderr = stderr_of(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
    assert_eq!(std::fs::metadata(&z).unwrap().len(), 5_000);
}

#[test]
fn a_failing_piece_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(
        &dir.path().join("data"),
        &[("set/first.bin", 40_000), ("set/second.bin", 40_000)],
    );
    let torrent = dir.path().join("set.torrent");
    create(&root.join("set"), &torrent);
    let second = root.join("set/second.bin");
    let mut data = std::fs::read(&second).unwrap();
    data[30_000] ^= 0xff;
    std::fs::write(&second, &data).unwrap();
    let o = swarm()
        .args(seed_args_any_port(
            s(&torrent),
            s(&root),
            s(&dir.path().join("state")),
        ))
        .output()
        .unwrap();
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.contains("second.bin") && !last.contains("first.bin"),
        "{last}"
    );
}

/// A torrent of one file of `len` bytes, written by hand (no content needed): 64 MiB
/// pieces, zero hashes.
fn huge_torrent(path: &Path, len: u64) {
    let piece: u64 = 64 << 20;
    let n = len.div_ceil(piece) as usize;
    let mut b = format!(
        "d4:infod6:lengthi{len}e4:name8:huge.bin12:piece lengthi{piece}e6:pieces{}:",
        n * 20
    )
    .into_bytes();
    b.extend(std::iter::repeat_n(0u8, n * 20));
    b.extend_from_slice(b"ee");
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let st = rustix::fs::statvfs(dir.path()).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let torrent = dir.path().join("huge.torrent");
    huge_torrent(&torrent, free * 2 + (1 << 30));
    let out = dir.path().join("out");
    let o = swarm()
        .args([
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            s(&torrent),
            "-o",
            s(&out),
            "--no-trackers",
        ])
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(["--state-dir", s(&dir.path().join("state"))])
        .output()
        .unwrap();
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "the error once: {stderr}");
    assert!(stderr.contains("not enough disk space"), "{stderr}");
    assert!(stderr.contains("available"), "{stderr}");
    assert!(!out.exists(), "nothing was created");
}

#[test]
fn a_second_fetch_into_the_same_directory_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(&dir.path().join("d"), &[("same.bin", 30_000)]);
    let torrent = dir.path().join("same.torrent");
    create(&root.join("same.bin"), &torrent);
    let out = dir.path().join("out");
    let state = dir.path().join("state");
    let args = [
        "fetch",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        s(&torrent),
        "-o",
        s(&out),
        "--bind",
        "127.0.0.6",
        "--port",
        "0",
        "--no-trackers",
        "--state-dir",
        s(&state),
    ];
    let mut first = Live::start(&args);
    first.wait_for("listening on");
    let o = swarm().args(args).output().unwrap();
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let pid = first.child.0.id();
    assert!(
        stderr.contains("already being downloaded into") && stderr.contains(&format!("pid {pid}")),
        "{stderr}"
    );
    let (status, _) = first.interrupt();
    assert_eq!(status.code(), Some(130));
    // Released: the next run takes the lock.
    let mut again = Live::start(&args);
    again.wait_for("listening on");
    let _ = again.interrupt();
}
