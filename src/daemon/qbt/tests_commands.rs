//! The command endpoints: which [`Command`] each request becomes, the 400/404/409 refusals
//! qBittorrent 4.5.2 answered (observed with curl), and how outcomes are rendered.

use std::path::PathBuf;

use super::tests::{call, get, hash, req, view, HASH_A, HASH_B, HASH_C};
use super::*;
use crate::daemon::api::{Method, ReplyKind, Step, SyncState, Upload};
use crate::daemon::model::{AddRequest, AddSource, Command, Hashes, PrefsPatch};
use crate::selection::Priority;

/// A POST that becomes a command.
fn asks(path: &str, params: &[(&str, &str)]) -> (Command, ReplyKind) {
    match handle(
        &req(Method::Post, path, params),
        &view(),
        &mut SyncState::default(),
    ) {
        Step::Ask(c, k) => (c, k),
        Step::Reply(r) => panic!(
            "{path} {params:?}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
    }
}

fn command(path: &str, params: &[(&str, &str)]) -> Command {
    asks(path, params).0
}

/// A POST answered at once.
fn post(path: &str, params: &[(&str, &str)]) -> (u16, String) {
    let (status, body) = call(
        &view(),
        &mut SyncState::default(),
        Method::Post,
        path,
        params,
    );
    (status, String::from_utf8(body).unwrap())
}

#[test]
fn hash_list_commands() {
    let both = format!("{HASH_A}|junk|{}|{HASH_A}", HASH_B.to_uppercase());
    let ab = Hashes::Some(vec![hash(HASH_A), hash(HASH_B)]);
    assert_eq!(
        command("torrents/pause", &[("hashes", &both)]),
        Command::Pause(ab.clone())
    );
    assert_eq!(
        command("torrents/stop", &[("hashes", "all")]),
        Command::Pause(Hashes::All)
    );
    assert_eq!(
        command("torrents/resume", &[("hashes", "ALL")]),
        Command::Resume(Hashes::All)
    );
    assert_eq!(
        command("torrents/start", &[("hashes", HASH_C)]),
        Command::Resume(Hashes::Some(vec![hash(HASH_C)]))
    );
    assert_eq!(
        command("torrents/recheck", &[("hashes", &both)]),
        Command::Recheck(ab.clone())
    );
    assert_eq!(
        command(
            "torrents/delete",
            &[("hashes", &both), ("deleteFiles", "true")]
        ),
        Command::Delete {
            hashes: ab.clone(),
            delete_files: true
        }
    );
    assert_eq!(
        command(
            "torrents/delete",
            &[("hashes", "all"), ("deleteFiles", "false")]
        ),
        Command::Delete {
            hashes: Hashes::All,
            delete_files: false
        }
    );
    // Unknown hashes are passed on for the core to ignore, as qBittorrent does.
    let unknown = "0".repeat(40);
    assert_eq!(
        command("torrents/pause", &[("hashes", &unknown)]),
        Command::Pause(Hashes::Some(vec![hash(&unknown)]))
    );
    for path in [
        "torrents/pause",
        "torrents/resume",
        "torrents/delete",
        "torrents/recheck",
        "torrents/stop",
        "torrents/start",
    ] {
        assert_eq!(post(path, &[]).0, 400, "{path} without hashes");
        assert_eq!(
            post(path, &[("hashes", "zz|")]),
            (200, String::new()),
            "{path}: nothing valid, nothing to do"
        );
    }
    assert_eq!(
        asks("torrents/pause", &[("hashes", "all")]).1,
        ReplyKind::Empty
    );
}

#[test]
fn add_sources_and_options() {
    let mut r = req(
        Method::Post,
        "torrents/add",
        &[
            ("urls", &format!("magnet:?xt=urn:btih:{HASH_A}\r\nhttps://example.invalid/x.torrent\n\n{HASH_B}\nnonsense")),
            ("savepath", "/data/x"),
            ("category", "tv"),
            ("stopped", "true"),
            ("sequentialDownload", "true"),
            ("firstLastPiecePrio", "TRUE"),
            ("upLimit", "1000"),
            ("dlLimit", "-1"),
        ],
    );
    r.uploads.push(Upload {
        field: "torrents".into(),
        filename: "a.torrent".into(),
        bytes: b"d4:infod".to_vec(),
    });
    // qbittorrent-api names its files torrent__N: every uploaded file is a torrent.
    r.uploads.push(Upload {
        field: "torrent__1".into(),
        filename: "b".into(),
        bytes: b"x".to_vec(),
    });
    let Step::Ask(cmd, kind) = handle(&r, &view(), &mut SyncState::default()) else {
        panic!()
    };
    assert_eq!(kind, ReplyKind::Add);
    assert_eq!(
        cmd,
        Command::Add(AddRequest {
            sources: vec![
                AddSource::Torrent(b"d4:infod".to_vec()),
                AddSource::Torrent(b"x".to_vec()),
                AddSource::Magnet(format!("magnet:?xt=urn:btih:{HASH_A}")),
                AddSource::Magnet(format!("magnet:?xt=urn:btih:{HASH_B}")),
            ],
            save_path: Some(PathBuf::from("/data/x")),
            category: Some("tv".into()),
            paused: true,
            sequential: true,
            first_last: true,
            up_limit: Some(1000),
            down_limit: None,
        })
    );
    let Command::Add(plain) = command(
        "torrents/add",
        &[
            ("urls", "magnet:?xt=urn:btih:x"),
            ("paused", "false"),
            ("savepath", ""),
        ],
    ) else {
        panic!()
    };
    assert!(!plain.paused && plain.save_path.is_none() && plain.category.is_none());
    // Nothing to add: qBittorrent 4.5.2 answers 200 "Fails.".
    assert_eq!(post("torrents/add", &[]), (200, "Fails.".into()));
    assert_eq!(
        post("torrents/add", &[("urls", "http://127.0.0.1/x.torrent")]),
        (200, "Fails.".into())
    );
}

#[test]
fn file_priorities() {
    assert_eq!(
        command(
            "torrents/filePrio",
            &[("hash", HASH_A), ("id", "1|0|1"), ("priority", "7")]
        ),
        Command::FilePrio {
            hash: hash(HASH_A),
            files: vec![0, 1],
            priority: Priority::High
        }
    );
    for (p, want) in [
        ("0", Priority::Skip),
        ("1", Priority::Normal),
        ("6", Priority::High),
    ] {
        let Command::FilePrio { priority, .. } = command(
            "torrents/filePrio",
            &[("hash", HASH_A), ("id", "0"), ("priority", p)],
        ) else {
            panic!()
        };
        assert_eq!(priority, want);
    }
    let f = |p: &[(&str, &str)]| post("torrents/filePrio", p);
    assert_eq!(f(&[("hash", HASH_A), ("id", "0")]).0, 400);
    assert_eq!(f(&[("hash", HASH_A), ("priority", "1")]).0, 400);
    assert_eq!(
        f(&[("hash", HASH_A), ("id", "x"), ("priority", "1")]),
        (400, "File IDs must be integers".into())
    );
    assert_eq!(
        f(&[("hash", HASH_A), ("id", "-1"), ("priority", "1")]).0,
        400
    );
    assert_eq!(
        f(&[("hash", HASH_A), ("id", "0"), ("priority", "3")]),
        (400, "Priority is not valid".into())
    );
    assert_eq!(
        f(&[("hash", HASH_A), ("id", "2"), ("priority", "1")]),
        (409, "File ID is not valid".into())
    );
    assert_eq!(
        f(&[
            ("hash", HASH_A),
            ("id", "99999999999999999999999"),
            ("priority", "1")
        ])
        .0,
        400
    );
    assert_eq!(
        f(&[("hash", &"0".repeat(40)), ("id", "0"), ("priority", "1")]).0,
        404
    );
    assert_eq!(f(&[("hash", "zz"), ("id", "0"), ("priority", "1")]).0, 404);
    assert_eq!(
        f(&[("hash", HASH_C), ("id", "0"), ("priority", "1")]),
        (409, "Torrent's metadata has not yet downloaded".into())
    );
}

#[test]
fn categories_and_limits() {
    assert_eq!(
        command(
            "torrents/setCategory",
            &[("hashes", HASH_A), ("category", "misc")]
        ),
        Command::SetCategory {
            hashes: Hashes::Some(vec![hash(HASH_A)]),
            category: "misc".into()
        }
    );
    assert_eq!(
        command(
            "torrents/setCategory",
            &[("hashes", "all"), ("category", "")]
        ),
        Command::SetCategory {
            hashes: Hashes::All,
            category: String::new()
        }
    );
    assert_eq!(
        post(
            "torrents/setCategory",
            &[("hashes", HASH_A), ("category", "nope")]
        ),
        (409, "Incorrect category name".into())
    );
    assert_eq!(post("torrents/setCategory", &[("hashes", HASH_A)]).0, 400);

    assert_eq!(
        command(
            "torrents/createCategory",
            &[("category", "movies"), ("savePath", "/data/movies")]
        ),
        Command::CreateCategory {
            name: "movies".into(),
            save_path: Some(PathBuf::from("/data/movies"))
        }
    );
    assert_eq!(
        command("torrents/createCategory", &[("category", "a/b")]),
        Command::CreateCategory {
            name: "a/b".into(),
            save_path: None
        }
    );
    assert_eq!(
        post("torrents/createCategory", &[("category", "")]),
        (400, "Category cannot be empty".into())
    );
    assert_eq!(
        post("torrents/createCategory", &[("savePath", "/x")]).0,
        400
    );
    for bad in ["/abs", "trail/", "a//b", "bell\u{7}"] {
        assert_eq!(
            post("torrents/createCategory", &[("category", bad)]).0,
            409,
            "{bad:?}"
        );
    }
    assert_eq!(
        post("torrents/createCategory", &[("category", "tv")]),
        (409, "Unable to create category".into())
    );

    let one = Hashes::Some(vec![hash(HASH_B)]);
    assert_eq!(
        command(
            "torrents/setUploadLimit",
            &[("hashes", HASH_B), ("limit", "1000")]
        ),
        Command::SetUploadLimit {
            hashes: one.clone(),
            limit: Some(1000)
        }
    );
    assert_eq!(
        command(
            "torrents/setDownloadLimit",
            &[("hashes", HASH_B), ("limit", "0")]
        ),
        Command::SetDownloadLimit {
            hashes: one.clone(),
            limit: None
        }
    );
    assert_eq!(
        command(
            "torrents/setDownloadLimit",
            &[("hashes", HASH_B), ("limit", "-1")]
        ),
        Command::SetDownloadLimit {
            hashes: one.clone(),
            limit: None
        }
    );
    assert_eq!(
        command(
            "torrents/setDownloadLimit",
            &[("hashes", HASH_B), ("limit", "abc")]
        ),
        Command::SetDownloadLimit {
            hashes: one,
            limit: None
        }
    );
    assert_eq!(
        post("torrents/setUploadLimit", &[("hashes", HASH_B)]).0,
        400
    );
    assert_eq!(post("torrents/setUploadLimit", &[("limit", "5")]).0, 400);
}

#[test]
fn set_preferences() {
    assert_eq!(
        command(
            "app/setPreferences",
            &[(
                "json",
                r#"{"save_path":"/data/new","listen_port":7000,"dl_limit":0,"up_limit":2048,"dht":true}"#
            )]
        ),
        Command::SetPreferences(PrefsPatch {
            save_path: Some(PathBuf::from("/data/new")),
            listen_port: Some(7000),
            dl_limit: Some(None),
            up_limit: Some(Some(2048)),
        })
    );
    assert_eq!(
        post("app/setPreferences", &[("json", r#"{"dht":true}"#)]),
        (200, String::new())
    );
    for bad in [
        "notjson",
        "[1]",
        r#"{"listen_port":70000}"#,
        r#"{"listen_port":-1}"#,
        r#"{"dl_limit":"x"}"#,
        r#"{"save_path":""}"#,
        r#"{"save_path":1}"#,
    ] {
        assert_eq!(post("app/setPreferences", &[("json", bad)]).0, 400, "{bad}");
    }
    assert_eq!(post("app/setPreferences", &[]).0, 400);
}

#[test]
fn render_outcomes() {
    use crate::daemon::model::{CommandError as E, CommandReply as R};
    let r = |k, o| {
        let resp = render(k, o);
        (resp.status, String::from_utf8(resp.body).unwrap())
    };
    assert_eq!(r(ReplyKind::Empty, Ok(R::Done)), (200, String::new()));
    assert_eq!(
        r(ReplyKind::Empty, Err(E::NotFound)),
        (404, "Not Found".into())
    );
    assert_eq!(
        r(ReplyKind::Empty, Err(E::BadRequest("no".into()))),
        (400, "no".into())
    );
    assert_eq!(
        r(ReplyKind::Empty, Err(E::Forbidden("outside".into()))),
        (403, "outside".into())
    );
    assert_eq!(
        r(ReplyKind::Empty, Err(E::Failed("disk".into()))),
        (500, "disk".into())
    );
    assert_eq!(
        r(ReplyKind::Add, Ok(R::Added(vec![hash(HASH_A)]))),
        (200, "Ok.".into())
    );
    assert_eq!(
        r(ReplyKind::Add, Ok(R::Added(vec![]))),
        (200, "Fails.".into())
    );
    assert_eq!(
        r(
            ReplyKind::Add,
            Err(E::BadRequest("not a valid torrent file".into()))
        ),
        (415, "not a valid torrent file".into())
    );
    assert_eq!(
        r(ReplyKind::Add, Err(E::Forbidden("outside".into()))).0,
        403
    );
    assert_eq!(
        render(ReplyKind::Add, Ok(R::Done)).content_type,
        "text/plain; charset=UTF-8"
    );
}

#[test]
fn hostile_parameters_never_panic() {
    let v = view();
    let long = "|".repeat(10_000) + &"a".repeat(100_000);
    let junk = [
        "",
        "\u{0}",
        "-",
        "\u{10FFFF}",
        &long,
        "-9223372036854775808",
        "18446744073709551616",
    ];
    let mut sync = SyncState::default();
    for (path, _, _) in ENDPOINTS {
        for j in junk {
            for name in [
                "hash",
                "hashes",
                "id",
                "priority",
                "limit",
                "offset",
                "sort",
                "rid",
                "json",
                "urls",
                "category",
                "filter",
                "savePath",
                "deleteFiles",
            ] {
                let r = req(Method::Post, path, &[(name, j), ("hash", j), ("hashes", j)]);
                let _ = handle(&r, &v, &mut sync);
            }
        }
    }
    assert_eq!(get(&v, "torrents/info", &[("limit", &long)]).0, 200);
}
