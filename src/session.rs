//! Wires one torrent's tasks together: storage and recheck, the store task, the listener
//! and the driver; handles stopping and the final flush. No protocol logic lives here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::engine::{Engine, Event, Stats};
use crate::metainfo::Metainfo;
use crate::net::conn::ConnCtx;
use crate::net::driver::{Control, Driver, Outcome};
use crate::net::limit::RateLimiter;
use crate::snapshot::{Phase, Snapshot};
use crate::store::{self, Storage, StoreConfig, StoreError};
use crate::tracker::announcer::{self, AnnouncerConfig};
use crate::tracker::client;
use crate::types::{Bitfield, PeerId};

/// How long `stopped` announces may take on exit (short: the user is waiting).
const STOP_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create missing files, download what is missing; `seed` keeps serving afterwards.
    Fetch { seed: bool },
    /// The data must already be complete; serve it until stopped.
    Seed,
}

/// One torrent to run.
pub struct Job {
    pub meta: Arc<Metainfo>,
    /// The download directory (the torrent's paths are joined under it).
    pub dir: PathBuf,
    pub peers: Vec<SocketAddr>,
    /// Tracker URLs by tier (empty: no trackers, peers only from `peers` and inbound).
    pub trackers: Vec<Vec<String>>,
    pub mode: Mode,
    /// Address to listen on (all interfaces unless the user says otherwise).
    pub bind: IpAddr,
    pub cfg: Config,
}

/// Why a session could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data in {dir} is incomplete: {have} of {total} pieces verified")]
    Incomplete { dir: PathBuf, have: u32, total: u32 },
    #[error("{0}")]
    GaveUp(String),
    #[error("background task failed: {0}")]
    Task(String),
}

/// How a session ended, for the summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stats: Stats,
    /// Bytes that were already verified on disk at start.
    pub resumed_bytes: u64,
    pub elapsed: Duration,
    pub complete: bool,
    pub stopped: bool,
    /// How long it was complete before the session ended (seeding time).
    pub seeded: Option<Duration>,
}

