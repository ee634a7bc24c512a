//! The socket edge of PCP and NAT-PMP: one connected UDP socket to the gateway's port 5351,
//! retransmission, and the PCP-then-NAT-PMP fallback (RFC 6887 §9).
//!
//! Invariants: the socket is connected, so only datagrams from the gateway's address reach us
//! (RFC 6886 §3.1 tells clients to drop others); each receive reads at most
//! [`natpmp::PCP_MAX_MESSAGE`] bytes; every wait is bounded by the retransmission schedule.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::natpmp::{self, DecodeError, PcpMap, Protocol};
use super::{MapError, Mapped, PortMapConfig, Via};

/// Which of the two the gateway speaks, learnt from its first answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Unknown,
    Pcp,
    NatPmp,
}

pub(super) struct PmpClient {
    sock: UdpSocket,
    local: Ipv4Addr,
    first_timeout: Duration,
    tries: u32,
    dialect: Dialect,
    /// PCP nonces per protocol: a renewal or deletion must repeat the mapping's nonce
    /// (RFC 6887 §11.2).
    nonces: [[u8; 12]; 2],
}

fn slot(p: Protocol) -> usize {
    match p {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
    }
}

impl PmpClient {
    /// A client for `server`; `pcp`/`natpmp` say which dialects we may speak.
    pub(super) async fn connect(
        server: SocketAddr,
        cfg: &PortMapConfig,
        pcp: bool,
        natpmp: bool,
    ) -> Result<Self, MapError> {
        let IpAddr::V4(_) = server.ip() else {
            return Err(MapError::Unsupported("IPv6 gateway"));
        };
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(MapError::io)?;
        sock.connect(server).await.map_err(MapError::io)?;
        let local = match sock.local_addr().map_err(MapError::io)?.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => return Err(MapError::Unsupported("IPv6 local address")),
        };
        Ok(PmpClient {
            sock,
            local,
            first_timeout: cfg.pmp_first_timeout,
            tries: cfg.pmp_tries.max(1),
            // Only one allowed: no fallback (`map` falls back only from `Unknown`).
            dialect: match (pcp, natpmp) {
                (true, true) => Dialect::Unknown,
                (true, false) => Dialect::Pcp,
                _ => Dialect::NatPmp,
            },
            nonces: [rand::random(), rand::random()],
        })
    }

    /// Sends `req` on the RFC 6886 §3.1 schedule (first wait `first_timeout`, doubling) until
    /// `decode` accepts a reply, the router refuses, or the tries run out. Replies that do not
    /// decode are skipped (they may be late answers to an earlier request) but remembered, so
    /// a router that only sends garbage is reported as such rather than as silent.
    async fn exchange<T>(
        &self,
        req: &[u8],
        tries: u32,
        decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
    ) -> Result<T, MapError> {
        let mut buf = [0u8; natpmp::PCP_MAX_MESSAGE];
        let mut wait = self.first_timeout;
        let mut last_bad: Option<DecodeError> = None;
        for _ in 0..tries {
            let deadline = Instant::now() + wait;
            wait = wait.saturating_mul(2);
            if self.sock.send(req).await.is_err() {
                sleep_until(deadline).await;
                continue;
            }
            loop {
                match timeout_at(deadline, self.sock.recv(&mut buf)).await {
                    Err(_) => break,
                    // ICMP "port unreachable" surfaces here: nobody listens; wait out the try
                    // rather than spin.
                    Ok(Err(_)) => {
                        sleep_until(deadline).await;
                        break;
                    }
                    Ok(Ok(n)) => match decode(&buf[..n]) {
                        Ok(v) => return Ok(v),
                        Err(e @ DecodeError::Refused { .. }) => return Err(MapError::Decode(e)),
                        Err(e) => last_bad = Some(e),
                    },
                }
            }
        }
        Err(last_bad.map_or(MapError::NoAnswer, MapError::Decode))
    }

    /// Maps (or renews) `proto` `internal` → `suggested` for `lifetime` seconds.
    pub(super) async fn map(
        &mut self,
        proto: Protocol,
        internal: u16,
        suggested: u16,
        lifetime: u32,
    ) -> Result<Mapped, MapError> {
        if self.dialect != Dialect::NatPmp {
            let req = self.pcp_request(proto, internal, suggested, lifetime);
            match self
                .exchange(&req.encode(), self.tries, |b| req.decode(b))
                .await
            {
                Ok((ip, g)) => {
                    self.dialect = Dialect::Pcp;
                    return Ok(mapped(ip, g, Via::Pcp));
                }
                // A NAT-PMP-only router says "unsupported version" (RFC 6887 §9); one that
                // says nothing may still speak NAT-PMP (some routers drop PCP silently).
                Err(MapError::Decode(DecodeError::Refused {
                    code: natpmp::RESULT_UNSUPP_VERSION,
                }))
                | Err(MapError::NoAnswer)
                    if self.dialect == Dialect::Unknown => {}
                Err(e) => return Err(e),
            }
        }
        let req = natpmp::natpmp_map_request(proto, internal, suggested, lifetime);
        let g = self
            .exchange(&req, self.tries, |b| {
                natpmp::natpmp_decode_map(b, proto, internal)
            })
            .await?;
        self.dialect = Dialect::NatPmp;
        let ip = self
            .exchange(
                &natpmp::natpmp_external_request(),
                self.tries,
                natpmp::natpmp_decode_external,
            )
            .await?;
        Ok(mapped(ip, g, Via::NatPmp))
    }

    /// Deletes a mapping: lifetime 0 (RFC 6886 §3.4, RFC 6887 §15). One try: this runs at exit.
    pub(super) async fn unmap(
        &self,
        proto: Protocol,
        internal: u16,
        external: u16,
        via: Via,
    ) -> Result<(), MapError> {
        if via == Via::Pcp {
            let req = self.pcp_request(proto, internal, external, 0);
            self.exchange(&req.encode(), 1, |b| req.decode(b))
                .await
                .map(drop)
        } else {
            let req = natpmp::natpmp_map_request(proto, internal, 0, 0);
            self.exchange(&req, 1, |b| natpmp::natpmp_decode_map(b, proto, internal))
                .await
                .map(drop)
        }
    }

    fn pcp_request(&self, proto: Protocol, internal: u16, suggested: u16, lifetime: u32) -> PcpMap {
        PcpMap {
            nonce: self.nonces[slot(proto)],
            proto,
            internal,
            suggested_port: suggested,
            lifetime,
            client: self.local,
        }
    }
}

fn mapped(ip: Ipv4Addr, g: natpmp::Granted, via: Via) -> Mapped {
    Mapped {
        external: SocketAddr::new(IpAddr::V4(ip), g.external_port),
        lifetime: Duration::from_secs(u64::from(g.lifetime)),
        via,
    }
}
