//! One run of one torrent: open its files and decide what is verified (`startup.rs`:
//! resume data or a recheck), then run the store task, the engine's driver, the announcer and the resume
//! writer until it completes or is stopped; then flush, record and report.
//!
//! It owns everything it starts and ends all of it before returning: a stopped or failed
//! torrent leaves no task behind, and its last resume record covers every piece written.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::resume::{self, Recorder};
use super::{magnet, plan, startup, Content, Mode, Shared, Summary, TorrentError, TorrentSpec};
use crate::engine::{Engine, Event, PeerSource};
use crate::metainfo::Metainfo;
use crate::net::conn::{ConnCtx, Content as ConnContent, Incoming};
use crate::net::driver::{Control, Driver, Inputs as DriverInputs, Outcome};
use crate::net::limit::Limits as RateCaps;
use crate::selection::{self, Priority, Wanted};
use crate::snapshot::{FileSize, Limits, Phase, Snapshot, Totals};
use crate::store::{self, StoreConfig};
use crate::tracker::announcer::{self, AnnouncerConfig};
use crate::tracker::client;
use crate::types::InfoHash;

/// How long the store may take to flush what it holds when a run ends.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// What reaches a run from the session: connections routed to it, and control messages
/// (peers found for it). The run keeps a sender of its own control queue for its announcer.
pub(super) struct Inputs {
    pub incoming: mpsc::Receiver<Box<Incoming>>,
    pub control: mpsc::Sender<Control>,
    pub control_rx: mpsc::Receiver<Control>,
    /// The session's DHT node, when it runs one.
    pub dht: Option<DhtLink>,
}

/// The session's DHT node as a run sees it (BEP 5 `Port`): our node's UDP port, sent to
/// peers that set the DHT bit, and where the nodes peers name in theirs go.
pub(super) struct DhtLink {
    pub port: u16,
    pub nodes: mpsc::Sender<std::net::SocketAddr>,
}

/// Runs the torrent until it completes (fetch), or until `stop` turns true. A magnet
/// first fetches its metadata on the connections it then downloads on.
pub(super) async fn run(
    shared: Arc<Shared>,
    spec: Arc<TorrentSpec>,
    snapshot: watch::Sender<Snapshot>,
    inputs: Inputs,
    mut stop: watch::Receiver<bool>,
) -> Result<Summary, TorrentError> {
    let mut announcer = None;
    let result = run_with(&shared, &spec, &snapshot, inputs, &mut stop, &mut announcer).await;
    // Early ends (stopped while fetching or checking, an error) still say `stopped`.
    if let Some(a) = announcer {
        Box::pin(a.stop(shared.cfg.stop_announce_timeout)).await;
    }
    result
}

