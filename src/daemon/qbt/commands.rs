//! The endpoints that change something: parameters checked here (400, 404, 409 as
//! qBittorrent answers them), then a [`Command`] for the core; and `torrents/categories`.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::daemon::api::{ApiRequest, ReplyKind, Step, SyncState};
use crate::daemon::model::{AddRequest, AddSource, Command, Hashes, View};
use crate::selection::Priority;

use super::params::{self, parse_hash};
use super::Fail;

fn ask(command: Command) -> Result<Step, Fail> {
    Ok(Step::Ask(command, ReplyKind::Empty))
}

/// The `hashes` of a command; a list with no valid hash is a no-op answered at once.
fn with_hashes(req: &ApiRequest, make: impl FnOnce(Hashes) -> Command) -> Result<Step, Fail> {
    match params::hashes(req, "hashes")? {
        Hashes::Some(list) if list.is_empty() => Ok(Step::Reply(super::text(200, ""))),
        hashes => ask(make(hashes)),
    }
}

/// A `magnet:` link, or a bare info-hash (qBittorrent accepts both in `urls`).
fn magnet(line: &str) -> Option<String> {
    let line = line.trim();
    // `get`, not `[..7]`: byte 7 may fall inside a character of a hostile line.
    if line.len() > 7
        && line
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    {
        return Some(line.to_string());
    }
    parse_hash(line).map(|h| format!("magnet:?xt=urn:btih:{}", h.to_hex()))
}

/// `torrents/add`: every uploaded file, whatever its field (qBittorrent takes them all:
/// its page names the field `torrents`, `qbittorrent-api` names them `torrent__0`, …),
/// and `urls` magnets (one a line). http(s) URLs are not fetched (the daemon makes no
/// request a client chose): they are skipped like any line that is not a magnet; nothing
/// left to add is qBittorrent's `Fails.`.
pub fn add(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let mut sources: Vec<AddSource> = req
        .uploads
        .iter()
        .map(|u| AddSource::Torrent(u.bytes.clone()))
        .collect();
    if let Some(urls) = req.param("urls") {
        sources.extend(urls.lines().filter_map(magnet).map(AddSource::Magnet));
    }
    if sources.is_empty() {
        return Ok(Step::Reply(super::text(200, "Fails.")));
    }
    let text = |name: &str| req.param(name).map(str::trim).filter(|s| !s.is_empty());
    let add = AddRequest {
        sources,
        save_path: text("savepath").map(PathBuf::from),
        category: text("category").map(str::to_string),
        paused: params::flag(req, "paused") || params::flag(req, "stopped"),
        sequential: params::flag(req, "sequentialDownload"),
        first_last: params::flag(req, "firstLastPiecePrio"),
        up_limit: params::limit(params::int(req, "upLimit")),
        down_limit: params::limit(params::int(req, "dlLimit")),
    };
    Ok(Step::Ask(Command::Add(add), ReplyKind::Add))
}

pub fn delete(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let delete_files = params::flag(req, "deleteFiles");
    with_hashes(req, |hashes| Command::Delete {
        hashes,
        delete_files,
    })
}

/// `torrents/pause` and v5's `torrents/stop`.
pub fn pause(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    with_hashes(req, Command::Pause)
}

/// `torrents/resume` and v5's `torrents/start`.
pub fn resume(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    with_hashes(req, Command::Resume)
}

pub fn recheck(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    with_hashes(req, Command::Recheck)
}

/// qBittorrent's priorities onto swarm's: 7 ("maximal") is as high as swarm goes.
fn priority(raw: &str) -> Option<Priority> {
    match raw.trim() {
        "0" => Some(Priority::Skip),
        "1" => Some(Priority::Normal),
        "6" | "7" => Some(Priority::High),
        _ => None,
    }
}

/// `torrents/filePrio`: 400 for a missing parameter, an id that is not a number or a
/// priority qBittorrent does not have; 404 for an unknown torrent; 409 for a torrent
/// without metadata or an index past its files (qBittorrent's codes, observed).
pub fn file_prio(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let raw_hash = params::required(req, "hash")?;
    let ids = params::required(req, "id")?;
    let prio = params::required(req, "priority")?;
    let hash = parse_hash(raw_hash).ok_or_else(Fail::not_found)?;
    let priority = priority(prio).ok_or(Fail::new(400, "Priority is not valid"))?;
    let torrent = view.torrent(&hash).ok_or_else(Fail::not_found)?;
    let mut files = Vec::new();
    for id in ids.split('|') {
        let id: usize = id
            .trim()
            .parse()
            .map_err(|_| Fail::new(400, "File IDs must be integers"))?;
        files.push(id);
    }
    if torrent.files.is_empty() {
        return Err(Fail::conflict("Torrent's metadata has not yet downloaded"));
    }
    if files.iter().any(|&i| i >= torrent.files.len()) {
        return Err(Fail::conflict("File ID is not valid"));
    }
    files.sort_unstable();
    files.dedup();
    ask(Command::FilePrio {
        hash,
        files,
        priority,
    })
}

/// `torrents/setCategory`: `""` removes the category; a name not created first is 409.
pub fn set_category(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let category = params::required(req, "category")?.trim().to_string();
    if !category.is_empty() && !view.categories.contains_key(&category) {
        return Err(Fail::conflict("Incorrect category name"));
    }
    with_hashes(req, |hashes| Command::SetCategory { hashes, category })
}

/// qBittorrent's rule (no leading or trailing `/`, no empty segment), plus no control
/// characters and a sane length, since the name is shown and stored.
fn valid_category(name: &str) -> bool {
    !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && name.len() <= 255
        && !name.chars().any(char::is_control)
}

pub fn create_category(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let name = params::required(req, "category")?.trim();
    if name.is_empty() {
        return Err(Fail::new(400, "Category cannot be empty"));
    }
    if !valid_category(name) {
        return Err(Fail::conflict("Incorrect category name"));
    }
    if view.categories.contains_key(name) {
        return Err(Fail::conflict("Unable to create category"));
    }
    let save_path = req
        .param("savePath")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    ask(Command::CreateCategory {
        name: name.to_string(),
        save_path,
    })
}

/// `limit` is required; one that does not parse is 0 (unlimited), as in qBittorrent.
fn rate_limit(req: &ApiRequest) -> Result<Option<u64>, Fail> {
    params::required(req, "limit").map(|v| params::limit(params::parse_int(v)))
}

pub fn set_upload_limit(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let limit = rate_limit(req)?;
    with_hashes(req, |hashes| Command::SetUploadLimit { hashes, limit })
}

pub fn set_download_limit(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let limit = rate_limit(req)?;
    with_hashes(req, |hashes| Command::SetDownloadLimit { hashes, limit })
}

/// Name → `{name, savePath}` (`""`: the default save path).
pub fn categories_object(view: &View) -> Value {
    let map: Map<String, Value> = view
        .categories
        .iter()
        .map(|(name, path)| {
            let path = path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name.clone(), json!({ "name": name, "savePath": path }))
        })
        .collect();
    Value::Object(map)
}

pub fn categories(_: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    Ok(Step::Reply(super::json(&categories_object(view))))
}
