//! Every fuzz target on stable: each file under `fuzz/corpus/NAME/` and
//! `fuzz/regressions/NAME/` is fed to `swarm::fuzz_targets::NAME` (which panics when a
//! check fails), so the targets keep building without nightly and every committed input,
//! including each crash the fuzzer ever found, keeps passing. Also: every target has a
//! non-empty corpus and a cargo-fuzz entry, and the seeds reach past the decoders' first
//! checks (a corpus of rejected inputs would fuzz nothing but the front door).

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use swarm::fuzz_targets::{by_name, TARGETS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files directly under `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_entry() {
    for name in TARGETS {
        assert!(by_name(name).is_some(), "{name} has no entry point");
        assert!(
            !files(&root().join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name} is empty"
        );
        let entry = root().join("fuzz_targets").join(format!("{name}.rs"));
        let text = fs::read_to_string(&entry).expect("fuzz/fuzz_targets entry");
        assert!(
            text.contains(&format!("swarm::fuzz_targets::{name}(data)")),
            "{} does not call its target",
            entry.display()
        );
    }
    // And nothing else: a directory named for no target would be silently skipped.
    for kind in ["corpus", "regressions"] {
        for e in fs::read_dir(root().join(kind)).into_iter().flatten() {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.contains(&name.as_str()),
                "fuzz/{kind}/{name} names no target"
            );
        }
    }
}

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let mut failed = Vec::new();
    let mut count = 0;
    for name in TARGETS {
        let target = by_name(name).expect("listed target");
        let dirs = [
            root().join("corpus").join(name),
            root().join("regressions").join(name),
        ];
        for path in dirs.iter().flat_map(|d| files(d)) {
            let bytes = fs::read(&path).expect("readable input");
            count += 1;
            if panic::catch_unwind(AssertUnwindSafe(|| target(&bytes))).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(count >= TARGETS.len(), "only {count} inputs");
    assert!(
        failed.is_empty(),
        "inputs that fail their target: {failed:#?}"
    );
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    fs::read(root().join("corpus").join(target).join(name)).expect("seed present")
}

#[test]
fn the_seeds_are_accepted_by_their_decoders() {
    use swarm::fuzz_targets::RESUME_HASH;
    use swarm::state::resume::ResumeRecord;

    assert!(swarm::metainfo::Metainfo::from_bytes(&seed("metainfo", "multi")).is_ok());
    for name in ["link0", "link1", "link2"] {
        let link = String::from_utf8(seed("magnet", name)).expect("UTF-8");
        assert!(swarm::magnet::Magnet::parse(&link).is_ok(), "{name}");
    }
    for name in [
        "ping",
        "find_node",
        "get_peers",
        "announce_peer",
        "response",
        "error",
    ] {
        assert!(
            swarm::dht::Msg::decode(&seed("krpc", name)).is_ok(),
            "{name}"
        );
    }
    let r = seed("resume", "record");
    assert!(ResumeRecord::decode(&r[3..], &RESUME_HASH, 10, 3).is_ok());
    let d = seed("saved", "daemon.json");
    assert!(swarm::daemon::saved::decode(&d, "daemon.json".into()).is_ok());
    let h = seed("extension", "handshake");
    assert!(swarm::wire::ExtHandshake::decode(&h[1..]).is_ok());
    let p = seed("extension", "pex");
    assert!(!swarm::wire::PexMsg::decode(&p[1..])
        .expect("pex")
        .is_empty());
    let w = seed("wire", "all-sized");
    let mut buf = bytes::BytesMut::from(&w[3..]);
    let mut dec = swarm::wire::Decoder::new(20);
    let mut n = 0;
    while dec.decode(&mut buf).expect("our own frames").is_some() {
        n += 1;
    }
    assert_eq!(n, 17);
    let a = seed("tracker_udp", "announce-v4");
    let got =
        swarm::tracker::udp::parse_announce(&a[2..], 0x1234_5678, swarm::tracker::udp::Family::V4);
    assert_eq!(got.expect("announce").peers.len(), 2);
    let s = seed("tracker_http", "scrape");
    assert!(
        swarm::tracker::http::parse_scrape(&s[1..], &swarm::types::InfoHash([0x22; 20])).is_ok()
    );
    let t = seed("tracker_server_http", "announce");
    let (end, _) = swarm::tracker_server::http::head_end(&t, 0).expect("a whole head");
    assert!(swarm::tracker_server::http::parse_request(&t[..end]).is_ok());
}
