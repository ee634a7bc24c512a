//! Fixture and property tests for `.torrent` parsing.
//!
//! The expected info-hashes below were computed once, independently of swarm, with Python's
//! `hashlib.sha1` over `info` bytes built by a separate Python transcription of
//! `fixture_gen`; the tests also check them against the generator's own `info` bytes.

mod fixture_gen;

use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use sha1::{Digest, Sha1};
use swarm::bencode;
use swarm::metainfo::{Metainfo, MetainfoError};

use fixture_gen::{A1, A2, A3, SEED};

const SINGLE: &str = "7682ad3643da3da6146a19ad871391ff7e83472b";
const MULTI: &str = "2b37c290625e48cc9d124bfd4a4625b08a71cf53";
const UNKNOWN_KEYS: &str = "203d45db3f54317322ebe3049e4f214a6bd5408a";
const NONCANONICAL: &str = "8c96f87fa7798595a490da4ef524b2e9e8b411c7";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn parse(name: &str) -> Result<Metainfo, MetainfoError> {
    Metainfo::from_bytes(&read(name))
}

fn hex(b: &[u8]) -> String {
    swarm::types::to_hex(b)
}

#[test]
fn fixtures_on_disk_match_generator() {
    let write = std::env::var_os("SWARM_WRITE_FIXTURES").is_some();
    for f in fixture_gen::all() {
        let path = fixture_dir().join(f.name);
        if write {
            std::fs::write(&path, &f.bytes).unwrap();
        }
        assert_eq!(read(f.name), f.bytes, "{} is stale: regenerate it", f.name);
        // The generator's info bytes really are the `info` value of the file.
        let span = bencode::dict_value_span(&f.bytes, b"info").unwrap();
        assert_eq!(span, Some(&f.info[..]), "{}", f.name);
    }
}

#[test]
fn valid_fixture_hashes_are_sha1_of_raw_info() {
    let expected = [
        ("single.torrent", SINGLE),
        ("multi.torrent", MULTI),
        ("unknown-keys.torrent", UNKNOWN_KEYS),
        ("noncanonical.torrent", NONCANONICAL),
    ];
    let gen = fixture_gen::all();
    for (name, want) in expected {
        let f = gen.iter().find(|f| f.name == name).unwrap();
        assert_eq!(hex(&Sha1::digest(&f.info)), want, "{name}: generator");
        let m = parse(name).unwrap();
        assert_eq!(m.info_hash.to_hex(), want, "{name}: parser");
        assert_eq!(m.info_hash.to_string(), want);
    }
}

#[test]
fn single() {
    let m = parse("single.torrent").unwrap();
    assert_eq!(m.name, "single.bin");
    assert!(!m.multi_file && !m.private);
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].path, PathBuf::from("single.bin"));
    assert_eq!(m.total_length(), 40000);
    assert_eq!((m.piece_length, m.num_pieces()), (16384, 3));
    assert_eq!(m.tracker_tiers(), vec![vec![A1.to_string()]]);
    assert_eq!(m.comment.as_deref(), Some("swarm fixture"));
    assert_eq!(m.created_by.as_deref(), Some("swarm test"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
    // Piece hashes are real: they verify the documented payload.
    let data = fixture_gen::data(40000);
    for (p, chunk) in data.chunks(16384).enumerate() {
        assert_eq!(m.piece_hashes[p], <[u8; 20]>::from(Sha1::digest(chunk)));
    }
}

#[test]
fn multi() {
    let m = parse("multi.torrent").unwrap();
    assert_eq!(m.name, "multi");
    assert!(m.multi_file && m.private);
    let files: Vec<(PathBuf, u64)> = m.files.iter().map(|f| (f.path.clone(), f.length)).collect();
    assert_eq!(
        files,
        vec![
            (PathBuf::from("multi/docs/readme.txt"), 20000),
            (PathBuf::from("multi/empty"), 0),
            (PathBuf::from("multi/media/clips/a.bin"), 30001),
            (PathBuf::from("multi/z"), 7),
        ]
    );
    assert_eq!(m.total_length(), 50008);
    assert_eq!(m.num_pieces(), 4);
    assert_eq!(m.layout.num_files(), 4);
    assert_eq!(
        m.tracker_tiers(),
        vec![vec![A1.to_string()], vec![A2.to_string(), A3.to_string()]]
    );
    assert_eq!(m.announce.as_deref(), Some(A1));
    assert_eq!(m.url_list, vec![SEED.to_string()]);
}

#[test]
fn unknown_keys_and_noncanonical_order() {
    let m = parse("unknown-keys.torrent").unwrap();
    assert_eq!(m.name, "unknown.bin");
    assert_eq!(m.total_length(), 40000);

    let bytes = read("noncanonical.torrent");
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.name, "noncanonical.bin");
    assert_eq!(m.tracker_tiers(), vec![vec![A1.to_string()]]);
    // Re-encoding canonically would change the hash: the raw bytes are what count.
    let span = bencode::dict_value_span(&bytes, b"info").unwrap().unwrap();
    let canonical = bencode::to_vec(&bencode::decode(span).unwrap());
    assert_ne!(canonical, span);
    assert_ne!(hex(&Sha1::digest(&canonical)), NONCANONICAL);
}

