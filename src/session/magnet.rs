//! A magnet's first phase, at the session's edge: announce the link's trackers, dial its
//! peers, run the driver's metadata phase until the info dictionary is verified, then
//! turn it into the torrent's metainfo and keep it (in the state directory, and where
//! `--save-torrent` asked). The connections stay open for the download that follows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::torrent::Announcing;
use super::{plan, MagnetSource, Shared, TorrentError, TorrentSpec};
use crate::engine::magnet::MetadataPhase;
use crate::engine::{Event, PeerSource};
use crate::metainfo::Metainfo;
use crate::net::driver::{Control, Driver, Outcome};
use crate::snapshot::{Phase, Snapshot};

/// How long resolving one `x.pe` host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches the metadata of `source` on `driver`. `Ok(None)`: stopped first.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch(
    shared: &Shared,
    spec: &TorrentSpec,
    source: &MagnetSource,
    snapshot: &watch::Sender<Snapshot>,
    driver: &mut Driver,
    control: mpsc::Sender<Control>,
    stop: &mut watch::Receiver<bool>,
    announcer: &mut Option<Announcing>,
    dht_port: Option<u16>,
) -> Result<Option<Arc<Metainfo>>, TorrentError> {
    let link = &source.link;
    snapshot.send_modify(|s| {
        *s = Snapshot {
            name: spec.content.name(),
            phase: Phase::Metadata,
            listen_port: Some(shared.port),
            save_path: spec.dir.display().to_string(),
            ..Snapshot::default()
        }
    });
    let tiers = plan::magnet_tiers(link, &spec.sources);
    let mut cfg = spec.cfg.clone();
    cfg.listen_port = Some(shared.port);
    // Not known to be private yet: a magnet's link is all we know.
    cfg.dht_port = dht_port;
    cfg.give_up_after = plan::give_up_after(
        spec.mode,
        &spec.sources,
        !link.peers.is_empty() || !link.peer_hosts.is_empty(),
        !tiers.is_empty(),
    );
    let now = Instant::now();
    let mut phase = MetadataPhase::new(cfg, link.info_hash, now);
    if !spec.sources.peers.is_empty() {
        let addrs = spec.sources.peers.clone();
        phase.handle(
            now,
            Event::AddPeers {
                addrs,
                source: PeerSource::Manual,
            },
        );
    }
    let mut addrs = link.peers.clone();
    addrs.extend(resolve(&link.peer_hosts).await);
    if !addrs.is_empty() {
        phase.handle(
            now,
            Event::AddPeers {
                addrs,
                source: PeerSource::Magnet,
            },
        );
    }
    driver.fetch_metadata(phase);
    if !tiers.is_empty() {
        let cfg = super::torrent::announcer_config(shared, link.info_hash, tiers);
        *announcer = Some(Announcing::start(cfg, snapshot, control));
    }
    tracing::info!(info_hash = %link.info_hash, "fetching metadata");
    let started = Instant::now();
    let info = match driver.run(stop).await {
        Outcome::Metadata(info) => info,
        Outcome::GiveUp(reason) => return Err(TorrentError::GaveUp(reason)),
        Outcome::Fatal(e) => return Err(TorrentError::Store(e)),
        Outcome::Stopped | Outcome::Complete => return Ok(None),
    };
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "metadata fetched"
    );
    let torrent = Metainfo::torrent_bytes(&info, &link.trackers);
    // Peak memory at the switch is a few copies of the info dict: one fewer.
    drop(info);
    // It hashes to the info-hash asked for, so a refusal here is the torrent's own fault.
    let meta = Arc::new(Metainfo::from_bytes(&torrent).map_err(TorrentError::BadMetadata)?);
    keep(shared, source, &meta, &torrent);
    let _ = source.fetched.set(meta.clone());
    Ok(Some(meta))
}

/// Saves the fetched `.torrent` in the state directory and at `--save-torrent`. A failure
/// is logged, not fatal: the download goes on, and a later start fetches again.
fn keep(shared: &Shared, source: &MagnetSource, meta: &Metainfo, torrent: &[u8]) {
    if let Some(state) = &shared.state {
        match state.save_torrent(&meta.info_hash, torrent) {
            Ok(path) => tracing::debug!(path = %path.display(), "saved the .torrent"),
            Err(e) => tracing::warn!(
                error = %crate::error::error_chain(&e),
                "could not keep the fetched .torrent in the state directory"
            ),
        }
    }
    if let Some(path) = &source.save_torrent {
        match crate::state::write_atomic(path, torrent) {
            Ok(()) => tracing::info!(path = %path.display(), "saved the .torrent"),
            Err(e) => tracing::warn!(
                error = %crate::error::error_chain(&e),
                "could not write --save-torrent"
            ),
        }
    }
}

/// `x.pe` peers given by host name, resolved (each within [`RESOLVE_TIMEOUT`]; names that
/// do not resolve are skipped with a log line).
async fn resolve(hosts: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for host in hosts {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(host.as_str())).await {
            Ok(Ok(addrs)) => out.extend(addrs),
            Ok(Err(e)) => tracing::info!(host, error = %e, "x.pe host does not resolve"),
            Err(_) => tracing::info!(host, "x.pe host did not resolve in time"),
        }
    }
    out
}
