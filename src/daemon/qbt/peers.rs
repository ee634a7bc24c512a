//! `sync/torrentPeers`: one torrent's connected peers, in qBittorrent's shape (keyed by
//! `ip:port`). Every answer is a full update (`full_update: true`): a list of at most the
//! peer cap is small, and a client must accept a full update for any `rid`.

use serde_json::{json, Map, Value};

use crate::daemon::api::{ApiRequest, Step, SyncState};
use crate::daemon::model::View;

use super::{torrents, Fail};

/// `sync/torrentPeers?hash=…&rid=…`.
pub fn torrent_peers(req: &ApiRequest, view: &View, sync: &mut SyncState) -> Result<Step, Fail> {
    let t = torrents::one(req, view)?;
    let mut peers = Map::new();
    for p in t.snapshot.peers.iter() {
        let key = p.addr.to_string();
        peers.insert(
            key,
            json!({
                "client": p.client,
                "connection": "BT",
                "country": "",
                "country_code": "",
                "dl_speed": p.down_rate.round() as u64,
                "downloaded": p.downloaded,
                "files": "",
                "flags": p.flags,
                "flags_desc": flags_desc(&p.flags),
                "ip": p.addr.ip().to_string(),
                "port": p.addr.port(),
                "progress": p.progress,
                "relevance": 0.0,
                "up_speed": p.up_rate.round() as u64,
                "uploaded": p.uploaded,
            }),
        );
    }
    sync.rid = sync.rid.saturating_add(1);
    Ok(Step::Reply(super::json(&json!({
        "full_update": true,
        "peers": Value::Object(peers),
        "rid": sync.rid,
        "show_flags": true,
    }))))
}

/// qBittorrent's words for the flag letters, one a line.
fn flags_desc(flags: &str) -> String {
    flags
        .chars()
        .filter_map(|c| {
            let what = match c {
                'D' => "interested (local) and unchoked (peer)",
                'd' => "interested (local) and choked (peer)",
                'U' => "interested (peer) and unchoked (local)",
                'u' => "interested (peer) and choked (local)",
                'I' => "incoming connection",
                _ => return None,
            };
            Some(format!("{c} = {what}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::daemon::api::Method;
    use crate::daemon::model::TorrentView;
    use crate::snapshot::{PeerInfo, Snapshot};
    use crate::types::InfoHash;

    #[test]
    fn peers_in_qbittorrents_shape() {
        let peer = PeerInfo {
            addr: "127.0.0.2:6881".parse().unwrap(),
            client: "qB 4.5.2.0".into(),
            progress: 0.5,
            down_rate: 1000.4,
            up_rate: 0.0,
            downloaded: 4096,
            uploaded: 0,
            flags: "DI".into(),
        };
        let view = View {
            torrents: vec![TorrentView {
                info_hash: InfoHash([7; 20]),
                snapshot: Snapshot {
                    peers: Arc::from(vec![peer]),
                    ..Snapshot::default()
                },
                ..TorrentView::default()
            }],
            ..View::default()
        };
        let req = |hash: &str| ApiRequest {
            method: Method::Get,
            path: "sync/torrentPeers".into(),
            params: vec![("hash".into(), hash.into()), ("rid".into(), "0".into())],
            uploads: vec![],
        };
        let mut sync = SyncState::default();
        let Ok(Step::Reply(r)) = torrent_peers(&req(&"07".repeat(20)), &view, &mut sync) else {
            panic!("no reply");
        };
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let p = &v["peers"]["127.0.0.2:6881"];
        assert_eq!(p["client"], "qB 4.5.2.0");
        assert_eq!(p["dl_speed"], 1000);
        assert_eq!(p["port"], 6881);
        assert_eq!(
            p["flags_desc"],
            "D = interested (local) and unchoked (peer)\nI = incoming connection"
        );
        assert_eq!(v["full_update"], true);
        assert!(torrent_peers(&req(&"08".repeat(20)), &view, &mut sync).is_err());
    }
}
