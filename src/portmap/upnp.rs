//! UPnP IGD through `igd-next` (tokio): SSDP search, AddPortMapping / DeletePortMapping /
//! GetExternalIPAddress for TCP and UDP.
//!
//! Bounds: igd-next 0.18 itself caps every HTTP body it reads (device description, SCPD,
//! SOAP reply) at 1 MiB (`Limited`, its `MAX_RESPONSE_BYTES`), limits XML nesting to 64,
//! reads SSDP answers into a 1,500-byte buffer, and times out SOAP calls after 10 s. We wrap
//! every call in our own, shorter timeout, so a router that trickles bytes cannot hold us
//! longer than the config says. Its errors can carry the whole reply text; [`MapError::other`]
//! shortens them before they reach a status line.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use igd_next::aio::tokio::{search_gateway, Tokio};
use igd_next::aio::Gateway;
use igd_next::{
    AddAnyPortError, AddPortError, GetExternalIpError, PortMappingProtocol, RemovePortError,
    RequestError, SearchError, SearchOptions,
};
use tokio::time::timeout;

use super::natpmp::Protocol;
use super::{MapError, Mapped, Via};

pub(super) struct UpnpClient {
    search: SocketAddr,
    search_timeout: Duration,
    request_timeout: Duration,
    gateway: Option<(Gateway<Tokio>, IpAddr)>,
}

fn igd_proto(p: Protocol) -> PortMappingProtocol {
    match p {
        Protocol::Tcp => PortMappingProtocol::TCP,
        Protocol::Udp => PortMappingProtocol::UDP,
    }
}

impl UpnpClient {
    pub(super) fn new(
        search: SocketAddr,
        search_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        UpnpClient {
            search,
            search_timeout,
            request_timeout,
            gateway: None,
        }
    }

    /// Forgets the gateway found earlier, so the next round searches again (it may have
    /// rebooted onto another control URL).
    pub(super) fn forget(&mut self) {
        self.gateway = None;
    }

    /// The gateway and our address as it sees us (the source address toward it).
    async fn gateway(&mut self) -> Result<(Gateway<Tokio>, IpAddr), MapError> {
        if let Some(g) = &self.gateway {
            return Ok(g.clone());
        }
        let mut opts = SearchOptions::default();
        opts.broadcast_address = self.search;
        opts.timeout = Some(self.search_timeout);
        opts.single_search_timeout = Some(self.search_timeout);
        if self.search.ip().is_loopback() {
            // A loopback search target (tests) answers from loopback; bind there so nothing
            // leaves the host, and trust its loopback LOCATION, which igd-next otherwise
            // refuses (a LAN device must not point us at our own services).
            opts.bind_addr = SocketAddr::new(self.search.ip(), 0);
            opts.allowed_gateway_ips = vec![self.search.ip()];
        }
        // igd-next's own timeout covers the search loop; ours also covers the socket set-up.
        let gw = match timeout(
            self.search_timeout + Duration::from_secs(1),
            search_gateway(opts),
        )
        .await
        {
            Err(_) | Ok(Err(SearchError::NoResponseWithinTimeout)) => {
                return Err(MapError::NoAnswer)
            }
            Ok(Err(e)) => return Err(MapError::other(e)),
            Ok(Ok(gw)) => gw,
        };
        let local = local_ip_toward(gw.addr).await?;
        self.gateway = Some((gw.clone(), local));
        Ok((gw, local))
    }

    /// Maps `internal` on `suggested` (falling back to any port the router picks when that
    /// one is taken), for `lease` (falling back to a permanent mapping for routers that only
    /// support those, UPnP error 725).
    pub(super) async fn map(
        &mut self,
        proto: Protocol,
        internal: u16,
        suggested: u16,
        lease: Duration,
        description: &str,
    ) -> Result<Mapped, MapError> {
        let (gw, local) = self.gateway().await?;
        let local = SocketAddr::new(local, internal);
        let p = igd_proto(proto);
        let mut secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX);
        let t = self.request_timeout;
        let mut port = suggested;
        let mut any = false;
        loop {
            let res = timeout(t, gw.add_port(p, port, local, secs, description)).await;
            match res {
                Err(_) => return Err(MapError::Timeout),
                Ok(Ok(())) => break,
                Ok(Err(AddPortError::OnlyPermanentLeasesSupported)) if secs != 0 => secs = 0,
                Ok(Err(AddPortError::PortInUse)) if !any => {
                    any = true;
                    port = match timeout(t, gw.add_any_port(p, local, secs, description)).await {
                        Err(_) => return Err(MapError::Timeout),
                        Ok(Err(AddAnyPortError::OnlyPermanentLeasesSupported)) if secs != 0 => {
                            secs = 0;
                            continue;
                        }
                        Ok(Err(AddAnyPortError::RequestError(e))) => return Err(request_error(e)),
                        Ok(Err(e)) => return Err(MapError::other(e)),
                        Ok(Ok(port)) => port,
                    };
                    break;
                }
                Ok(Err(AddPortError::RequestError(e))) => return Err(request_error(e)),
                Ok(Err(e)) => return Err(MapError::other(e)),
            }
        }
        let ip = match timeout(t, gw.get_external_ip()).await {
            Err(_) => return Err(MapError::Timeout),
            Ok(Err(GetExternalIpError::RequestError(e))) => return Err(request_error(e)),
            Ok(Err(e)) => return Err(MapError::other(e)),
            Ok(Ok(ip)) => ip,
        };
        Ok(Mapped {
            external: SocketAddr::new(ip, port),
            // A permanent mapping is still renewed on the lease's schedule: that is how we
            // notice a router that rebooted and forgot it.
            lifetime: lease,
            via: Via::Upnp,
        })
    }

    /// DeletePortMapping for `external`, bounded by the request timeout.
    pub(super) async fn unmap(&mut self, proto: Protocol, external: u16) -> Result<(), MapError> {
        let Some((gw, _)) = self.gateway.clone() else {
            return Ok(());
        };
        match timeout(
            self.request_timeout,
            gw.remove_port(igd_proto(proto), external),
        )
        .await
        {
            Err(_) => Err(MapError::Timeout),
            Ok(Err(RemovePortError::RequestError(e))) => Err(request_error(e)),
            Ok(Err(e)) => Err(MapError::other(e)),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// A failed SOAP call, without echoing the router's reply: igd-next's `InvalidResponse`
/// carries the whole body (up to 1 MiB) unless it is its own "could not read" message.
fn request_error(e: RequestError) -> MapError {
    match e {
        RequestError::InvalidResponse(s) if s.starts_with("could not read response body") => {
            MapError::other(s)
        }
        RequestError::InvalidResponse(s) => {
            MapError::Other(format!("invalid SOAP reply ({} bytes)", s.len()))
        }
        RequestError::ErrorCode(code, desc) => {
            MapError::other(format!("router refused: UPnP error {code} {desc}"))
        }
        e => MapError::other(e),
    }
}

/// Our source address toward `gw`: a connected UDP socket sends nothing but learns the route.
async fn local_ip_toward(gw: SocketAddr) -> Result<IpAddr, MapError> {
    let bind: SocketAddr = if gw.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| MapError::Unsupported("address family"))?;
    let s = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(MapError::io)?;
    s.connect(gw).await.map_err(MapError::io)?;
    Ok(s.local_addr().map_err(MapError::io)?.ip())
}
