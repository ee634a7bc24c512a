//! The driver task: owns the torrent's core — the [`MetadataPhase`] of a magnet, then the
//! [`Engine`] — turns connection and store events into its events, and carries out its
//! actions. It never awaits a single peer: commands to connections are `try_send`, and a
//! full queue drops that peer.
//!
//! A magnet's run calls [`Driver::run`] twice on the same driver: the first ends with
//! [`Outcome::Metadata`] and leaves every connection open; the caller opens the files and
//! [`Driver::begin_download`] hands the connections to the new engine; the second run
//! downloads. Messages decoded before the piece count was known are checked against it
//! here ([`Message::check_indexes`]), as the decoder checks every later one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::conn::{self, ConnCmd, ConnCtx, Failure, Incoming, PeerEvent};
use crate::engine::magnet::MetadataPhase;
use crate::engine::{Action, Engine, Event, PeerKey, PeerSource};
use crate::snapshot::{Attempts, MetadataStatus, Phase, Snapshot};
use crate::store::{StoreError, StoreEvent, StoreHandle};
use crate::wire::Message;

/// Requests from the session to a running driver.
#[derive(Debug)]
pub enum Control {
    /// Addresses to try, and where they came from (trackers, local discovery).
    AddPeers {
        addrs: Vec<SocketAddr>,
        source: PeerSource,
    },
}

/// How a driver run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every piece verified and `seed` was not asked for, or seeding reached its goal.
    Complete,
    /// Cancelled (Ctrl-C or the session's own stop).
    Stopped,
    GiveUp(String),
    Fatal(StoreError),
    /// A magnet's info dictionary, verified against its info-hash; every connection is
    /// still open (see [`Driver::begin_download`]).
    Metadata(Vec<u8>),
}

/// What decides for the torrent.
enum Core {
    /// Nothing yet (a `.torrent` being checked), or between a magnet's two phases.
    Idle,
    Metadata(Box<MetadataPhase>),
    Content(Box<Engine>),
}

/// Everything the driver needs; built by the session.
pub struct Driver {
    core: Core,
    ctx: Arc<ConnCtx>,
    events: mpsc::Receiver<PeerEvent>,
    store: Option<StoreHandle>,
    store_events: Option<mpsc::Receiver<StoreEvent>>,
    /// Incoming connections the session routed to this torrent (handshake read).
    incoming: mpsc::Receiver<Box<Incoming>>,
    control: mpsc::Receiver<Control>,
    /// Candidate DHT nodes from peers' `Port` messages go to the session's node here.
    dht_nodes: Option<mpsc::Sender<SocketAddr>>,
    snapshot: watch::Sender<Snapshot>,
    /// Keep running after completion (seeding).
    seed: bool,
    /// The torrent began as a magnet: messages may have been decoded without a piece count.
    check_indexes: bool,
    st: State,
}

/// The channels a driver reads, built by the session.
pub struct Inputs {
    pub events: mpsc::Receiver<PeerEvent>,
    pub incoming: mpsc::Receiver<Box<Incoming>>,
    pub control: mpsc::Receiver<Control>,
    /// Where [`Action::DhtNode`] goes: the session's DHT node, when it runs one.
    pub dht_nodes: Option<mpsc::Sender<SocketAddr>>,
}

struct State {
    conns: HashMap<PeerKey, mpsc::Sender<ConnCmd>>,
    tasks: JoinSet<()>,
    next_key: PeerKey,
    outcome: Option<Outcome>,
    /// The last connect error of each address dialled (the first [`MAX_LAST_ERRORS`]),
    /// named when the torrent gives up.
    last_errors: HashMap<SocketAddr, String>,
    /// Our connection attempts by outcome, for the doctor.
    attempts: Attempts,
}

/// Addresses whose last connect error a give-up message names: `--peer` lists are short.
const MAX_LAST_ERRORS: usize = 8;

