//! The read endpoints and `sync/maindata` against a hand-built View; key sets pinned to
//! what a real `qbittorrent-nox` 4.5.2 sent (captured with curl on loopback).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::torrents::TORRENT_KEYS;
use super::*;
use crate::daemon::api::{ApiRequest, Method, Step, SyncState};
use crate::daemon::model::{FileView, Prefs, TorrentView, View};
use crate::selection::{Priority, Wanted};
use crate::snapshot::{Health, Phase, Snapshot, Stats, TrackerOutcome, TrackerState};
use crate::types::{Bitfield, InfoHash};

pub const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
pub const HASH_C: &str = "cccccccccccccccccccccccccccccccccccccccc";

/// `torrents/info` keys of qbittorrent-nox 4.5.2, observed.
pub const OBSERVED_INFO_KEYS: &str = "added_on amount_left auto_tmm availability category completed completion_on content_path dl_limit dlspeed download_path downloaded downloaded_session eta f_l_piece_prio force_start hash infohash_v1 infohash_v2 last_activity magnet_uri max_ratio max_seeding_time name num_complete num_incomplete num_leechs num_seeds priority progress ratio ratio_limit save_path seeding_time seeding_time_limit seen_complete seq_dl size state super_seeding tags time_active total_size tracker trackers_count up_limit uploaded uploaded_session upspeed";
/// `torrents/properties` keys of qbittorrent-nox 4.5.2, observed.
const OBSERVED_PROPERTIES_KEYS: &str = "addition_date comment completion_date created_by creation_date dl_limit dl_speed dl_speed_avg download_path eta hash infohash_v1 infohash_v2 is_private last_seen name nb_connections nb_connections_limit peers peers_total piece_size pieces_have pieces_num reannounce save_path seeding_time seeds seeds_total share_ratio time_elapsed total_downloaded total_downloaded_session total_size total_uploaded total_uploaded_session total_wasted up_limit up_speed up_speed_avg";
const OBSERVED_FILE_KEYS: &str =
    "availability index is_seed name piece_range priority progress size";
const OBSERVED_TRACKER_KEYS: &str =
    "msg num_downloaded num_leeches num_peers num_seeds status tier url";
const OBSERVED_TRANSFER_KEYS: &str = "connection_status dht_nodes dl_info_data dl_info_speed dl_rate_limit up_info_data up_info_speed up_rate_limit";
pub const OBSERVED_SERVER_STATE_KEYS: &str = "alltime_dl alltime_ul average_time_queue connection_status dht_nodes dl_info_data dl_info_speed dl_rate_limit free_space_on_disk global_ratio queued_io_jobs queueing read_cache_hits read_cache_overload refresh_interval total_buffers_size total_peer_connections total_queued_size total_wasted_session up_info_data up_info_speed up_rate_limit use_alt_speed_limits write_cache_overload";
pub const OBSERVED_MAINDATA_KEYS: &str =
    "categories full_update rid server_state tags torrents trackers";
const OBSERVED_BUILD_INFO_KEYS: &str = "bitness boost libtorrent openssl qt zlib";

pub fn hash(s: &str) -> InfoHash {
    params::parse_hash(s).unwrap()
}

fn full_bits(n: u32) -> Bitfield {
    Bitfield::full(n)
}

