//! Resume data of one torrent: whether a record can be trusted at start, and writing new
//! records while it runs and when it stops.
//!
//! Invariants:
//! - A record lists only pieces that were durable when it was written: the torrent's files
//!   are synced after the piece list is taken and before the record is written.
//! - A record is trusted only when it decodes strictly, names this torrent, and every file
//!   has exactly the size and mtime it recorded; anything else means a full recheck, with
//!   one log line saying why. Pieces a trusted record lacks but whose bytes exist on disk
//!   are still hashed, so nothing verified is lost and nothing unverified is trusted.
//! - Paths come from the torrent, never from the record, so a record cannot make us touch
//!   a file outside the download directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::error_chain;
use crate::metainfo::Metainfo;
use crate::snapshot::{Phase, Snapshot, Totals};
use crate::state::resume::{judge, ResumeRecord};
use crate::state::{self, StateDir};
use crate::store::{FileStamp, Storage, StoreError};
use crate::types::{Bitfield, InfoHash};

/// What to do with the data on disk at start.
pub(super) enum Start {
    /// The record describes the files as they are: these pieces are verified.
    Trusted { have: Bitfield, before: Totals },
    /// Hash everything; `why` goes into one log line.
    Recheck { why: String, before: Totals },
}

/// Reads and judges the torrent's record. `stamps` are the files (and `part` the part
/// file) as they were before anything of ours touched them. Blocking (reads a file).
pub(super) fn load(
    state: Option<&StateDir>,
    meta: &Metainfo,
    stamps: &[Option<FileStamp>],
    part: Option<FileStamp>,
    force: bool,
) -> Start {
    let recheck = |why: String, before| Start::Recheck { why, before };
    let Some(state) = state else {
        return recheck("no state directory".into(), Totals::default());
    };
    let path = state.resume_path(&meta.info_hash);
    let max = crate::state::resume::max_record_len(meta.num_pieces(), meta.files.len()) as u64;
    let bytes = match state::read_capped(&path, max) {
        Ok(Some(b)) => b,
        Ok(None) => return recheck("no resume data".into(), Totals::default()),
        Err(e) => return recheck(error_chain(&e), Totals::default()),
    };
    let record =
        match ResumeRecord::decode(&bytes, &meta.info_hash, meta.num_pieces(), meta.files.len()) {
            Ok(r) => r,
            Err(e) => return recheck(error_chain(&e), Totals::default()),
        };
    let before = Totals {
        uploaded: record.uploaded,
        downloaded: record.downloaded,
        seeded: Duration::from_secs(record.seeding_secs),
    };
    if force {
        return recheck("--recheck".into(), before);
    }
    match judge(&record, stamps, part) {
        Ok(()) => Start::Trusted {
            have: record.pieces,
            before,
        },
        Err(m) => recheck(format!("resume data is stale: {m}"), before),
    }
}

/// Writes a torrent's records.
pub(super) struct Recorder {
    path: PathBuf,
    info_hash: InfoHash,
    storage: Arc<Storage>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error("syncing the data")]
    Sync(#[source] StoreError),
    #[error("file {0} of the torrent is missing")]
    Missing(usize),
    #[error("writing the record")]
    Write(#[source] state::StateError),
}

impl Recorder {
    pub fn new(state: &StateDir, meta: &Metainfo, storage: Arc<Storage>) -> Recorder {
        Recorder {
            path: state.resume_path(&meta.info_hash),
            info_hash: meta.info_hash,
            storage,
        }
    }

    /// Syncs the files, then records `have` (taken before the sync) and `totals`.
    /// Blocking.
    pub fn write(&self, have: &Bitfield, totals: Totals) -> Result<(), WriteError> {
        self.storage.sync_all().map_err(WriteError::Sync)?;
        // A file not created yet is recorded as such; one that holds a piece in `have` and
        // is gone (deleted under us) makes the record a lie, so none is written.
        let files = self.storage.stamps();
        let part = self.storage.part_stamp();
        let layout = self.storage.layout();
        for (i, stamp) in files.iter().enumerate() {
            let holds_have = layout
                .file_pieces(i)
                .is_some_and(|mut r| r.any(|p| have.get(p)));
            // A skipped file's share of a boundary piece is in the part file instead.
            if stamp.is_none() && holds_have && !self.storage.in_part(i) {
                return Err(WriteError::Missing(i));
            }
        }
        let record = ResumeRecord {
            info_hash: self.info_hash,
            pieces: have.clone(),
            files,
            part,
            uploaded: totals.uploaded,
            downloaded: totals.downloaded,
            seeding_secs: totals.seeded.as_secs(),
        };
        state::write_atomic(&self.path, &record.encode()).map_err(WriteError::Write)?;
        tracing::debug!(pieces = have.count_ones(), "resume data written");
        Ok(())
    }

    /// [`Recorder::write`] on a blocking thread; a failure is logged, not fatal (the next
    /// start rechecks).
    pub async fn write_async(self: &Arc<Self>, have: Bitfield, totals: Totals) {
        let me = self.clone();
        let span = tracing::Span::current();
        let done = tokio::task::spawn_blocking(move || span.in_scope(|| me.write(&have, totals)));
        let done = done.await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %error_chain(&e), "resume data not written"),
            Err(e) => tracing::warn!(error = %e, "resume data not written"),
        }
    }
}

/// What a record would say, to tell whether a new one is worth writing. Seeding time
/// alone does not count: it changes every second, and a clean stop records it anyway.
fn progress_key(s: &Snapshot) -> (u32, u64, u64) {
    let t = s.totals();
    (s.have.count_ones(), t.uploaded, t.downloaded)
}

/// Writes a record every `interval` while pieces or transfer totals changed, and at once
/// when the download completes (a kill -9 right after then costs no re-hash), until `stop`.
pub(super) async fn keep_writing(
    recorder: Arc<Recorder>,
    interval: Duration,
    mut snapshot: watch::Receiver<Snapshot>,
    mut stop: watch::Receiver<bool>,
) {
    let complete = |s: &Snapshot| matches!(s.phase, Phase::Seeding | Phase::Done);
    let (mut last, mut was_complete) = {
        let s = snapshot.borrow_and_update();
        (progress_key(&s), complete(&s))
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = snapshot.changed() => {
                if r.is_err() {
                    return;
                }
                let now_complete = complete(&snapshot.borrow_and_update());
                let completed = now_complete && !was_complete;
                was_complete = now_complete;
                if !completed {
                    continue;
                }
            }
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
        let (key, have, totals) = {
            let s = snapshot.borrow();
            (progress_key(&s), s.have.clone(), s.totals())
        };
        // The engine's `have` is empty until the download starts; nothing to record then.
        if key == last || have.is_empty() {
            continue;
        }
        recorder.write_async(have, totals).await;
        last = key;
    }
}

/// Deletes a torrent's record and its part file (it left the session).
pub(super) fn forget(state: &StateDir, info_hash: &InfoHash) {
    for path in [state.resume_path(info_hash), state.part_path(info_hash)] {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not delete resume data");
            }
        }
    }
}
