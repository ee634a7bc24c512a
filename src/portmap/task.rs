//! The mapping task: rounds of map-or-renew, the schedule between them, removal at exit.
//!
//! Per port (TCP, UDP) a round tries PCP/NAT-PMP, then UPnP, and keeps the first that maps
//! it. A protocol that got no answer for the first port is not asked again for the second in
//! the same round, so a network without a router costs one timeout per protocol, not two.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};

use super::pmp::PmpClient;
use super::upnp::UpnpClient;
use super::{gateway, MapError, Mapped, MappingStatus, PortMapConfig, ProtoStatus, Protocol, Via};

/// Renewals are never closer together than this (or half the configured lease, if that is
/// shorter): a router granting a 1-second lifetime must not make us send a packet a second.
const MIN_RENEW: Duration = Duration::from_secs(60);

struct Mapper {
    pmp: Option<PmpClient>,
    upnp: UpnpClient,
    /// What each router currently holds for us, per protocol (TCP, UDP): removed at exit.
    held: [Option<Mapped>; 2],
}

fn idx(p: Protocol) -> usize {
    match p {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
    }
}

fn pmp_name(cfg: &PortMapConfig) -> &'static str {
    match (cfg.use_pcp, cfg.use_natpmp) {
        (true, true) => "PCP/NAT-PMP",
        (true, false) => "PCP",
        _ => "NAT-PMP",
    }
}

impl Mapper {
    async fn pmp_client(&mut self, cfg: &PortMapConfig) -> Result<&mut PmpClient, MapError> {
        if self.pmp.is_none() {
            let gw = match cfg.gateway {
                Some(ip) => ip,
                None => IpAddr::V4(gateway::default_gateway().ok_or(MapError::NoGateway)?),
            };
            let server = SocketAddr::new(gw, cfg.pmp_port);
            let c = PmpClient::connect(server, cfg, cfg.use_pcp, cfg.use_natpmp).await?;
            self.pmp = Some(c);
        }
        self.pmp.as_mut().ok_or(MapError::NoGateway)
    }

    /// Maps or renews both ports; per port the mapping or why it failed.
    async fn round(&mut self, cfg: &PortMapConfig) -> [Result<Mapped, String>; 2] {
        let lease = u32::try_from(cfg.lease.as_secs()).unwrap_or(u32::MAX);
        let mut pmp_silent = false;
        let mut upnp_silent = false;
        let mut out = [Err(String::new()), Err(String::new())];
        for (proto, internal) in [(Protocol::Tcp, cfg.tcp_port), (Protocol::Udp, cfg.udp_port)] {
            // Ask for the port we hold, so a renewal keeps it; else the same as the internal.
            let suggested = self.held[idx(proto)].map_or(internal, |m| m.external.port());
            let mut fails: Vec<(&'static str, MapError)> = Vec::new();
            let mut got = None;
            if (cfg.use_pcp || cfg.use_natpmp) && !pmp_silent {
                let r = match self.pmp_client(cfg).await {
                    Ok(c) => c.map(proto, internal, suggested, lease).await,
                    Err(e) => Err(e),
                };
                match r.and_then(check) {
                    Ok(m) => got = Some(m),
                    Err(e) => {
                        pmp_silent = e.silent();
                        fails.push((pmp_name(cfg), e));
                    }
                }
            } else if cfg.use_pcp || cfg.use_natpmp {
                fails.push((pmp_name(cfg), MapError::NoAnswer));
            }
            if got.is_none() && cfg.use_upnp && !upnp_silent {
                match self
                    .upnp
                    .map(proto, internal, suggested, cfg.lease, &cfg.description)
                    .await
                    .and_then(check)
                {
                    Ok(m) => got = Some(m),
                    Err(e) => {
                        upnp_silent = e.silent();
                        self.upnp.forget();
                        fails.push(("UPnP", e));
                    }
                }
            } else if got.is_none() && cfg.use_upnp {
                fails.push(("UPnP", MapError::NoAnswer));
            }
            out[idx(proto)] = match got {
                Some(m) => {
                    self.held[idx(proto)] = Some(m);
                    Ok(m)
                }
                None => Err(why(&fails)),
            };
        }
        out
    }

    /// Deletes every mapping we hold; errors are only logged (the lease expires anyway).
    async fn remove_all(&mut self, cfg: &PortMapConfig) {
        for (proto, internal) in [(Protocol::Tcp, cfg.tcp_port), (Protocol::Udp, cfg.udp_port)] {
            let Some(m) = self.held[idx(proto)].take() else {
                continue;
            };
            let r = match m.via {
                Via::Upnp => self.upnp.unmap(proto, m.external.port()).await,
                via => match self.pmp.as_ref() {
                    Some(c) => c.unmap(proto, internal, m.external.port(), via).await,
                    None => Ok(()),
                },
            };
            match r {
                Ok(()) => tracing::debug!(%proto, via = %m.via, "port mapping removed"),
                Err(e) => tracing::debug!(%proto, via = %m.via, "port mapping not removed: {e}"),
            }
        }
    }
}

/// A router's "success" must still name a usable port and lifetime.
fn check(m: Mapped) -> Result<Mapped, MapError> {
    if m.external.port() == 0 {
        return Err(MapError::Other("router granted external port 0".into()));
    }
    if m.lifetime.is_zero() && m.via != Via::Upnp {
        return Err(MapError::Other("router granted a lifetime of 0".into()));
    }
    Ok(m)
}

/// "no router answered (PCP/NAT-PMP, UPnP)" when all were silent, else each one's reason.
fn why(fails: &[(&'static str, MapError)]) -> String {
    if fails.is_empty() {
        return "no mapping protocol enabled".into();
    }
    if fails.iter().all(|(_, e)| e.silent()) {
        let names: Vec<&str> = fails.iter().map(|(n, _)| *n).collect();
        return format!("no router answered ({})", names.join(", "));
    }
    let parts: Vec<String> = fails.iter().map(|(n, e)| format!("{n}: {e}")).collect();
    parts.join("; ")
}

/// Resolves when `rx` says stop; a closed channel means stop only if `closed_stops`.
async fn stopped(rx: &mut watch::Receiver<bool>, closed_stops: bool) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            if closed_stops {
                return;
            }
            std::future::pending::<()>().await;
        }
    }
}

