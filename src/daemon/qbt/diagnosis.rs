//! `swarm/diagnosis?hash=…`: one torrent's diagnosis, swarm's own endpoint (qBittorrent
//! has none): the doctor's one-sentence cause, whether the torrent is stalled, and one
//! finding per topic. `swarm/stalled`: the stalled torrents and their causes, for the
//! page's list (qBittorrent's own objects keep their key sets). Read from the [`View`]
//! alone, like every other read.

use serde_json::{json, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::{TorrentView, View};
use crate::doctor;

use super::{torrents, Fail};

/// `{"hash", "cause", "stalled", "findings": [{"severity", "topic", "text"}]}`; an
/// unknown or malformed hash is 404, a missing one 400 (as qBittorrent's reads).
pub fn diagnosis(req: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let t = torrents::one(req, view)?;
    let d = diagnose(view, t);
    let findings: Vec<Value> = d
        .findings
        .iter()
        .map(|f| json!({"severity": f.severity.word(), "topic": f.topic, "text": f.text}))
        .collect();
    Ok(Step::Reply(super::json(&json!({
        "hash": t.info_hash.to_hex(),
        "cause": d.cause,
        "stalled": t.stalled,
        "findings": findings,
    }))))
}

/// `{"<hash>": "<cause>", …}` for every stalled torrent.
pub fn stalled(_: &ApiRequest, view: &View, _: &mut SyncState) -> Result<Step, Fail> {
    let map: serde_json::Map<String, Value> = view
        .torrents
        .iter()
        .filter(|t| t.stalled)
        .map(|t| (t.info_hash.to_hex(), Value::from(diagnose(view, t).cause)))
        .collect();
    Ok(Step::Reply(super::json(&Value::Object(map))))
}

fn diagnose(view: &View, t: &TorrentView) -> doctor::Diagnosis {
    doctor::diagnose(&doctor::facts(
        &t.snapshot,
        &view.facts,
        t.disk_error.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::api::Method;
    use crate::snapshot::{Phase, Snapshot, TrackerOutcome, TrackerState};
    use crate::types::InfoHash;
    use std::sync::Arc;

    fn req(hash: Option<&str>) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path: "swarm/diagnosis".into(),
            params: hash
                .map(|h| vec![("hash".into(), h.into())])
                .unwrap_or_default(),
            uploads: vec![],
        }
    }

    #[test]
    fn a_torrent_whose_tracker_failed_is_diagnosed_from_the_view() {
        let mut snapshot = Snapshot {
            phase: Phase::Downloading,
            ..Snapshot::default()
        };
        snapshot.health.trackers = Arc::from(vec![TrackerState {
            url: "http://127.0.0.1:9/announce".into(),
            host: "127.0.0.1:9".into(),
            outcome: TrackerOutcome::Failed("connection refused".into()),
        }]);
        let view = View {
            torrents: vec![TorrentView {
                info_hash: InfoHash([7; 20]),
                snapshot,
                stalled: true,
                ..TorrentView::default()
            }],
            ..View::default()
        };
        let mut sync = SyncState::default();
        let Ok(Step::Reply(r)) = diagnosis(&req(Some(&"07".repeat(20))), &view, &mut sync) else {
            panic!("no reply");
        };
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["hash"], "07".repeat(20));
        assert_eq!(v["stalled"], true);
        let cause = v["cause"].as_str().unwrap();
        assert!(cause.contains("127.0.0.1:9: connection refused"), "{cause}");
        let trackers = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["topic"] == "trackers")
            .unwrap();
        assert_eq!(trackers["severity"], "fail");
        let status = |r: Result<Step, Fail>| match r {
            Err(f) => f.status,
            Ok(_) => 200,
        };
        let unknown = diagnosis(&req(Some(&"08".repeat(20))), &view, &mut sync);
        assert_eq!(status(unknown), 404);
        assert_eq!(status(diagnosis(&req(Some("zz")), &view, &mut sync)), 404);
        assert_eq!(status(diagnosis(&req(None), &view, &mut sync)), 400);

        let Ok(Step::Reply(r)) = stalled(&req(None), &view, &mut sync) else {
            panic!("no reply");
        };
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(v["07".repeat(20)], cause);
    }
}