async fn run_with(
    shared: &Arc<Shared>,
    spec: &Arc<TorrentSpec>,
    snapshot: &watch::Sender<Snapshot>,
    inputs: Inputs,
    stop: &mut watch::Receiver<bool>,
    announcer: &mut Option<Announcing>,
) -> Result<Summary, TorrentError> {
    let Inputs {
        incoming,
        control: control_tx,
        control_rx,
        dht,
    } = inputs;
    // A private torrent never uses the DHT (a magnet not yet fetched counts as public).
    let dht = dht.filter(|_| !spec.content.meta().is_some_and(|m| m.private));
    let dht_port = dht.as_ref().map(|d| d.port);
    let started = Instant::now();
    let seed = matches!(spec.mode, Mode::Seed | Mode::Fetch { seed: true });
    let (events_tx, events_rx) = mpsc::channel(1024);
    let ctx = Arc::new(ConnCtx {
        info_hash: spec.content.info_hash(),
        our_id: shared.peer_id,
        content: OnceLock::new(),
        events: events_tx,
        connect_timeout: shared.cfg.connect_timeout,
        handshake_timeout: shared.cfg.handshake_timeout,
        idle_timeout: shared.cfg.peer_idle_timeout,
        keepalive: shared.cfg.keepalive_interval,
        local_addr: Some(shared.cfg.bind),
        up_limit: RateCaps {
            session: shared.up_limit.clone(),
            torrent: Some(spec.rates.clone()),
            up: true,
        },
        down_limit: RateCaps {
            session: shared.down_limit.clone(),
            torrent: Some(spec.rates.clone()),
            up: false,
        },
        dht: dht.is_some(),
        encryption: shared.cfg.encryption,
        dial_memory: Default::default(),
    });
    let inputs = DriverInputs {
        events: events_rx,
        incoming,
        control: control_rx,
        dht_nodes: dht.map(|d| d.nodes),
    };
    let mut driver = Driver::new(ctx.clone(), inputs, snapshot.clone(), seed);
    let meta = match (&spec.content, spec.content.meta()) {
        (_, Some(meta)) => meta,
        (Content::Torrent(meta), None) => meta.clone(),
        (Content::Magnet(source), None) => {
            let fetched = Box::pin(magnet::fetch(
                shared,
                spec,
                source,
                snapshot,
                &mut driver,
                control_tx.clone(),
                stop,
                announcer,
                dht_port,
            ))
            .await?;
            match fetched {
                Some(meta) => meta,
                None => {
                    let path = spec.dir.join(spec.content.name());
                    return Ok(stopped_while_checking(started, path, None));
                }
            }
        }
    };
    let layout = meta.layout.clone();
    // A magnet's selection is judged here, once its files are known.
    let (files, selected) = match &spec.priorities {
        Some(p) if p.len() == meta.files.len() => {
            (p.to_vec(), p.iter().any(|p| *p != Priority::Normal))
        }
        _ => (
            spec.selection.apply(&selection::torrent_paths(&meta))?,
            !spec.selection.is_all(),
        ),
    };
    let wanted = selected.then(|| Wanted::of(&layout, &files));
    if let Some(w) = wanted {
        tracing::info!(
            files = w.files,
            of = w.of_files,
            bytes = w.bytes,
            "file selection"
        );
    }
    snapshot.send_modify(|s| {
        *s = Snapshot {
            name: meta.name.clone(),
            phase: Phase::Checking,
            total_bytes: layout.total_len(),
            pieces_total: layout.num_pieces(),
            listen_port: Some(shared.port),
            save_path: spec.dir.join(&meta.name).display().to_string(),
            piece_len: layout.piece_len(),
            files: display_files(&meta, &files),
            selection: wanted,
            limits: Limits {
                seed_ratio: spec.cfg.seed_ratio,
                seed_time: spec.cfg.seed_time,
                max_down_rate: shared.cfg.max_download_rate,
                max_up_rate: shared.cfg.max_upload_rate,
            },
            // A magnet's tracker figures stay (its announcer goes on).
            trackers_total: s.trackers_total,
            trackers_ok: s.trackers_ok,
            tracker_error: s.tracker_error.take(),
            tracker_status: s.tracker_status.take(),
            health: std::mem::take(&mut s.health),
            private: meta.private,
            ..Snapshot::default()
        }
    });
    // The phases' futures are boxed (here, the magnet fetch, the recheck, the run, the
    // record writes): the run's own state machine lives as long as the torrent, and
    // would otherwise be as large as the largest of them, for every torrent all along.
    let (storage, start) = Box::pin(startup::open(shared, spec, &meta, &files)).await?;
    let storage = Arc::new(storage);
    let hashes = Arc::new(meta.piece_hashes.clone());
    let Some((have, before, trusted)) = Box::pin(startup::verified_pieces(
        shared, &storage, &hashes, start, snapshot, stop,
    ))
    .await?
    else {
        let path = spec.dir.join(&meta.name);
        return Ok(stopped_while_checking(started, path, Some(meta)));
    };
    snapshot.send_modify(|s| s.before = before);
    tracing::info!(
        pieces = have.count_ones(),
        of = have.len(),
        complete = have.is_full(),
        "ready"
    );
    let resumed_bytes: u64 = have.iter_ones().map(|p| layout.piece_size(p) as u64).sum();
    snapshot.send_modify(|s| s.resumed_bytes = resumed_bytes);
    if spec.mode == Mode::Seed && !have.is_full() {
        let bad = (0..have.len()).find(|&p| !have.get(p)).unwrap_or(0);
        return Err(TorrentError::Incomplete {
            dir: spec.dir.clone(),
            have: have.count_ones(),
            total: have.len(),
            first_bad: storage.files_of_piece(bad),
        });
    }
    let recorder = shared
        .state
        .as_ref()
        .map(|state| Arc::new(Recorder::new(state, &meta, storage.clone())));
    if let (Some(r), false, false) = (&recorder, trusted, have.is_clear()) {
        // What the check found is worth remembering at once: the next start skips it.
        // (Nothing found costs nothing to find again.)
        Box::pin(r.write_async(have.clone(), before)).await;
    }
    storage.close_files();

    let trackers = plan::tracker_tiers(&meta, &spec.sources);
    let mut cfg = spec.cfg.clone();
    cfg.private = meta.private;
    cfg.listen_port = Some(shared.port);
    // A magnet may turn out private only now: no `Port` from here on.
    cfg.dht_port = dht_port.filter(|_| !meta.private);
    let magnet_peers = match &spec.content {
        Content::Magnet(m) => m.link.peers.clone(),
        Content::Torrent(_) => Vec::new(),
    };
    cfg.give_up_after = plan::give_up_after(
        spec.mode,
        &spec.sources,
        !magnet_peers.is_empty(),
        !trackers.is_empty(),
    );

    let (store_tx, store_rx) = mpsc::channel(1024);
    let store_cfg = StoreConfig {
        max_buffer: Engine::store_budget(&cfg, &layout),
        budget_cap: cfg.max_buffer_cap,
        hash_threads: shared.cfg.hash_threads,
        pool: Some(shared.hash_pool.clone()),
    };
    let (store, store_task) =
        store::spawn(storage.clone(), hashes, have.clone(), store_cfg, store_tx);
    // Connections decode against the torrent from now on (a magnet's were already open).
    let _ = ctx.content.set(ConnContent {
        num_pieces: layout.num_pieces(),
        store: store.clone(),
    });
    drop(ctx);
    let info = meta.info_bytes.clone();
    // Piece priorities matter with a selection, or when the order is not rarest-first.
    let prioritise = selected || spec.cfg.sequential || spec.cfg.first_last;
    driver.begin_download(
        |phase| {
            let now = Instant::now();
            let mut engine = match phase {
                Some(phase) => phase.into_engine(now, cfg, layout.clone(), have, info),
                None => {
                    let mut engine = Engine::new(cfg, layout.clone(), have, now);
                    engine.set_info(info);
                    engine
                }
            };
            engine.carry_over(before);
            if prioritise {
                engine.set_file_priorities(now, &files);
            }
            if !spec.sources.peers.is_empty() {
                let addrs = spec.sources.peers.clone();
                let source = PeerSource::Manual;
                engine.handle(now, Event::AddPeers { addrs, source });
            }
            if !magnet_peers.is_empty() {
                let addrs = magnet_peers.clone();
                let source = PeerSource::Magnet;
                engine.handle(now, Event::AddPeers { addrs, source });
            }
            engine
        },
        store,
        store_rx,
    );
    if announcer.is_none() && !trackers.is_empty() {
        *announcer = Some(Announcing::start(
            announcer_config(shared, meta.info_hash, trackers),
            snapshot,
            control_tx,
        ));
    }
    let (writer_stop, writer_stop_rx) = watch::channel(false);
    let writer = recorder.clone().map(|r| {
        let task = resume::keep_writing(
            r,
            shared.cfg.resume_interval,
            snapshot.subscribe(),
            writer_stop_rx,
        );
        tokio::spawn(task.in_current_span())
    });
    let outcome = Box::pin(driver.run(stop)).await;
    // Every store handle goes with the driver and its connections.
    drop(driver);

    if let Some(a) = announcer.take() {
        Box::pin(a.stop(shared.cfg.stop_announce_timeout)).await;
    }
    let _ = writer_stop.send(true);
    if let Some(w) = writer {
        let _ = w.await;
    }
    // Every store handle is gone with the driver and its connections: the store task
    // finishes the pieces it is hashing or writing, then returns what is on disk.
    let on_disk = match tokio::time::timeout(FLUSH_TIMEOUT, store_task).await {
        Ok(Ok(have)) => Some(have),
        Ok(Err(e)) => return Err(TorrentError::Task(e)),
        Err(_) => {
            tracing::warn!("store did not finish flushing within 30 s");
            None
        }
    };
    let (mut stats, seeded, totals) = {
        let s = snapshot.borrow();
        (s.stats.clone(), s.seeded, s.totals())
    };
    // The summary says what is on disk now, as the resume record will: pieces the store
    // finished during the flush count too (the last snapshot was taken before it).
    if let Some(have) = &on_disk {
        stats.pieces_have = have.count_ones();
        stats.verified_bytes = have
            .iter_ones()
            .map(|p| u64::from(layout.piece_size(p)))
            .sum();
    }
    let on_disk_have = on_disk.clone();
    if let (Some(r), Some(have)) = (&recorder, on_disk) {
        Box::pin(r.write_async(have, totals)).await;
    }
    let summary = |complete, stopped| Summary {
        selection: wanted,
        seeded,
        stats: stats.clone(),
        before,
        resumed_bytes,
        elapsed: started.elapsed(),
        complete,
        stopped,
        path: spec.dir.join(&meta.name),
        meta: Some(meta.clone()),
    };
    match outcome {
        Outcome::Complete => Ok(summary(true, false)),
        // (A second run downloads: it never ends with the metadata.)
        Outcome::Stopped | Outcome::Metadata(_) => {
            let complete = match &on_disk_have {
                Some(have) => selection::piece_priorities(&layout, &files)
                    .iter()
                    .enumerate()
                    .all(|(p, prio)| *prio == Priority::Skip || have.get(p as u32)),
                None => stats.verified_bytes == layout.total_len(),
            };
            Ok(summary(complete, true))
        }
        Outcome::GiveUp(reason) => Err(TorrentError::GaveUp(reason)),
        Outcome::Fatal(e) => Err(TorrentError::Store(e)),
    }
}

