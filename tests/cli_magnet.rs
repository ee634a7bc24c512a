//! `swarm info` and `swarm fetch` given a magnet link: `info` prints what the link says
//! (hash, name, trackers as tiers, peers, and that fetching needs metadata exchange);
//! `fetch` refuses it in one line, naming the part of a malformed link first. No command
//! here touches the network: a magnet is refused before anything is dialled.

mod cli_support;

use cli_support::*;

const HASH: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";

const LINK: &str = "magnet:?xt=urn:btih:3WBFL3G4PSSV7MF37AJSHWDQMLNR63I4&dn=Big+Buck%20Bunny\
         &tr=udp%3A%2F%2Fexplodie.org%3A6969&tr=http://t.example/announce\
         &x.pe=127.0.0.1:6881&x.pe=%5B::1%5D:6882&x.pe=seed.example:7";

/// Runs `swarm args…`, expecting exit status 1 and one line on stderr; returns that line.
fn one_line_error(args: &[&str]) -> String {
    let out = swarm().args(args).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?} → {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
    stderr
}

#[test]
fn info_shows_what_a_magnet_link_says() {
    let out = swarm().args(["info", LINK]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Name:         Big Buck Bunny\n",
        &format!("Info hash:    {HASH}\n"),
        "  tier 1: udp://explodie.org:6969\n",
        "  tier 2: http://t.example/announce\n",
        "Peers:\n  127.0.0.1:6881\n  [::1]:6882\n  seed.example:7\n",
        "metadata exchange",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    let out = swarm().args(["info", "--json", LINK]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["info_hash"], HASH);
    assert_eq!(v["name"], "Big Buck Bunny");
    assert_eq!(
        v["trackers"],
        serde_json::json!([["udp://explodie.org:6969"], ["http://t.example/announce"]])
    );
    assert_eq!(
        v["peers"],
        serde_json::json!(["127.0.0.1:6881", "[::1]:6882", "seed.example:7"])
    );
}

#[test]
fn malformed_links_are_refused_naming_the_part() {
    let cases = [
        (
            format!("magnet:?xt=urn:btih:{}", &HASH[..39]),
            "invalid magnet link: xt: the info-hash is 39 characters long",
        ),
        (
            "magnet:?dn=x&tr=http://t/a".to_string(),
            "invalid magnet link: no info-hash",
        ),
        (
            "magnet:?xt=urn:btih:3WBFL3G4PSSV7MF37AJSHWDQMLNR63I1".to_string(),
            "invalid magnet link: xt: the 32-character info-hash is not base32",
        ),
        (
            format!("magnet:?xt=urn:btih:{HASH}&x.pe=127.0.0.1:99999"),
            "invalid magnet link: x.pe: bad port",
        ),
        (
            format!("magnet:?xt=urn:btih:{HASH}&dn=50%"),
            "invalid magnet link: dn: bad percent-encoding",
        ),
        (
            "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
                .to_string(),
            "BitTorrent v2-only links are not supported",
        ),
    ];
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    for (link, want) in &cases {
        for args in [
            vec!["info", link.as_str()],
            vec![
                "fetch",
                "--no-lsd",
                "--no-dht",
                "--no-port-mapping",
                link,
                "--no-trackers",
                "--state-dir",
                state,
            ],
        ] {
            let e = one_line_error(&args);
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.contains("not supported yet"), "{args:?}: {e}");
        }
    }
}

/// Item 6 of issue 14, as issue 15 (item 5) left it: a magnet with no way to find peers —
/// no tracker, no peer, and the DHT off — is refused at once, in one line saying what to
/// change, not left waiting for ever. (With the DHT on, `tests/dht.rs` fetches such a link.)
#[test]
fn fetch_refuses_a_magnet_with_no_way_to_find_peers() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let bare = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=x";
    let tracked = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\
                   &tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce";
    for args in [
        vec![
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            bare,
            "--state-dir",
            state,
        ],
        // The link's trackers, all switched off.
        vec![
            "fetch",
            "--no-lsd",
            "--no-dht",
            "--no-port-mapping",
            tracked,
            "--no-trackers",
            "--state-dir",
            state,
        ],
    ] {
        let e = one_line_error(&args);
        assert!(
            e.contains("names no tracker (tr=) and no peer (x.pe=)"),
            "{args:?}: {e}"
        );
        assert!(e.contains("--no-dht turns off the DHT"), "{e}");
        assert!(e.contains("--tracker URL or --peer HOST:PORT"), "{e}");
        assert!(!e.contains("invalid"), "{e}");
    }
    // Seeding a magnet makes no sense: said as plainly.
    let e = one_line_error(&[
        "seed",
        "--no-lsd",
        "--no-dht",
        "--no-port-mapping",
        LINK,
        "--state-dir",
        state,
    ]);
    assert!(e.contains("a magnet link cannot be seeded"), "{e}");
}