impl Driver {
    pub fn new(
        ctx: Arc<ConnCtx>,
        inputs: Inputs,
        snapshot: watch::Sender<Snapshot>,
        seed: bool,
    ) -> Driver {
        Driver {
            core: Core::Idle,
            ctx,
            events: inputs.events,
            store: None,
            store_events: None,
            incoming: inputs.incoming,
            control: inputs.control,
            dht_nodes: inputs.dht_nodes,
            snapshot,
            seed,
            check_indexes: false,
            st: State {
                conns: HashMap::new(),
                tasks: JoinSet::new(),
                next_key: 1,
                outcome: None,
                last_errors: HashMap::new(),
                attempts: Attempts::default(),
            },
        }
    }

    /// A magnet: fetch the metadata first.
    pub fn fetch_metadata(&mut self, phase: MetadataPhase) {
        self.core = Core::Metadata(Box::new(phase));
        self.check_indexes = true;
    }

    /// The download begins: `build` turns the metadata phase (if there was one) into the
    /// engine, `store` is where verified pieces go. The connections' context must already
    /// carry the content ([`ConnCtx::content`]).
    pub fn begin_download(
        &mut self,
        build: impl FnOnce(Option<MetadataPhase>) -> Engine,
        store: StoreHandle,
        store_events: mpsc::Receiver<StoreEvent>,
    ) {
        let phase = match std::mem::replace(&mut self.core, Core::Idle) {
            Core::Metadata(p) => Some(*p),
            _ => None,
        };
        self.core = Core::Content(Box::new(build(phase)));
        self.store = Some(store);
        self.store_events = Some(store_events);
    }

