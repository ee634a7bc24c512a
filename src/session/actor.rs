//! The session task: sole owner of the torrent table. It accepts incoming connections,
//! reads their handshakes (each in its own task, bounded in time and in number), routes each
//! to the torrent its info-hash names, and starts, pauses, resumes and removes torrents.
//!
//! Invariants:
//! - A torrent has at most one run at a time; a run's end is matched to its entry by a
//!   generation number, so a late end of an old run never touches a newer one.
//! - An incoming connection reaches a torrent only after a complete, valid handshake
//!   naming a running torrent; anything else is closed and counted.
//! - At most `max_half_open` incoming connections are in their handshake at once, at most
//!   `max_half_open_per_ip` from one address; at the cap a newcomer evicts the oldest
//!   silent one ([`HalfOpen`]), so a flood of connections that never handshake cannot keep
//!   an honest peer out. One that sends nothing within `silent_timeout` is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tracing::Instrument;

use super::dht::{self, DhtEdge};
use super::lsd::{self, LsdEdge};
use super::{Cmd, SessionError, SessionStats, Shared, Status, TorrentError, TorrentHandle};
use super::{Summary, TorrentSpec};
use crate::config::Encryption;
use crate::net::conn::{ConnError, Incoming};
use crate::net::crypt;
use crate::net::driver::Control;
use crate::net::half_open::{Admit, HalfOpen};
use crate::snapshot::Snapshot;
use crate::types::InfoHash;

/// Routed connections queued per torrent before its driver takes them; more are closed.
/// They are queued boxed: a channel allocates its first block of 32 slots when made, and
/// an `Incoming` (with its RC4 pair) is ~660 bytes, which was 21 KiB for every torrent.
const INCOMING_QUEUE: usize = 64;

/// Control messages queued per torrent run (peers found by the session for it); more are
/// dropped (the same addresses come again at the next announce).
const CONTROL_QUEUE: usize = 64;

/// Nodes from peers' `Port` messages queued for the DHT; more are dropped (one per
/// connection at most, and the DHT edge remembers those it has asked).
const DHT_NODE_QUEUE: usize = 64;

/// After a failed `accept` (e.g. out of descriptors), wait this long before the next:
/// retrying at once would spin on a listener that stays readable while the process has no
/// descriptor to give the connection; 100 ms lets closing connections free some.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

mod router;
use router::Refused;

/// What to do when a torrent's run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Publish its result as `Finished`.
    Finish,
    /// Keep it, `Paused`.
    Pause,
    /// Forget it.
    Remove,
    /// Start it again (resumed while its pause was under way).
    Restart,
}

struct Run {
    gen: u64,
    stop: watch::Sender<bool>,
    incoming: mpsc::Sender<Box<Incoming>>,
    /// Peers found for it by the session (local discovery) join its driver here.
    control: mpsc::Sender<Control>,
}

struct Entry {
    spec: Arc<TorrentSpec>,
    snapshot: watch::Sender<Snapshot>,
    status: watch::Sender<Status>,
    run: Option<Run>,
    after: After,
}

type RunEnd = (InfoHash, u64, Result<Summary, TorrentError>);

/// An incoming connection in its handshake, as the half-open table keeps it.
struct Pending {
    abort: AbortHandle,
    /// Set by its task once the peer has sent anything.
    heard: Arc<AtomicBool>,
}

struct Actor {
    shared: Arc<Shared>,
    torrents: HashMap<InfoHash, Entry>,
    runs: JoinSet<RunEnd>,
    handshakes: JoinSet<Result<Box<Incoming>, Refused>>,
    half_open: HalfOpen<tokio::task::Id, Pending>,
    next_gen: u64,
    stats: SessionStats,
    /// Local peer discovery, when on (`SessionConfig::lsd`).
    lsd: Option<LsdEdge>,
    /// The DHT node, when on (`SessionConfig::dht`).
    dht: Option<DhtEdge>,
    /// Nodes peers named in `Port` messages, from every run, for `dht` (a sender is
    /// kept so the queue never closes).
    dht_nodes: (mpsc::Sender<SocketAddr>, mpsc::Receiver<SocketAddr>),
    /// What an incoming MSE handshake names a torrent by, `HASH('req2', info-hash)`, for
    /// every torrent: rebuilt when a torrent comes or goes, shared by each handshake task.
    skeys: Arc<HashMap<[u8; 20], InfoHash>>,
}

