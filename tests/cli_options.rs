//! Options, inputs and conventions of the `swarm` binary that need no peer: contradictory
//! options refused at parse time, `create`'s checks, where a .torrent may come from
//! (URL, stdin, magnet), completions, the manual page and `--version`. Each test asserts
//! that the message names the cause. The one HTTP server here listens on 127.0.0.1 and
//! serves a bounded number of requests.

mod cli_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use cli_support::*;

/// A parse-time refusal: exit status 2 and clap's message, which must contain every one
/// of `needles`.
fn refused(args: &[&str], needles: &[&str]) {
    let out = swarm().args(args).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?} → {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: no {n:?} in {stderr}");
    }
}

#[test]
fn contradictory_options_are_refused_at_parse_time() {
    refused(
        &[
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "x.torrent",
            "--no-trackers",
            "--tracker",
            "http://t.example/a",
        ],
        &["--no-trackers", "--tracker"],
    );
    refused(
        &["-q", "-v", "info", "x.torrent"],
        &["--quiet", "--verbose"],
    );
    refused(
        &[
            "seed",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "x.torrent",
            "--quiet",
            "--verbose",
        ],
        &["--quiet", "--verbose"],
    );
    // seed downloads nothing: download-only options are not its options.
    refused(
        &[
            "seed",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "x.torrent",
            "--max-download-rate",
            "1M",
        ],
        &["--max-download-rate"],
    );
    refused(
        &[
            "seed",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "x.torrent",
            "--peer-timeout",
            "5",
        ],
        &["--peer-timeout"],
    );
    refused(
        &[
            "seed",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "x.torrent",
            "--buffered-writes",
        ],
        &["--buffered-writes"],
    );
    // Tracker URLs: http, https and udp only, for fetch/seed and create alike.
    refused(
        &[
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            "x.torrent",
            "--tracker",
            "notaurl",
        ],
        &["notaurl", "not a URL"],
    );
    refused(
        &["create", ".", "--tracker", "ftp://t.example/a"],
        &["ftp://", "udp://"],
    );
}

#[test]
fn rates_take_zero_for_unlimited_and_piece_lengths_take_units() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, bytes(3 << 20, 1)).unwrap();
    let torrent = dir.path().join("data.torrent");
    let out = create_with(&file, &torrent, &["--piece-length", "1MiB"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = info_json(&torrent);
    assert_eq!(v["piece_length"], 1 << 20, "{v}");
    // `--max-upload-rate 0` is "unlimited": the seed of complete data starts.
    let mut seed = Live::start(&[
        "seed",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        torrent.to_str().unwrap(),
        "-d",
        dir.path().to_str().unwrap(),
        "--bind",
        "127.0.0.4",
        "--port",
        "0",
        "--no-trackers",
        "--max-upload-rate",
        "0",
        "--state-dir",
        dir.path().join("state").to_str().unwrap(),
    ]);
    seed.wait_for("listening on 127.0.0.4:");
    let (status, all) = seed.interrupt();
    assert!(status.success(), "{status}: {all}");
}

#[test]
fn create_refuses_to_overwrite_without_force_and_leaves_junk_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(
        &dir.path().join("share"),
        &[
            ("keep.bin", 20_000),
            (".git/HEAD", 10),
            ("sub/.DS_Store", 10),
        ],
    );
    std::os::unix::fs::symlink(root.join("keep.bin"), root.join("linked.bin")).unwrap();
    let torrent = dir.path().join("share.torrent");
    std::fs::write(&torrent, b"precious").unwrap();

    let out = create_with(&root, &torrent, &[]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&torrent).unwrap(), b"precious");

    let out = create_with(&root, &torrent, &["--force"]);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(".git") && stderr.contains(".DS_Store"),
        "{stderr}"
    );
    assert!(stderr.contains("--include-junk"), "{stderr}");
    let v = info_json(&torrent);
    let paths: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    // The symlink is followed, as mktorrent does; the junk is not there.
    assert_eq!(paths, ["share/keep.bin", "share/linked.bin"], "{v}");

    let out = create_with(&root, &torrent, &["--force", "--include-junk"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = info_json(&torrent);
    assert_eq!(v["files"].as_array().unwrap().len(), 4, "{v}");
}

#[test]
fn a_torrent_comes_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("piped.bin");
    std::fs::write(&file, bytes(50_000, 2)).unwrap();
    let torrent = dir.path().join("piped.torrent");
    create(&file, &torrent);
    let out = swarm()
        .args(["info", "-"])
        .write_stdin(std::fs::read(&torrent).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("piped.bin"));
    let out = swarm()
        .args(["info", "-"])
        .write_stdin("garbage")
        .output()
        .unwrap();
    assert!(stderr_of(&out).contains("standard input is not a valid torrent"));
}

/// Serves `body` with `status` to each of `n` requests on 127.0.0.1, then stops (or after
/// 60 s, whichever comes first).
fn serve(status: &'static str, body: Vec<u8>, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < n && std::time::Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
            served += 1;
        }
    });
    format!("http://{addr}/file.torrent")
}

#[test]
fn a_torrent_comes_from_an_http_url_or_the_error_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.bin");
    std::fs::write(&file, bytes(50_000, 3)).unwrap();
    let torrent = dir.path().join("remote.torrent");
    create(&file, &torrent);

    let url = serve("200 OK", std::fs::read(&torrent).unwrap(), 1);
    let out = swarm().args(["info", &url]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("remote.bin"));

    let url = serve("404 Not Found", b"no".to_vec(), 1);
    let out = swarm().args(["info", &url]).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&url) && stderr.contains("404"), "{stderr}");

    // Nothing listens: the error names the URL and the refusal.
    let url = format!("http://127.0.0.1:{}/x.torrent", free_port(ip(1)));
    let out = swarm().args(["info", &url]).output().unwrap();
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&url) && stderr.to_lowercase().contains("connect"),
        "{stderr}"
    );
}

#[test]
fn bash_sources_the_completions_and_other_shells_get_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let out = swarm().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = dir.path().join("swarm.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source {}; complete -p swarm",
            script.display()
        ))
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && check.stderr.is_empty(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("swarm"), "{said}");
    for shell in ["zsh", "fish"] {
        let out = swarm().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && out.stdout.len() > 100, "{shell}");
    }
    refused(&["completions", "tcsh"], &["tcsh"]);
}

#[test]
fn man_pages_are_roff_and_version_names_the_commit() {
    let out = swarm().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && page.contains(".TH swarm"), "{page}");
    let out = swarm().args(["man", "fetch"]).output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH swarm-fetch") && page.contains("peer\\-timeout"),
        "{page}"
    );
    let out = swarm().args(["man", "nope"]).output().unwrap();
    assert!(stderr_of(&out).contains("no command \"nope\""));

    let out = swarm().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(commit) => assert_eq!(
            version,
            format!("swarm {} ({commit})", env!("CARGO_PKG_VERSION"))
        ),
        None => assert!(version.starts_with("swarm "), "{version}"),
    }
}
