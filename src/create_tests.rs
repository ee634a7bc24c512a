//! Tests for [`super`]: create, parse back, re-hash independently.

use super::*;
use crate::metainfo::Metainfo;
use std::fs;

/// Deterministic, non-repeating-looking content.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// SHA-1 of each piece of `data`, computed the obvious way.
fn naive_hashes(data: &[u8], piece_len: u32) -> Vec<[u8; 20]> {
    data.chunks(piece_len as usize)
        .map(|c| Sha1::digest(c).into())
        .collect()
}

fn opts(path: &Path) -> CreateOptions {
    CreateOptions {
        path: path.to_path_buf(),
        ..Default::default()
    }
}

#[test]
fn directory_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("My Data");
    // Odd sizes, an empty file, nested folders, and names whose byte order differs from
    // whole-path string order ("a-b" vs "a/…").
    let layout: &[(&str, usize)] = &[
        ("a/b/deep.bin", 70_001),
        ("a/z.txt", 3),
        ("a-b", 16_385),
        ("empty", 0),
        ("top.dat", 40_000),
        ("a/b/c/x", 1),
    ];
    for (i, (p, len)) in layout.iter().enumerate() {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content(i as u64, *len)).unwrap();
    }
    // A symlink is followed (as mktorrent does): its target's bytes under the link's name.
    std::os::unix::fs::symlink(root.join("top.dat"), root.join("link")).unwrap();
    fs::create_dir_all(root.join("only/empty/dirs")).unwrap();

    let every_option = || CreateOptions {
        piece_length: Some(16384),
        trackers: vec!["http://a/announce".into(), "udp://b:80".into()],
        private: true,
        comment: Some("hi".into()),
        created_by: Some("swarm test".into()),
        creation_date: Some(1_700_000_000),
        ..opts(&root)
    };
    let bytes = create_torrent(&every_option()).unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap();

    assert_eq!(m.name, "My Data");
    assert!(m.multi_file && m.private);
    let paths: Vec<String> = m
        .files
        .iter()
        .map(|f| f.path.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "My Data/a/b/c/x",
            "My Data/a/b/deep.bin",
            "My Data/a/z.txt",
            "My Data/a-b",
            "My Data/empty",
            "My Data/link",
            "My Data/top.dat",
        ]
    );
    assert_eq!(
        m.tracker_tiers(),
        vec![
            vec!["http://a/announce".to_string()],
            vec!["udp://b:80".into()]
        ]
    );
    assert_eq!(m.comment.as_deref(), Some("hi"));
    assert_eq!(m.created_by.as_deref(), Some("swarm test"));
    assert_eq!(m.creation_date, Some(1_700_000_000));

    // Independent re-hash: concatenate the files in torrent order.
    let mut all = Vec::new();
    for f in &m.files {
        all.extend(fs::read(dir.path().join(&f.path)).unwrap());
    }
    assert_eq!(all.len() as u64, m.total_length());
    assert_eq!(m.piece_hashes, naive_hashes(&all, 16384));

    // The info dict is canonical: re-encoding it gives the same bytes, hence the same hash.
    let span = crate::bencode::dict_value_span(&bytes, b"info")
        .unwrap()
        .unwrap();
    let v = crate::bencode::decode(span).unwrap();
    assert_eq!(crate::bencode::to_vec(&v), span);
    assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(span)));

    // Stable: the same tree gives the same bytes.
    let again = create_torrent(&every_option()).unwrap();
    assert_eq!(again, bytes);
}

#[test]
fn single_file_with_many_pieces_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.iso");
    // 300 pieces plus a short tail, and batches of several pieces per read.
    let data = content(42, 16384 * 300 + 777);
    fs::write(&path, &data).unwrap();
    let m = Metainfo::from_bytes(&create_torrent(&opts(&path)).unwrap()).unwrap();
    assert_eq!(m.name, "one.iso");
    assert!(!m.multi_file && !m.private);
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].path, PathBuf::from("one.iso"));
    assert_eq!(m.piece_length, auto_piece_length(data.len() as u64));
    assert_eq!(m.piece_hashes, naive_hashes(&data, m.piece_length));
    assert!(m.tracker_tiers().is_empty());

    let bytes = create_torrent(&CreateOptions {
        trackers: vec!["http://only".into()],
        ..opts(&path)
    })
    .unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.announce.as_deref(), Some("http://only"));
    assert!(m.announce_list.is_empty(), "one tracker: no announce-list");
}

