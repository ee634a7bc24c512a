//! The announcer task: one torrent's tracker lifecycle, from `started` to `stopped`.
//!
//! It pulls our stats from the [`Snapshot`], pushes peer addresses into a channel and writes
//! the tracker fields of the snapshot back. Decisions about *which* tracker come from
//! [`Tiers`] (every tier concurrently, trackers within a tier in order; see that module).
//!
//! Lifecycle:
//! - waits until the torrent has left [`Phase::Checking`], so `left` is true from the start;
//! - `started` to each tracker the first time we announce to it (a tracker that never
//!   answered does not know us, so a tier that fails over sends `started` again);
//! - periodic announces at the tracker's `interval` (clamped to [`MIN_INTERVAL`],
//!   [`MAX_INTERVAL`]), sooner while we have fewer than [`FEW_PEERS`] connections: every
//!   [`FEW_PEERS_INTERVAL`], but never before the tracker's `min interval`;
//! - `completed` once to each tracker that knew us, when `left` reaches 0 having been above 0
//!   when we started (a tracker first told `started` with `left = 0` needs no `completed`);
//! - on `stop`, `stopped` to every tracker that answered or was sent `started` (it may have
//!   registered us while its answer was on the way), all at once, within `stop_timeout`.
//!
//! Each announce runs in its own task under its own timeout, so a dead, slow or lying tracker
//! costs only its tier, and never delays stop: in-flight announces are abandoned on stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::client::{ClientConfig, Tracker, HTTP_TIMEOUT};
use super::tiers::{Tiers, TrackerId};
use super::{AnnounceParams, AnnounceResponse, Event, TrackerError};
use crate::error::error_chain;
use crate::snapshot::{Phase, Snapshot, TrackerOutcome, TrackerState};
use crate::types::{InfoHash, PeerId};

pub use super::{MAX_INTERVAL, MIN_INTERVAL};
/// Below this many connected peers we re-announce early.
pub const FEW_PEERS: usize = 5;
/// How often we re-announce while short of peers (still no sooner than `min interval`).
pub const FEW_PEERS_INTERVAL: Duration = Duration::from_secs(60);
/// Peers asked for when the caller does not care (libtorrent's default `num_want`).
pub const DEFAULT_NUMWANT: u32 = 200;

/// What the announcer needs to know about the torrent and its trackers.
#[derive(Debug, Clone)]
pub struct AnnouncerConfig {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The port we announce: the listen port, or the external port a router forwards to
    /// it (port mapping); read at each announce, so a new mapping is announced next time.
    pub port: Arc<AtomicU16>,
    /// Tracker URLs by tier (`announce-list`, or `[[announce]]`).
    pub tiers: Vec<Vec<String>>,
    pub numwant: u32,
    /// Random per session; lets trackers recognise us across address changes.
    pub key: u32,
    /// First UDP retransmission wait (BEP 15: 15 s), doubled per try.
    pub udp_retry_base: Duration,
    pub udp_max_tries: u32,
    /// How long the `stopped` announces may take, all together.
    pub stop_timeout: Duration,
    /// Address to announce from (see [`ClientConfig::local_addr`]).
    pub local_addr: Option<std::net::IpAddr>,
}