/// A multi-file torrent's files for the display's per-file lines (none for one file).
fn display_files(meta: &crate::metainfo::Metainfo, prios: &[Priority]) -> Arc<[FileSize]> {
    if !meta.multi_file {
        return Arc::from([]);
    }
    let files = meta.files.iter().zip(prios).map(|(f, prio)| {
        // The torrent's name is the first component; the display shows it on its own line.
        let rel = f.path.strip_prefix(&meta.name).unwrap_or(&f.path);
        FileSize {
            path: rel.display().to_string(),
            len: f.length,
            wanted: *prio != Priority::Skip,
        }
    });
    files.collect()
}

fn stopped_while_checking(started: Instant, path: PathBuf, meta: Option<Arc<Metainfo>>) -> Summary {
    Summary {
        meta,
        stats: Default::default(),
        before: Totals::default(),
        resumed_bytes: 0,
        elapsed: started.elapsed(),
        complete: false,
        stopped: true,
        seeded: None,
        path,
        selection: None,
    }
}

/// How a torrent announces: to `tiers`, as the session's peer id and port.
pub(super) fn announcer_config(
    shared: &Shared,
    info_hash: InfoHash,
    tiers: Vec<Vec<String>>,
) -> AnnouncerConfig {
    AnnouncerConfig {
        info_hash,
        peer_id: shared.peer_id,
        port: shared.announce_port.clone(),
        tiers,
        numwant: announcer::DEFAULT_NUMWANT,
        key: rand::random(),
        udp_retry_base: client::UDP_RETRY_BASE,
        udp_max_tries: client::UDP_MAX_TRIES,
        stop_timeout: shared.cfg.stop_announce_timeout,
        local_addr: Some(shared.cfg.bind),
    }
}

/// The announcer task and its stop switch.
pub(super) struct Announcing {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Announcing {
    pub(super) fn start(
        cfg: AnnouncerConfig,
        snapshot: &watch::Sender<Snapshot>,
        control: mpsc::Sender<Control>,
    ) -> Announcing {
        let (stop, stop_rx) = watch::channel(false);
        let (peers_tx, mut peers_rx) = mpsc::channel::<Vec<std::net::SocketAddr>>(16);
        let task = tokio::spawn(
            announcer::run(cfg, snapshot.clone(), peers_tx, stop_rx).in_current_span(),
        );
        // Tracker peers join the driver's control queue.
        tokio::spawn(async move {
            while let Some(addrs) = peers_rx.recv().await {
                let source = PeerSource::Tracker;
                if control
                    .send(Control::AddPeers { addrs, source })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Announcing { stop, task }
    }

    /// Tells the trackers we are leaving (`completed` first if it is still owed).
    async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(limit + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("trackers did not acknowledge stopping in time");
        }
    }
}
