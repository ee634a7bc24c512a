//! Seeds for the tracker, tracker-server and daemon targets.

use std::fs;

use swarm::bencode::{self, Value};
use swarm::daemon::saved::{Saved, SavedTorrent};
use swarm::tracker::udp;
use swarm::tracker::{AnnounceParams, Event};
use swarm::types::{InfoHash, PeerId};

use super::{put, with, TXID};

fn ben(v: &Value) -> Vec<u8> {
    bencode::to_vec(v)
}

pub(crate) fn tracker_seeds() {
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

pub(crate) fn server_seeds() {
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

pub(crate) fn daemon_seeds() {
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
