//! Unit tests for [`super`]: validation rules one at a time (fixtures live in
//! `tests/metainfo.rs`).

use super::*;
use crate::bencode::{to_vec, Value};

/// A valid single-file torrent of `len` bytes in 16 KiB pieces, with `edit` applied to the
/// root and info dictionaries before encoding.
fn torrent(
    len: i64,
    edit: impl FnOnce(
        &mut Vec<(&'static [u8], Value<'static>)>,
        &mut Vec<(&'static [u8], Value<'static>)>,
    ),
) -> Vec<u8> {
    let pieces: &'static [u8] = vec![7u8; 20 * (len as usize).div_ceil(16384)].leak();
    let mut info = vec![
        (&b"length"[..], Value::Int(len)),
        (b"name", Value::Bytes(b"file.bin")),
        (b"piece length", Value::Int(16384)),
        (b"pieces", Value::Bytes(pieces)),
    ];
    let mut root = vec![(&b"announce"[..], Value::Bytes(b"http://t/a"))];
    edit(&mut root, &mut info);
    root.push((b"info", Value::Dict(info)));
    to_vec(&Value::Dict(root))
}

fn set<'a>(d: &mut Vec<(&'a [u8], Value<'a>)>, k: &'a [u8], v: Value<'a>) {
    d.retain(|(key, _)| *key != k);
    d.push((k, v));
}

fn files(list: &[(&'static [&'static str], i64)]) -> Value<'static> {
    Value::List(
        list.iter()
            .map(|(path, len)| {
                Value::Dict(vec![
                    (b"length", Value::Int(*len)),
                    (
                        b"path",
                        Value::List(path.iter().map(|c| Value::Bytes(c.as_bytes())).collect()),
                    ),
                ])
            })
            .collect(),
    )
}

fn multi(list: &[(&'static [&'static str], i64)]) -> Result<Metainfo, MetainfoError> {
    let total: i64 = list.iter().map(|f| f.1.max(0)).sum();
    let list = files(list);
    Metainfo::from_bytes(&torrent(total.max(1), |_, info| {
        info.retain(|(k, _)| *k != b"length");
        info.push((b"files", list));
    }))
}

#[test]
fn single_file_basics() {
    let m = Metainfo::from_bytes(&torrent(40000, |_, _| {})).unwrap();
    assert_eq!(m.name, "file.bin");
    assert!(!m.multi_file);
    assert_eq!(
        m.files,
        vec![FileEntry {
            path: "file.bin".into(),
            length: 40000
        }]
    );
    assert_eq!(m.total_length(), 40000);
    assert_eq!(m.num_pieces(), 3);
    assert_eq!(m.piece_hashes.len(), 3);
    assert_eq!(m.tracker_tiers(), vec![vec!["http://t/a".to_string()]]);
    assert!(!m.private);
}

#[test]
fn multi_file_paths_start_with_name() {
    let m = multi(&[(&["a", "b.txt"], 10), (&["c"], 0), (&["a", "d"], 5)]).unwrap();
    assert!(m.multi_file);
    let paths: Vec<_> = m.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            PathBuf::from("file.bin/a/b.txt"),
            PathBuf::from("file.bin/c"),
            PathBuf::from("file.bin/a/d")
        ]
    );
    assert_eq!(m.total_length(), 15);
}

