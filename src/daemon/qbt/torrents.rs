//! The read endpoints about torrents: `torrents/info` (its filters, sort and paging),
//! `torrents/properties`, `torrents/files`, and the state mapping
//! from swarm's phases onto qBittorrent's state names.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::{TorrentView, View};
use crate::snapshot::Phase;

use super::params::{self, parse_hash};
use super::{object, Fail, JSON_ETA_INFINITE};

/// qBittorrent's state name for a torrent (4.5 names: `pausedDL`/`pausedUP`).
///
/// Order matters: an error wins, then the user's pause, then the engine's phase; rates
/// only split "moving" from "stalled", as libtorrent's payload rates do for qBittorrent.
pub fn state_for(
    error: bool,
    paused: bool,
    phase: Phase,
    complete: bool,
    down_rate: f64,
    up_rate: f64,
) -> &'static str {
    match (error, paused, phase) {
        (true, _, _) => "error",
        (_, true, _) if complete => "pausedUP",
        (_, true, _) => "pausedDL",
        (_, _, Phase::Checking) if complete => "checkingUP",
        (_, _, Phase::Checking) => "checkingDL",
        (_, _, Phase::Metadata) => "metaDL",
        (_, _, Phase::Downloading) if down_rate > 0.0 => "downloading",
        (_, _, Phase::Downloading) => "stalledDL",
        (_, _, Phase::Seeding | Phase::Done) if up_rate > 0.0 => "uploading",
        (_, _, Phase::Seeding | Phase::Done) => "stalledUP",
    }
}

pub fn complete(t: &TorrentView) -> bool {
    let s = &t.snapshot;
    match s.phase {
        Phase::Seeding | Phase::Done => true,
        Phase::Metadata => false,
        Phase::Checking | Phase::Downloading => s.pieces_total > 0 && s.left() == 0,
    }
}

pub fn state(t: &TorrentView) -> &'static str {
    let s = &t.snapshot;
    state_for(
        t.error.is_some(),
        t.paused,
        s.phase,
        complete(t),
        s.stats.down_rate,
        s.stats.up_rate,
    )
}

fn has_metadata(t: &TorrentView) -> bool {
    t.snapshot.phase != Phase::Metadata && t.snapshot.pieces_total > 0
}

