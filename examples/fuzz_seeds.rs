//! Writes the seed corpora under `fuzz/corpus/NAME/` from real files and the code's own
//! encoders: `cargo run --example fuzz_seeds` from the repository root. Existing files of
//! the same name are overwritten; files the fuzzer added are left alone. Each seed starts
//! with the selector bytes its target reads (see `src/fuzz_targets.rs`).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use swarm::bencode::{self, Value};
use swarm::daemon::saved::{Saved, SavedTorrent};
use swarm::dht::krpc::{Body, Msg, Query, Response, Want};
use swarm::dht::NodeId;
use swarm::fuzz_targets::RESUME_HASH;
use swarm::state::resume::{FileStamp, ResumeRecord};
use swarm::tracker::udp;
use swarm::tracker::{AnnounceParams, Event};
use swarm::types::{Bitfield, BlockRef, InfoHash, PeerId};
use swarm::wire::{self, ExtHandshake, Handshake, Message, MetadataMsg, PexFlags, PexMsg};

const TXID: u32 = 0x1234_5678;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed written");
}

fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

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

fn ben(v: &Value) -> Vec<u8> {
    bencode::to_vec(v)
}

fn tracker_seeds() {
    for entry in fs::read_dir("fixtures/tracker").expect("tracker fixtures") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("http_") && !name.contains("huge") {
            put(
                "tracker_http",
                &name,
                &with(&[0], &fs::read(&path).expect("fixture")),
            );
        }
    }
    let file = Value::Dict(vec![
        (b"complete", Value::Int(5)),
        (b"downloaded", Value::Int(50)),
        (b"incomplete", Value::Int(10)),
    ]);
    let hash = [0x22u8; 20];
    let scrape = Value::Dict(vec![(b"files", Value::Dict(vec![(&hash[..], file)]))]);
    put("tracker_http", "scrape", &with(&[1], &ben(&scrape)));
    let peers6 = Value::Dict(vec![
        (b"interval", Value::Int(1800)),
        (b"min interval", Value::Int(60)),
        (b"peers", Value::Bytes(&[127, 0, 0, 1, 0x1a, 0xe1])),
        (
            b"peers6",
            Value::Bytes(&[
                0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1,
            ]),
        ),
        (b"tracker id", Value::Bytes(b"abc")),
        (b"warning message", Value::Bytes(b"slow down")),
    ]);
    put("tracker_http", "announce-v4-v6", &with(&[0], &ben(&peers6)));

    let head = |action: u32| [action.to_be_bytes(), TXID.to_be_bytes()].concat();
    put(
        "tracker_udp",
        "connect",
        &[
            &[0, 0][..],
            &head(0),
            &0x0123_4567_89ab_cdefu64.to_be_bytes(),
        ]
        .concat(),
    );
    let counts = [1800u32, 3, 4]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect::<Vec<_>>();
    let v4 = [127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0xc8, 0xd5];
    put(
        "tracker_udp",
        "announce-v4",
        &[&[1, 0][..], &head(1), &counts, &v4].concat(),
    );
    let v6 = [[0x20, 1, 0xd, 0xb8].as_slice(), &[0; 11], &[1, 0x1a, 0xe1]].concat();
    put(
        "tracker_udp",
        "announce-v6",
        &[&[2, 0][..], &head(1), &counts, &v6].concat(),
    );
    let stats = [5u32, 50, 10, 1, 2, 3]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect::<Vec<_>>();
    put(
        "tracker_udp",
        "scrape",
        &[&[3, 2][..], &head(2), &stats].concat(),
    );
    put(
        "tracker_udp",
        "error",
        &[&[1, 0][..], &head(3), b"torrent not registered"].concat(),
    );
}

fn server_seeds() {
    let params = AnnounceParams {
        info_hash: InfoHash([0xAB; 20]),
        peer_id: PeerId(*b"-SW0001-abcdefghijkl"),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event: Event::Started,
        numwant: 50,
        key: 0xdead_beef,
    };
    let url = swarm::tracker::http::announce_url("http://127.0.0.1:6969/announce", &params, None)
        .unwrap();
    let target = url.trim_start_matches("http://127.0.0.1:6969");
    let get =
        |t: &str| format!("GET {t} HTTP/1.1\r\nHost: 127.0.0.1:6969\r\nUser-Agent: swarm\r\n\r\n");
    put("tracker_server_http", "announce", get(target).as_bytes());
    put(
        "tracker_server_http",
        "announce-dict",
        get(&format!("{target}&compact=0&no_peer_id=1")).as_bytes(),
    );
    let scrape =
        swarm::tracker::http::scrape_request_url("http://127.0.0.1:6969/scrape", &params.info_hash)
            .unwrap();
    put(
        "tracker_server_http",
        "scrape",
        get(&format!(
            "{}&info_hash=%22%22%22%22%22%22%22%22%22%22%22%22%22%22%22%22%22%22%22%22",
            scrape.trim_start_matches("http://127.0.0.1:6969")
        ))
        .as_bytes(),
    );

    // Datagrams, each behind a length byte; connection id 0 stands for the valid one.
    let frame = |p: &[u8]| with(&[p.len() as u8], p);
    let connect = udp::connect_request(TXID);
    let announce = udp::announce_request(0, TXID, &params);
    let other = AnnounceParams {
        peer_id: PeerId([0x70; 20]),
        port: 51413,
        left: 0,
        event: Event::None,
        ..params.clone()
    };
    let announce2 = udp::announce_request(0, TXID, &other);
    let scrape = udp::scrape_request(0, TXID, &[params.info_hash, InfoHash([1; 20])]);
    let stream = [
        frame(&connect),
        frame(&announce),
        frame(&announce2),
        frame(&scrape),
    ]
    .concat();
    put("tracker_server_udp", "session", &stream);
    put("tracker_server_udp", "connect", &frame(&connect));
}