#[test]
fn component_rules() {
    for ok in ["a", "a b", ".hidden", "...", "ab:c", "1:", "ünïcode"] {
        assert_eq!(check_component(ok), Ok(()), "{ok}");
    }
    for bad in [
        "", ".", "..", "a/b", "/", "a\\b", "a\0b", "C:", "c:foo", "x:y",
    ] {
        assert!(check_component(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn unsafe_paths_are_named() {
    let cases: &[&[&str]] = &[&["..", "x"], &["a", ""], &["/etc"], &["C:", "x"], &[]];
    for path in cases {
        let err = multi(&[(path, 1)]).unwrap_err();
        assert!(matches!(err, MetainfoError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("file.bin"), "{err}");
    }
    let err = Metainfo::from_bytes(&torrent(1, |_, info| {
        set(info, b"name", Value::Bytes(b".."));
    }))
    .unwrap_err();
    assert!(matches!(err, MetainfoError::UnsafePath { ref path, .. } if path == ".."));
}

#[test]
fn duplicates_and_conflicts() {
    assert!(matches!(
        multi(&[(&["a"], 1), (&["a"], 1)]),
        Err(MetainfoError::DuplicatePath { .. })
    ));
    assert!(matches!(
        multi(&[(&["a"], 1), (&["a", "b"], 1)]),
        Err(MetainfoError::PathConflict { .. })
    ));
    assert!(matches!(
        multi(&[(&["a", "b"], 1), (&["a"], 1)]),
        Err(MetainfoError::PathConflict { .. })
    ));
    assert!(multi(&[(&["a", "b"], 1), (&["a", "c"], 1)]).is_ok());
}

#[test]
fn field_validation() {
    let err = |edit: fn(&mut Vec<(&'static [u8], Value<'static>)>)| {
        Metainfo::from_bytes(&torrent(40000, |_, info| edit(info))).unwrap_err()
    };
    assert!(matches!(
        err(|i| set(i, b"piece length", Value::Int(0))),
        MetainfoError::PieceLengthZero
    ));
    assert!(matches!(
        err(|i| set(i, b"piece length", Value::Int(-1))),
        MetainfoError::PieceLengthOutOfRange(-1)
    ));
    assert!(matches!(
        err(|i| set(i, b"piece length", Value::Int(1 << 32))),
        MetainfoError::PieceLengthTooLarge { .. }
    ));
    // Issue 11: pieces up to 2^32 - 1 used to be accepted and buffered whole.
    let too_large = err(|i| set(i, b"piece length", Value::Int(i64::from(MAX_PIECE_LEN) + 1)));
    assert_eq!(
        too_large.to_string(),
        "piece length 67108865 is more than the limit of 67108864 bytes"
    );
    assert!(matches!(
        err(|i| set(i, b"pieces", Value::Bytes(&[0; 59]))),
        MetainfoError::PiecesNotMultipleOf20(59)
    ));
    assert!(matches!(
        err(|i| set(i, b"pieces", Value::Bytes(&[0; 40]))),
        MetainfoError::PieceCountMismatch {
            expected: 3,
            got: 2
        }
    ));
    assert!(matches!(
        err(|i| set(i, b"length", Value::Int(-5))),
        MetainfoError::NegativeLength { length: -5, .. }
    ));
    assert!(matches!(
        err(|i| set(i, b"length", Value::Int(0))),
        MetainfoError::Empty
    ));
    assert!(matches!(
        err(|i| i.retain(|(k, _)| *k != b"name")),
        MetainfoError::MissingField("name")
    ));
    assert!(matches!(
        err(|i| i.retain(|(k, _)| *k != b"length")),
        MetainfoError::MissingField("length or files")
    ));
    assert!(matches!(
        err(|i| set(i, b"files", files(&[(&["x"], 1)]))),
        MetainfoError::BothLengthAndFiles
    ));
    assert!(matches!(
        err(|i| set(i, b"files", Value::List(vec![]))),
        MetainfoError::BothLengthAndFiles
    ));
    assert!(matches!(multi(&[]), Err(MetainfoError::NoFiles)));
    assert!(matches!(
        Metainfo::from_bytes(b"d8:announce1:xe"),
        Err(MetainfoError::MissingField("info"))
    ));
    assert!(matches!(
        Metainfo::from_bytes(b"li1ee"),
        Err(MetainfoError::Bencode(BencodeError::NotADict))
    ));
    assert!(matches!(
        Metainfo::from_bytes(b"d4:infoi1ee"),
        Err(MetainfoError::Schema(_))
    ));
}

#[test]
fn an_error_names_its_cause_once_in_the_chain() {
    let err = Metainfo::from_bytes(b"li1ee").unwrap_err();
    assert_eq!(err.to_string(), "not valid bencode");
    assert_eq!(
        crate::error::error_chain(&err),
        "not valid bencode: top-level value is not a dictionary"
    );
}

#[test]
fn optional_fields_are_lenient() {
    let m = Metainfo::from_bytes(&torrent(1, |root, info| {
        set(info, b"private", Value::Int(1));
        set(root, b"url-list", Value::Bytes(b"http://seed/"));
        set(root, b"comment", Value::Int(3)); // wrong type: ignored
        set(root, b"creation date", Value::Bytes(b"yesterday")); // wrong type: ignored
        set(root, b"created by", Value::Bytes(b"me"));
        set(
            root,
            b"announce-list",
            Value::List(vec![
                Value::List(vec![Value::Bytes(b"http://a"), Value::Int(1)]),
                Value::List(vec![]),
                Value::Bytes(b"not a tier"),
                Value::List(vec![Value::Bytes(b"udp://b"), Value::Bytes(b"udp://c")]),
            ]),
        );
    }))
    .unwrap();
    assert!(m.private);
    assert_eq!(m.url_list, vec!["http://seed/"]);
    assert_eq!(m.comment, None);
    assert_eq!(m.creation_date, None);
    assert_eq!(m.created_by.as_deref(), Some("me"));
    assert_eq!(
        m.tracker_tiers(),
        vec![
            vec!["http://a".to_string()],
            vec!["udp://b".into(), "udp://c".into()]
        ]
    );

    let m = Metainfo::from_bytes(&torrent(1, |root, info| {
        set(info, b"private", Value::Int(0));
        root.clear();
        set(
            root,
            b"url-list",
            Value::List(vec![Value::Bytes(b"http://x/"), Value::Bytes(b"")]),
        );
        set(root, b"announce-list", Value::List(vec![]));
    }))
    .unwrap();
    assert!(!m.private);
    assert_eq!(m.url_list, vec!["http://x/"]);
    assert!(m.tracker_tiers().is_empty());
}

#[test]
fn info_hash_is_over_raw_bytes() {
    let bytes = torrent(1, |_, _| {});
    let m = Metainfo::from_bytes(&bytes).unwrap();
    let span = bencode::dict_value_span(&bytes, b"info").unwrap().unwrap();
    assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(span)));
}

#[test]
fn the_largest_piece_length_is_accepted() {
    let m = Metainfo::from_bytes(&torrent(100, |_, info| {
        set(info, b"piece length", Value::Int(i64::from(MAX_PIECE_LEN)));
        set(info, b"pieces", Value::Bytes(&[7; 20]));
    }))
    .unwrap();
    assert_eq!(m.piece_length, MAX_PIECE_LEN);
}

#[test]
fn long_paths_are_quoted_only_in_part() {
    let long: &'static str = "p".repeat(100_000).leak();
    let path: &'static [&'static str] = vec![long].leak();
    let e = multi(&[(path, 1), (path, 1)]).unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, MetainfoError::DuplicatePath { .. }));
    assert!(shown.len() < 200 && shown.contains('…'), "{shown}");
}

#[test]
fn a_fetched_info_dictionary_becomes_the_same_torrent() {
    let bytes = torrent(40_000, |_, _| {});
    let meta = Metainfo::from_bytes(&bytes).unwrap();
    let trackers = vec!["http://a/announce".to_string(), "udp://b:1".to_string()];
    let rebuilt =
        Metainfo::from_bytes(&Metainfo::torrent_bytes(&meta.info_bytes, &trackers)).unwrap();
    assert_eq!(rebuilt.info_hash, meta.info_hash);
    assert_eq!(rebuilt.info_bytes, meta.info_bytes);
    assert_eq!(rebuilt.announce.as_deref(), Some("http://a/announce"));
    assert_eq!(
        rebuilt.tracker_tiers(),
        vec![
            vec!["http://a/announce".to_string()],
            vec!["udp://b:1".to_string()]
        ]
    );
    let bare = Metainfo::from_bytes(&Metainfo::torrent_bytes(&meta.info_bytes, &[])).unwrap();
    assert_eq!(bare.info_hash, meta.info_hash);
    assert!(bare.tracker_tiers().is_empty());
}
