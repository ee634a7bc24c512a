//! Writes the seed corpora under `fuzz/corpus/NAME/` from real files and the code's own
//! encoders: `cargo run --example fuzz_seeds` from the repository root. Existing files of
//! the same name are overwritten; files the fuzzer added are left alone. Each seed starts
//! with the selector bytes its target reads (see `src/fuzz_targets.rs`).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use swarm::dht::krpc::{Body, Msg, Query, Response, Want};
use swarm::dht::NodeId;
use swarm::fuzz_targets::RESUME_HASH;
use swarm::state::resume::{FileStamp, ResumeRecord};
use swarm::types::{Bitfield, BlockRef, InfoHash, PeerId};
use swarm::wire::{self, ExtHandshake, Handshake, Message, MetadataMsg, PexFlags, PexMsg};

pub(crate) const TXID: u32 = 0x1234_5678;

pub(crate) fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed written");
}

pub(crate) fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

mod services;

use services::{daemon_seeds, server_seeds, tracker_seeds};

fn main() {
    torrents();
    magnets();
    wire_seeds();
    extension_seeds();
    mse_seeds();
    krpc_seeds();
    tracker_seeds();
    server_seeds();
    daemon_seeds();
    resume_seeds();
}

fn torrents() {
    for entry in fs::read_dir("fixtures").expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "torrent") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&path).expect("fixture");
            put("metainfo", &name, &bytes);
            put("bencode", &name, &bytes);
        }
    }
    for (name, b) in [
        ("int", &b"i-42e"[..]),
        ("list", b"l4:spami0ee"),
        ("empty", b"de"),
    ] {
        put("bencode", name, b);
    }
}

fn magnets() {
    let hex = "0123456789abcdef0123456789abcdef01234567";
    let links = [
        format!("magnet:?xt=urn:btih:{hex}"),
        format!("magnet:?xt=urn:btih:{hex}&dn=Big%20Buck%20%26&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&tr=udp://t.example:80"),
        "magnet:?xt=urn:btih:BCW2LJ5GDA5K4HQJ3AY56Z2I2VTASWQQ&x.pe=127.0.0.1:6881&x.pe=[::1]:6881&x.pe=host.example:51413".to_string(),
        format!("magnet:?dn=x&xt=urn:btih:{hex}&xt=urn:btmh:1220abcd"),
    ];
    for (i, l) in links.iter().enumerate() {
        put("magnet", &format!("link{i}"), l.as_bytes());
    }
}

fn frames(msgs: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        wire::encode(m, &mut out);
    }
    out.to_vec()
}

fn wire_seeds() {
    let block = BlockRef {
        piece: 3,
        offset: 16384,
        len: 16384,
    };
    let mut bits = Bitfield::new(20);
    bits.set(0);
    bits.set(19);
    let msgs = vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(7),
        Message::Bitfield(bits),
        Message::Request(block),
        Message::Piece {
            piece: 3,
            offset: 0,
            data: Bytes::from_static(b"0123456789abcdef"),
        },
        Message::Cancel(block),
        Message::Port(6881),
        Message::Suggest(1),
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(block),
        Message::AllowedFast(2),
        Message::Extended {
            id: 0,
            payload: Bytes::from(
                ExtHandshake::ours(Some(6881), 500, Some(300), None, true).encode(),
            ),
        },
    ];
    // 20 pieces, and unsized (before the metadata is known).
    put("wire", "all-sized", &with(&[0, 0, 20], &frames(&msgs)));
    let no_count: Vec<Message> = msgs
        .iter()
        .filter(|m| !matches!(m, Message::Bitfield(_)))
        .cloned()
        .collect();
    put("wire", "all-unsized", &with(&[2, 0, 0], &frames(&no_count)));
    let hs = Handshake::new(InfoHash([0xAB; 20]), PeerId(*b"-SW0001-abcdefghijkl")).with_dht(true);
    put("wire", "handshake", &with(&[1, 0, 0], &hs.to_bytes()));
}

