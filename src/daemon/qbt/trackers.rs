//! `torrents/trackers`: qBittorrent's DHT, PeX and LSD pseudo-entries, then each
//! announce URL with what its announcer saw last (`Health::trackers`): working with the
//! peers and swarm counts of its last reply, not working with its error, or not contacted.

use serde_json::{json, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::View;
use crate::snapshot::{TrackerOutcome, TrackerState};

use super::torrents::one;
use super::Fail;

/// qBittorrent's tracker statuses (`TrackerEntry::Status`).
const NOT_CONTACTED: u8 = 1;
const WORKING: u8 = 2;
const NOT_WORKING: u8 = 4;

/// Counts qBittorrent reports; -1 is its "unknown".
struct Counts {
    peers: i64,
    seeds: i64,
    leeches: i64,
    downloaded: i64,
}

impl Counts {
    const UNKNOWN: Counts = Counts {
        peers: -1,
        seeds: -1,
        leeches: -1,
        downloaded: -1,
    };
    /// The pseudo-entries report zeros, as qBittorrent's do.
    const ZERO: Counts = Counts {
        peers: 0,
        seeds: 0,
        leeches: 0,
        downloaded: 0,
    };
}

fn tracker_entry(url: &str, status: u8, tier: i64, counts: Counts, msg: &str) -> Value {
    json!({
        "msg": msg, "num_downloaded": counts.downloaded, "num_leeches": counts.leeches,
        "num_peers": counts.peers, "num_seeds": counts.seeds,
        "status": status, "tier": tier, "url": url,
    })
}

/// One announce URL's entry from what its announcer saw last (`None`: never announced to
/// in this run, or the torrent is paused).
fn announce_entry(url: &str, tier: i64, seen: Option<&TrackerState>) -> Value {
    let count = |n: Option<u32>| n.map_or(-1, i64::from);
    match seen.map(|t| &t.outcome) {
        Some(TrackerOutcome::Answered {
            peers,
            seeds,
            leechers,
        }) => {
            let counts = Counts {
                peers: i64::try_from(*peers).unwrap_or(i64::MAX),
                seeds: count(*seeds),
                leeches: count(*leechers),
                downloaded: -1,
            };
            tracker_entry(url, WORKING, tier, counts, "")
        }
        Some(TrackerOutcome::Failed(why)) => {
            tracker_entry(url, NOT_WORKING, tier, Counts::UNKNOWN, why)
        }
        Some(TrackerOutcome::Pending) | None => {
            tracker_entry(url, NOT_CONTACTED, tier, Counts::UNKNOWN, "")
        }
    }
}

/// `torrents/trackers`: the DHT, PeX and LSD pseudo-entries, then each announce URL in
/// tier order. The swarm counts are the tracker's own (`complete`, `incomplete`), -1
/// when it did not give them; `num_downloaded` is never known (announce replies do not
/// carry it).
pub fn trackers(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let t = one(req, view)?;
    let private_msg = if t.private {
        "This torrent is private"
    } else {
        ""
    };
    let dht = if view.dht_nodes > 0 && !t.private {
        WORKING
    } else {
        0
    };
    let pex = if t.private { 0 } else { WORKING };
    let mut list = vec![
        tracker_entry("** [DHT] **", dht, -1, Counts::ZERO, private_msg),
        tracker_entry("** [PeX] **", pex, -1, Counts::ZERO, private_msg),
        tracker_entry("** [LSD] **", 0, -1, Counts::ZERO, private_msg),
    ];
    let health = &t.snapshot.health.trackers;
    for (tier, urls) in t.trackers.iter().enumerate() {
        for url in urls {
            let seen = if t.paused {
                None
            } else {
                health.iter().find(|h| h.url == *url)
            };
            list.push(announce_entry(url, tier as i64, seen));
        }
    }
    Ok(Step::Reply(super::json(&Value::Array(list))))
}
