//! `swarm tracker`: a small in-memory BitTorrent tracker serving HTTP (BEP 3/23/7/48) and
//! UDP (BEP 15) announce and scrape, for LANs and tests.
//!
//! Shape: one pure [`registry::Registry`] holds every swarm; the HTTP accept loop, the UDP
//! receive loop and a sweep timer share it behind one `std::sync::Mutex` that is only ever
//! held for a synchronous registry call (never across an `.await`, never together with
//! another lock). That is one owner in effect, without a channel hop per announce.
//!
//! Bounded everywhere: registry caps and per-source quotas ([`registry::Limits`]), request
//! head, timeouts and per-source connection caps on HTTP ([`HttpLimits`]), fixed-size datagrams on UDP, and no per-connection UDP
//! state (connection ids are keyed hashes). Default bind is loopback (the CLI's choice);
//! other addresses only when the caller passes them.

pub mod http;
pub mod quota;
pub mod registry;
mod slab;
mod swarm;
pub mod udp;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

pub use http::HttpLimits;
use registry::{Limits, Registry};
use udp::UdpTracker;

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// HTTP announce/scrape address; `None` for no HTTP.
    pub http: Option<SocketAddr>,
    /// UDP announce/scrape address; `None` for no UDP.
    pub udp: Option<SocketAddr>,
    /// Announce interval told to clients (1800 s, the customary value; peers expire after
    /// two intervals plus a minute).
    pub interval: Duration,
    /// Registry caps.
    pub limits: Limits,
    /// HTTP connection caps and head timeout (defaults and their reasons in [`HttpLimits`]).
    pub http_limits: HttpLimits,
    /// How often the expiry sweep runs, and how many peers it examines each time
    /// (1 s × 20,000: a million stored peers are all looked at within a minute).
    pub sweep_every: Duration,
    pub sweep_budget: usize,
}

/// Default port of both front ends (the conventional tracker port, opentracker's too).
pub const DEFAULT_PORT: u16 = 6969;

impl Default for ServerConfig {
    fn default() -> Self {
        let lo = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT));
        ServerConfig {
            http: Some(lo),
            udp: Some(lo),
            interval: Duration::from_secs(1800),
            limits: Limits::default(),
            http_limits: HttpLimits::default(),
            sweep_every: Duration::from_secs(1),
            sweep_budget: 20_000,
        }
    }
}

/// Why the tracker could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the HTTP tracker to {addr}")]
    BindHttp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("binding the UDP tracker to {addr}")]
    BindUdp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("neither HTTP nor UDP is enabled: nothing to serve")]
    NothingToServe,
    #[error("the interval must be between 1 second and 1 day")]
    BadInterval,
}

/// A bound tracker, not yet serving: lets the caller learn the actual ports (port 0).
#[derive(Debug)]
pub struct Server {
    http: Option<TcpListener>,
    udp: Option<UdpSocket>,
    http_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    cfg: ServerConfig,
}

/// Bind the sockets `cfg` asks for.
pub async fn bind(cfg: ServerConfig) -> Result<Server, ServerError> {
    if cfg.http.is_none() && cfg.udp.is_none() {
        return Err(ServerError::NothingToServe);
    }
    if cfg.interval < Duration::from_secs(1) || cfg.interval > Duration::from_secs(86_400) {
        return Err(ServerError::BadInterval);
    }
    let (mut http, mut http_addr) = (None, None);
    if let Some(addr) = cfg.http {
        let bind_err = |source| ServerError::BindHttp { addr, source };
        let l = TcpListener::bind(addr).await.map_err(bind_err)?;
        http_addr = Some(l.local_addr().map_err(bind_err)?);
        http = Some(l);
    }
    let (mut udp, mut udp_addr) = (None, None);
    if let Some(addr) = cfg.udp {
        let bind_err = |source| ServerError::BindUdp { addr, source };
        let s = UdpSocket::bind(addr).await.map_err(bind_err)?;
        udp_addr = Some(s.local_addr().map_err(bind_err)?);
        udp = Some(s);
    }
    Ok(Server {
        http,
        udp,
        http_addr,
        udp_addr,
        cfg,
    })
}

/// Bind and serve until `stop` becomes true (or its sender is dropped).
pub async fn run(cfg: ServerConfig, stop: watch::Receiver<bool>) -> Result<(), ServerError> {
    bind(cfg).await?.run(stop).await;
    Ok(())
}

impl Server {
    /// The bound HTTP address (announce URL: `http://{addr}/announce`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound UDP address (announce URL: `udp://{addr}`).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Serve until `stop` becomes true (or its sender is dropped).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let cfg = self.cfg;
        let reg = Arc::new(Mutex::new(Registry::new(cfg.interval, cfg.limits.clone())));
        let mut secret = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(l) = self.http {
            tasks.spawn(http::serve(l, reg.clone(), cfg.http_limits, stop.clone()));
        }
        if let Some(s) = self.udp {
            let tracker = UdpTracker::new(secret, Instant::now());
            tasks.spawn(udp::serve(s, tracker, reg.clone(), stop.clone()));
        }
        tracing::info!(http = ?self.http_addr, udp = ?self.udp_addr, "tracker serving");
        let mut tick = tokio::time::interval(cfg.sweep_every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let removed = lock(&reg).sweep(Instant::now(), cfg.sweep_budget);
                    if removed > 0 {
                        tracing::debug!(removed, "tracker expired peers");
                    }
                }
                _ = stopped(&mut stop) => break,
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("tracker stopped");
    }
}

/// Resolves once `stop` is true or its sender is gone (the guard `wait_for` returns is not
/// `Send`, so it is dropped here rather than held across a `select!`).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The registry lock. A panic while it was held cannot leave it half-updated in a way that
/// breaks memory safety, and the registry's counters are fixed up by later calls, so a
/// poisoned lock is taken over rather than spreading the panic to every connection.
pub(crate) fn lock(reg: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    reg.lock().unwrap_or_else(|e| e.into_inner())
}