/// Run a job until it completes (fetch), or until `stop` turns true (seeding, Ctrl-C).
pub async fn run(
    job: Job,
    snapshot: watch::Sender<Snapshot>,
    mut stop: watch::Receiver<bool>,
) -> Result<Summary, SessionError> {
    let started = Instant::now();
    let meta = job.meta.clone();
    let layout = meta.layout.clone();
    let files: Vec<(PathBuf, u64)> = meta
        .files
        .iter()
        .map(|f| (f.path.clone(), f.length))
        .collect();
    snapshot.send_modify(|s| {
        s.name = meta.name.clone();
        s.phase = Phase::Checking;
        s.total_bytes = layout.total_len();
        s.pieces_total = layout.num_pieces();
    });
    let create = matches!(job.mode, Mode::Fetch { .. });
    let storage = {
        let (dir, layout) = (job.dir.clone(), layout.clone());
        let files = files.clone();
        tokio::task::spawn_blocking(move || Storage::open(&dir, &files, layout, create))
            .await
            .map_err(|e| SessionError::Task(e.to_string()))??
    };
    let storage = Arc::new(storage);
    let hashes = Arc::new(meta.piece_hashes.clone());
    let Some(have) = recheck(&storage, &hashes, &job.cfg, &snapshot, &mut stop).await? else {
        return Ok(Summary {
            stats: Stats::default(),
            resumed_bytes: 0,
            elapsed: started.elapsed(),
            complete: false,
            stopped: true,
            seeded: None,
        });
    };
    let resumed_bytes: u64 = have.iter_ones().map(|p| layout.piece_size(p) as u64).sum();
    if job.mode == Mode::Seed && !have.is_full() {
        return Err(SessionError::Incomplete {
            dir: job.dir.clone(),
            have: have.count_ones(),
            total: have.len(),
        });
    }
    let seed = matches!(job.mode, Mode::Seed | Mode::Fetch { seed: true });
    let listener = listen(job.bind, &job.cfg).await?;
    let port = listener.local_addr().ok().map(|a| a.port());
    tracing::info!(port, info_hash = %meta.info_hash, "listening");
    snapshot.send_modify(|s| s.listen_port = port);

    let (store_tx, store_rx) = mpsc::channel(1024);
    let store_cfg = StoreConfig {
        max_buffer: Engine::store_budget(&job.cfg, &layout),
        hash_threads: job.cfg.hash_threads,
    };
    let (store, store_task) =
        store::spawn(storage.clone(), hashes, have.clone(), store_cfg, store_tx);
    let (events_tx, events_rx) = mpsc::channel(1024);
    let our_id = PeerId::generate(rand::random());
    let ctx = Arc::new(ConnCtx {
        info_hash: meta.info_hash,
        our_id,
        num_pieces: layout.num_pieces(),
        events: events_tx,
        store: store.clone(),
        connect_timeout: job.cfg.connect_timeout,
        handshake_timeout: job.cfg.handshake_timeout,
        idle_timeout: job.cfg.peer_idle_timeout,
        keepalive: job.cfg.keepalive_interval,
        local_addr: Some(job.bind),
        up_limit: job
            .cfg
            .max_upload_rate
            .map(|r| Arc::new(RateLimiter::new(r))),
        down_limit: job
            .cfg
            .max_download_rate
            .map(|r| Arc::new(RateLimiter::new(r))),
    });
    let mut engine = Engine::new(job.cfg.clone(), layout.clone(), have, Instant::now());
    if !job.peers.is_empty() {
        engine.handle(Instant::now(), Event::AddPeers(job.peers.clone()));
    }
    let (control_tx, control_rx) = mpsc::channel::<Control>(16);
    let (announce_stop, announcer) = match port {
        Some(port) if !job.trackers.is_empty() => {
            let cfg = AnnouncerConfig {
                info_hash: meta.info_hash,
                peer_id: our_id,
                port,
                tiers: job.trackers.clone(),
                numwant: announcer::DEFAULT_NUMWANT,
                key: rand::random(),
                udp_retry_base: client::UDP_RETRY_BASE,
                udp_max_tries: client::UDP_MAX_TRIES,
                stop_timeout: STOP_ANNOUNCE_TIMEOUT,
                local_addr: Some(job.bind),
            };
            let (stop_tx, stop_rx) = watch::channel(false);
            let (peers_tx, mut peers_rx) = mpsc::channel::<Vec<SocketAddr>>(16);
            let task = tokio::spawn(announcer::run(cfg, snapshot.clone(), peers_tx, stop_rx));
            // Tracker peers join the driver's control queue.
            tokio::spawn(async move {
                while let Some(addrs) = peers_rx.recv().await {
                    if control_tx.send(Control::AddPeers(addrs)).await.is_err() {
                        break;
                    }
                }
            });
            (Some(stop_tx), Some(task))
        }
        _ => {
            drop(control_tx);
            (None, None)
        }
    };
    let driver = Driver {
        engine,
        ctx,
        events: events_rx,
        store,
        store_events: store_rx,
        listener: Some(listener),
        control: control_rx,
        snapshot: snapshot.clone(),
        seed,
    };
    let outcome = driver.run(stop).await;
    // Tell the trackers we are leaving (`completed` first if it is still owed).
    if let (Some(stop_tx), Some(task)) = (announce_stop, announcer) {
        let _ = stop_tx.send(true);
        let limit = STOP_ANNOUNCE_TIMEOUT + Duration::from_secs(1);
        if tokio::time::timeout(limit, task).await.is_err() {
            tracing::warn!("trackers did not acknowledge stopping in time");
        }
    }
    // Every store handle is gone with the driver and its connections: the store task
    // finishes the pieces it is hashing or writing, then ends.
    if tokio::time::timeout(Duration::from_secs(30), store_task)
        .await
        .is_err()
    {
        tracing::warn!("store did not finish flushing within 30 s");
    }
    let (stats, seeded) = {
        let s = snapshot.borrow();
        (s.stats.clone(), s.seeded)
    };
    let summary = |complete, stopped| Summary {
        seeded,
        stats: stats.clone(),
        resumed_bytes,
        elapsed: started.elapsed(),
        complete,
        stopped,
    };
    match outcome {
        Outcome::Complete => Ok(summary(true, false)),
        Outcome::Stopped => {
            let complete = stats.verified_bytes == layout.total_len();
            Ok(summary(complete, true))
        }
        Outcome::GiveUp(reason) => Err(SessionError::GaveUp(reason)),
        Outcome::Fatal(e) => Err(SessionError::Store(e)),
    }
}

/// Re-hash what is on disk (both cores), showing progress. `None` when stopped meanwhile.
async fn recheck(
    storage: &Arc<Storage>,
    hashes: &Arc<Vec<[u8; 20]>>,
    cfg: &Config,
    snapshot: &watch::Sender<Snapshot>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Bitfield>, SessionError> {
    let progress = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let mut task = {
        let (storage, hashes) = (storage.clone(), hashes.clone());
        let (progress, cancel, threads) = (progress.clone(), cancel.clone(), cfg.hash_threads);
        tokio::task::spawn_blocking(move || {
            store::recheck(&storage, &hashes, threads, &progress, &cancel)
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = &mut task => {
                let have = r.map_err(|e| SessionError::Task(e.to_string()))??;
                snapshot.send_modify(|s| s.checked_bytes = s.total_bytes);
                return Ok(if stopping { None } else { Some(have) });
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

/// Bind the listen port, falling back to one the OS picks when it is taken.
async fn listen(bind: IpAddr, cfg: &Config) -> Result<TcpListener, SessionError> {
    let addr = SocketAddr::new(bind, cfg.listen_port);
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if cfg.port_fallback && cfg.listen_port != 0 => {
            tracing::info!(%addr, error = %e, "listen port taken; using a free one");
            TcpListener::bind(SocketAddr::new(bind, 0))
                .await
                .map_err(|source| SessionError::Listen { addr, source })
        }
        Err(source) => Err(SessionError::Listen { addr, source }),
    }
}

/// The address to listen on by default: every interface, as other clients do.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