/// Run the lifecycle until `stop` turns true (or its sender goes away), then send `stopped`.
pub async fn run(
    cfg: AnnouncerConfig,
    snapshot: watch::Sender<Snapshot>,
    peers: mpsc::Sender<Vec<SocketAddr>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::from_entropy();
    let tiers = Tiers::new(cfg.tiers.clone(), &mut rng);
    let pending: Vec<TrackerState> = tiers
        .ids()
        .map(|id| TrackerState {
            url: tiers.url(id).to_string(),
            host: super::brief::host_of(tiers.url(id)).to_string(),
            outcome: TrackerOutcome::Pending,
        })
        .collect();
    snapshot.send_modify(|s| {
        s.trackers_total = tiers.len();
        s.trackers_ok = 0;
        s.tracker_error = None;
        s.tracker_status = None;
        s.health.trackers = pending.into();
    });
    if tiers.is_empty() {
        return;
    }
    let mut snap_rx = snapshot.subscribe();
    while snap_rx.borrow_and_update().phase == Phase::Checking {
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            _ = snap_rx.changed() => {}
        }
    }
    let mut a = Announcer::new(cfg, tiers, rng, snapshot, peers);
    loop {
        if *stop.borrow() {
            break;
        }
        let now = Instant::now();
        a.check_completion();
        a.launch_due(now);
        let wake = a.next_wake(now);
        tokio::select! {
            r = stop.changed() => if r.is_err() { break },
            Some(done) = a.in_flight.join_next_with_id() => a.finish(done),
            _ = snap_rx.changed() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    a.stop_all().await;
}

/// Per-tracker knowledge.
#[derive(Default)]
struct Slot {
    /// The client, when not lent to an in-flight announce.
    client: Option<Tracker>,
    /// It answered an announce: it knows us (and must be told `stopped`).
    started: bool,
    /// A `started` announce to it is in flight: we stop before its answer, but it may
    /// have registered us, so it is told `stopped` too (libtorrent's `start_sent`).
    start_sent: bool,
    /// It knows we are complete.
    completed: bool,
    /// Its last announce succeeded.
    ok: bool,
}

/// Per-tier scheduling.
struct TierState {
    busy: bool,
    /// When the next announce is due (a failing tracker's back-off is applied on top).
    next: Instant,
    last_ok: Option<Instant>,
    min_interval: Duration,
}

/// The result of one announce task.
struct Done {
    id: TrackerId,
    event: Event,
    left: u64,
    client: Tracker,
    result: Result<AnnounceResponse, TrackerError>,
}

struct Announcer {
    cfg: AnnouncerConfig,
    client_cfg: ClientConfig,
    announce_timeout: Duration,
    tiers: Tiers,
    rng: StdRng,
    slots: Vec<Slot>,
    tier_state: Vec<TierState>,
    in_flight: JoinSet<Done>,
    task_ids: HashMap<tokio::task::Id, TrackerId>,
    start_left: u64,
    completed_due: bool,
    /// Which tracker the snapshot's `tracker_error` came from.
    error_from: Option<TrackerId>,
    snapshot: watch::Sender<Snapshot>,
    peers: mpsc::Sender<Vec<SocketAddr>>,
}

impl Announcer {
    fn new(
        cfg: AnnouncerConfig,
        tiers: Tiers,
        rng: StdRng,
        snapshot: watch::Sender<Snapshot>,
        peers: mpsc::Sender<Vec<SocketAddr>>,
    ) -> Self {
        let client_cfg = ClientConfig {
            http_timeout: HTTP_TIMEOUT,
            udp_retry_base: cfg.udp_retry_base,
            udp_max_tries: cfg.udp_max_tries,
            local_addr: cfg.local_addr,
        };
        // An outer bound in case a client's own timeouts fail us.
        let announce_timeout =
            (HTTP_TIMEOUT + Duration::from_secs(5)).max(client_cfg.udp_worst_case());
        let now = Instant::now();
        let tier_state = (0..tiers.num_tiers())
            .map(|_| TierState {
                busy: false,
                next: now,
                last_ok: None,
                min_interval: Duration::ZERO,
            })
            .collect();
        let start_left = left(&snapshot.borrow());
        Announcer {
            slots: (0..tiers.len()).map(|_| Slot::default()).collect(),
            cfg,
            client_cfg,
            announce_timeout,
            tiers,
            rng,
            tier_state,
            in_flight: JoinSet::new(),
            task_ids: HashMap::new(),
            start_left,
            completed_due: false,
            error_from: None,
            snapshot,
            peers,
        }
    }

    fn check_completion(&mut self) {
        if !self.completed_due && self.start_left > 0 && left(&self.snapshot.borrow()) == 0 {
            tracing::info!("download complete; announcing completed");
            self.completed_due = true;
        }
    }

    /// Whether `tier`'s next tracker still has to hear `completed`.
    fn completed_pending(&self, tier: usize, now: Instant) -> bool {
        self.completed_due
            && self.tiers.next_in_tier(tier, now).is_some_and(|id| {
                let s = &self.slots[id.0];
                s.started && !s.completed
            })
    }

    /// When `tier` should announce next; `None` while busy or when it has no usable tracker.
    fn due(&self, tier: usize, now: Instant) -> Option<Instant> {
        let ts = &self.tier_state[tier];
        if ts.busy {
            return None;
        }
        let ready = self.tiers.tier_ready_at(tier, now)?;
        let mut at = ts.next;
        if let Some(last) = ts.last_ok {
            if self.completed_pending(tier, now) {
                at = now;
            } else if self.snapshot.borrow().stats.peers_connected < FEW_PEERS {
                at = at.min(last + FEW_PEERS_INTERVAL.max(ts.min_interval));
            }
        }
        Some(at.max(ready))
    }

    fn next_wake(&self, now: Instant) -> Instant {
        (0..self.tier_state.len())
            .filter_map(|t| self.due(t, now))
            .min()
            .unwrap_or(now + MAX_INTERVAL)
    }

    fn params(&self, event: Event) -> AnnounceParams {
        let snap = self.snapshot.borrow();
        AnnounceParams {
            info_hash: self.cfg.info_hash,
            peer_id: self.cfg.peer_id,
            port: self.cfg.port.load(Ordering::Relaxed),
            uploaded: snap.stats.uploaded,
            downloaded: snap.stats.downloaded,
            left: left(&snap),
            event,
            numwant: if event == Event::Stopped {
                0
            } else {
                self.cfg.numwant
            },
            key: self.cfg.key,
        }
    }

    /// A client for `id`: its own if it has one, else a new one (`None` if the URL is unusable).
    fn take_client(&mut self, id: TrackerId) -> Option<Tracker> {
        if let Some(c) = self.slots[id.0].client.take() {
            return Some(c);
        }
        match Tracker::new(self.tiers.url(id), &self.client_cfg) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    url = self.tiers.url(id),
                    error = %error_chain(&e),
                    "tracker disabled"
                );
                self.set_error(id, &e);
                self.tiers.disable(id);
                None
            }
        }
    }

    fn launch_due(&mut self, now: Instant) {
        for tier in 0..self.tier_state.len() {
            while self.due(tier, now).is_some_and(|at| at <= now) {
                let Some(id) = self.tiers.next_in_tier(tier, now) else {
                    break;
                };
                let Some(mut client) = self.take_client(id) else {
                    continue; // disabled; try the tier's next tracker
                };
                let slot = &self.slots[id.0];
                let event = if !slot.started {
                    Event::Started
                } else if self.completed_due && !slot.completed {
                    Event::Completed
                } else {
                    Event::None
                };
                if event == Event::Started {
                    self.slots[id.0].start_sent = true;
                }
                let params = self.params(event);
                let timeout = self.announce_timeout;
                let handle = self.in_flight.spawn(async move {
                    let result = match tokio::time::timeout(timeout, client.announce(&params)).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(TrackerError::Timeout),
                    };
                    Done {
                        id,
                        event,
                        left: params.left,
                        client,
                        result,
                    }
                });
                self.task_ids.insert(handle.id(), id);
                self.tier_state[tier].busy = true;
            }
        }
    }

    fn finish(&mut self, joined: Result<(tokio::task::Id, Done), tokio::task::JoinError>) {
        let now = Instant::now();
        let done = match joined {
            Ok((task, done)) => {
                self.task_ids.remove(&task);
                done
            }
            Err(e) => {
                // Only a bug can get here; free the tier so it is not stuck.
                if let Some(id) = self.task_ids.remove(&e.id()) {
                    tracing::error!(url = self.tiers.url(id), error = %e, "announce task failed");
                    self.tier_state[self.tiers.tier_of(id)].busy = false;
                    self.tiers.record_failure(id, now, &mut self.rng);
                }
                return;
            }
        };
        let id = done.id;
        let url = self.tiers.url(id).to_string();
        let tier = self.tiers.tier_of(id);
        self.slots[id.0].client = Some(done.client);
        // Answered (or failed): from now on only `started` says whether it knows us.
        self.slots[id.0].start_sent = false;
        self.tier_state[tier].busy = false;
        match done.result {
            Ok(resp) => {
                let interval = resp.interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
                let min_interval = resp.min_interval.unwrap_or_default().min(interval);
                tracing::info!(
                    url,
                    event = ?done.event,
                    peers = resp.peers.len(),
                    interval = interval.as_secs(),
                    seeders = resp.complete,
                    leechers = resp.incomplete,
                    "announce"
                );
                if let Some(w) = &resp.warning {
                    tracing::warn!(url, warning = %w, "tracker warning");
                }
                if resp.peers_dropped > 0 {
                    tracing::debug!(
                        url,
                        kept = resp.peers.len(),
                        dropped = resp.peers_dropped,
                        cap = super::MAX_PEERS,
                        "tracker listed more peers than we keep from one reply"
                    );
                }
                self.tiers.record_success(id);
                let slot = &mut self.slots[id.0];
                slot.ok = true;
                slot.started = true;
                slot.completed |= done.event == Event::Completed || done.left == 0;
                let ts = &mut self.tier_state[tier];
                ts.last_ok = Some(now);
                ts.min_interval = min_interval;
                ts.next = now + interval;
                let peers = resp.peers.len();
                if !resp.peers.is_empty() {
                    if let Err(e) = self.peers.try_send(resp.peers) {
                        tracing::debug!(url, error = %e, "peer channel full; peers dropped");
                    }
                }
                let clear = self.error_from == Some(id);
                if clear {
                    self.error_from = None;
                }
                let answer = TrackerOutcome::Answered {
                    peers,
                    seeds: resp.complete,
                    leechers: resp.incomplete,
                };
                self.set_outcome(id, answer);
                self.publish(clear);
            }
            Err(e) => {
                let delay = self.tiers.record_failure(id, now, &mut self.rng);
                tracing::info!(
                    url,
                    event = ?done.event,
                    error = %error_chain(&e),
                    retry_in = delay.as_secs(),
                    "announce failed"
                );
                self.slots[id.0].ok = false;
                // The tier moves on to its next tracker now (the back-off covers this one).
                self.tier_state[tier].next = now;
                self.set_error(id, &e);
            }
        }
    }

    fn set_error(&mut self, id: TrackerId, e: &TrackerError) {
        self.error_from = Some(id);
        let text = format!("{}: {}", self.tiers.url(id), error_chain(e));
        let short = super::brief::brief(self.tiers.url(id), e);
        self.set_outcome(id, TrackerOutcome::Failed(super::brief::cause(e)));
        self.snapshot.send_modify(|s| {
            s.tracker_error = Some(text);
            s.tracker_status = Some(short);
        });
        self.publish(false);
    }

    /// What tracker `id` did last, for the doctor.
    fn set_outcome(&self, id: TrackerId, outcome: TrackerOutcome) {
        self.snapshot.send_modify(|s| {
            let mut all = s.health.trackers.to_vec();
            if let Some(t) = all.get_mut(id.0) {
                t.outcome = outcome;
                s.health.trackers = all.into();
            }
        });
    }

    fn publish(&self, clear_error: bool) {
        let ok = self.slots.iter().filter(|s| s.ok).count();
        self.snapshot.send_modify(|s| {
            s.trackers_ok = ok;
            if clear_error {
                s.tracker_error = None;
                s.tracker_status = None;
            }
        });
    }

    /// Abandon in-flight announces and tell every tracker that knew us that we are leaving.
    async fn stop_all(mut self) {
        self.in_flight.abort_all();
        // A download that completed just as we stop (a fetch ends right then) still owes
        // `completed`: trackers count completions from it, not from `stopped`.
        self.check_completion();
        let params = self.params(Event::Stopped);
        let completed = self.params(Event::Completed);
        let mut stops = JoinSet::new();
        for id in self.tiers.ids() {
            if !self.slots[id.0].started && !self.slots[id.0].start_sent {
                continue;
            }
            let owes_completed = self.completed_due && !self.slots[id.0].completed;
            let Some(mut client) = self.take_client(id) else {
                continue;
            };
            let (params, url) = (params.clone(), self.tiers.url(id).to_string());
            let completed = completed.clone();
            let timeout = self.cfg.stop_timeout;
            stops.spawn(async move {
                if owes_completed {
                    match tokio::time::timeout(timeout, client.announce(&completed)).await {
                        Ok(Ok(_)) => tracing::info!(url, event = ?Event::Completed, "announce"),
                        _ => tracing::info!(url, "completed announce failed"),
                    }
                }
                match tokio::time::timeout(timeout, client.announce(&params)).await {
                    Ok(Ok(_)) => tracing::info!(url, event = ?Event::Stopped, "announce"),
                    Ok(Err(e)) => {
                        tracing::info!(url, error = %error_chain(&e), "stopped announce failed")
                    }
                    Err(_) => tracing::info!(url, "stopped announce timed out"),
                }
            });
        }
        let all = async { while stops.join_next().await.is_some() {} };
        // Each announce has its own timeout; this bounds the whole in case of a stuck task.
        let _ = tokio::time::timeout(self.cfg.stop_timeout + Duration::from_millis(100), all).await;
    }
}

/// Bytes still to download (of the wanted files' pieces, with a file selection). Fetching a magnet's metadata the size is unknown: 16 KiB, as
/// libtorrent reports then, so trackers see a leecher (some give seeds no seeds).
fn left(s: &Snapshot) -> u64 {
    if s.phase == Phase::Metadata {
        return 16 * 1024;
    }
    s.left()
}
