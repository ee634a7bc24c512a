//! KRPC codec tests: BEP 5's own examples, round trips, every refusal, and arbitrary
//! bytes (property test).

use proptest::prelude::*;

use super::*;

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

#[test]
fn bep5_examples_decode() {
    let ping = Msg::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
    assert_eq!(ping.tid, b"aa");
    assert_eq!(
        ping.body,
        Body::Query {
            id: id(b"abcdefghij0123456789"),
            query: Query::Ping
        }
    );
    let pong = Msg::decode(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re").unwrap();
    assert_eq!(
        pong.body,
        Body::Response {
            id: id(b"mnopqrstuvwxyz123456"),
            response: Response::default()
        }
    );
    let err = Msg::decode(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee").unwrap();
    assert_eq!(
        err.body,
        Body::Error {
            code: 201,
            message: "A Generic Error Ocurred".into()
        }
    );
    let find = Msg::decode(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    )
    .unwrap();
    assert_eq!(
        find.body,
        Body::Query {
            id: id(b"abcdefghij0123456789"),
            query: Query::FindNode {
                target: id(b"mnopqrstuvwxyz123456"),
                want: Want::default()
            }
        }
    );
    let values = Msg::decode(
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
    )
    .unwrap();
    let Body::Response { response, .. } = values.body else {
        panic!("not a response");
    };
    assert_eq!(response.token.as_deref(), Some(&b"aoeusnth"[..]));
    assert_eq!(
        response.values,
        vec![
            "97.120.106.101:11893".parse().unwrap(),
            "105.100.104.116:28269".parse().unwrap()
        ]
    );
    let announce = Msg::decode(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    )
    .unwrap();
    assert_eq!(
        announce.body,
        Body::Query {
            id: id(b"abcdefghij0123456789"),
            query: Query::AnnouncePeer {
                info_hash: id(b"mnopqrstuvwxyz123456"),
                port: 6881,
                implied_port: true,
                token: b"aoeusnth".to_vec()
            }
        }
    );
}

#[test]
fn everything_round_trips() {
    let me = NodeId([7; 20]);
    let other = NodeId([9; 20]);
    let want = Want { v4: true, v6: true };
    let msgs = vec![
        Body::Query {
            id: me,
            query: Query::Ping,
        },
        Body::Query {
            id: me,
            query: Query::FindNode {
                target: other,
                want,
            },
        },
        Body::Query {
            id: me,
            query: Query::GetPeers {
                info_hash: other,
                want: Want::default(),
            },
        },
        Body::Query {
            id: me,
            query: Query::AnnouncePeer {
                info_hash: other,
                port: 51413,
                implied_port: false,
                token: vec![1, 2, 3, 4],
            },
        },
        Body::Query {
            id: me,
            query: Query::Other {
                method: "vote".into(),
            },
        },
        Body::Response {
            id: other,
            response: Response {
                nodes: vec![(NodeId([1; 20]), "10.0.0.1:6881".parse().unwrap())],
                nodes6: vec![(NodeId([2; 20]), "[fe80::1]:6881".parse().unwrap())],
                values: vec![
                    "192.0.2.1:1".parse().unwrap(),
                    "[2001:db8::1]:2".parse().unwrap(),
                ],
                token: Some(b"tok".to_vec()),
            },
        },
        Body::Error {
            code: code::METHOD_UNKNOWN,
            message: "Method Unknown".into(),
        },
    ];
    for body in msgs {
        let m = Msg {
            tid: vec![0xab, 0xcd],
            body,
            ip: Some("203.0.113.5:6881".parse().unwrap()),
            read_only: true,
        };
        let bytes = m.encode();
        assert_eq!(
            Msg::decode(&bytes).unwrap(),
            m,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn malformed_messages_are_refused_by_name() {
    let cases: Vec<(&[u8], KrpcError)> = vec![
        (b"le", KrpcError::NotADict),
        (b"d1:t2:aa1:y1:qe", KrpcError::Missing("method")),
        (b"d1:q4:ping1:t2:aa1:y1:qe", KrpcError::Missing("arguments")),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", KrpcError::Bad("id")),
        (b"d1:ade1:q4:ping1:t2:aa1:y1:qe", KrpcError::Missing("id")),
        (b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:ze", KrpcError::Bad("message type")),
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe",
            KrpcError::Bad("transaction id"),
        ),
        (
            b"d1:rd2:id20:abcdefghij01234567895:nodes5:abcdee1:t2:aa1:y1:re",
            KrpcError::Bad("nodes"),
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
            KrpcError::Bad("port"),
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti1ee1:q13:announce_peer1:t2:aa1:y1:qe",
            KrpcError::Missing("token"),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            Msg::decode(bytes),
            Err(want.clone()),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(matches!(
        Msg::decode(b"d1:t2:aa"),
        Err(KrpcError::Bencode(_))
    ));
    assert!(matches!(
        Msg::decode(&vec![b'x'; MAX_PACKET + 1]),
        Err(KrpcError::TooLarge(_))
    ));
}

#[test]
fn long_lists_are_capped_and_odd_values_skipped() {
    let mut nodes = Vec::new();
    for i in 0..40u8 {
        nodes.extend_from_slice(&[i; 20]);
        nodes.extend_from_slice(&[10, 0, 0, i, 0x1a, 0xe1]);
    }
    let mut values: Vec<Vec<u8>> = (0..150u8).map(|i| vec![10, 0, 1, i, 0, 1]).collect();
    values.push(vec![1, 2, 3]);
    let mut r: Vec<(&[u8], Value<'_>)> = vec![
        (b"id", Value::Bytes(&[3; 20])),
        (b"nodes", Value::Bytes(&nodes)),
    ];
    r.push((
        b"values",
        Value::List(values.iter().map(|v| Value::Bytes(v)).collect()),
    ));
    let bytes = bencode::to_vec(&Value::Dict(vec![
        (b"r", Value::Dict(r)),
        (b"t", Value::Bytes(b"aa")),
        (b"y", Value::Bytes(b"r")),
    ]));
    let m = Msg::decode(&bytes).unwrap();
    let Body::Response { response, .. } = m.body else {
        panic!("not a response");
    };
    assert_eq!(response.nodes.len(), MAX_NODES);
    assert_eq!(response.values.len(), MAX_VALUES);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Msg::decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..200, byte in any::<u8>()) {
        let mut m = b"d1:rd2:id20:abcdefghij01234567895:nodes26:abcdefghij0123456789aaaaaa5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re".to_vec();
        let pos = pos % m.len();
        m[pos] = byte;
        let _ = Msg::decode(&m);
    }
}