    /// Runs until the torrent completes, stops, gives up, fails — or, fetching a magnet's
    /// metadata, has it (then the connections stay open for [`Self::begin_download`]).
    pub async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> Outcome {
        if let Core::Content(e) = &self.core {
            if e.is_complete() && !self.seed {
                return Outcome::Complete;
            }
        }
        self.publish();
        // Actions queued before the loop (dialing the `--peer` addresses) go out now, not
        // at the first tick a second later.
        self.run_actions();
        loop {
            let deadline = tokio::time::Instant::from_std(self.next_deadline());
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_peer_event(ev),
                    None => break,
                },
                ev = recv(&mut self.store_events) => match ev {
                    Some(StoreEvent::Verified { piece }) => {
                        self.handle(Instant::now(), Event::PieceVerified { piece })
                    }
                    Some(StoreEvent::Failed { piece, peers }) => {
                        self.handle(Instant::now(), Event::PieceFailed { piece, peers })
                    }
                    Some(StoreEvent::CorruptSenders { piece, peers }) => {
                        self.handle(Instant::now(), Event::CorruptSenders { piece, peers })
                    }
                    Some(StoreEvent::Fatal(e)) => self.st.outcome = Some(Outcome::Fatal(e)),
                    None => self.st.outcome = Some(Outcome::Stopped),
                },
                Some(c) = self.control.recv() => match c {
                    Control::AddPeers { addrs, source } => {
                        self.handle(Instant::now(), Event::AddPeers { addrs, source })
                    }
                },
                Some(incoming) = self.incoming.recv() => {
                    let key = self.st.next_key;
                    self.st.next_key += 1;
                    let span = tracing::info_span!("peer", addr = %incoming.addr);
                    self.st.tasks.spawn(conn::accept(key, incoming, self.ctx.clone()).instrument(span));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.handle_timeout(Instant::now());
                    self.publish();
                }
                _ = stop.changed() => self.st.outcome = Some(Outcome::Stopped),
                Some(_) = self.st.tasks.join_next(), if !self.st.tasks.is_empty() => {}
            }
            self.run_actions();
            if let Core::Content(e) = &self.core {
                if self.seed && e.seed_goal_reached(Instant::now()) {
                    tracing::info!("seeding goal reached (ratio or time)");
                    self.st.outcome.get_or_insert(Outcome::Complete);
                }
            }
            if let Core::Metadata(p) = &mut self.core {
                if let Some(info) = p.take_info() {
                    let m = p.progress();
                    tracing::info!(
                        bytes = info.len(),
                        suppliers = m.suppliers,
                        peers = m.peers,
                        "metadata verified"
                    );
                    self.publish();
                    return Outcome::Metadata(info);
                }
            }
            if let Some(outcome) = self.st.outcome.take() {
                self.publish();
                // Dropping every command sender ends the writers, and with them the
                // connections; the tasks are aborted in case one is stuck in a read.
                self.st.conns.clear();
                self.st.tasks.abort_all();
                return outcome;
            }
        }
        Outcome::Stopped
    }

    fn handle(&mut self, now: Instant, event: Event) {
        match &mut self.core {
            Core::Idle => {}
            Core::Metadata(p) => p.handle(now, event),
            Core::Content(e) => e.handle(now, event),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match &mut self.core {
            Core::Idle => {}
            Core::Metadata(p) => p.handle_timeout(now),
            Core::Content(e) => e.handle_timeout(now),
        }
    }

    fn next_deadline(&self) -> Instant {
        match &self.core {
            Core::Idle => Instant::now() + std::time::Duration::from_secs(1),
            Core::Metadata(p) => p.next_deadline(),
            Core::Content(e) => e.next_deadline(),
        }
    }

    fn poll_action(&mut self) -> Option<Action> {
        match &mut self.core {
            Core::Idle => None,
            Core::Metadata(p) => p.poll_action(),
            Core::Content(e) => e.poll_action(),
        }
    }

    fn on_peer_event(&mut self, ev: PeerEvent) {
        let now = Instant::now();
        match ev {
            PeerEvent::Connected {
                key,
                addr,
                peer_id,
                reserved,
                outbound,
                cmds,
            } => {
                self.st.attempts.connected += usize::from(outbound);
                self.st.conns.insert(key, cmds);
                self.handle(
                    now,
                    Event::PeerConnected {
                        key,
                        addr,
                        peer_id,
                        reserved,
                        outbound,
                    },
                );
            }
            PeerEvent::ConnectFailed { addr, error, kind } => {
                let a = &mut self.st.attempts;
                *match kind {
                    Failure::Refused => &mut a.refused,
                    Failure::TimedOut => &mut a.timed_out,
                    Failure::PeerRequiresEncryption => &mut a.peer_requires_encryption,
                    Failure::RefusedByOurEncryption => &mut a.refused_by_our_encryption,
                    Failure::WrongInfoHash => &mut a.wrong_info_hash,
                    Failure::Other => &mut a.other_failures,
                } += 1;
                let errors = &mut self.st.last_errors;
                if errors.len() < MAX_LAST_ERRORS || errors.contains_key(&addr) {
                    errors.insert(addr, error);
                }
                self.handle(now, Event::ConnectFailed { addr })
            }
            PeerEvent::DialedSelf { addr } => {
                self.st.attempts.ourselves += 1;
                self.handle(now, Event::DialedSelf { addr })
            }
            // Each event's budget is released (dropped) once the engine has handled it.
            PeerEvent::Message { key, msg, budget } => {
                tracing::trace!(key, ?msg, "message");
                match self.checked(msg) {
                    Ok(msg) => self.handle(now, Event::PeerMessage { key, msg }),
                    Err(e) => {
                        tracing::debug!(key, error = %e, "message does not fit the torrent");
                        self.st.conns.remove(&key);
                        self.handle(now, Event::PeerDisconnected { key });
                    }
                }
                drop(budget);
            }
            PeerEvent::ExtHandshake {
                key,
                handshake,
                budget,
            } => {
                self.handle(now, Event::ExtendedHandshake { key, handshake });
                drop(budget);
            }
            PeerEvent::Metadata { key, msg, budget } => {
                self.handle(now, Event::Metadata { key, msg });
                drop(budget);
            }
            PeerEvent::Pex { key, msg, budget } => {
                self.handle(now, Event::Pex { key, msg });
                drop(budget);
            }
            PeerEvent::Block {
                key,
                block,
                data,
                reservation,
            } => {
                // Unwanted blocks are dropped here with their reservation.
                let (Core::Content(engine), Some(store)) = (&mut self.core, &self.store) else {
                    return;
                };
                if engine.block_received(now, key, block)
                    && store.write_block(key, block, data, reservation).is_err()
                {
                    self.st.outcome = Some(Outcome::Stopped);
                }
            }
            PeerEvent::Served { key, block } => self.handle(now, Event::Served { key, block }),
            PeerEvent::Closed { key, reason } => {
                tracing::debug!(key, %reason, "connection closed");
                self.st.conns.remove(&key);
                self.handle(now, Event::PeerDisconnected { key });
            }
        }
    }

    fn run_actions(&mut self) {
        while let Some(action) = self.poll_action() {
            match action {
                Action::Connect { addr } => {
                    let key = self.st.next_key;
                    self.st.next_key += 1;
                    let span = tracing::info_span!("peer", %addr);
                    self.st
                        .tasks
                        .spawn(conn::dial(key, addr, self.ctx.clone()).instrument(span));
                }
                Action::Send { key, msg } => self.send_to_conn(key, ConnCmd::Send(msg)),
                Action::Serve { key, block } => self.send_to_conn(key, ConnCmd::Serve(block)),
                Action::Disconnect { key, reason } => {
                    tracing::debug!(key, reason, "disconnecting peer");
                    self.st.conns.remove(&key);
                }
                Action::Complete => {
                    self.publish();
                    if !self.seed {
                        self.st.outcome.get_or_insert(Outcome::Complete);
                    }
                }
                Action::GiveUp { mut reason } => {
                    let mut errors: Vec<_> = self.st.last_errors.iter().collect();
                    errors.sort();
                    for (addr, e) in errors {
                        reason.push_str(&format!("; {addr}: {e}"));
                    }
                    self.st.outcome.get_or_insert(Outcome::GiveUp(reason));
                }
                Action::GrowBuffer { bytes } => {
                    if let Some(store) = &self.store {
                        store.grow_budget(bytes)
                    }
                }
                Action::DhtNode(addr) => {
                    // A full queue drops it: the session is busy, and candidates are many.
                    if let Some(tx) = &self.dht_nodes {
                        let _ = tx.try_send(addr);
                    }
                }
            }
        }
    }

    /// A message decoded before the piece count was known, checked against it now.
    fn checked(&self, msg: Message) -> Result<Message, crate::wire::WireError> {
        match (&self.core, self.check_indexes) {
            (Core::Content(e), true) => msg.check_indexes(e.layout().num_pieces()),
            _ => Ok(msg),
        }
    }

    /// Hand a command to a connection without waiting; a peer that cannot keep up is
    /// dropped rather than allowed to stall the driver.
    fn send_to_conn(&mut self, key: PeerKey, cmd: ConnCmd) {
        let Some(tx) = self.st.conns.get(&key) else {
            return;
        };
        if tx.try_send(cmd).is_err() {
            tracing::debug!(key, "peer's command queue is full; dropping it");
            self.st.conns.remove(&key);
            self.handle(Instant::now(), Event::PeerDisconnected { key });
        }
    }

    fn publish(&self) {
        let attempts = self.st.attempts;
        let engine = match &self.core {
            Core::Content(e) => e,
            Core::Metadata(p) => {
                let m = p.progress();
                self.snapshot.send_modify(|s| {
                    s.health.attempts = attempts;
                    s.stats.found = m.found;
                    s.phase = Phase::Metadata;
                    s.metadata = Some(MetadataStatus {
                        peers: m.serving,
                        pieces_have: m.pieces.0,
                        pieces_total: m.pieces.1,
                    });
                    s.stats.peers_connected = m.peers;
                    s.stats.peers_known = m.known;
                });
                return;
            }
            Core::Idle => return,
        };
        let stats = engine.stats();
        let peers = engine.peer_infos();
        let layout = engine.layout();
        let seeded = engine.seeding_for(Instant::now());
        let phase = if engine.is_complete() {
            if self.seed {
                Phase::Seeding
            } else {
                Phase::Done
            }
        } else {
            Phase::Downloading
        };
        self.snapshot.send_modify(|s| {
            s.health.attempts = attempts;
            s.phase = phase;
            s.metadata = None;
            s.total_bytes = layout.total_len();
            s.pieces_total = layout.num_pieces();
            s.stats = stats;
            s.seeded = seeded;
            s.peers = peers.into();
            if s.have != *engine.have() {
                s.have.clone_from(engine.have());
            }
        });
    }
}

/// The next store event, or never when there is no store yet.
async fn recv(rx: &mut Option<mpsc::Receiver<StoreEvent>>) -> Option<StoreEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
