//! The process layer: one [`Session`] per process, one torrent task per torrent.
//!
//! The session owns what every torrent shares: the TCP listener (one port for all) and the
//! handshake router, the peer id, the upload and download rate limiters, the hashing pool,
//! the recheck queue and the state directory. Each torrent owns its store task, engine
//! driver, announcer, resume writer, `watch<Snapshot>` and its own stop, so one torrent is
//! added, paused, resumed or removed while the others run.
//!
//! Ownership: the session task (`actor.rs`) is the only owner of the torrent table; the
//! [`Session`] handle talks to it with messages, never a lock. A torrent never reaches into
//! another: incoming connections reach it through the router, by info-hash.
//!
//! Files: `actor.rs` (the session task and router), `torrent.rs` (one torrent's run),
//! `plan.rs` (per-torrent policy: trackers, give-up), `resume.rs` (resume data), `lsd.rs`
//! (local peer discovery's sockets), `dht.rs` and `dht_cache.rs` (the DHT node's UDP edge
//! and its node cache), `magnet.rs` (a magnet's metadata phase).

mod actor;
mod dht;
mod dht_cache;
mod lsd;
mod magnet;
mod plan;
mod resume;
mod startup;
mod torrent;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{SessionConfig, TorrentConfig};
use crate::doctor::{Mapping, SessionFacts};
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::net::limit::RateLimiter;
use crate::portmap::{self, MappingStatus, PortMapConfig, PortMapHandle};
use crate::snapshot::{Snapshot, Stats, Totals};
use crate::state::StateDir;
use crate::store::StoreError;
use crate::types::{InfoHash, PeerId};

/// What to do with a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create missing files, download what is missing; `seed` keeps serving afterwards.
    Fetch { seed: bool },
    /// The data must already be complete; serve it until stopped.
    Seed,
}

/// Where a torrent's peers come from besides incoming connections.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Addresses to dial (`--peer`).
    pub peers: Vec<SocketAddr>,
    /// Trackers added to the torrent's own, each its own tier (`--tracker`); ignored for a
    /// private torrent (BEP 27).
    pub extra_trackers: Vec<String>,
    /// Announce to no tracker at all (`--no-trackers`).
    pub no_trackers: bool,
    /// With peers from `peers` alone, give up when none connected within this long
    /// (`None`: wait forever).
    pub peer_timeout: Option<Duration>,
}

/// What a torrent is known by: its metainfo, or a magnet link until its metadata arrives.
#[derive(Debug, Clone)]
pub enum Content {
    Torrent(Arc<Metainfo>),
    Magnet(Arc<MagnetSource>),
}

/// A torrent added by magnet link.
#[derive(Debug)]
pub struct MagnetSource {
    pub link: Magnet,
    /// Also write the fetched `.torrent` here (`--save-torrent`).
    pub save_torrent: Option<PathBuf>,
    /// The metadata once fetched: later runs of this torrent (resume after a pause) start
    /// from it instead of fetching again.
    fetched: std::sync::OnceLock<Arc<Metainfo>>,
}

impl MagnetSource {
    pub fn new(link: Magnet, save_torrent: Option<PathBuf>) -> MagnetSource {
        MagnetSource {
            link,
            save_torrent,
            fetched: std::sync::OnceLock::new(),
        }
    }

    /// A link whose metadata an earlier run fetched (kept in the state directory).
    pub fn fetched_before(
        link: Magnet,
        save_torrent: Option<PathBuf>,
        meta: Arc<Metainfo>,
    ) -> Self {
        let source = MagnetSource::new(link, save_torrent);
        let _ = source.fetched.set(meta);
        source
    }

    pub fn fetched(&self) -> Option<&Arc<Metainfo>> {
        self.fetched.get()
    }
}

impl Content {
    pub fn info_hash(&self) -> InfoHash {
        match self {
            Content::Torrent(m) => m.info_hash,
            Content::Magnet(m) => m.link.info_hash,
        }
    }

    /// The torrent's name; a magnet's `dn` (or its info-hash) until the metadata says.
    pub fn name(&self) -> String {
        match self {
            Content::Torrent(m) => m.name.clone(),
            Content::Magnet(m) => match m.fetched() {
                Some(meta) => meta.name.clone(),
                None => m
                    .link
                    .name
                    .clone()
                    .unwrap_or_else(|| m.link.info_hash.to_hex()),
            },
        }
    }