/// A: two files (70000 + 30000 bytes, 16 KiB pieces), second skipped, downloading at
/// 1000 B/s, category tv, two tracker tiers. B: one file, seeding, none uploading,
/// paused=false. C: a magnet fetching metadata.
pub fn view() -> View {
    let mut have_a = Bitfield::new(7);
    for p in 0..3 {
        have_a.set(p);
    }
    let a = TorrentView {
        info_hash: hash(HASH_A),
        name: "multi".into(),
        snapshot: Snapshot {
            name: "multi".into(),
            phase: Phase::Downloading,
            total_bytes: 100_000,
            pieces_total: 7,
            piece_len: 16384,
            have: have_a,
            selection: Some(Wanted {
                files: 1,
                of_files: 2,
                bytes: 70_000,
            }),
            stats: Stats {
                down_rate: 1000.0,
                downloaded: 49_152,
                verified_bytes: 49_152,
                wanted_bytes: 81_920,
                wanted_verified_bytes: 49_152,
                peers_connected: 2,
                ..Stats::default()
            },
            trackers_total: 2,
            trackers_ok: 1,
            tracker_status: Some("tracker.b: connection refused".into()),
            health: Health {
                trackers: Arc::from(vec![
                    TrackerState {
                        url: "http://tracker.a:80/announce".into(),
                        host: "tracker.a:80".into(),
                        outcome: TrackerOutcome::Answered {
                            peers: 3,
                            seeds: Some(5),
                            leechers: None,
                        },
                    },
                    TrackerState {
                        url: "udp://tracker.b:6969/announce".into(),
                        host: "tracker.b:6969".into(),
                        outcome: TrackerOutcome::Failed("connection refused".into()),
                    },
                ]),
                ..Health::default()
            },
            ..Snapshot::default()
        },
        save_path: PathBuf::from("/data"),
        category: "tv".into(),
        added_on: 1_700_000_000,
        files: Arc::from(vec![
            FileView {
                path: "multi/a.bin".into(),
                size: 70_000,
                priority: Priority::Normal,
            },
            FileView {
                path: "multi/b.bin".into(),
                size: 30_000,
                priority: Priority::Skip,
            },
        ]),
        trackers: vec![
            vec!["http://tracker.a:80/announce".into()],
            vec!["udp://tracker.b:6969/announce".into()],
        ],
        magnet_uri: format!("magnet:?xt=urn:btih:{HASH_A}"),
        sequential: true,
        ..TorrentView::default()
    };
    let b = TorrentView {
        info_hash: hash(HASH_B),
        name: "single.bin".into(),
        snapshot: Snapshot {
            phase: Phase::Seeding,
            total_bytes: 50_000,
            pieces_total: 4,
            piece_len: 16384,
            have: full_bits(4),
            stats: Stats {
                verified_bytes: 50_000,
                uploaded: 25_000,
                ..Stats::default()
            },
            ..Snapshot::default()
        },
        save_path: PathBuf::from("/data"),
        added_on: 1_700_000_100,
        completion_on: Some(1_700_000_200),
        up_limit: Some(1000),
        files: Arc::from(vec![FileView {
            path: "single.bin".into(),
            size: 50_000,
            priority: Priority::Normal,
        }]),
        ..TorrentView::default()
    };
    let c = TorrentView {
        info_hash: hash(HASH_C),
        name: "mag".into(),
        snapshot: Snapshot {
            phase: Phase::Metadata,
            ..Snapshot::default()
        },
        save_path: PathBuf::from("/data"),
        added_on: 1_700_000_300,
        ..TorrentView::default()
    };
    View {
        torrents: vec![a, b, c],
        categories: [
            ("tv".to_string(), Some(PathBuf::from("/data/tv"))),
            ("misc".to_string(), None),
        ]
        .into_iter()
        .collect(),
        prefs: Prefs {
            save_path: PathBuf::from("/data"),
            download_root: PathBuf::from("/data"),
            listen_port: 6881,
            dl_limit: None,
            up_limit: Some(5000),
        },
        listen_port: 6881,
        dht_nodes: 0,
        facts: Default::default(),
    }
}

pub fn req(method: Method, path: &str, params: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method,
        path: path.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        uploads: vec![],
    }
}

/// A GET answered at once: status and body.
pub fn get(view: &View, path: &str, params: &[(&str, &str)]) -> (u16, Vec<u8>) {
    call(view, &mut SyncState::default(), Method::Get, path, params)
}

pub fn call(
    view: &View,
    sync: &mut SyncState,
    method: Method,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    match handle(&req(method, path, params), view, sync) {
        Step::Reply(r) => (r.status, r.body),
        Step::Ask(c, _) => panic!("{path} asked {c:?}"),
    }
}

