//! The driver task: owns the [`Engine`], turns connection and store events into engine
//! events, and carries out the engine's actions. It never awaits a single peer: commands
//! to connections are `try_send`, and a full queue drops that peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::conn::{self, ConnCmd, ConnCtx, Incoming, PeerEvent};
use crate::engine::{Action, Engine, Event, PeerKey, PeerSource};
use crate::snapshot::{Phase, Snapshot};
use crate::store::{StoreError, StoreEvent, StoreHandle};

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
}

/// Everything the driver needs; built by the session.
pub struct Driver {
    pub engine: Engine,
    pub ctx: Arc<ConnCtx>,
    pub events: mpsc::Receiver<PeerEvent>,
    pub store: StoreHandle,
    pub store_events: mpsc::Receiver<StoreEvent>,
    /// Incoming connections the session routed to this torrent (handshake read).
    pub incoming: mpsc::Receiver<Incoming>,
    pub control: mpsc::Receiver<Control>,
    pub snapshot: watch::Sender<Snapshot>,
    /// Keep running after completion (seeding).
    pub seed: bool,
}

struct State {
    conns: HashMap<PeerKey, mpsc::Sender<ConnCmd>>,
    tasks: JoinSet<()>,
    next_key: PeerKey,
    outcome: Option<Outcome>,
    /// The last connect error of each address dialled (the first [`MAX_LAST_ERRORS`]),
    /// named when the torrent gives up.
    last_errors: HashMap<SocketAddr, String>,
}

/// Addresses whose last connect error a give-up message names: `--peer` lists are short.
const MAX_LAST_ERRORS: usize = 8;