fn daemon_seeds() {
    // Selector: bit 7 POST, the rest the endpoint's index in the target's list.
    let hash = "33".repeat(20);
    let req = |sel: u8, ctype: &str, query: &str, body: &[u8]| {
        [
            &[sel][..],
            ctype.as_bytes(),
            b"\n",
            query.as_bytes(),
            b"\n",
            body,
        ]
        .concat()
    };
    let form = "application/x-www-form-urlencoded";
    put(
        "daemon_params",
        "info",
        &req(
            6,
            "",
            &format!("filter=all&category=&sort=name&reverse=true&limit=10&offset=0&hashes={hash}"),
            b"",
        ),
    );
    put("daemon_params", "maindata", &req(11, "", "rid=0", b""));
    put(
        "daemon_params",
        "files",
        &req(8, "", &format!("hash={hash}"), b""),
    );
    put(
        "daemon_params",
        "fileprio",
        &req(
            0x80 | 22,
            form,
            "",
            format!("hash={hash}&id=0|1&priority=7").as_bytes(),
        ),
    );
    put(
        "daemon_params",
        "setprefs",
        &req(
            0x80 | 4,
            form,
            "",
            br#"json={"dl_limit":1024,"up_limit":0,"save_path":"/tmp/x"}"#,
        ),
    );
    put(
        "daemon_params",
        "delete",
        &req(
            0x80 | 16,
            form,
            "",
            format!("hashes={hash}|all&deleteFiles=false").as_bytes(),
        ),
    );
    put(
        "daemon_params",
        "limit",
        &req(
            0x80 | 25,
            form,
            "",
            format!("hashes={hash}&limit=-1").as_bytes(),
        ),
    );
    let torrent = fs::read("fixtures/single.torrent").expect("fixture");
    let body = [
        &b"--XyZ\r\nContent-Disposition: form-data; name=\"urls\"\r\n\r\nmagnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\r\n"[..],
        b"--XyZ\r\nContent-Disposition: form-data; name=\"savepath\"\r\n\r\n/tmp/dl\r\n",
        b"--XyZ\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"a.torrent\"\r\nContent-Type: application/x-bittorrent\r\n\r\n",
        &torrent,
        b"\r\n--XyZ--\r\n",
    ]
    .concat();
    put(
        "daemon_params",
        "add-multipart",
        &req(0x80 | 15, "multipart/form-data; boundary=XyZ", "", &body),
    );

    let saved = Saved {
        version: 1,
        save_path: Some("/srv/dl".into()),
        dl_limit: Some(1 << 20),
        up_limit: None,
        categories: [
            ("films".to_string(), Some("/srv/films".into())),
            ("misc".to_string(), None),
        ]
        .into(),
        torrents: vec![
            SavedTorrent {
                info_hash: hash.clone(),
                magnet: Some("magnet:?xt=urn:btih:3333333333333333333333333333333333333333".into()),
                save_path: "/srv/dl".into(),
                category: "films".into(),
                paused: true,
                added_on: 1_700_000_000,
                completion_on: Some(1_700_000_100),
                priorities: Some(vec![0, 1, 6]),
                up_limit: Some(1000),
                down_limit: None,
                sequential: true,
                first_last: false,
            },
            SavedTorrent {
                info_hash: "44".repeat(20),
                save_path: "/srv/dl".into(),
                ..SavedTorrent::default()
            },
        ],
    };
    let dir = std::env::temp_dir().join(format!("swarm-fuzz-seeds-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    swarm::daemon::saved::store(&dir, &saved).expect("daemon.json written");
    put(
        "saved",
        "daemon.json",
        &fs::read(dir.join("daemon.json")).expect("written"),
    );
    let _ = fs::remove_dir_all(&dir);
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