pub(super) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut cmds: mpsc::Receiver<Cmd>,
    mut stop: watch::Receiver<bool>,
) {
    let half_open = HalfOpen::new(shared.cfg.max_half_open, shared.cfg.max_half_open_per_ip);
    let lsd = shared
        .cfg
        .lsd
        .then(|| LsdEdge::start(shared.cfg.bind, shared.port))
        .flatten();
    let cfg = &shared.cfg;
    let dht = cfg
        .dht
        .then(|| {
            DhtEdge::start(
                cfg.bind,
                shared.port,
                shared.announce_port.clone(),
                cfg.dht_nodes.clone(),
                cfg.state_dir.clone(),
            )
        })
        .flatten();
    let mut a = Actor {
        half_open,
        shared,
        torrents: HashMap::new(),
        runs: JoinSet::new(),
        handshakes: JoinSet::new(),
        next_gen: 0,
        stats: SessionStats::default(),
        lsd,
        dht,
        dht_nodes: mpsc::channel(DHT_NODE_QUEUE),
        skeys: Arc::default(),
    };
    let mut backoff: Option<tokio::time::Instant> = None;
    // Failed accepts since the last that worked.
    let mut failed_accepts: u64 = 0;
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(cmd) => a.command(cmd),
                // Every handle is gone: nobody can stop us any more, so stop now.
                None => break,
            },
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            accepted = listener.accept(), if backoff.is_none() => match accepted {
                Ok((stream, addr)) => {
                    if failed_accepts > 0 {
                        tracing::info!(failed = failed_accepts, "accepting connections again");
                        failed_accepts = 0;
                    }
                    a.accepted(stream, addr)
                }
                Err(e) => {
                    // Once per run of failures: out of descriptors can last minutes, and a
                    // line every backoff would bury everything else.
                    if failed_accepts == 0 {
                        tracing::warn!(error = %e, "accepting a connection failed; retrying");
                    }
                    failed_accepts += 1;
                    backoff = Some(tokio::time::Instant::now() + ACCEPT_BACKOFF);
                }
            },
            _ = sleep_until(backoff), if backoff.is_some() => backoff = None,
            Some(done) = a.handshakes.join_next_with_id(), if !a.handshakes.is_empty() => {
                a.handshake_done(done)
            }
            found = lsd::found(&mut a.lsd) => a.lsd_found(found),
            found = dht::found(&mut a.dht) => a.dht_found(found),
            Some(addr) = a.dht_nodes.1.recv() => {
                if let Some(dht) = &a.dht {
                    dht.add_node(addr);
                }
            }
            Some(done) = a.runs.join_next(), if !a.runs.is_empty() => {
                if let Ok(end) = done {
                    a.run_ended(end);
                }
            }
        }
    }
    drop(listener);
    a.handshakes.abort_all();
    a.shutdown().await;
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Add(spec, reply) => {
                let _ = reply.send(self.add(*spec));
            }
            Cmd::Pause(ih, reply) => {
                let _ = reply.send(self.stop_run(&ih, After::Pause));
            }
            Cmd::Resume(ih, reply) => {
                let _ = reply.send(self.resume(&ih));
            }
            Cmd::Remove(ih, reply) => {
                let found = self.torrents.contains_key(&ih);
                if found && !self.stop_run(&ih, After::Remove) {
                    self.forget(&ih);
                }
                let _ = reply.send(found);
            }
            Cmd::Respec(ih, spec, reply) => {
                let _ = reply.send(self.respec(&ih, *spec));
            }
            Cmd::Stats(reply) => {
                let mut stats = self.stats;
                if let Some(d) = self.dht.as_ref().map(DhtEdge::stats) {
                    (stats.dht_nodes, stats.dht_answered) = (d.nodes, d.answered);
                    stats.dht_refused = d.refused;
                }
                let _ = reply.send(stats);
            }
        }
    }

    fn add(&mut self, spec: TorrentSpec) -> Result<TorrentHandle, SessionError> {
        let info_hash = spec.content.info_hash();
        if self.torrents.contains_key(&info_hash) {
            return Err(SessionError::Duplicate(info_hash));
        }
        let (snapshot, snapshot_rx) = watch::channel(Snapshot {
            name: spec.content.name(),
            listen_port: Some(self.shared.port),
            ..Snapshot::default()
        });
        let (status, status_rx) = watch::channel(Status::Running);
        self.torrents.insert(
            info_hash,
            Entry {
                spec: Arc::new(spec),
                snapshot,
                status,
                run: None,
                after: After::Finish,
            },
        );
        self.torrents_changed();
        self.start(&info_hash);
        Ok(TorrentHandle {
            info_hash,
            snapshot: snapshot_rx,
            status: status_rx,
        })
    }

    /// Starts a new run of a torrent that has none.
    fn start(&mut self, info_hash: &InfoHash) {
        let Some(entry) = self.torrents.get_mut(info_hash) else {
            return;
        };
        if entry.run.is_some() {
            return;
        }
        self.next_gen += 1;
        let gen = self.next_gen;
        let (stop, stop_rx) = watch::channel(false);
        let (incoming, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let span = tracing::info_span!("torrent", name = %entry.spec.content.name());
        // Boxed: the task's block would otherwise hold the run's whole state machine twice
        // (captured, then pinned for the await), for every torrent.
        let run = Box::pin(super::torrent::run(
            self.shared.clone(),
            entry.spec.clone(),
            entry.snapshot.clone(),
            super::torrent::Inputs {
                incoming: incoming_rx,
                control: control.clone(),
                control_rx,
                dht: self.dht.as_ref().map(|_| super::torrent::DhtLink {
                    port: self.shared.port,
                    nodes: self.dht_nodes.0.clone(),
                }),
            },
            stop_rx,
        ));
        let ih = *info_hash;
        self.runs
            .spawn(async move { (ih, gen, run.await) }.instrument(span));
        // A recheck is for this run: a later one (after a pause) trusts its resume data.
        if entry.spec.recheck {
            let mut spec = (*entry.spec).clone();
            spec.recheck = false;
            entry.spec = Arc::new(spec);
        }
        entry.run = Some(Run {
            gen,
            stop,
            incoming,
            control,
        });
        entry.after = After::Finish;
        entry.status.send_replace(Status::Running);
        // A magnet not yet fetched counts as public: its link is all we know.
        let private = entry.spec.content.meta().is_some_and(|m| m.private);
        if let Some(lsd) = &self.lsd {
            lsd.join(ih, private);
        }
        if let Some(dht) = &self.dht {
            dht.join(ih, private);
        }
    }

    /// Asks a torrent's run to stop, with what to do once it has. False if it has no run.
    fn stop_run(&mut self, info_hash: &InfoHash, after: After) -> bool {
        let Some(entry) = self.torrents.get_mut(info_hash) else {
            return false;
        };
        let Some(run) = &entry.run else {
            return false;
        };
        let _ = run.stop.send(true);
        entry.after = after;
        true
    }

    fn respec(&mut self, info_hash: &InfoHash, spec: TorrentSpec) -> bool {
        let Some(entry) = self.torrents.get_mut(info_hash) else {
            return false;
        };
        if entry.after == After::Remove {
            return false;
        }
        entry.spec = Arc::new(spec);
        match entry.after {
            // Running (or pausing but resumed since): run again with the new spec.
            After::Finish | After::Restart if entry.run.is_some() => {
                self.stop_run(info_hash, After::Restart);
            }
            // Paused, pausing, or finished: the spec waits for `resume`.
            _ => {}
        }
        true
    }

    fn resume(&mut self, info_hash: &InfoHash) -> bool {
        match self.torrents.get_mut(info_hash) {
            None => false,
            Some(entry) if entry.run.is_some() => {
                // Still pausing: run again once it has stopped.
                if entry.after == After::Pause {
                    entry.after = After::Restart;
                }
                entry.after != After::Remove
            }
            Some(_) => {
                self.start(info_hash);
                true
            }
        }
    }

    fn run_ended(&mut self, (info_hash, gen, result): RunEnd) {
        let Some(entry) = self.torrents.get_mut(&info_hash) else {
            return;
        };
        if entry.run.as_ref().map(|r| r.gen) != Some(gen) {
            return;
        }
        entry.run = None;
        if let Some(lsd) = &self.lsd {
            lsd.leave(info_hash);
        }
        if let Some(dht) = &self.dht {
            dht.leave(info_hash);
        }
        match entry.after {
            After::Finish => {
                if let Err(e) = &result {
                    tracing::info!(
                        name = %entry.spec.content.name(),
                        error = %crate::error::error_chain(e),
                        "torrent stopped"
                    );
                }
                entry
                    .status
                    .send_replace(Status::Finished(Arc::new(result)));
            }
            After::Pause => match result {
                Ok(_) => {
                    entry.status.send_replace(Status::Paused);
                }
                Err(e) => {
                    entry
                        .status
                        .send_replace(Status::Finished(Arc::new(Err(e))));
                }
            },
            After::Remove => self.forget(&info_hash),
            After::Restart => self.start(&info_hash),
        }
    }

    /// Drops a torrent that has no run, and its resume data.
    fn forget(&mut self, info_hash: &InfoHash) {
        if let Some(entry) = self.torrents.remove(info_hash) {
            self.torrents_changed();
            entry.status.send_replace(Status::Removed);
            if let Some(state) = &self.shared.state {
                super::resume::forget(state, info_hash);
            }
        }
    }

    /// The torrent set changed: the MSE lookup table follows.
    fn torrents_changed(&mut self) {
        self.skeys = Arc::new(crypt::skeys(
            self.shared.cfg.encryption,
            self.torrents.keys(),
        ));
    }

    /// Peers local discovery found go to their torrent's run, if it runs and is not stopping.
    fn lsd_found(&self, found: lsd::Found) {
        lsd::route(found, |ih| {
            let run = self.torrents.get(ih)?.run.as_ref()?;
            (!*run.stop.borrow()).then_some(&run.control)
        });
    }

    /// Peers the DHT found go to their torrent's run, if it runs and is not stopping.
    fn dht_found(&self, found: dht::Found) {
        let run = self.torrents.get(&found.0).and_then(|e| e.run.as_ref());
        let control = run.filter(|r| !*r.stop.borrow()).map(|r| &r.control);
        dht::route(found, control);
    }

    /// Stops every run and waits for all of them (each writes its resume data and tells
    /// its trackers), publishing each result.
    async fn shutdown(mut self) {
        for entry in self.torrents.values_mut() {
            if let Some(run) = &entry.run {
                let _ = run.stop.send(true);
                // A pause or restart under way ends as a stop, like every other run.
                if entry.after != After::Remove {
                    entry.after = After::Finish;
                }
            }
        }
        while let Some(done) = self.runs.join_next().await {
            if let Ok(end) = done {
                self.run_ended(end);
            }
        }
        if let Some(dht) = self.dht.take() {
            dht.stop().await;
        }
    }
}