#[test]
fn big_pieces_larger_than_read_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    fs::create_dir(&root).unwrap();
    let a = content(1, 5 << 20);
    let b = content(2, 3 << 20);
    fs::write(root.join("a"), &a).unwrap();
    fs::write(root.join("b"), &b).unwrap();
    let bytes = create_torrent(&CreateOptions {
        piece_length: Some(8 << 20),
        ..opts(&root)
    })
    .unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.piece_hashes, naive_hashes(&[a, b].concat(), 8 << 20));
}

#[test]
fn errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(
        create_torrent(&opts(&empty)),
        Err(CreateError::EmptyDirectory(_))
    ));
    fs::write(empty.join("zero"), b"").unwrap();
    assert!(matches!(
        create_torrent(&opts(&empty)),
        Err(CreateError::NoData(_))
    ));
    assert!(matches!(
        create_torrent(&opts(&dir.path().join("missing"))),
        Err(CreateError::Io { .. })
    ));
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    for bad in [0, 1000, 16383, 16384 * 3] {
        assert!(matches!(
            create_torrent(&CreateOptions {
                piece_length: Some(bad),
                ..opts(&f)
            }),
            Err(CreateError::InvalidPieceLength(p)) if p == bad
        ));
    }
    let weird = dir.path().join("weird");
    fs::create_dir(&weird).unwrap();
    fs::write(weird.join("back\\slash"), b"x").unwrap();
    assert!(matches!(
        create_torrent(&opts(&weird)),
        Err(CreateError::UnsafeName { .. })
    ));
}

#[test]
fn auto_piece_length_targets_1000_to_2000_pieces() {
    assert_eq!(auto_piece_length(0), 16384);
    assert_eq!(auto_piece_length(1), 16384);
    assert_eq!(auto_piece_length(2000 * 16384), 16384);
    assert_eq!(auto_piece_length(2000 * 16384 + 1), 32768);
    assert_eq!(auto_piece_length(1 << 30), 1 << 20);
    assert_eq!(auto_piece_length(u64::MAX), 16 << 20);
    for shift in 25..45 {
        let total = (1u64 << shift) + 12345;
        let p = auto_piece_length(total);
        assert!(p.is_power_of_two() && (16384..=16 << 20).contains(&p));
        let pieces = total.div_ceil(u64::from(p));
        assert!(
            (1000..=2000).contains(&pieces) || p == 16 << 20,
            "{total}: {pieces}"
        );
    }
}

#[test]
fn junk_is_left_out_unless_asked_for_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("share");
    for p in [
        "keep.txt",
        ".git/HEAD",
        ".git/objects/ab",
        "sub/.DS_Store",
        "Thumbs.db",
    ] {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"data").unwrap();
    }
    let (bytes, skipped) = create_torrent_reporting(&opts(&root)).unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    let paths: Vec<_> = m.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(paths, [PathBuf::from("share/keep.txt")]);
    let mut junk = skipped.junk.clone();
    junk.sort();
    assert_eq!(
        junk,
        [
            root.join(".git"),
            root.join("Thumbs.db"),
            root.join("sub/.DS_Store")
        ]
    );

    let all = CreateOptions {
        include_junk: true,
        ..opts(&root)
    };
    let (bytes, skipped) = create_torrent_reporting(&all).unwrap();
    assert_eq!(Metainfo::from_bytes(&bytes).unwrap().files.len(), 5);
    assert!(skipped.junk.is_empty());
}

#[test]
fn symlink_loops_and_broken_links_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/f"), b"data").unwrap();
    std::os::unix::fs::symlink(&root, root.join("a/up")).unwrap();
    std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();
    let (bytes, skipped) = create_torrent_reporting(&opts(&root)).unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.files.len(), 1);
    let mut why = skipped.unreadable.clone();
    why.sort();
    assert_eq!(
        why,
        [
            (root.join("a/up"), "symlink to a directory that contains it"),
            (root.join("dangling"), "broken symlink"),
        ]
    );
}

#[test]
fn tracker_urls_are_checked() {
    for good in [
        "http://t.example/announce",
        "https://t.example:8443/a",
        "udp://t.example:6969",
    ] {
        assert_eq!(check_tracker_url(good), Ok(()), "{good}");
    }
    for bad in [
        "notaurl",
        "ftp://t.example/announce",
        "http://",
        "udp:/x",
        "file:///etc",
    ] {
        assert!(check_tracker_url(bad).is_err(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"data").unwrap();
    let o = CreateOptions {
        trackers: vec!["ftp://t.example/x".into()],
        ..opts(&path)
    };
    assert!(matches!(
        create_torrent(&o),
        Err(CreateError::BadTracker(_))
    ));
}