#[test]
fn evil_fixtures_are_refused_naming_the_path() {
    let cases = [
        (
            "evil-dotdot.torrent",
            "evil/../../etc/passwd",
            "`.` or `..` component",
        ),
        ("evil-absolute.torrent", "evil//etc/passwd", "absolute path"),
        (
            "evil-empty-component.torrent",
            "evil/a//b",
            "empty path component",
        ),
        (
            "evil-nul.torrent",
            "evil/evil\0.txt",
            "NUL byte in path component",
        ),
        (
            "evil-drive.torrent",
            "evil/C:/Windows/x.dll",
            "Windows drive prefix",
        ),
        (
            "evil-backslash.torrent",
            "evil/..\\..\\boot.ini",
            "path separator inside a component",
        ),
        ("evil-empty-path.torrent", "evil", "empty path list"),
        ("evil-name-dotdot.torrent", "..", "`.` or `..` component"),
    ];
    for (name, want_path, want_reason) in cases {
        let err = parse(name).unwrap_err();
        match &err {
            MetainfoError::UnsafePath { path, reason } => {
                assert_eq!(path, want_path, "{name}");
                assert_eq!(*reason, want_reason, "{name}");
            }
            other => panic!("{name}: wrong error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&format!("{want_path:?}")), "{name}: {msg}");
    }
    let err = parse("evil-duplicate.torrent").unwrap_err();
    assert!(
        matches!(&err, MetainfoError::DuplicatePath { path } if path == "evil/a"),
        "{err:?}"
    );
    assert!(err.to_string().contains("evil/a"));
}

/// Everything a successful parse promises, checked on whatever the fuzzers manage to build.
fn check_invariants(m: &Metainfo) {
    assert!(m.piece_length > 0);
    assert_eq!(m.piece_hashes.len() as u32, m.num_pieces());
    assert!(m.total_length() > 0);
    assert!(!m.files.is_empty());
    assert_eq!(m.layout.num_files(), m.files.len());
    for f in &m.files {
        assert!(f.path.is_relative());
        assert!(f
            .path
            .components()
            .all(|c| matches!(c, Component::Normal(_))));
        assert!(f.path.starts_with(&m.name));
    }
}

fn valid_fixtures() -> Vec<Vec<u8>> {
    [
        "single.torrent",
        "multi.torrent",
        "unknown-keys.torrent",
        "noncanonical.torrent",
    ]
    .iter()
    .map(|n| read(n))
    .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Overwrite with a digit: the likeliest way to corrupt a length prefix or integer.
    Digit(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), b'0'..=b'9').prop_map(|(i, b)| Mutation::Digit(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize| i % bytes.len();
    match *m {
        Mutation::Flip(i, b) => {
            let i = at(i);
            bytes[i] ^= b
        }
        Mutation::Insert(i, b) => {
            let i = at(i);
            bytes.insert(i, b)
        }
        Mutation::Delete(i) => {
            let i = at(i);
            bytes.remove(i);
        }
        Mutation::Truncate(i) => {
            let i = at(i);
            bytes.truncate(i)
        }
        Mutation::Digit(i, b) => {
            let i = at(i);
            bytes[i] = b
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = bencode::decode(&bytes);
        if let Ok(m) = Metainfo::from_bytes(&bytes) {
            check_invariants(&m);
        }
    }

    #[test]
    fn mutated_torrents_never_panic(
        which in 0..4usize,
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = valid_fixtures().swap_remove(which);
        for m in &muts {
            apply(&mut bytes, m);
        }
        let _ = bencode::decode(&bytes);
        if let Ok(m) = Metainfo::from_bytes(&bytes) {
            check_invariants(&m);
            // Any accepted torrent's hash is over its own raw info bytes.
            let span = bencode::dict_value_span(&bytes, b"info").unwrap().unwrap();
            prop_assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(span)));
        }
    }
}
