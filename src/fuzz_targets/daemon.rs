//! Daemon targets: the Web API's parameters (query, urlencoded and multipart bodies, then
//! the qBittorrent endpoints that read them) and `daemon.json`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::daemon::api::{ApiRequest, Method, Step, SyncState};
use crate::daemon::model::{FileView, TorrentView, View};
use crate::daemon::qbt;
use crate::daemon::saved::{self, MAX_LEN};
use crate::daemon::web::multipart::{self, MAX_PARTS, MAX_TEXT_FIELD, MAX_UPLOAD};
use crate::selection::Priority;
use crate::types::InfoHash;

/// Every endpoint of `qbt` (its table is private; an unknown path only answers 404).
const PATHS: [&str; 27] = [
    "app/version",
    "app/webapiVersion",
    "app/buildInfo",
    "app/preferences",
    "app/setPreferences",
    "transfer/info",
    "torrents/info",
    "torrents/properties",
    "torrents/files",
    "torrents/trackers",
    "torrents/categories",
    "sync/maindata",
    "sync/torrentPeers",
    "swarm/diagnosis",
    "swarm/stalled",
    "torrents/add",
    "torrents/delete",
    "torrents/pause",
    "torrents/stop",
    "torrents/resume",
    "torrents/start",
    "torrents/recheck",
    "torrents/filePrio",
    "torrents/setCategory",
    "torrents/createCategory",
    "torrents/setUploadLimit",
    "torrents/setDownloadLimit",
];

/// The torrent the `daemon_params` view holds (its hash is 40 `3`s in hex).
pub const DAEMON_HASH: InfoHash = InfoHash([0x33; 20]);

fn view() -> View {
    let t = TorrentView {
        info_hash: DAEMON_HASH,
        name: "fuzz".into(),
        files: Arc::from(vec![
            FileView {
                path: "fuzz/a".into(),
                size: 1000,
                priority: Priority::Normal,
            },
            FileView {
                path: "fuzz/b".into(),
                size: 24,
                priority: Priority::Skip,
            },
        ]),
        trackers: vec![vec!["http://127.0.0.1:1/announce".into()]],
        ..TorrentView::default()
    };
    View {
        torrents: vec![t],
        ..View::default()
    }
}

/// One API request as the web edge builds it. First byte: bit 7 the method (set: POST),
/// the rest the endpoint (an index into the endpoint list). Then three parts separated by
/// `\n`: the Content-Type value, the query string, and the body, which is parsed as the
/// edge parses it (urlencoded, or multipart with the Content-Type's boundary). Multipart
/// results stay within their caps; the request then goes to the endpoint, twice (so
/// `sync/maindata` diffs against its first answer).
pub fn daemon_params(data: &[u8]) {
    let [sel, rest @ ..] = data else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let ctype = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query).into_owned().collect();
    let mut uploads = Vec::new();
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        params.extend(form_urlencoded::parse(body).into_owned());
    } else if mime.eq_ignore_ascii_case("multipart/form-data") {
        let Some(boundary) = multipart::boundary(&ctype) else {
            return;
        };
        let Ok(form) = multipart::parse(body, &boundary) else {
            return;
        };
        assert!(form.params.len() + form.uploads.len() <= MAX_PARTS);
        assert!(form.params.iter().all(|(_, v)| v.len() <= MAX_TEXT_FIELD));
        assert!(form.uploads.iter().all(|u| u.bytes.len() <= MAX_UPLOAD));
        params.extend(form.params);
        uploads = form.uploads;
    }
    let req = ApiRequest {
        method: if sel & 0x80 != 0 {
            Method::Post
        } else {
            Method::Get
        },
        path: PATHS[usize::from(sel & 0x7f) % PATHS.len()].to_string(),
        params,
        uploads,
    };
    let view = view();
    let mut sync = SyncState::default();
    for _ in 0..2 {
        if let Step::Reply(r) = qbt::handle(&req, &view, &mut sync) {
            assert!((200..600).contains(&r.status));
        }
    }
}

/// `daemon.json` (at most [`MAX_LEN`] bytes, as the reader caps it): accepted files
/// write back (as `saved::store` writes them) to a file that reads the same.
pub fn saved(data: &[u8]) {
    if data.len() as u64 > MAX_LEN {
        return;
    }
    let Ok(s) = saved::decode(data, PathBuf::from("daemon.json")) else {
        return;
    };
    let bytes = serde_json::to_vec_pretty(&s).expect("plain data serialises");
    let again = saved::decode(&bytes, PathBuf::from("daemon.json")).expect("our own file reads");
    assert_eq!(again, s);
}
