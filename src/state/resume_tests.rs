use proptest::prelude::*;

use super::*;
use crate::bencode::Value;

const IH: InfoHash = InfoHash([7; 20]);

fn stamp(size: u64, secs: i64, nanos: u32) -> FileStamp {
    FileStamp {
        size,
        mtime_secs: secs,
        mtime_nanos: nanos,
    }
}

fn record() -> ResumeRecord {
    let mut pieces = Bitfield::new(11);
    for p in [0, 3, 10] {
        pieces.set(p);
    }
    ResumeRecord {
        info_hash: IH,
        pieces,
        files: vec![
            Some(stamp(10_000, 1_700_000_000, 123_456_789)),
            Some(stamp(0, -5, 0)),
            Some(stamp(u64::MAX >> 1, i64::MIN, 999_999_999)),
        ],
        part: None,
        uploaded: 1 << 40,
        downloaded: 12345,
        seeding_secs: 3600,
    }
}

fn decode(bytes: &[u8]) -> Result<ResumeRecord, ResumeError> {
    ResumeRecord::decode(bytes, &IH, 11, 3)
}

/// `record()`'s encoding with the top-level entry `key` replaced (or removed, for `None`).
fn with(key: &str, value: Option<Value>) -> Vec<u8> {
    let enc = record().encode();
    let root = crate::bencode::decode(&enc).unwrap();
    let mut entries: Vec<(&[u8], Value)> = root
        .as_dict()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != key.as_bytes())
        .cloned()
        .collect();
    if let Some(v) = value {
        entries.push((key.as_bytes(), v));
    }
    crate::bencode::to_vec(&Value::Dict(entries))
}

/// `record()`'s encoding with file 1's entry `key` replaced (or removed).
fn with_file(key: &str, value: Option<Value>) -> Vec<u8> {
    let mut entries: Vec<(&[u8], Value)> = vec![
        (b"size", Value::Int(0)),
        (b"mtime secs", Value::Int(-5)),
        (b"mtime nanos", Value::Int(0)),
    ];
    entries.retain(|(k, _)| *k != key.as_bytes());
    if let Some(v) = value {
        entries.push((key.as_bytes(), v));
    }
    let files = Value::List(vec![
        Value::Dict(vec![
            (b"size", Value::Int(10_000)),
            (b"mtime secs", Value::Int(1_700_000_000)),
            (b"mtime nanos", Value::Int(123_456_789)),
        ]),
        Value::Dict(entries),
        Value::Dict(vec![
            (b"size", Value::Int(i64::MAX)),
            (b"mtime secs", Value::Int(i64::MIN)),
            (b"mtime nanos", Value::Int(999_999_999)),
        ]),
    ]);
    with("files", Some(files))
}

#[test]
fn round_trip() {
    let r = record();
    let enc = r.encode();
    assert!(
        enc.starts_with(b"d10:downloadedi12345e5:filesl"),
        "canonical, keys sorted"
    );
    assert_eq!(decode(&enc).unwrap(), r);
    // And the helpers rebuild the very same bytes.
    assert_eq!(with_file("size", Some(Value::Int(0))), enc);
}

#[test]
fn totals_beyond_bencode_saturate() {
    let mut r = record();
    r.uploaded = u64::MAX;
    let back = decode(&r.encode()).unwrap();
    assert_eq!(back.uploaded, i64::MAX as u64);
}

#[test]
fn the_longest_file_entry_is_as_budgeted() {
    let entry = Value::Dict(vec![
        (b"size", Value::Int(i64::MAX)),
        (b"mtime secs", Value::Int(i64::MIN)),
        (b"mtime nanos", Value::Int(999_999_999)),
    ]);
    assert_eq!(crate::bencode::to_vec(&entry).len(), MAX_FILE_ENTRY);
    // The fixed part of a worst-case record fits its budget too.
    let r = ResumeRecord {
        info_hash: IH,
        pieces: Bitfield::new(0),
        files: vec![],
        part: Some(stamp(i64::MAX as u64, i64::MIN, 999_999_999)),
        uploaded: u64::MAX,
        downloaded: u64::MAX,
        seeding_secs: u64::MAX,
    };
    assert!(r.encode().len() <= MAX_FIXED, "{}", r.encode().len());
    // A record as large as one may be for its torrent is accepted.
    let max = i64::MAX as u64;
    let big = ResumeRecord {
        files: vec![Some(stamp(max, i64::MIN, 999_999_999)); 1000],
        pieces: Bitfield::full(80_001),
        uploaded: max,
        downloaded: max,
        seeding_secs: max,
        ..r
    };
    let enc = big.encode();
    assert!(enc.len() <= max_record_len(80_001, 1000));
    let back = ResumeRecord::decode(&enc, &IH, 80_001, 1000).unwrap();
    assert!(back == big, "round trip of the largest record");
}

