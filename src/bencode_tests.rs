//! Unit and property tests for [`super`] (kept apart so the codec stays short to read).

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[test]
fn decodes_scalars() {
    assert_eq!(decode(b"i42e"), Ok(Value::Int(42)));
    assert_eq!(decode(b"i-42e"), Ok(Value::Int(-42)));
    assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
    assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
    assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
    assert_eq!(decode(b"4:spam"), Ok(Value::Bytes(b"spam")));
    assert_eq!(decode(b"0:"), Ok(Value::Bytes(b"")));
}

#[test]
fn rejects_bad_integers() {
    for bad in [
        &b"i-0e"[..],
        b"i03e",
        b"i-03e",
        b"ie",
        b"i-e",
        b"i1-e",
        b"i+1e",
        b"i 1e",
    ] {
        assert!(
            matches!(decode(bad), Err(BencodeError::InvalidInt { pos: 0 })),
            "{:?} -> {:?}",
            String::from_utf8_lossy(bad),
            decode(bad)
        );
    }
    assert_eq!(
        decode(b"i9223372036854775808e"),
        Err(BencodeError::IntOverflow { pos: 0 })
    );
    assert_eq!(
        decode(b"i-9223372036854775809e"),
        Err(BencodeError::IntOverflow { pos: 0 })
    );
    assert_eq!(decode(b"i12"), Err(BencodeError::UnexpectedEof { pos: 3 }));
}

#[test]
fn rejects_bad_strings() {
    assert_eq!(
        decode(b"5:spam"),
        Err(BencodeError::LengthExceedsInput {
            pos: 0,
            len: 5,
            remaining: 4
        })
    );
    // A huge length prefix is refused without allocating anything.
    assert!(matches!(
        decode(b"18446744073709551615:x"),
        Err(BencodeError::LengthExceedsInput { .. })
    ));
    assert_eq!(
        decode(b"99999999999999999999999:x"),
        Err(BencodeError::InvalidLength { pos: 0 })
    );
    assert_eq!(
        decode(b"04:spam"),
        Err(BencodeError::InvalidLength { pos: 0 })
    );
    assert_eq!(decode(b"4"), Err(BencodeError::UnexpectedEof { pos: 1 }));
    assert_eq!(decode(b"4x"), Err(BencodeError::InvalidLength { pos: 0 }));
}

#[test]
fn containers_keep_order_and_reject_duplicates() {
    let v = decode(b"d1:bi1e1:al2:xyi-1eee").unwrap();
    let d = v.as_dict().unwrap();
    assert_eq!(d[0].0, b"b");
    assert_eq!(d[1].0, b"a");
    assert_eq!(v.get(b"b").and_then(Value::as_int), Some(1));
    let l = v.get(b"a").and_then(Value::as_list).unwrap();
    assert_eq!(l[0].as_str(), Some("xy"));
    assert_eq!(l[1].as_int(), Some(-1));
    assert_eq!(v.get(b"zz"), None);
    assert_eq!(Value::Int(1).get(b"a"), None);

    assert_eq!(
        decode(b"d1:ai1e1:ai2ee"),
        Err(BencodeError::DuplicateKey { key: "a".into() })
    );
    assert_eq!(
        decode(b"d1:bi1e1:ai1e1:bi2ee"),
        Err(BencodeError::DuplicateKey { key: "b".into() })
    );
    assert_eq!(
        decode(b"di1ei2ee"),
        Err(BencodeError::NonStringKey { pos: 1 })
    );
    assert!(matches!(
        decode(b"d1:ae"),
        Err(BencodeError::UnexpectedByte { byte: b'e', .. })
    ));
    assert_eq!(decode(b"l"), Err(BencodeError::UnexpectedEof { pos: 1 }));
    assert_eq!(decode(b""), Err(BencodeError::UnexpectedEof { pos: 0 }));
}

#[test]
fn trailing_bytes_and_prefix() {
    assert_eq!(
        decode(b"i1ei2e"),
        Err(BencodeError::TrailingBytes { pos: 3, count: 3 })
    );
    assert_eq!(decode_prefix(b"i1ei2e"), Ok((Value::Int(1), 3)));
    assert_eq!(decode_prefix(b"le rest"), Ok((Value::List(vec![]), 2)));
}

#[test]
fn depth_limit() {
    let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
    assert!(decode(&ok).is_ok());
    let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
    assert!(matches!(decode(&deep), Err(BencodeError::TooDeep { .. })));
    // Dictionaries count too, and so does the span finder.
    let mut d = b"d1:a".to_vec();
    d.extend(vec![b'l'; MAX_DEPTH]);
    d.extend(vec![b'e'; MAX_DEPTH + 1]);
    assert!(matches!(decode(&d), Err(BencodeError::TooDeep { .. })));
    assert!(matches!(
        dict_value_span(&d, b"a"),
        Err(BencodeError::TooDeep { .. })
    ));
    // A 1 MB run of 'l' must fail cleanly, not overflow the stack.
    assert!(decode(&vec![b'l'; 1 << 20]).is_err());
}

