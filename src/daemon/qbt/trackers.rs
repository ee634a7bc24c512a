//! `torrents/trackers`: qBittorrent's DHT, PeX and LSD pseudo-entries, then each
//! announce URL with what swarm knows of it (an aggregate: how many answered, the last
//! error).

use serde_json::{json, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::View;

use super::torrents::one;
use super::Fail;

fn tracker_entry(url: &str, status: u8, tier: i64, known: bool, msg: &str) -> Value {
    let n = if known { 0 } else { -1 };
    json!({
        "msg": msg, "num_downloaded": n, "num_leeches": n, "num_peers": n, "num_seeds": n,
        "status": status, "tier": tier, "url": url,
    })
}

/// `torrents/trackers`: the DHT, PeX and LSD pseudo-entries, then each announce URL.
/// swarm knows how many trackers answered and the last error, not per-tracker counts:
/// the counts are -1 (qBittorrent's "unknown"), a tracker named by the last error is
/// "not working" (4), the others "working" (2) once any answered, else "not contacted".
pub fn trackers(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let t = one(req, view)?;
    let s = &t.snapshot;
    let private_msg = if t.private {
        "This torrent is private"
    } else {
        ""
    };
    let dht = if view.dht_nodes > 0 && !t.private {
        2
    } else {
        0
    };
    let pex = if t.private { 0 } else { 2 };
    let mut list = vec![
        tracker_entry("** [DHT] **", dht, -1, true, private_msg),
        tracker_entry("** [PeX] **", pex, -1, true, private_msg),
        tracker_entry("** [LSD] **", 0, -1, true, private_msg),
    ];
    let failing_host = s
        .tracker_status
        .as_deref()
        .and_then(|m| m.split_once(": ").map(|(host, _)| host));
    for (tier, urls) in t.trackers.iter().enumerate() {
        for url in urls {
            let failing = failing_host.is_some_and(|h| host_of(url) == h);
            let (status, msg) = if t.paused {
                (1, "")
            } else if failing {
                (4, s.tracker_status.as_deref().unwrap_or(""))
            } else if s.trackers_ok > 0 {
                (2, "")
            } else {
                (1, "")
            };
            list.push(tracker_entry(url, status, tier as i64, false, msg));
        }
    }
    Ok(Step::Reply(super::json(&Value::Array(list))))
}

/// The host of an announce URL (`http://host:port/path` → `host`).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}