    /// The tracker tiers it names: the torrent's own, or a magnet's `tr`s (each a tier)
    /// until its metadata is known. (`--tracker` extras are the session's, not its own.)
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        match (self, self.meta()) {
            (_, Some(m)) => m.tracker_tiers(),
            (Content::Magnet(m), None) => m.link.trackers.iter().map(|t| vec![t.clone()]).collect(),
            (Content::Torrent(_), None) => Vec::new(),
        }
    }

    /// The metainfo, when known.
    pub fn meta(&self) -> Option<Arc<Metainfo>> {
        match self {
            Content::Torrent(m) => Some(m.clone()),
            Content::Magnet(m) => m.fetched().cloned(),
        }
    }
}

/// One torrent to add to a session.
#[derive(Debug, Clone)]
pub struct TorrentSpec {
    pub content: Content,
    /// The download directory (the torrent's paths are joined under it).
    pub dir: PathBuf,
    pub mode: Mode,
    pub sources: Sources,
    /// Ignore resume data and re-hash everything (`--recheck`).
    pub recheck: bool,
    /// Which files to download (all by default); applied once the files are known.
    pub selection: crate::selection::Selector,
    /// One priority per file, set by hand (the daemon's `filePrio`): when it has one entry
    /// per file of the torrent it is used instead of `selection`, and may want nothing.
    pub priorities: Option<Arc<[crate::selection::Priority]>>,
    /// The torrent's own upload and download caps, changeable while it runs (the
    /// daemon's `setUploadLimit`); unlimited by default.
    pub rates: Arc<crate::net::limit::TorrentRates>,
    pub cfg: TorrentConfig,
}