impl Driver {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Outcome {
        let mut st = State {
            conns: HashMap::new(),
            tasks: JoinSet::new(),
            next_key: 1,
            outcome: None,
            last_errors: HashMap::new(),
        };
        if self.engine.is_complete() && !self.seed {
            return Outcome::Complete;
        }
        self.publish();
        // Actions queued before the loop (dialing the `--peer` addresses) go out now, not
        // at the first tick a second later.
        self.run_actions(&mut st);
        loop {
            let deadline = tokio::time::Instant::from_std(self.engine.next_deadline());
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_peer_event(&mut st, ev),
                    None => break,
                },
                ev = self.store_events.recv() => match ev {
                    Some(StoreEvent::Verified { piece }) => {
                        self.engine.handle(Instant::now(), Event::PieceVerified { piece })
                    }
                    Some(StoreEvent::Failed { piece, peers }) => {
                        self.engine.handle(Instant::now(), Event::PieceFailed { piece, peers })
                    }
                    Some(StoreEvent::Fatal(e)) => st.outcome = Some(Outcome::Fatal(e)),
                    None => st.outcome = Some(Outcome::Stopped),
                },
                Some(c) = self.control.recv() => match c {
                    Control::AddPeers { addrs, source } => {
                        self.engine.handle(Instant::now(), Event::AddPeers { addrs, source })
                    }
                },
                Some(incoming) = self.incoming.recv() => {
                    let key = st.next_key;
                    st.next_key += 1;
                    let span = tracing::info_span!("peer", addr = %incoming.addr);
                    st.tasks.spawn(conn::accept(key, incoming, self.ctx.clone()).instrument(span));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.engine.handle_timeout(Instant::now());
                    self.publish();
                }
                _ = stop.changed() => st.outcome = Some(Outcome::Stopped),
                Some(_) = st.tasks.join_next(), if !st.tasks.is_empty() => {}
            }
            self.run_actions(&mut st);
            if self.seed && self.engine.seed_goal_reached(Instant::now()) {
                tracing::info!("seeding goal reached (ratio or time)");
                st.outcome.get_or_insert(Outcome::Complete);
            }
            if let Some(outcome) = st.outcome.take() {
                self.publish();
                // Dropping every command sender ends the writers, and with them the
                // connections; the tasks are aborted in case one is stuck in a read.
                st.conns.clear();
                st.tasks.abort_all();
                return outcome;
            }
        }
        Outcome::Stopped
    }

    fn on_peer_event(&mut self, st: &mut State, ev: PeerEvent) {
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
                st.conns.insert(key, cmds);
                self.engine.handle(
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
            PeerEvent::ConnectFailed { addr, error } => {
                if st.last_errors.len() < MAX_LAST_ERRORS || st.last_errors.contains_key(&addr) {
                    st.last_errors.insert(addr, error);
                }
                self.engine.handle(now, Event::ConnectFailed { addr })
            }
            PeerEvent::DialedSelf { addr } => self.engine.handle(now, Event::DialedSelf { addr }),
            // Each event's budget is released (dropped) once the engine has handled it.
            PeerEvent::Message { key, msg, budget } => {
                tracing::trace!(key, ?msg, "message");
                self.engine.handle(now, Event::PeerMessage { key, msg });
                drop(budget);
            }
            PeerEvent::ExtHandshake {
                key,
                handshake,
                budget,
            } => {
                self.engine
                    .handle(now, Event::ExtendedHandshake { key, handshake });
                drop(budget);
            }
            PeerEvent::Metadata { key, msg, budget } => {
                self.engine.handle(now, Event::Metadata { key, msg });
                drop(budget);
            }
            PeerEvent::Pex { key, msg, budget } => {
                self.engine.handle(now, Event::Pex { key, msg });
                drop(budget);
            }
            PeerEvent::Block {
                key,
                block,
                data,
                reservation,
            } => {
                // Unwanted blocks are dropped here with their reservation.
                if self.engine.block_received(now, key, block)
                    && self
                        .store
                        .write_block(key, block, data, reservation)
                        .is_err()
                {
                    st.outcome = Some(Outcome::Stopped);
                }
            }
            PeerEvent::Served { key, block } => {
                self.engine.handle(now, Event::Served { key, block })
            }
            PeerEvent::Closed { key, reason } => {
                tracing::debug!(key, %reason, "connection closed");
                st.conns.remove(&key);
                self.engine.handle(now, Event::PeerDisconnected { key });
            }
        }
    }

    fn run_actions(&mut self, st: &mut State) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Connect { addr } => {
                    let key = st.next_key;
                    st.next_key += 1;
                    let span = tracing::info_span!("peer", %addr);
                    st.tasks
                        .spawn(conn::dial(key, addr, self.ctx.clone()).instrument(span));
                }
                Action::Send { key, msg } => self.send_to_conn(st, key, ConnCmd::Send(msg)),
                Action::Serve { key, block } => self.send_to_conn(st, key, ConnCmd::Serve(block)),
                Action::Disconnect { key, reason } => {
                    tracing::debug!(key, reason, "disconnecting peer");
                    st.conns.remove(&key);
                }
                Action::Complete => {
                    self.publish();
                    if !self.seed {
                        st.outcome.get_or_insert(Outcome::Complete);
                    }
                }
                Action::GiveUp { mut reason } => {
                    let mut errors: Vec<_> = st.last_errors.iter().collect();
                    errors.sort();
                    for (addr, e) in errors {
                        reason.push_str(&format!("; {addr}: {e}"));
                    }
                    st.outcome.get_or_insert(Outcome::GiveUp(reason));
                }
                Action::GrowBuffer { bytes } => self.store.grow_budget(bytes),
            }
        }
    }

    /// Hand a command to a connection without waiting; a peer that cannot keep up is
    /// dropped rather than allowed to stall the driver.
    fn send_to_conn(&mut self, st: &mut State, key: PeerKey, cmd: ConnCmd) {
        let Some(tx) = st.conns.get(&key) else {
            return;
        };
        if tx.try_send(cmd).is_err() {
            tracing::debug!(key, "peer's command queue is full; dropping it");
            st.conns.remove(&key);
            self.engine
                .handle(Instant::now(), Event::PeerDisconnected { key });
        }
    }

    fn publish(&self) {
        let stats = self.engine.stats();
        let layout = self.engine.layout();
        let seeded = self.engine.seeding_for(Instant::now());
        let phase = if self.engine.is_complete() {
            if self.seed {
                Phase::Seeding
            } else {
                Phase::Done
            }
        } else {
            Phase::Downloading
        };
        self.snapshot.send_modify(|s| {
            s.phase = phase;
            s.total_bytes = layout.total_len();
            s.pieces_total = layout.num_pieces();
            s.stats = stats;
            s.seeded = seeded;
            if s.have != *self.engine.have() {
                s.have.clone_from(self.engine.have());
            }
        });
    }
}
