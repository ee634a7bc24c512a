//! Builds the `.torrent` fixtures in `fixtures/` byte by byte, without swarm's own encoder,
//! so each test knows the exact `info` bytes it expects to be hashed.
//!
//! Regenerate the files with
//! `SWARM_WRITE_FIXTURES=1 cargo test --test metainfo fixtures_on_disk_match_generator`.
//!
//! Content: the data stream of every valid fixture is byte `k` = `k % 251`, so a store or
//! recheck test can materialise the payload and verify it against the piece hashes.

use sha1::{Digest, Sha1};

/// One fixture: file name, the raw `info` bytes, and the whole file.
pub struct Fixture {
    pub name: &'static str,
    pub info: Vec<u8>,
    pub bytes: Vec<u8>,
}

pub const A1: &str = "http://tracker.example/announce";
pub const A2: &str = "udp://tracker2.example:6969/announce";
pub const A3: &str = "http://backup.example/announce";
pub const SEED: &str = "http://seed.example/multi/";

/// A bencoded byte string.
fn s(x: impl AsRef<[u8]>) -> Vec<u8> {
    let x = x.as_ref();
    [format!("{}:", x.len()).as_bytes(), x].concat()
}

fn i(n: i64) -> Vec<u8> {
    format!("i{n}e").into_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The fixture payload: byte `k` of the stream is `k % 251`.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|k| (k % 251) as u8).collect()
}

/// Real piece hashes of [`data`]`(total)` in 16 KiB pieces.
fn pieces(total: usize) -> Vec<u8> {
    data(total)
        .chunks(16384)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect()
}

/// One `files` entry.
fn file(length: i64, comps: &[&[u8]]) -> Vec<u8> {
    let path: Vec<u8> = comps.iter().flat_map(s).collect();
    cat(&[
        b"d",
        &s("length"),
        &i(length),
        &s("path"),
        b"l",
        &path,
        b"ee",
    ])
}

/// A multi-file info dict named `evil` with the given file entries.
fn evil_multi(entries: &[Vec<u8>], total: usize) -> Vec<u8> {
    cat(&[
        b"d",
        &s("files"),
        b"l",
        &entries.concat(),
        b"e",
        &s("name"),
        &s("evil"),
        &s("piece length"),
        &i(16384),
        &s("pieces"),
        &s(pieces(total)),
        b"e",
    ])
}

fn wrap(info: Vec<u8>) -> Vec<u8> {
    cat(&[b"d", &s("announce"), &s(A1), &s("info"), &info, b"e"])
}

fn single_info(name: &str, len: usize) -> Vec<u8> {
    cat(&[
        b"d",
        &s("length"),
        &i(len as i64),
        &s("name"),
        &s(name),
        &s("piece length"),
        &i(16384),
        &s("pieces"),
        &s(pieces(len)),
        b"e",
    ])
}

pub fn all() -> Vec<Fixture> {
    let mut out = Vec::new();
    let mut add = |name, info: Vec<u8>, bytes: Vec<u8>| out.push(Fixture { name, info, bytes });

    let info = single_info("single.bin", 40000);
    let bytes = cat(&[
        b"d",
        &s("announce"),
        &s(A1),
        &s("comment"),
        &s("swarm fixture"),
        &s("created by"),
        &s("swarm test"),
        &s("creation date"),
        &i(1_700_000_000),
        &s("info"),
        &info,
        b"e",
    ]);
    add("single.torrent", info, bytes);

    let info = cat(&[
        b"d",
        &s("files"),
        b"l",
        &file(20000, &[b"docs", b"readme.txt"]),
        &file(0, &[b"empty"]),
        &file(30001, &[b"media", b"clips", b"a.bin"]),
        &file(7, &[b"z"]),
        b"e",
        &s("name"),
        &s("multi"),
        &s("piece length"),
        &i(16384),
        &s("pieces"),
        &s(pieces(50008)),
        &s("private"),
        &i(1),
        b"e",
    ]);
    let tiers = cat(&[b"ll", &s(A1), b"el", &s(A2), &s(A3), b"ee"]);
    let bytes = cat(&[
        b"d",
        &s("announce"),
        &s(A1),
        &s("announce-list"),
        &tiers,
        &s("info"),
        &info,
        &s("url-list"),
        &s(SEED),
        b"e",
    ]);
    add("multi.torrent", info, bytes);

    let info = cat(&[
        b"d",
        &s("length"),
        &i(40000),
        &s("name"),
        &s("unknown.bin"),
        &s("piece length"),
        &i(16384),
        &s("pieces"),
        &s(pieces(40000)),
        &s("source"),
        &s("TRACKER"),
        &s("x-foo"),
        b"d",
        &s("bar"),
        b"l",
        &i(1),
        &i(2),
        b"e",
        &s("baz"),
        &s("qux!"),
        b"e",
        b"e",
    ]);
    let bytes = cat(&[
        b"d",
        &s("announce"),
        &s(A1),
        &s("info"),
        &info,
        &s("x-unknown"),
        b"l",
        &i(1),
        b"e",
        b"e",
    ]);
    add("unknown-keys.torrent", info, bytes);

    // Keys deliberately out of order, in `info` and at the top level.
    let info = cat(&[
        b"d",
        &s("pieces"),
        &s(pieces(40000)),
        &s("name"),
        &s("noncanonical.bin"),
        &s("piece length"),
        &i(16384),
        &s("length"),
        &i(40000),
        b"e",
    ]);
    let bytes = cat(&[b"d", &s("info"), &info, &s("announce"), &s(A1), b"e"]);
    add("noncanonical.torrent", info, bytes);

    let evil: &[(&str, &[&[u8]])] = &[
        ("evil-dotdot.torrent", &[b"..", b"..", b"etc", b"passwd"]),
        ("evil-absolute.torrent", &[b"/etc", b"passwd"]),
        ("evil-empty-component.torrent", &[b"a", b"", b"b"]),
        ("evil-nul.torrent", &[b"evil\0.txt"]),
        ("evil-drive.torrent", &[b"C:", b"Windows", b"x.dll"]),
        ("evil-backslash.torrent", &[b"..\\..\\boot.ini"]),
        ("evil-empty-path.torrent", &[]),
    ];
    for (name, comps) in evil {
        let info = evil_multi(&[file(1, comps)], 1);
        add(name, info.clone(), wrap(info));
    }
    let info = evil_multi(&[file(1, &[b"a"]), file(1, &[b"a"])], 2);
    add("evil-duplicate.torrent", info.clone(), wrap(info));
    let info = single_info("..", 1);
    add("evil-name-dotdot.torrent", info.clone(), wrap(info));
    out
}