#[test]
fn span_is_raw_bytes() {
    let input = b"d8:announce3:url4:infod6:lengthi5e4:name1:x1:zi0ee5:otheri1ee";
    assert_eq!(
        dict_value_span(input, b"info").unwrap(),
        Some(&b"d6:lengthi5e4:name1:x1:zi0ee"[..])
    );
    assert_eq!(dict_value_span(input, b"missing").unwrap(), None);
    assert_eq!(
        dict_value_span(b"li1ee", b"info"),
        Err(BencodeError::NotADict)
    );
    assert!(matches!(
        dict_value_span(b"d4:infoi1eee", b"info"),
        Err(BencodeError::TrailingBytes { .. })
    ));
    assert!(matches!(
        dict_value_span(b"d4:infoi1e4:infoi2ee", b"info"),
        Err(BencodeError::DuplicateKey { .. })
    ));
}

#[test]
fn encode_sorts_keys() {
    let v = Value::Dict(vec![
        (b"b", Value::Int(-7)),
        (b"a", Value::List(vec![Value::Bytes(b"x"), Value::Int(0)])),
    ]);
    assert_eq!(to_vec(&v), b"d1:al1:xi0ee1:bi-7ee");
    // Sorting is byte-wise, not by length.
    let v = Value::Dict(vec![(b"ab", Value::Int(1)), (b"b", Value::Int(2))]);
    assert_eq!(to_vec(&v), b"d2:abi1e1:bi2ee");
}

/// An owned tree with unique, sorted dictionary keys, to drive the round-trip property.
#[derive(Debug, Clone)]
enum Tree {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Tree>),
    Dict(BTreeMap<Vec<u8>, Tree>),
}

impl Tree {
    fn as_value(&self) -> Value<'_> {
        match self {
            Tree::Int(i) => Value::Int(*i),
            Tree::Bytes(b) => Value::Bytes(b),
            Tree::List(l) => Value::List(l.iter().map(Tree::as_value).collect()),
            Tree::Dict(d) => Value::Dict(d.iter().map(|(k, v)| (&k[..], v.as_value())).collect()),
        }
    }
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Tree::Int),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Tree::Bytes),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Tree::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..8
            )
            .prop_map(Tree::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let _ = decode_prefix(&bytes);
        let _ = dict_value_span(&bytes, b"info");
    }

    #[test]
    fn bencode_shaped_bytes_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(&b"d"[..]), Just(&b"l"[..]), Just(&b"e"[..]), Just(&b"i"[..]),
                Just(&b"-"[..]), Just(&b"0"[..]), Just(&b"1"[..]), Just(&b"9"[..]),
                Just(&b":"[..]), Just(&b"4:info"[..]), Just(&b"i12e"[..]), Just(&b"x"[..]),
            ],
            0..64,
        )
    ) {
        let bytes = parts.concat();
        if let Ok(v) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same thing.
            let again = to_vec(&v);
            let v2 = decode(&again).unwrap();
            prop_assert_eq!(to_vec(&v2), again);
        }
        let _ = dict_value_span(&bytes, b"info");
    }

    #[test]
    fn round_trip(t in tree()) {
        let v = t.as_value();
        let bytes = to_vec(&v);
        prop_assert_eq!(decode(&bytes), Ok(v.clone()));
        let longer = [&bytes[..], b"trailing"].concat();
        let (p, used) = decode_prefix(&longer).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(p, v);
    }

    #[test]
    fn span_matches_encoding(t in tree()) {
        let inner = to_vec(&t.as_value());
        let outer = Value::Dict(vec![(b"a", Value::Int(1)), (b"info", t.as_value())]);
        let bytes = to_vec(&outer);
        prop_assert_eq!(dict_value_span(&bytes, b"info"), Ok(Some(&inner[..])));
    }
}

#[test]
fn a_huge_duplicate_key_is_quoted_only_in_part() {
    // Issue 11: a duplicate 20 MB key was echoed whole in the error.
    let key = vec![b'k'; 1 << 20];
    let mut input = b"d".to_vec();
    for v in [b"i1e", b"i2e"] {
        input.extend_from_slice(format!("{}:", key.len()).as_bytes());
        input.extend_from_slice(&key);
        input.extend_from_slice(v);
    }
    input.push(b'e');
    let err = decode(&input).unwrap_err();
    let shown = err.to_string();
    assert!(shown.len() < 200, "{} bytes", shown.len());
    assert!(shown.contains(&"k".repeat(EXCERPT_MAX)), "{shown}");
    assert!(shown.contains('…'), "{shown}");
    assert_eq!(excerpt(b"short"), "short");
    assert_eq!(excerpt(&[b'x'; EXCERPT_MAX]), "x".repeat(EXCERPT_MAX));
}