/// Why a torrent could not run, or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    #[error("storage")]
    Store(#[from] StoreError),
    #[error("data in {dir} is incomplete: {have} of {total} pieces verified (the first missing or wrong is in {first_bad})")]
    Incomplete {
        dir: PathBuf,
        have: u32,
        total: u32,
        /// The file(s) of the first piece that failed.
        first_bad: String,
    },
    #[error("{0}")]
    GaveUp(String),
    #[error("the metadata peers sent (it matches the magnet's info-hash) is not a valid torrent")]
    BadMetadata(#[source] crate::metainfo::MetainfoError),
    #[error("a background task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("file selection")]
    Selection(#[from] crate::selection::SelectionError),
}

/// Why the session could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory")]
    State(#[from] crate::state::StateError),
    #[error("torrent {0} is already in the session")]
    Duplicate(InfoHash),
    #[error("the session has stopped")]
    Gone,
}

/// How a torrent's run ended, for the summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    /// This run's figures.
    pub stats: Stats,
    /// Earlier runs' totals (from resume data).
    pub before: Totals,
    /// Bytes that were already verified on disk at start.
    pub resumed_bytes: u64,
    pub elapsed: Duration,
    pub complete: bool,
    pub stopped: bool,
    /// How long it was complete in this run (seeding time).
    pub seeded: Option<Duration>,
    /// Where the content is: the download directory joined with the torrent's name.
    pub path: PathBuf,
    /// The torrent's metainfo (a magnet's, once fetched; `None` if it stopped before).
    pub meta: Option<Arc<Metainfo>>,
    /// What a file selection wanted of it (`None`: everything); `complete` is judged on it.
    pub selection: Option<crate::selection::Wanted>,
}

/// Where a torrent is, as the session sees it.
#[derive(Debug, Clone)]
pub enum Status {
    /// Checking, downloading or seeding.
    Running,
    /// Stopped by [`Session::pause`]; [`Session::resume`] starts it again.
    Paused,
    /// Its run ended: complete, stopped (shutdown) or failed.
    Finished(Arc<Result<Summary, TorrentError>>),
    /// Taken out of the session by [`Session::remove`].
    Removed,
}

/// A torrent in the session, as seen from outside.
#[derive(Debug, Clone)]
pub struct TorrentHandle {
    pub info_hash: InfoHash,
    pub snapshot: watch::Receiver<Snapshot>,
    pub status: watch::Receiver<Status>,
}

impl TorrentHandle {
    /// Waits until the torrent's run ends (not for a pause). `None` when it was removed.
    pub async fn finished(&mut self) -> Option<Arc<Result<Summary, TorrentError>>> {
        loop {
            match &*self.status.borrow_and_update() {
                Status::Finished(r) => return Some(r.clone()),
                Status::Removed => return None,
                Status::Running | Status::Paused => {}
            }
            if self.status.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Counters of the session's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Incoming connections handed to a torrent.
    pub routed: u64,
    /// Incoming handshakes naming a torrent we do not run (or that is paused): closed.
    pub unknown_info_hash: u64,
    /// Incoming connections closed at once because their IP address already had
    /// `max_half_open_per_ip` connections in their handshake.
    pub half_open_refused: u64,
    /// Connections in their handshake closed to make room for a newcomer
    /// (`max_half_open` reached).
    pub half_open_evicted: u64,
    /// Incoming connections that sent no valid handshake in time.
    pub bad_handshakes: u64,
    /// Incoming connections from addresses that are not local (loopback, private,
    /// link-local), whatever came of them: evidence the port is reachable from outside.
    pub incoming_remote: u64,
    /// Incoming connections of the kind our `--encryption` setting refuses (plaintext
    /// under `require`, encrypted under `off`).
    pub encryption_refused: u64,
    /// Nodes in the DHT routing table (0 with the DHT off).
    pub dht_nodes: usize,
    /// DHT queries answered, and refused by the rate limits.
    pub dht_answered: u64,
    pub dht_refused: u64,
}

/// What every torrent of the session shares.
pub(crate) struct Shared {
    pub cfg: SessionConfig,
    pub peer_id: PeerId,
    pub port: u16,
    /// The port peers should dial: `port`, or the external port a router forwards to it
    /// (kept current by the port-mapping watcher; read by every announce).
    pub announce_port: Arc<AtomicU16>,
    pub up_limit: Option<Arc<RateLimiter>>,
    pub down_limit: Option<Arc<RateLimiter>>,
    /// Hashing slots of every store together.
    pub hash_pool: Arc<Semaphore>,
    /// Torrents rechecking at once.
    pub checking: Arc<Semaphore>,
    pub state: Option<StateDir>,
}

/// Requests to the session task.
enum Cmd {
    Add(
        Box<TorrentSpec>,
        oneshot::Sender<Result<TorrentHandle, SessionError>>,
    ),
    Pause(InfoHash, oneshot::Sender<bool>),
    Resume(InfoHash, oneshot::Sender<bool>),
    Remove(InfoHash, oneshot::Sender<bool>),
    Respec(InfoHash, Box<TorrentSpec>, oneshot::Sender<bool>),
    Stats(oneshot::Sender<SessionStats>),
}

/// The process's session: a handle to the session task.
pub struct Session {
    cmds: mpsc::Sender<Cmd>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    addr: SocketAddr,
    peer_id: PeerId,
    portmap: Option<PortMapHandle>,
}

/// Starts mapping `port` (TCP and UDP) and a watcher that keeps `announce_port` at the
/// external port the router grants (the listen port while none is granted).
fn start_port_mapping(port: u16, announce_port: Arc<AtomicU16>) -> PortMapHandle {
    // Stopped through the handle ([`Session::shutdown`]); this sender only has to live.
    let (keep, cancel) = watch::channel(false);
    let handle = portmap::spawn(PortMapConfig::new(port, port), cancel);
    let mut status = handle.status.clone();
    tokio::spawn(async move {
        let _keep = keep;
        loop {
            let external = status.borrow_and_update().external_tcp();
            let announced = external.map_or(port, |a| a.port());
            if announce_port.swap(announced, Ordering::Relaxed) != announced {
                tracing::info!(port = announced, "announcing the mapped port");
            }
            // Ends when the mapper does (its sender dropped).
            if status.changed().await.is_err() {
                break;
            }
        }
    });
    handle
}

impl Session {
    /// Binds the listen port, opens the state directory and starts the session task.
    pub async fn start(cfg: SessionConfig) -> Result<Session, SessionError> {
        let listener = listen(&cfg).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| SessionError::Listen {
                addr: SocketAddr::new(cfg.bind, cfg.listen_port),
                source,
            })?;
        let state = cfg.state_dir.as_deref().map(StateDir::open).transpose()?;
        let peer_id = PeerId::generate(rand::random());
        tracing::info!(port = addr.port(), "listening");
        let announce_port = Arc::new(AtomicU16::new(addr.port()));
        let portmap = cfg
            .port_mapping
            .then(|| start_port_mapping(addr.port(), announce_port.clone()));
        let shared = Arc::new(Shared {
            peer_id,
            port: addr.port(),
            announce_port,
            up_limit: cfg.max_upload_rate.map(|r| Arc::new(RateLimiter::new(r))),
            down_limit: cfg.max_download_rate.map(|r| Arc::new(RateLimiter::new(r))),
            hash_pool: Arc::new(Semaphore::new(cfg.hash_threads.max(1))),
            checking: Arc::new(Semaphore::new(cfg.max_checking.max(1))),
            state,
            cfg,
        });
        let (cmds, cmd_rx) = mpsc::channel(64);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(actor::run(shared, listener, cmd_rx, stop_rx));
        Ok(Session {
            cmds,
            stop,
            task,
            addr,
            peer_id,
            portmap,
        })
    }

    /// The port mapping's state (external address, or why it failed); `None` when port
    /// mapping is off.
    pub fn port_mapping(&self) -> Option<watch::Receiver<MappingStatus>> {
        self.portmap.as_ref().map(|p| p.status.clone())
    }

    /// The address every torrent listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Adds a torrent and starts it (checking, then downloading or seeding).
    pub async fn add(&self, spec: TorrentSpec) -> Result<TorrentHandle, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Add(Box::new(spec), tx)).await?;
        rx.await.map_err(|_| SessionError::Gone)?
    }

    /// Stops a torrent (its peers closed, resume data written, `stopped` announced) but
    /// keeps it in the session. False if there is no such running torrent.
    pub async fn pause(&self, info_hash: InfoHash) -> bool {
        self.ask(|tx| Cmd::Pause(info_hash, tx))
            .await
            .unwrap_or(false)
    }

    /// Starts a paused or finished torrent again. False if there is no such torrent.
    pub async fn resume(&self, info_hash: InfoHash) -> bool {
        self.ask(|tx| Cmd::Resume(info_hash, tx))
            .await
            .unwrap_or(false)
    }

    /// Replaces how a torrent runs (its file selection, its limits, a recheck): a running
    /// torrent stops cleanly (resume data written) and starts again with `spec`; a paused
    /// or finished one keeps `spec` for when it is resumed. The info-hash must not change.
    /// False if there is no such torrent (or `spec` is for another).
    pub async fn respec(&self, info_hash: InfoHash, spec: TorrentSpec) -> bool {
        if spec.content.info_hash() != info_hash {
            return false;
        }
        self.ask(|tx| Cmd::Respec(info_hash, Box::new(spec), tx))
            .await
            .unwrap_or(false)
    }

    /// Stops a torrent and forgets it (its resume data too; its files stay).
    pub async fn remove(&self, info_hash: InfoHash) -> bool {
        self.ask(|tx| Cmd::Remove(info_hash, tx))
            .await
            .unwrap_or(false)
    }

    pub async fn stats(&self) -> SessionStats {
        self.ask(Cmd::Stats).await.unwrap_or_default()
    }

    /// What the doctor reads of the session (DHT size, port mapping, incoming evidence,
    /// encryption refusals), refreshed every second until every receiver is dropped or
    /// the session ends.
    pub fn watch_facts(&self, dht: bool) -> watch::Receiver<SessionFacts> {
        let (tx, rx) = watch::channel(SessionFacts::default());
        let cmds = self.cmds.clone();
        let mapping = self.port_mapping();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let (reply, answer) = oneshot::channel();
                if cmds.send(Cmd::Stats(reply)).await.is_err() {
                    return;
                }
                let Ok(stats) = answer.await else { return };
                let status = mapping.as_ref().map(|m| m.borrow().clone());
                let facts = SessionFacts {
                    dht_nodes: dht.then_some(stats.dht_nodes),
                    mapping: Mapping::from_status(status.as_ref()),
                    incoming: Some(stats.incoming_remote + stats.dht_answered),
                    encryption_refused: stats.encryption_refused,
                };
                if tx.send(facts).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Stops every torrent cleanly (resume data written, `stopped` announced) and ends the
    /// session task. Each torrent's status becomes `Finished`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // The router forgets our mappings while the torrents say goodbye.
        let unmap = async {
            if let Some(p) = self.portmap {
                p.shutdown().await;
            }
        };
        let (_, ()) = tokio::join!(self.task, unmap);
    }

    async fn send(&self, cmd: Cmd) -> Result<(), SessionError> {
        self.cmds.send(cmd).await.map_err(|_| SessionError::Gone)
    }

    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(cmd(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Bind the listen port, falling back to one the OS picks when it is taken.
async fn listen(cfg: &SessionConfig) -> Result<TcpListener, SessionError> {
    let addr = SocketAddr::new(cfg.bind, cfg.listen_port);
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if cfg.port_fallback && cfg.listen_port != 0 => {
            tracing::info!(%addr, error = %e, "listen port taken; using a free one");
            TcpListener::bind(SocketAddr::new(cfg.bind, 0))
                .await
                .map_err(|source| SessionError::Listen { addr, source })
        }
        Err(source) => Err(SessionError::Listen { addr, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_magnet_names_its_trackers_before_its_metadata_is_known() {
        let link = Magnet::parse(
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\
             &tr=http%3A%2F%2Fa.example%2Fannounce&tr=udp%3A%2F%2Fb.example%3A80",
        )
        .unwrap();
        let content = Content::Magnet(Arc::new(MagnetSource::new(link, None)));
        assert_eq!(
            content.tracker_tiers(),
            [["http://a.example/announce"], ["udp://b.example:80"]]
        );
    }
}