pub(super) async fn run(
    cfg: PortMapConfig,
    tx: watch::Sender<MappingStatus>,
    mut cancel: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let search = cfg
        .upnp_search
        .unwrap_or_else(|| SocketAddr::from(([239, 255, 255, 250], 1900)));
    let mut m = Mapper {
        pmp: None,
        upnp: UpnpClient::new(search, cfg.upnp_search_timeout, cfg.upnp_request_timeout),
        held: [None, None],
    };
    let min_renew = MIN_RENEW.min(cfg.lease / 2).max(Duration::from_millis(100));
    let mut backoff = cfg.retry_first;
    loop {
        let results = tokio::select! {
            _ = stopped(&mut cancel, true) => break,
            _ = stopped(&mut stop, false) => break,
            r = m.round(&cfg) => r,
        };
        let now = Instant::now();
        let mut next = now + cfg.retry_max.max(cfg.lease);
        let mut failed = false;
        let mut st = tx.borrow().clone();
        for (i, r) in results.into_iter().enumerate() {
            let s = match r {
                Ok(mapped) => {
                    // Half the granted lifetime, but no later than half our own lease: a
                    // router granting years must not stop us noticing that it rebooted.
                    let renew = (mapped.lifetime / 2).min(cfg.lease / 2).max(min_renew);
                    next = next.min(now + renew);
                    ProtoStatus::Mapped {
                        external: mapped.external,
                        via: mapped.via,
                        expires: now + mapped.lifetime,
                    }
                }
                Err(why) => {
                    failed = true;
                    next = next.min(now + backoff);
                    ProtoStatus::Failed {
                        why,
                        retry_at: now + backoff,
                    }
                }
            };
            tracing::debug!(proto = if i == 0 { "TCP" } else { "UDP" }, status = ?s, "port mapping round");
            if i == 0 {
                st.tcp = s;
            } else {
                st.udp = s;
            }
        }
        backoff = if failed {
            (backoff * 2).min(cfg.retry_max)
        } else {
            cfg.retry_first
        };
        tx.send_replace(st);
        tokio::select! {
            _ = stopped(&mut cancel, true) => break,
            _ = stopped(&mut stop, false) => break,
            _ = sleep_until(next) => {}
        }
    }
    if timeout(cfg.shutdown_timeout, m.remove_all(&cfg))
        .await
        .is_err()
    {
        tracing::debug!("port mapping removal timed out");
    }
}
