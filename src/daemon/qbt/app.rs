//! `app/*` and `transfer/info`: versions, build info, preferences, session totals.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::{Command, PrefsPatch, View};

use super::{object, params, Fail, APP_VERSION, WEB_API_VERSION};

pub fn version(_: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    Ok(Step::Reply(super::text(200, APP_VERSION)))
}

pub fn webapi_version(_: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    Ok(Step::Reply(super::text(200, WEB_API_VERSION)))
}

/// qBittorrent's keys and types; swarm links none of those libraries, so each names what
/// does the job instead (tools display these, none we know of parses them).
pub fn build_info(_: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let swarm = concat!("swarm ", env!("CARGO_PKG_VERSION"));
    Ok(Step::Reply(super::json(&json!({
        "bitness": usize::BITS,
        "boost": "none",
        "libtorrent": swarm,
        "openssl": "none",
        "qt": "none",
        "zlib": "none",
    }))))
}

fn cap(limit: Option<u64>) -> i64 {
    limit.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// `app/preferences`: the fields tools read (Sonarr, Radarr, qbit_manage: save path,
/// port, limits, seeding goals, queueing), with qBittorrent's types. Limits are bytes per
/// second, 0 for unlimited, as qBittorrent 4.5.2 sends them.
pub fn preferences(_: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let p = &view.prefs;
    // Two halves: one `json!` this size exceeds the macro's recursion limit.
    let mut prefs = object(json!({
        "save_path": p.save_path.to_string_lossy(),
        "temp_path": p.save_path.to_string_lossy(),
        "temp_path_enabled": false,
        "export_dir": "",
        "export_dir_fin": "",
        "listen_port": p.listen_port,
        "random_port": false,
        "upnp": false,
        "dl_limit": cap(p.dl_limit),
        "up_limit": cap(p.up_limit),
        "alt_dl_limit": 0,
        "alt_up_limit": 0,
        "scheduler_enabled": false,
    }));
    prefs.extend(object(json!({
        "max_connec": -1,
        "max_connec_per_torrent": -1,
        "max_uploads": -1,
        "max_uploads_per_torrent": -1,
        "dht": view.dht_nodes > 0,
        "pex": true,
        "lsd": false,
        "encryption": 0,
        "anonymous_mode": false,
        "queueing_enabled": false,
        "max_active_downloads": -1,
        "max_active_torrents": -1,
        "max_active_uploads": -1,
        "dont_count_slow_torrents": false,
        "max_ratio_enabled": false,
        "max_ratio": -1,
        "max_ratio_act": 0,
        "max_seeding_time_enabled": false,
        "max_seeding_time": -1,
        "auto_tmm_enabled": false,
        "torrent_changed_tmm_enabled": false,
        "save_path_changed_tmm_enabled": false,
        "category_changed_tmm_enabled": false,
        "start_paused_enabled": false,
        "create_subfolder_enabled": true,
        "torrent_content_layout": "Original",
        "add_trackers_enabled": false,
        "add_trackers": "",
        "incomplete_files_ext": false,
        "preallocate_all": false,
        "web_ui_port": 0,
        "web_ui_username": "",
        "refresh_interval": super::sync::REFRESH_INTERVAL_MS,
        "locale": "en",
    })));
    Ok(Step::Reply(super::json(&Value::Object(prefs))))
}

fn bad() -> Fail {
    Fail::bad_request()
}

/// A limit in a preferences object: bytes per second, 0 or negative unlimited.
fn limit_field(v: &Value) -> Result<Option<u64>, Fail> {
    v.as_i64().map(params::limit).ok_or_else(bad)
}

/// `app/setPreferences`: `json` is an object; known fields become a [`PrefsPatch`],
/// others are ignored (qBittorrent ignores what it does not know). Malformed JSON or a
/// field of the wrong type is a 400 (qBittorrent 4.5.2 silently ignores malformed JSON:
/// a client that sends it learns it here instead).
pub fn set_preferences(req: &ApiRequest, _: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let raw = params::required(req, "json")?;
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(raw) else {
        return Err(bad());
    };
    let mut patch = PrefsPatch::default();
    if let Some(v) = obj.get("save_path") {
        let path = v.as_str().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        patch.save_path = Some(PathBuf::from(path));
    }
    if let Some(v) = obj.get("listen_port") {
        let port = v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(bad)?;
        patch.listen_port = Some(port);
    }
    if let Some(v) = obj.get("dl_limit") {
        patch.dl_limit = Some(limit_field(v)?);
    }
    if let Some(v) = obj.get("up_limit") {
        patch.up_limit = Some(limit_field(v)?);
    }
    if patch == PrefsPatch::default() {
        return Ok(Step::Reply(super::text(200, "")));
    }
    Ok(Step::Ask(
        Command::SetPreferences(patch),
        crate::daemon::api::ReplyKind::Empty,
    ))
}

/// The fields `transfer/info` and `sync/maindata`'s `server_state` share.
pub fn transfer_object(view: &View) -> serde_json::Map<String, Value> {
    let (mut down, mut up, mut dl_data, mut ul_data, mut peers) = (0.0, 0.0, 0u64, 0u64, 0);
    for t in &view.torrents {
        let s = &t.snapshot.stats;
        down += s.down_rate;
        up += s.up_rate;
        dl_data = dl_data.saturating_add(s.downloaded);
        ul_data = ul_data.saturating_add(s.uploaded);
        peers += s.peers_connected;
    }
    // qBittorrent says "connected" once peers reach us; we only know peers are connected.
    let status = match (view.listen_port, peers) {
        (0, _) => "disconnected",
        (_, 0) => "firewalled",
        _ => "connected",
    };
    let v = json!({
        "connection_status": status,
        "dht_nodes": view.dht_nodes,
        "dl_info_data": dl_data,
        "dl_info_speed": down.round() as i64,
        "dl_rate_limit": cap(view.prefs.dl_limit),
        "up_info_data": ul_data,
        "up_info_speed": up.round() as i64,
        "up_rate_limit": cap(view.prefs.up_limit),
    });
    object(v)
}

pub fn transfer_info(_: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    Ok(Step::Reply(super::json(&Value::Object(transfer_object(
        view,
    )))))
}