fn extension_seeds() {
    let ours = ExtHandshake::ours(
        Some(6881),
        500,
        Some(31_235),
        Some("10.0.0.1".parse().unwrap()),
        true,
    );
    put("extension", "handshake", &with(&[0], &ours.encode()));
    let size = 40_000u32.to_be_bytes();
    let known = [3, size[1], size[2], size[3]];
    for (name, m) in [
        ("request", MetadataMsg::Request { piece: 1 }),
        ("reject", MetadataMsg::Reject { piece: 2 }),
        (
            "data",
            MetadataMsg::Data {
                piece: 2,
                total_size: 40_000,
                data: Bytes::from(vec![b'x'; 40_000 - 32_768]),
            },
        ),
    ] {
        put(
            "extension",
            &format!("metadata-{name}"),
            &with(&known, &m.encode()),
        );
    }
    let v4 = |a, p| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, a), p);
    let pex = PexMsg {
        added: vec![
            (v4(1, 6881), PexFlags::SEED),
            (v4(2, 51413), PexFlags(0x11)),
        ],
        dropped: vec![v4(3, 6881)],
        added6: vec![(
            SocketAddrV6::new("2001:db8::1".parse().unwrap(), 6881, 0, 0),
            PexFlags::UTP,
        )],
        dropped6: vec![SocketAddrV6::new(
            "2001:db8::2".parse().unwrap(),
            6882,
            0,
            0,
        )],
    };
    put("extension", "pex", &with(&[2], &pex.encode()));
}

fn mse_seeds() {
    // Raw bytes to each side, and a genuine handshake to each side (XOR with zeros).
    put("mse", "responder-raw", &with(&[0, 7], &[0x42; 96]));
    put("mse", "initiator-raw", &with(&[1, 7], &[0x42; 96]));
    put("mse", "responder-genuine", &[2, 9]);
    put("mse", "initiator-genuine", &[3, 9]);
    let mut flip = vec![0u8; 96 + 20 + 20 + 8 + 4];
    flip.push(0x01); // one bit of the encrypted crypto_provide
    put("mse", "responder-flip", &with(&[2, 200], &flip));
}

fn krpc_seeds() {
    let id = NodeId([0x61; 20]);
    let msgs = [
        (
            "ping",
            Body::Query {
                id,
                query: Query::Ping,
            },
        ),
        (
            "find_node",
            Body::Query {
                id,
                query: Query::FindNode {
                    target: NodeId([0x62; 20]),
                    want: Want { v4: true, v6: true },
                },
            },
        ),
        (
            "get_peers",
            Body::Query {
                id,
                query: Query::GetPeers {
                    info_hash: NodeId([0x63; 20]),
                    want: Want::default(),
                },
            },
        ),
        (
            "announce_peer",
            Body::Query {
                id,
                query: Query::AnnouncePeer {
                    info_hash: NodeId([0x63; 20]),
                    port: 6881,
                    implied_port: true,
                    token: b"aoeusnth".to_vec(),
                },
            },
        ),
        (
            "response",
            Body::Response {
                id,
                response: Response {
                    nodes: vec![(
                        NodeId([0x64; 20]),
                        SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 6881),
                    )],
                    nodes6: vec![(NodeId([0x65; 20]), "[2001:db8::1]:6881".parse().unwrap())],
                    values: vec![
                        "5.6.7.8:51413".parse().unwrap(),
                        "[2001:db8::9]:1".parse().unwrap(),
                    ],
                    token: Some(b"tok".to_vec()),
                },
            },
        ),
        (
            "error",
            Body::Error {
                code: 201,
                message: "A Generic Error Ocurred".into(),
            },
        ),
    ];
    for (name, body) in msgs {
        let m = Msg {
            tid: b"aa".to_vec(),
            body,
            ip: Some("9.8.7.6:5".parse::<SocketAddr>().unwrap()),
            read_only: name == "ping",
        };
        put("krpc", name, &m.encode());
    }
}

fn resume_seeds() {
    let mut pieces = Bitfield::new(10);
    for i in [0, 3, 9] {
        pieces.set(i);
    }
    let stamp = |size, secs| FileStamp {
        size,
        mtime_secs: secs,
        mtime_nanos: 123_456_789,
    };
    let r = ResumeRecord {
        info_hash: RESUME_HASH,
        pieces,
        files: vec![Some(stamp(1000, 1_700_000_000)), None, Some(stamp(5, -3))],
        part: Some(stamp(32768, 1_700_000_001)),
        uploaded: 12345,
        downloaded: 67890,
        seeding_secs: 3600,
    };
    // 10 pieces, 3 files.
    put("resume", "record", &with(&[0, 10, 3], &r.encode()));
    let empty = ResumeRecord {
        pieces: Bitfield::new(1),
        files: vec![None],
        part: None,
        ..r
    };
    put("resume", "empty", &with(&[0, 1, 1], &empty.encode()));
}
