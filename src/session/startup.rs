//! What a run finds on disk before it downloads: the torrent's files opened (with the
//! part file for skipped files), its resume record judged, and whatever the record does
//! not vouch for hashed on the session's hashing threads, one torrent at a time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::resume::{self, Start};
use super::{Mode, Shared, TorrentError, TorrentSpec};
use crate::metainfo::Metainfo;
use crate::selection::Priority;
use crate::snapshot::{Snapshot, Totals};
use crate::store::{self, Storage};
use crate::types::Bitfield;

/// Opens the torrent's files (creating them for a download) and reads its resume record,
/// judged against the files as they were before we touched them. Skipped files that are
/// not on disk keep their share of boundary pieces in the part file; files wanted now take
/// theirs back from it.
pub(super) async fn open(
    shared: &Shared,
    spec: &TorrentSpec,
    meta: &Arc<Metainfo>,
    prios: &[Priority],
) -> Result<(Storage, Start), TorrentError> {
    let meta = meta.clone();
    let skipped: Vec<bool> = prios.iter().map(|p| *p == Priority::Skip).collect();
    let dir = spec.dir.clone();
    let create = matches!(spec.mode, Mode::Fetch { .. });
    let state = shared.state.clone();
    let force = spec.recheck;
    let direct = shared.cfg.direct_writes;
    let job = tokio::task::spawn_blocking(move || {
        let files: Vec<(PathBuf, u64)> = meta
            .files
            .iter()
            .map(|f| (f.path.clone(), f.length))
            .collect();
        let mut storage =
            Storage::open(&dir, &files, meta.layout.clone(), create)?.with_direct_writes(direct);
        // Without a state directory there is nowhere else: skipped files' shares of
        // boundary pieces are written in place, as aria2 does.
        if let (Some(state), true) = (&state, create) {
            storage = storage.with_part_file(state.part_path(&meta.info_hash), &skipped)?;
        }
        let at_open = (storage.stamps_at_open(), storage.part_stamp_at_open());
        let start = resume::load(state.as_ref(), &meta, at_open.0, at_open.1, force);
        if create {
            let adopted = storage.adopt_parts()?;
            if !adopted.is_empty() {
                tracing::info!(files = ?adopted, "moved data of newly selected files out of the part file");
            }
        }
        Ok::<_, TorrentError>((storage, start))
    });
    job.await.map_err(TorrentError::Task)?
}

/// The pieces verified on disk, earlier runs' totals, and whether resume data was trusted.
/// `None` when stopped meanwhile.
pub(super) async fn verified_pieces(
    shared: &Shared,
    storage: &Arc<Storage>,
    hashes: &Arc<Vec<[u8; 20]>>,
    start: Start,
    snapshot: &watch::Sender<Snapshot>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<(Bitfield, Totals, bool)>, TorrentError> {
    match start {
        Start::Trusted { have, before } => {
            // Pieces written after the record was made, if any, are hashed; nothing else.
            let extra = {
                let (storage, skip) = (storage.clone(), have.clone());
                tokio::task::spawn_blocking(move || storage.pieces_with_data(&skip))
                    .await
                    .map_err(TorrentError::Task)?
            };
            tracing::info!(
                pieces = have.count_ones(),
                checking = extra.len(),
                "resume data trusted"
            );
            if extra.is_empty() {
                return Ok(Some((have, before, true)));
            }
            let Some(found) = check(shared, storage, hashes, Some(extra), snapshot, stop).await?
            else {
                return Ok(None);
            };
            let mut have = have;
            found.iter_ones().for_each(|p| {
                have.set(p);
            });
            // Not trusted as it stands: a new record with what was found is due.
            Ok(Some((have, before, false)))
        }
        Start::Recheck { why, before } => {
            tracing::info!(reason = %why, "checking all data");
            Ok(check(shared, storage, hashes, None, snapshot, stop)
                .await?
                .map(|have| (have, before, false)))
        }
    }
}

/// Re-hashes `pieces` (all when `None`) on the session's hashing threads, one torrent at a
/// time, showing progress. `None` when stopped meanwhile.
async fn check(
    shared: &Shared,
    storage: &Arc<Storage>,
    hashes: &Arc<Vec<[u8; 20]>>,
    pieces: Option<Vec<u32>>,
    snapshot: &watch::Sender<Snapshot>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Bitfield>, TorrentError> {
    let _turn = tokio::select! {
        permit = shared.checking.clone().acquire_owned() => permit.ok(),
        _ = stop.changed() => return Ok(None),
    };
    let progress = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let mut task = {
        let (storage, hashes) = (storage.clone(), hashes.clone());
        let (progress, cancel) = (progress.clone(), cancel.clone());
        let threads = shared.cfg.hash_threads;
        tokio::task::spawn_blocking(move || match pieces {
            None => store::recheck(&storage, &hashes, threads, &progress, &cancel),
            Some(p) => store::recheck_pieces(&storage, &hashes, &p, threads, &progress, &cancel),
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = &mut task => {
                let r = r.map_err(TorrentError::Task)?;
                if stopping {
                    return Ok(None);
                }
                let have = r?;
                snapshot.send_modify(|s| s.checked_bytes = s.total_bytes);
                return Ok(Some(have));
            }
            _ = tick.tick() => {
                let done = progress.load(Ordering::Relaxed);
                snapshot.send_modify(|s| s.checked_bytes = done);
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                cancel.store(true, Ordering::Relaxed);
            }
        }
    }
}
