//! `sync/maindata`: the whole state on a client's first request or a `rid` we did not
//! hand out, then only what changed since the `rid` it sends back (changed keys of
//! changed torrents, removed torrents and categories), as qBittorrent does.
//!
//! Invariant: a [`SyncState`] holds the one full state sent with its `rid`, nothing more.

use serde_json::{json, Map, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::View;

use super::{app, params, torrents, Fail};

/// How often a client should poll, in ms: qBittorrent's default `refresh_interval`.
pub const REFRESH_INTERVAL_MS: u32 = 1500;

/// The full state: what a `full_update` sends and what the next request is diffed against.
pub fn full_state(view: &View) -> Map<String, Value> {
    let mut torrents_map = Map::new();
    let mut trackers: Map<String, Value> = Map::new();
    for t in &view.torrents {
        let hash = t.info_hash.to_hex();
        let mut o = torrents::torrent_object(t);
        o.remove("hash");
        torrents_map.insert(hash.clone(), Value::Object(o));
        for url in t.trackers.iter().flatten() {
            let entry = trackers.entry(url.clone()).or_insert_with(|| json!([]));
            if let Value::Array(list) = entry {
                if !list.iter().any(|h| h.as_str() == Some(hash.as_str())) {
                    list.push(Value::String(hash.clone()));
                }
            }
        }
    }
    let mut server = app::transfer_object(view);
    let (mut all_dl, mut all_ul, mut wasted) = (0u64, 0u64, 0u64);
    for t in &view.torrents {
        let totals = t.snapshot.totals();
        all_dl = all_dl.saturating_add(totals.downloaded);
        all_ul = all_ul.saturating_add(totals.uploaded);
        wasted = wasted.saturating_add(t.snapshot.stats.wasted);
    }
    let peers: usize = view
        .torrents
        .iter()
        .map(|t| t.snapshot.stats.peers_connected)
        .sum();
    let ratio = if all_dl == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", all_ul as f64 / all_dl as f64)
    };
    let extra = json!({
        "alltime_dl": all_dl,
        "alltime_ul": all_ul,
        "average_time_queue": 0,
        // qBittorrent's "unknown": the disk is never asked from a request.
        "free_space_on_disk": -1,
        "global_ratio": ratio,
        "queued_io_jobs": 0,
        "queueing": false,
        "read_cache_hits": "0",
        "read_cache_overload": "0",
        "refresh_interval": REFRESH_INTERVAL_MS,
        "total_buffers_size": 0,
        "total_peer_connections": peers,
        "total_queued_size": 0,
        "total_wasted_session": wasted,
        "use_alt_speed_limits": false,
        "write_cache_overload": "0",
    });
    server.extend(super::object(extra));
    let mut state = Map::new();
    state.insert(
        "categories".into(),
        super::commands::categories_object(view),
    );
    state.insert("server_state".into(), Value::Object(server));
    state.insert("tags".into(), json!([]));
    state.insert("torrents".into(), Value::Object(torrents_map));
    state.insert("trackers".into(), Value::Object(trackers));
    state
}

fn object<'a>(state: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    state.get(key).and_then(Value::as_object)
}

/// Entries of `new[key]` that are new or differ from `old[key]`, the changed fields only
/// when `fields` (torrents), whole otherwise; and the names gone from it.
fn diff_map(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    key: &str,
    fields: bool,
) -> (Map<String, Value>, Vec<Value>) {
    let empty = Map::new();
    let (old, new) = (
        object(old, key).unwrap_or(&empty),
        object(new, key).unwrap_or(&empty),
    );
    let mut changed = Map::new();
    for (name, value) in new {
        match (old.get(name), value) {
            (Some(before), _) if before == value => {}
            (Some(Value::Object(before)), Value::Object(after)) if fields => {
                let delta: Map<String, Value> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                changed.insert(name.clone(), Value::Object(delta));
            }
            _ => {
                changed.insert(name.clone(), value.clone());
            }
        }
    }
    let removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .map(|name| Value::String(name.clone()))
        .collect();
    (changed, removed)
}

/// The incremental answer: only what differs from `old`.
pub fn delta(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, fields, removed_key) in [
        ("torrents", true, "torrents_removed"),
        ("categories", false, "categories_removed"),
        ("trackers", false, "trackers_removed"),
    ] {
        let (changed, removed) = diff_map(old, new, key, fields);
        if !changed.is_empty() {
            out.insert(key.into(), Value::Object(changed));
        }
        if !removed.is_empty() {
            out.insert(removed_key.into(), Value::Array(removed));
        }
    }
    let empty = Map::new();
    let before = object(old, "server_state").unwrap_or(&empty);
    let server: Map<String, Value> = object(new, "server_state")
        .unwrap_or(&empty)
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !server.is_empty() {
        out.insert("server_state".into(), Value::Object(server));
    }
    out
}

/// `sync/maindata?rid=N`.
pub fn maindata(req: &ApiRequest, view: &View, sync: &mut SyncState) -> Result<Step, Fail> {
    // A `rid` that does not parse is 0, as qBittorrent's `toInt` makes it: a full update.
    let rid = u64::try_from(params::int(req, "rid")).unwrap_or(0);
    let state = full_state(view);
    let previous = sync.last.take();
    let mut out = match previous {
        Some(Value::Object(old)) if rid != 0 && rid == sync.rid => delta(&old, &state),
        _ => {
            let mut full = state.clone();
            full.insert("full_update".into(), Value::Bool(true));
            full
        }
    };
    // Never 0: 0 is what a client sends for "everything".
    sync.rid = sync.rid.checked_add(1).unwrap_or(1);
    out.insert("rid".into(), json!(sync.rid));
    sync.last = Some(Value::Object(state));
    Ok(Step::Reply(super::json(&Value::Object(out))))
}