fn rate(r: f64) -> i64 {
    if r.is_finite() && r > 0.0 {
        r.round().min(i64::MAX as f64) as i64
    } else {
        0
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn eta(t: &TorrentView) -> i64 {
    if complete(t) || t.paused {
        // qBittorrent's "infinity" (100 days) also for a seed without seeding goals.
        return JSON_ETA_INFINITE;
    }
    t.snapshot
        .eta_secs()
        .map_or(JSON_ETA_INFINITE, |e| signed(e).min(JSON_ETA_INFINITE))
}

/// Distributed copies are not tracked: qBittorrent's -1 ("not applicable") unless a
/// torrent without peers is incomplete, where there are certainly 0 copies around.
pub fn availability(t: &TorrentView) -> f64 {
    if !complete(t) && t.snapshot.stats.peers_connected == 0 {
        0.0
    } else {
        -1.0
    }
}

/// The tracker qBittorrent calls "current": we only know that some tracker answered, so
/// the first one, once any did.
fn current_tracker(t: &TorrentView) -> &str {
    if t.snapshot.trackers_ok == 0 {
        return "";
    }
    t.trackers
        .iter()
        .flatten()
        .next()
        .map_or("", String::as_str)
}

/// One `torrents/info` object (and, without `hash`, one `sync/maindata` torrent).
pub fn torrent_object(t: &TorrentView) -> Map<String, Value> {
    let s = &t.snapshot;
    let totals = s.totals();
    let meta = has_metadata(t);
    let (wanted, verified) = if meta { s.target() } else { (0, 0) };
    let hash = t.info_hash.to_hex();
    let content_path = if meta {
        t.save_path.join(&t.name).to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let seeded = signed(totals.seeded.as_secs());
    let completion_on = t.completion_on.unwrap_or(0);
    // Two halves: one `json!` this size exceeds the macro's recursion limit.
    let mut o = object(json!({
        "added_on": t.added_on,
        "amount_left": signed(wanted.saturating_sub(verified)),
        "auto_tmm": false,
        "availability": availability(t),
        "category": t.category,
        "completed": signed(verified),
        "completion_on": completion_on,
        "content_path": content_path,
        "dl_limit": t.down_limit.map_or(0, signed),
        "dlspeed": rate(s.stats.down_rate),
        "download_path": "",
        "downloaded": signed(totals.downloaded),
        "downloaded_session": signed(s.stats.downloaded),
        "eta": eta(t),
        "f_l_piece_prio": t.first_last,
        "force_start": false,
        "hash": hash,
        "infohash_v1": hash,
        "infohash_v2": "",
        // Not tracked: the last time we know it was active.
        "last_activity": t.added_on.max(completion_on),
        "magnet_uri": t.magnet_uri,
        "max_ratio": s.limits.seed_ratio.unwrap_or(-1.0),
        "max_seeding_time": s.limits.seed_time.map_or(-1, |d| signed(d.as_secs() / 60)),
    }));
    o.extend(object(json!({
        "name": t.name,
        "num_complete": 0,
        "num_incomplete": 0,
        "num_leechs": s.stats.peers_connected,
        "num_seeds": 0,
        "priority": 0,
        "progress": if meta { s.progress() } else { 0.0 },
        "ratio": s.ratio(),
        "ratio_limit": -2.0,
        "save_path": t.save_path.to_string_lossy(),
        "seeding_time": seeded,
        "seeding_time_limit": -2,
        "seen_complete": completion_on,
        "seq_dl": t.sequential,
        "size": signed(wanted),
        "state": state(t),
        "super_seeding": false,
        "tags": "",
        // Not tracked apart from seeding: a lower bound.
        "time_active": seeded,
        "total_size": if meta { signed(s.total_bytes) } else { -1 },
        "tracker": current_tracker(t),
        "trackers_count": t.trackers.iter().map(Vec::len).sum::<usize>(),
        "up_limit": t.up_limit.map_or(0, signed),
        "uploaded": signed(totals.uploaded),
        "uploaded_session": signed(s.stats.uploaded),
        "upspeed": rate(s.stats.up_rate),
    })));
    o
}

/// Whether a torrent passes `filter` (qBittorrent's `TorrentFilter`; an unknown filter
/// passes everything, as qBittorrent's does). v5's `stopped`/`running` are accepted too.
pub fn filter_matches(filter: &str, state: &str, up_rate: f64) -> bool {
    let paused = state.starts_with("paused");
    match filter {
        "downloading" => matches!(
            state,
            "downloading" | "metaDL" | "stalledDL" | "checkingDL" | "pausedDL"
        ),
        "seeding" => matches!(state, "uploading" | "stalledUP" | "checkingUP"),
        "completed" => matches!(state, "uploading" | "stalledUP" | "checkingUP" | "pausedUP"),
        "paused" | "stopped" => paused,
        "resumed" | "running" => !paused,
        "active" => is_active(state, up_rate),
        "inactive" => !is_active(state, up_rate),
        "stalled" => matches!(state, "stalledUP" | "stalledDL"),
        "stalled_uploading" => state == "stalledUP",
        "stalled_downloading" => state == "stalledDL",
        "checking" => state.starts_with("checking"),
        "errored" => state == "error",
        _ => true,
    }
}

fn is_active(state: &str, up_rate: f64) -> bool {
    match state {
        "stalledDL" => up_rate > 0.0,
        "metaDL" | "downloading" | "uploading" => true,
        _ => false,
    }
}

/// qBittorrent's comparison for `sort`: numbers as numbers, strings as strings.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// `torrents/info`.
pub fn info(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let filter = req.param("filter").unwrap_or("all");
    let category = req.param("category");
    let wanted = params::hash_filter(req);
    let mut list: Vec<Map<String, Value>> = view
        .torrents
        .iter()
        .filter(|t| category.is_none_or(|c| t.category == c))
        .filter(|t| wanted.as_ref().is_none_or(|w| w.contains(&t.info_hash)))
        .filter(|t| filter_matches(filter, state(t), t.snapshot.stats.up_rate))
        .map(torrent_object)
        .collect();
    if let Some(key) = req.param("sort").filter(|k| !k.is_empty()) {
        if !TORRENT_KEYS.contains(&key) {
            return Err(Fail::new(400, "'sort' parameter is invalid"));
        }
        list.sort_by(|a, b| compare(a.get(key), b.get(key)));
    }
    if params::flag(req, "reverse") {
        list.reverse();
    }
    let len = list.len() as i64;
    let offset = params::int(req, "offset");
    // A negative offset counts from the end, as qBittorrent's does.
    let start = if offset < 0 {
        len.saturating_add(offset).max(0)
    } else {
        offset.min(len)
    } as usize;
    let limit = params::int(req, "limit");
    let take = if limit > 0 {
        limit.min(len) as usize
    } else {
        list.len()
    };
    let page: Vec<Value> = list
        .into_iter()
        .skip(start)
        .take(take)
        .map(Value::Object)
        .collect();
    Ok(Step::Reply(super::json(&Value::Array(page))))
}

/// The torrent named by the `hash` parameter: missing → 400, unknown or malformed → 404.
pub fn one<'v>(req: &ApiRequest, view: &'v View) -> Result<&'v TorrentView, Fail> {
    let raw = params::required(req, "hash")?;
    parse_hash(raw)
        .and_then(|h| view.torrent(&h))
        .ok_or_else(Fail::not_found)
}

/// `torrents/properties`.
pub fn properties(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let t = one(req, view)?;
    let s = &t.snapshot;
    let totals = s.totals();
    let hash = t.info_hash.to_hex();
    let seeded = signed(totals.seeded.as_secs());
    let mut value = object(json!({
        "addition_date": t.added_on,
        "comment": t.comment.as_deref().unwrap_or(""),
        "completion_date": t.completion_on.unwrap_or(-1),
        "created_by": t.created_by.as_deref().unwrap_or(""),
        "creation_date": t.creation_date.unwrap_or(0),
        "dl_limit": t.down_limit.map_or(-1, signed),
        "dl_speed": rate(s.stats.down_rate),
        "dl_speed_avg": rate(s.stats.down_rate),
        "download_path": "",
        "eta": eta(t),
        "hash": hash,
        "infohash_v1": hash,
        "infohash_v2": "",
        "is_private": t.private,
        "last_seen": t.completion_on.unwrap_or(-1),
    }));
    value.extend(object(json!({
        "name": t.name,
        "nb_connections": s.stats.peers_connected,
        "nb_connections_limit": -1,
        "peers": s.stats.peers_connected,
        "peers_total": s.stats.peers_known,
        "piece_size": s.piece_len,
        "pieces_have": s.have.count_ones(),
        "pieces_num": s.pieces_total,
        "reannounce": 0,
        "save_path": t.save_path.to_string_lossy(),
        "seeding_time": seeded,
        "seeds": 0,
        "seeds_total": 0,
        "share_ratio": s.ratio(),
        "time_elapsed": seeded,
        "total_downloaded": signed(totals.downloaded),
        "total_downloaded_session": signed(s.stats.downloaded),
        "total_size": signed(s.total_bytes),
        "total_uploaded": signed(totals.uploaded),
        "total_uploaded_session": signed(s.stats.uploaded),
        "total_wasted": signed(s.stats.wasted),
        "up_limit": t.up_limit.map_or(-1, signed),
        "up_speed": rate(s.stats.up_rate),
        "up_speed_avg": rate(s.stats.up_rate),
    })));
    Ok(Step::Reply(super::json(&Value::Object(value))))
}

/// Bytes of `[start, start+len)` inside verified pieces.
fn verified_in(t: &TorrentView, start: u64, len: u64) -> u64 {
    let s = &t.snapshot;
    let plen = u64::from(s.piece_len);
    if plen == 0 || len == 0 {
        return 0;
    }
    let end = start.saturating_add(len);
    let first = start / plen;
    let last = (end - 1) / plen;
    (first..=last.min(u64::from(s.pieces_total.saturating_sub(1))))
        .filter(|&p| u32::try_from(p).is_ok_and(|p| p < s.have.len() && s.have.get(p)))
        .map(|p| {
            let (ps, pe) = (p * plen, p.saturating_add(1).saturating_mul(plen));
            pe.min(end).saturating_sub(ps.max(start))
        })
        .sum()
}

/// `torrents/files`.
pub fn files(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let t = one(req, view)?;
    let plen = u64::from(t.snapshot.piece_len).max(1);
    let avail = availability(t);
    let mut offset = 0u64;
    let list: Vec<Value> = t
        .files
        .iter()
        .enumerate()
        .map(|(index, f)| {
            let done = verified_in(t, offset, f.size);
            let first = offset / plen;
            let last = offset.saturating_add(f.size.max(1) - 1) / plen;
            offset = offset.saturating_add(f.size);
            let mut o = json!({
                "availability": avail,
                "index": index,
                "name": f.path,
                "piece_range": [first, last],
                "priority": crate::daemon::saved::number_of(f.priority),
                "progress": if f.size == 0 { 1.0 } else { done as f64 / f.size as f64 },
                "size": f.size,
            });
            // qBittorrent 4.5.2 puts `is_seed` on the first file only.
            if index == 0 {
                o["is_seed"] = Value::Bool(complete(t));
            }
            o
        })
        .collect();
    Ok(Step::Reply(super::json(&Value::Array(list))))
}

/// The keys of a `torrents/info` object, as qBittorrent 4.5.2 sends them.
pub const TORRENT_KEYS: &[&str] = &[
    "added_on",
    "amount_left",
    "auto_tmm",
    "availability",
    "category",
    "completed",
    "completion_on",
    "content_path",
    "dl_limit",
    "dlspeed",
    "download_path",
    "downloaded",
    "downloaded_session",
    "eta",
    "f_l_piece_prio",
    "force_start",
    "hash",
    "infohash_v1",
    "infohash_v2",
    "last_activity",
    "magnet_uri",
    "max_ratio",
    "max_seeding_time",
    "name",
    "num_complete",
    "num_incomplete",
    "num_leechs",
    "num_seeds",
    "priority",
    "progress",
    "ratio",
    "ratio_limit",
    "save_path",
    "seeding_time",
    "seeding_time_limit",
    "seen_complete",
    "seq_dl",
    "size",
    "state",
    "super_seeding",
    "tags",
    "time_active",
    "total_size",
    "tracker",
    "trackers_count",
    "up_limit",
    "uploaded",
    "uploaded_session",
    "upspeed",
];