#[test]
fn each_corruption_has_its_own_error() {
    use ResumeError as E;
    type Case = (&'static str, Vec<u8>, fn(&ResumeError) -> bool);
    let cases: Vec<Case> = vec![
        ("too large", vec![b'x'; max_record_len(11, 3) + 1], |e| {
            matches!(e, E::TooLarge { .. })
        }),
        ("not bencode", b"d3:abc".to_vec(), |e| {
            matches!(e, E::Bencode(_))
        }),
        ("not a dict", b"li1ee".to_vec(), |e| {
            matches!(e, E::NotADict)
        }),
        (
            "no version",
            with("swarm resume", None),
            |e| matches!(e, E::Missing { key } if key == "swarm resume"),
        ),
        (
            "version 2",
            with("swarm resume", Some(Value::Int(2))),
            |e| matches!(e, E::UnknownVersion { found: 2 }),
        ),
        (
            "version a string",
            with("swarm resume", Some(Value::Bytes(b"1"))),
            |e| matches!(e, E::WrongType { key, .. } if key == "swarm resume"),
        ),
        (
            "other torrent",
            with("info-hash", Some(Value::Bytes(&[8; 20]))),
            |e| matches!(e, E::WrongInfoHash { found, .. } if found.0 == [8; 20]),
        ),
        (
            "short hash",
            with("info-hash", Some(Value::Bytes(&[7; 19]))),
            |e| matches!(e, E::WrongType { key, expected: "20 bytes" } if key == "info-hash"),
        ),
        (
            "piece count",
            with("num pieces", Some(Value::Int(12))),
            |e| {
                matches!(
                    e,
                    E::WrongPieceCount {
                        found: 12,
                        expected: 11
                    }
                )
            },
        ),
        (
            "negative piece count",
            with("num pieces", Some(Value::Int(-11))),
            |e| matches!(e, E::WrongPieceCount { found: -11, .. }),
        ),
        (
            "bitfield length",
            with("pieces", Some(Value::Bytes(&[0; 3]))),
            |e| {
                matches!(
                    e,
                    E::BitfieldLength {
                        got: 3,
                        expected: 2,
                        pieces: 11
                    }
                )
            },
        ),
        (
            "spare bits",
            with("pieces", Some(Value::Bytes(&[0, 0x01]))),
            |e| matches!(e, E::SpareBits { pieces: 11 }),
        ),
        (
            "no pieces",
            with("pieces", None),
            |e| matches!(e, E::Missing { key } if key == "pieces"),
        ),
        (
            "files not a list",
            with("files", Some(Value::Int(3))),
            |e| matches!(e, E::WrongType { key, .. } if key == "files"),
        ),
        (
            "file count",
            with("files", Some(Value::List(vec![]))),
            |e| {
                matches!(
                    e,
                    E::WrongFileCount {
                        found: 0,
                        expected: 3
                    }
                )
            },
        ),
        (
            "file size missing",
            with_file("size", None),
            |e| matches!(e, E::Missing { key } if key == "files[1].size"),
        ),
        (
            "file size negative",
            with_file("size", Some(Value::Int(-1))),
            |e| matches!(e, E::Negative { key, value: -1 } if key == "files[1].size"),
        ),
        (
            "file mtime a string",
            with_file("mtime secs", Some(Value::Bytes(b"now"))),
            |e| matches!(e, E::WrongType { key, .. } if key == "files[1].mtime secs"),
        ),
        (
            "nanos too big",
            with_file("mtime nanos", Some(Value::Int(1_000_000_000))),
            |e| matches!(e, E::OutOfRange { key, .. } if key == "files[1].mtime nanos"),
        ),
        (
            "nanos negative",
            with_file("mtime nanos", Some(Value::Int(-1))),
            |e| matches!(e, E::Negative { key, .. } if key == "files[1].mtime nanos"),
        ),
        (
            "file entry not a dict",
            with(
                "files",
                Some(Value::List(vec![
                    Value::Int(1),
                    Value::Int(2),
                    Value::Int(3),
                ])),
            ),
            |e| matches!(e, E::WrongType { key, .. } if key == "files[0]"),
        ),
        (
            "uploaded negative",
            with("uploaded", Some(Value::Int(-7))),
            |e| matches!(e, E::Negative { key, value: -7 } if key == "uploaded"),
        ),
        (
            "no downloaded",
            with("downloaded", None),
            |e| matches!(e, E::Missing { key } if key == "downloaded"),
        ),
        (
            "seeding secs negative",
            with("seeding secs", Some(Value::Int(i64::MIN))),
            |e| matches!(e, E::Negative { key, .. } if key == "seeding secs"),
        ),
    ];
    for (name, bytes, is) in cases {
        let err = decode(&bytes).expect_err(name);
        assert!(is(&err), "{name}: got {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn unknown_keys_are_ignored() {
    let bytes = with("future key", Some(Value::Bytes(b"x")));
    assert_eq!(decode(&bytes).unwrap(), record());
}

#[test]
fn judge_trusts_only_exact_matches() {
    let r = record();
    let same: Vec<Option<FileStamp>> = r.files.clone();
    assert_eq!(judge(&r, &same, None), Ok(()));

    let mut missing = same.clone();
    missing[1] = None;
    assert_eq!(
        judge(&r, &missing, None),
        Err(Mismatch::Missing { file: 1 })
    );
    assert_eq!(
        judge(&r, &missing, None).unwrap_err().to_string(),
        "file 1 is missing"
    );

    let mut bigger = same.clone();
    bigger[0] = Some(stamp(10_001, 1_700_000_000, 123_456_789));
    let err = judge(&r, &bigger, None).unwrap_err();
    assert_eq!(
        err,
        Mismatch::Size {
            file: 0,
            size: 10_001,
            recorded: 10_000
        }
    );
    assert_eq!(err.to_string(), "file 0 is 10001 bytes, recorded 10000");

    let mut touched = same.clone();
    touched[0] = Some(stamp(10_000, 1_700_000_000, 123_456_790));
    let err = judge(&r, &touched, None).unwrap_err();
    assert!(matches!(err, Mismatch::Modified { file: 0, .. }));
    assert_eq!(
        err.to_string(),
        "file 0 was modified at 1700000000.123456790, recorded 1700000000.123456789"
    );

    assert_eq!(
        judge(&r, &same[..2], None),
        Err(Mismatch::FileCount {
            recorded: 3,
            on_disk: 2
        })
    );
}

fn arb_record() -> impl Strategy<Value = ResumeRecord> {
    (0u32..200, 0usize..6).prop_flat_map(|(n, files)| {
        (
            proptest::collection::vec(any::<bool>(), n as usize),
            proptest::collection::vec((any::<u64>(), any::<i64>(), 0u32..1_000_000_000), files),
            any::<[u64; 3]>(),
        )
            .prop_map(move |(bits, files, [up, down, secs])| {
                let mut pieces = Bitfield::new(n);
                for (i, b) in bits.into_iter().enumerate() {
                    if b {
                        pieces.set(i as u32);
                    }
                }
                let cap = |v: u64| v >> 1; // bencode integers are i64
                ResumeRecord {
                    info_hash: IH,
                    pieces,
                    files: files
                        .into_iter()
                        .map(|(size, s, ns)| Some(stamp(cap(size), s, ns)))
                        .collect(),
                    part: (secs % 2 == 0).then(|| stamp(cap(down), 7, 8)),
                    uploaded: cap(up),
                    downloaded: cap(down),
                    seeding_secs: cap(secs),
                }
            })
    })
}

proptest! {
    #[test]
    fn encode_decode_round_trips(r in arb_record()) {
        let enc = r.encode();
        let back = ResumeRecord::decode(&enc, &IH, r.pieces.len(), r.files.len()).unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        n in 0u32..64,
        files in 0usize..4,
    ) {
        let _ = ResumeRecord::decode(&bytes, &IH, n, files);
    }

    #[test]
    fn mutated_records_never_panic(
        r in arb_record(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut enc = r.encode();
        for (i, b) in flips {
            let i = i.index(enc.len());
            enc[i] = b;
        }
        let _ = ResumeRecord::decode(&enc, &IH, r.pieces.len(), r.files.len());
    }
}

/// Files are created by their first write, so a record may list files not created yet: it
/// is trusted only while they still do not exist.
#[test]
fn files_not_created_yet_round_trip_and_must_stay_absent() {
    let mut r = record();
    r.files[1] = None;
    let back = decode(&r.encode()).unwrap();
    assert_eq!(back, r);
    let on_disk = r.files.clone();
    assert_eq!(judge(&r, &on_disk, None), Ok(()));
    let mut appeared = on_disk.clone();
    appeared[1] = Some(stamp(0, 1, 0));
    assert_eq!(
        judge(&r, &appeared, None),
        Err(Mismatch::Appeared { file: 1 })
    );
}

#[test]
fn the_part_file_is_recorded_and_judged_like_a_file() {
    let mut r = record();
    let part = Some(stamp(4096, 1_700_000_001, 5));
    r.part = part;
    let back = decode(&r.encode()).unwrap();
    assert_eq!(back, r);
    assert_eq!(judge(&r, &r.files, part), Ok(()));
    let err = judge(&r, &r.files, None).unwrap_err();
    assert_eq!(err.to_string(), "the part file is missing");
    let later = Some(stamp(4096, 1_700_000_002, 5));
    let err = judge(&r, &r.files, later).unwrap_err();
    assert_eq!(err.to_string(), "the part file was modified since");
    // A record without one (or from before part files) is judged against none.
    assert_eq!(
        judge(&record(), &r.files, part).unwrap_err().to_string(),
        "the part file was created since"
    );
    assert_eq!(decode(&record().encode()).unwrap().part, None);
    // A malformed part entry is refused like a malformed file entry.
    let bad = with("part", Some(Value::Int(3)));
    assert!(matches!(
        decode(&bad),
        Err(ResumeError::WrongType { key, .. }) if key == "part"
    ));
}