fn json_of(view: &View, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = get(view, path, params);
    assert_eq!(
        status,
        200,
        "{path} {params:?}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

pub fn words(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn state_mapping_table() {
    use Phase::*;
    let table: &[(bool, bool, Phase, bool, f64, f64, &str)] = &[
        (true, false, Downloading, false, 9.0, 0.0, "error"),
        (true, true, Seeding, true, 0.0, 0.0, "error"),
        (false, true, Downloading, false, 9.0, 0.0, "pausedDL"),
        (false, true, Seeding, true, 0.0, 9.0, "pausedUP"),
        (false, true, Metadata, false, 0.0, 0.0, "pausedDL"),
        (false, false, Checking, false, 0.0, 0.0, "checkingDL"),
        (false, false, Checking, true, 0.0, 0.0, "checkingUP"),
        (false, false, Metadata, false, 0.0, 0.0, "metaDL"),
        (false, false, Downloading, false, 1.0, 0.0, "downloading"),
        (false, false, Downloading, false, 0.0, 5.0, "stalledDL"),
        (false, false, Seeding, true, 0.0, 1.0, "uploading"),
        (false, false, Seeding, true, 0.0, 0.0, "stalledUP"),
        (false, false, Done, true, 0.0, 0.0, "stalledUP"),
    ];
    for &(error, paused, phase, complete, down, up, want) in table {
        let got = state_for(error, paused, phase, complete, down, up);
        assert_eq!(
            got, want,
            "{error} {paused} {phase:?} {complete} {down} {up}"
        );
    }
}

#[test]
fn versions_and_build_info() {
    assert_eq!(get(&view(), "app/version", &[]), (200, b"v4.5.2".to_vec()));
    assert_eq!(
        get(&view(), "app/webapiVersion", &[]),
        (200, b"2.8.19".to_vec())
    );
    let info = json_of(&view(), "app/buildInfo", &[]);
    assert_eq!(keys(&info), words(OBSERVED_BUILD_INFO_KEYS));
    assert!(info["bitness"].is_u64() && info["qt"].is_string());
}

#[test]
fn info_object_has_qbittorrents_exact_keys_and_types() {
    let v = view();
    let list = json_of(&v, "torrents/info", &[]);
    assert_eq!(
        TORRENT_KEYS
            .iter()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>(),
        words(OBSERVED_INFO_KEYS)
    );
    for t in list.as_array().unwrap() {
        assert_eq!(keys(t), words(OBSERVED_INFO_KEYS));
        for k in [
            "progress",
            "ratio",
            "availability",
            "max_ratio",
            "ratio_limit",
        ] {
            assert!(t[k].is_f64(), "{k} must be a float: {}", t[k]);
        }
        for k in [
            "added_on",
            "amount_left",
            "size",
            "total_size",
            "eta",
            "dl_limit",
            "dlspeed",
            "num_seeds",
            "priority",
            "trackers_count",
            "seeding_time",
        ] {
            assert!(
                t[k].is_i64() || t[k].is_u64(),
                "{k} must be an integer: {}",
                t[k]
            );
        }
        for k in [
            "auto_tmm",
            "f_l_piece_prio",
            "force_start",
            "seq_dl",
            "super_seeding",
        ] {
            assert!(t[k].is_boolean(), "{k}");
        }
        for k in [
            "category",
            "content_path",
            "hash",
            "magnet_uri",
            "name",
            "save_path",
            "state",
            "tags",
            "tracker",
        ] {
            assert!(t[k].is_string(), "{k}");
        }
    }
    let a = &list[0];
    assert_eq!(a["hash"], HASH_A);
    assert_eq!(a["state"], "downloading");
    assert_eq!(a["size"], 81_920, "size is the wanted bytes");
    assert_eq!(a["total_size"], 100_000);
    assert_eq!(a["amount_left"], 81_920 - 49_152);
    assert_eq!(a["eta"], 33);
    assert_eq!(a["content_path"], "/data/multi");
    assert_eq!(a["tracker"], "http://tracker.a:80/announce");
    assert_eq!(a["trackers_count"], 2);
    assert_eq!(a["seq_dl"], true);
    let b = &list[1];
    assert_eq!(b["state"], "stalledUP");
    assert_eq!(b["eta"], 8_640_000);
    assert_eq!(b["up_limit"], 1000);
    assert_eq!(b["dl_limit"], 0, "unlimited is 0 in torrents/info");
    assert_eq!(b["ratio"], 0.5);
    let c = &list[2];
    assert_eq!(c["state"], "metaDL");
    assert_eq!(c["total_size"], -1);
    assert_eq!(c["content_path"], "");
}

#[test]
fn info_filters_category_hashes() {
    let v = view();
    let f = |filter: &str| names(&json_of(&v, "torrents/info", &[("filter", filter)]));
    assert_eq!(f("all"), ["multi", "single.bin", "mag"]);
    assert_eq!(f("downloading"), ["multi", "mag"]);
    assert_eq!(f("seeding"), ["single.bin"]);
    assert_eq!(f("completed"), ["single.bin"]);
    assert!(f("paused").is_empty() && f("stopped").is_empty());
    assert_eq!(f("resumed"), f("running"));
    assert_eq!(f("active"), ["multi", "mag"]);
    assert_eq!(f("inactive"), ["single.bin"]);
    assert_eq!(f("stalled"), ["single.bin"]);
    assert_eq!(f("stalled_uploading"), ["single.bin"]);
    assert!(f("stalled_downloading").is_empty());
    assert!(f("checking").is_empty() && f("errored").is_empty());
    assert_eq!(
        f("no-such-filter").len(),
        3,
        "qBittorrent ignores an unknown filter"
    );
    let mut paused = v.clone();
    paused.torrents[0].paused = true;
    let list = json_of(&paused, "torrents/info", &[("filter", "paused")]);
    assert_eq!(names(&list), ["multi"]);
    assert_eq!(list[0]["state"], "pausedDL");

    let cat = |c: &str| names(&json_of(&v, "torrents/info", &[("category", c)]));
    assert_eq!(cat("tv"), ["multi"]);
    assert_eq!(cat(""), ["single.bin", "mag"], "empty: without a category");
    assert!(cat("misc").is_empty());
    let hashes = format!("{HASH_C}|zz|{}", HASH_B.to_uppercase());
    assert_eq!(
        names(&json_of(&v, "torrents/info", &[("hashes", &hashes)])),
        ["single.bin", "mag"]
    );
    assert!(names(&json_of(&v, "torrents/info", &[("hashes", "zz")])).is_empty());
}

#[test]
fn info_sort_reverse_limit_offset() {
    let v = view();
    let q = |p: &[(&str, &str)]| names(&json_of(&v, "torrents/info", p));
    assert_eq!(q(&[("sort", "name")]), ["mag", "multi", "single.bin"]);
    assert_eq!(
        q(&[("sort", "size"), ("reverse", "true")]),
        ["multi", "single.bin", "mag"]
    );
    assert_eq!(
        q(&[("sort", "added_on"), ("limit", "2")]),
        ["multi", "single.bin"]
    );
    assert_eq!(q(&[("sort", "name"), ("offset", "-1")]), ["single.bin"]);
    assert_eq!(
        q(&[("sort", "name"), ("offset", "1"), ("limit", "1")]),
        ["multi"]
    );
    assert_eq!(q(&[("limit", "-5")]).len(), 3, "a limit ≤ 0 is no limit");
    assert_eq!(q(&[("limit", "abc")]).len(), 3);
    assert_eq!(q(&[("limit", "99999999999999999999999")]).len(), 3);
    assert_eq!(q(&[("offset", "-99999999999999999999999")]).len(), 3);
    assert!(q(&[("offset", "99999999999999999999999")]).is_empty());
    assert_eq!(get(&v, "torrents/info", &[("sort", "nokey")]).0, 400);
}

#[test]
fn properties_files_trackers() {
    let v = view();
    let p = json_of(&v, "torrents/properties", &[("hash", HASH_A)]);
    assert_eq!(keys(&p), words(OBSERVED_PROPERTIES_KEYS));
    assert_eq!(p["dl_limit"], -1, "unlimited is -1 in properties");
    assert_eq!(p["pieces_have"], 3);
    assert_eq!(p["pieces_num"], 7);
    assert!(p["share_ratio"].is_f64());
    for path in ["torrents/properties", "torrents/files", "torrents/trackers"] {
        assert_eq!(get(&v, path, &[]).0, 400, "{path} without hash");
        assert_eq!(get(&v, path, &[("hash", "zz")]).0, 404, "{path} junk hash");
        assert_eq!(
            get(&v, path, &[("hash", &"0".repeat(40))]).0,
            404,
            "{path} unknown"
        );
    }

    let files = json_of(&v, "torrents/files", &[("hash", HASH_A)]);
    assert_eq!(keys(&files[0]), words(OBSERVED_FILE_KEYS));
    let mut second = words(OBSERVED_FILE_KEYS);
    second.remove("is_seed");
    assert_eq!(
        keys(&files[1]),
        second,
        "qBittorrent sends is_seed on the first file only"
    );
    assert_eq!(files[0]["name"], "multi/a.bin");
    assert_eq!(files[0]["piece_range"], serde_json::json!([0, 4]));
    assert_eq!(files[1]["piece_range"], serde_json::json!([4, 6]));
    assert_eq!(files[0]["priority"], 1);
    assert_eq!(files[1]["priority"], 0);
    assert_eq!(files[0]["progress"].as_f64().unwrap(), 49_152.0 / 70_000.0);
    assert_eq!(files[1]["progress"], 0.0);
    assert_eq!(
        json_of(&v, "torrents/files", &[("hash", HASH_C)]),
        serde_json::json!([])
    );

    let trackers = json_of(&v, "torrents/trackers", &[("hash", HASH_A)]);
    let list = trackers.as_array().unwrap();
    assert_eq!(list.len(), 5);
    for t in list {
        assert_eq!(keys(t), words(OBSERVED_TRACKER_KEYS));
    }
    let urls: Vec<_> = list.iter().map(|t| t["url"].as_str().unwrap()).collect();
    assert_eq!(&urls[..3], ["** [DHT] **", "** [PeX] **", "** [LSD] **"]);
    // Each announce URL with its own last reply: working with its counts (-1 where the
    // reply gave none), not working with its error.
    assert_eq!(list[3]["url"], "http://tracker.a:80/announce");
    assert_eq!(list[3]["status"], 2);
    assert_eq!(list[3]["tier"], 0);
    assert_eq!(list[3]["num_peers"], 3);
    assert_eq!(list[3]["num_seeds"], 5);
    assert_eq!(list[3]["num_leeches"], -1);
    assert_eq!(list[3]["num_downloaded"], -1);
    assert_eq!(list[3]["msg"], "");
    assert_eq!(list[4]["status"], 4);
    assert_eq!(list[4]["tier"], 1);
    assert_eq!(list[4]["msg"], "connection refused");
    assert_eq!(list[4]["num_peers"], -1);
    // Paused: nothing is contacted.
    let mut paused = view();
    paused.torrents[0].paused = true;
    let list = json_of(&paused, "torrents/trackers", &[("hash", HASH_A)]);
    assert!(list.as_array().unwrap()[3..]
        .iter()
        .all(|t| t["status"] == 1));
}

#[test]
fn transfer_preferences_categories() {
    let v = view();
    let t = json_of(&v, "transfer/info", &[]);
    assert_eq!(keys(&t), words(OBSERVED_TRANSFER_KEYS));
    assert_eq!(t["dl_info_speed"], 1000);
    assert_eq!(t["up_rate_limit"], 5000);
    assert_eq!(t["dl_rate_limit"], 0);
    assert_eq!(t["connection_status"], "connected");
    let p = json_of(&v, "app/preferences", &[]);
    assert_eq!(p["save_path"], "/data");
    assert_eq!(p["listen_port"], 6881);
    assert_eq!(p["up_limit"], 5000);
    assert_eq!(p["dl_limit"], 0);
    assert!(p["max_ratio_enabled"].is_boolean() && p["queueing_enabled"].is_boolean());
    let c = json_of(&v, "torrents/categories", &[]);
    assert_eq!(
        c,
        serde_json::json!({"misc": {"name": "misc", "savePath": ""},
                           "tv": {"name": "tv", "savePath": "/data/tv"}})
    );
}

#[test]
fn unknown_paths_and_methods() {
    let v = view();
    for path in [
        "torrents/nothing",
        "nothing/x",
        "app/nothing",
        "",
        "auth/login",
        "torrents/info/x",
    ] {
        assert_eq!(get(&v, path, &[]).0, 404, "{path:?}");
    }
    assert_eq!(
        get(&v, "/torrents/info/", &[]).0,
        200,
        "slashes around are tolerated"
    );
    for path in [
        "torrents/pause",
        "torrents/add",
        "app/setPreferences",
        "torrents/createCategory",
    ] {
        assert_eq!(
            get(&v, path, &[("hashes", "all")]),
            (405, b"Method Not Allowed".to_vec())
        );
    }
    let mut sync = SyncState::default();
    assert_eq!(
        call(&v, &mut sync, Method::Post, "torrents/info", &[]).0,
        200
    );
}
