//! Network clients for HTTP(S) and UDP trackers: thin adapters around the pure formats in
//! [`http`](super::http) and [`udp`](super::udp). They make no scheduling decisions; the
//! announcer decides when to call them.
//!
//! HTTP: one reqwest client per tracker (rustls, no OpenSSL), a whole-request timeout, at most
//! [`MAX_REDIRECTS`] redirects, the body read chunk by chunk up to [`MAX_BODY`].
//! UDP (BEP 15): one socket per tracker, bound to the unspecified address of the tracker's
//! family and `connect`ed to it (so the kernel drops datagrams from anyone else); the
//! connection id is reused for [`CONNECTION_ID_TTL`]; a request is retransmitted after
//! `retry_base · 2ⁿ` for `max_tries` tries. Datagrams with a wrong transaction id, wrong action
//! or bad length are ignored until the timeout: only a well-formed answer or an error
//! (action 3) for our transaction ends the wait.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::udp::{self, Family};
use super::{http, AnnounceParams, AnnounceResponse, ScrapeStats, TrackerError, MAX_BODY};
use crate::error::error_chain;
use crate::types::InfoHash;

/// HTTP request timeout, connect to last byte (libtorrent's `tracker_receive_timeout` is 10 s,
/// its completion timeout 30 s).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Redirects followed before giving up (a loop costs only this tracker).
pub const MAX_REDIRECTS: usize = 5;
/// How long a UDP connection id is used (BEP 15: "up to one minute").
pub const CONNECTION_ID_TTL: Duration = Duration::from_secs(60);
/// BEP 15's retransmission base: 15 s, doubled each try.
pub const UDP_RETRY_BASE: Duration = Duration::from_secs(15);
/// Tries before a UDP request fails. BEP 15 allows 8 (over an hour); 3 bounds a dead tracker
/// to 15 + 30 + 60 s, and the announcer backs it off after that.
pub const UDP_MAX_TRIES: u32 = 3;
/// Longest single UDP wait, whatever the base and try.
pub const UDP_MAX_WAIT: Duration = Duration::from_secs(120);

/// Knobs for the clients; [`Default`] gives the values above.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub http_timeout: Duration,
    pub udp_retry_base: Duration,
    pub udp_max_tries: u32,
    /// Local address to send from (the one we listen on, when the user chose one): trackers
    /// record the source address, so it must be the address peers can reach us at.
    pub local_addr: Option<IpAddr>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            http_timeout: HTTP_TIMEOUT,
            udp_retry_base: UDP_RETRY_BASE,
            udp_max_tries: UDP_MAX_TRIES,
            local_addr: None,
        }
    }
}

impl ClientConfig {
    /// The longest a UDP exchange can take (connect and request on every try), for callers
    /// that put an outer timeout around a whole announce.
    pub fn udp_worst_case(&self) -> Duration {
        (0..self.udp_max_tries)
            .map(|n| udp_wait(self.udp_retry_base, n) * 2)
            .sum()
    }
}

fn udp_wait(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.min(16)).min(UDP_MAX_WAIT)
}

/// A tracker of either kind.
#[derive(Debug)]
pub enum Tracker {
    Http(HttpTracker),
    Udp(UdpTracker),
}

impl Tracker {
    /// A client for `url`: `http://`, `https://` or `udp://host:port` (any path is ignored).
    pub fn new(url: &str, cfg: &ClientConfig) -> Result<Self, TrackerError> {
        let invalid = |reason| TrackerError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|_| invalid("not a URL"))?;
        match parsed.scheme() {
            "http" | "https" => Ok(Tracker::Http(HttpTracker::new(url, cfg)?)),
            "udp" => {
                let port = parsed
                    .port()
                    .ok_or_else(|| invalid("UDP URL has no port"))?;
                let host = match parsed.host_str() {
                    None | Some("") => return Err(invalid("UDP URL has no host")),
                    Some(h) => {
                        let bare = h.trim_start_matches('[').trim_end_matches(']');
                        match bare.parse::<IpAddr>() {
                            Ok(ip) => Host::Ip(ip),
                            Err(_) => Host::Name(h.to_string()),
                        }
                    }
                };
                Ok(Tracker::Udp(UdpTracker::new(url, host, port, cfg)))
            }
            _ => Err(TrackerError::UnsupportedScheme(url.to_string())),
        }
    }

    /// The URL this client was made for.
    pub fn url(&self) -> &str {
        match self {
            Tracker::Http(t) => &t.announce,
            Tracker::Udp(t) => &t.url,
        }
    }

    /// Announce once.
    pub async fn announce(&mut self, p: &AnnounceParams) -> Result<AnnounceResponse, TrackerError> {
        match self {
            Tracker::Http(t) => t.announce(p).await,
            Tracker::Udp(t) => t.announce(p).await,
        }
    }

    /// Seeders, leechers and completed downloads for one torrent.
    pub async fn scrape(&mut self, info_hash: &InfoHash) -> Result<ScrapeStats, TrackerError> {
        match self {
            Tracker::Http(t) => t.scrape(info_hash).await,
            Tracker::Udp(t) => t.scrape(info_hash).await,
        }
    }
}

/// An HTTP(S) tracker.
#[derive(Debug)]
pub struct HttpTracker {
    announce: String,
    client: reqwest::Client,
    /// `tracker id` from its last response, echoed back as `trackerid`.
    tracker_id: Option<Vec<u8>>,
}

impl HttpTracker {
    pub fn new(announce: &str, cfg: &ClientConfig) -> Result<Self, TrackerError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.http_timeout)
            .connect_timeout(cfg.http_timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("swarm/", env!("CARGO_PKG_VERSION")))
            .local_address(cfg.local_addr.filter(|ip| !ip.is_unspecified()))
            // Announces are minutes apart and trackers close idle connections (opentracker
            // at once): a pooled connection would only be a stale one.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(http_error)?;
        Ok(HttpTracker {
            announce: announce.to_string(),
            client,
            tracker_id: None,
        })
    }

    pub async fn announce(&mut self, p: &AnnounceParams) -> Result<AnnounceResponse, TrackerError> {
        let url = http::announce_url(&self.announce, p, self.tracker_id.as_deref())?;
        let body = self.get(&url).await?;
        let resp = http::parse_announce(&body)?;
        if let Some(id) = &resp.tracker_id {
            self.tracker_id = Some(id.clone());
        }
        Ok(resp)
    }

    pub async fn scrape(&mut self, info_hash: &InfoHash) -> Result<ScrapeStats, TrackerError> {
        let scrape = http::scrape_url(&self.announce).ok_or(TrackerError::NoScrape)?;
        let url = http::scrape_request_url(&scrape, info_hash)?;
        let body = self.get(&url).await?;
        http::parse_scrape(&body, info_hash)
    }

    /// GET `url` (already fully encoded) and read at most [`MAX_BODY`] bytes of its body.
    async fn get(&self, url: &str) -> Result<Vec<u8>, TrackerError> {
        let url = Url::parse(url).map_err(|_| TrackerError::InvalidUrl {
            url: without_query(url).to_string(),
            reason: "not a URL",
        })?;
        let mut resp = self.client.get(url).send().await.map_err(http_error)?;
        let status = resp.status();
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(TrackerError::BodyTooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_error)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(TrackerError::BodyTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // Some trackers send their `failure reason` with an error status: show it.
            if let Err(TrackerError::Failure(reason)) = http::parse_announce(&body) {
                return Err(TrackerError::Failure(reason));
            }
            return Err(TrackerError::HttpStatus(status.as_u16()));
        }
        Ok(body)
    }
}

/// A reqwest error without its URL: the URL of a request is the announce URL with our
/// query (peer id, key), which must not reach a log or the terminal.
fn http_error(e: reqwest::Error) -> TrackerError {
    TrackerError::Http(e.without_url())
}

/// `scheme://host/path` of `url`: the query (ours, on a request URL) cut off for messages.
pub(crate) fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Where a UDP tracker lives.
#[derive(Debug, Clone)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// A UDP tracker (BEP 15).
#[derive(Debug)]
pub struct UdpTracker {
    url: String,
    host: Host,
    port: u16,
    retry_base: Duration,
    max_tries: u32,
    socket: Option<(UdpSocket, Family)>,
    /// The connection id and when it was obtained.
    conn: Option<(u64, Instant)>,
    local_addr: Option<IpAddr>,
}

impl UdpTracker {
    fn new(url: &str, host: Host, port: u16, cfg: &ClientConfig) -> Self {
        UdpTracker {
            url: url.to_string(),
            host,
            port,
            retry_base: cfg.udp_retry_base,
            local_addr: cfg.local_addr,
            max_tries: cfg.udp_max_tries.max(1),
            socket: None,
            conn: None,
        }
    }

    pub async fn announce(&mut self, p: &AnnounceParams) -> Result<AnnounceResponse, TrackerError> {
        let family = self.socket().await?.1;
        self.exchange(
            |conn, txid| udp::announce_request(conn, txid, p),
            |buf, txid| udp::parse_announce(buf, txid, family),
        )
        .await
    }

    pub async fn scrape(&mut self, info_hash: &InfoHash) -> Result<ScrapeStats, TrackerError> {
        let hashes = [*info_hash];
        let stats = self
            .exchange(
                |conn, txid| udp::scrape_request(conn, txid, &hashes),
                |buf, txid| udp::parse_scrape(buf, txid, 1),
            )
            .await?;
        stats
            .into_iter()
            .next()
            .ok_or(TrackerError::Malformed("scrape response too short"))
    }

    /// The socket, created (and the host resolved) on first use.
    async fn socket(&mut self) -> Result<&(UdpSocket, Family), TrackerError> {
        if self.socket.is_none() {
            let addr = match &self.host {
                Host::Ip(ip) => SocketAddr::new(*ip, self.port),
                Host::Name(name) => tokio::net::lookup_host((name.as_str(), self.port))
                    .await
                    .map_err(|_| TrackerError::Resolve(name.clone()))?
                    .next()
                    .ok_or_else(|| TrackerError::Resolve(name.clone()))?,
            };
            let (any, family) = match addr {
                SocketAddr::V4(_) => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), Family::V4),
                SocketAddr::V6(_) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), Family::V6),
            };
            let bind = match self.local_addr {
                Some(ip) if ip.is_ipv4() == addr.is_ipv4() => ip,
                _ => any,
            };
            let sock = UdpSocket::bind(SocketAddr::new(bind, 0)).await?;
            sock.connect(addr).await?;
            self.socket = Some((sock, family));
        }
        Ok(self.socket.as_ref().expect("socket set above"))
    }

    /// Connect if needed, send the request built by `build(conn_id, txid)` and wait for the
    /// answer `parse(datagram, txid)` accepts, retransmitting with exponential waits.
    async fn exchange<T>(
        &mut self,
        build: impl Fn(u64, u32) -> Vec<u8>,
        parse: impl Fn(&[u8], u32) -> Result<T, TrackerError>,
    ) -> Result<T, TrackerError> {
        let mut buf = vec![0u8; udp::MAX_DATAGRAM];
        for n in 0..self.max_tries {
            let wait = udp_wait(self.retry_base, n);
            let conn = match self.conn {
                Some((id, at)) if at.elapsed() < CONNECTION_ID_TTL => id,
                _ => {
                    let txid = rand::random();
                    let deadline = Instant::now() + wait;
                    let sock = &self.socket().await?.0;
                    sock.send(&udp::connect_request(txid)).await?;
                    match recv_until(sock, &mut buf, deadline, |b| udp::parse_connect(b, txid))
                        .await
                    {
                        Ok(id) => {
                            tracing::trace!(url = %self.url, "udp connected");
                            self.conn = Some((id, Instant::now()));
                            id
                        }
                        Err(TrackerError::Timeout) => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            let txid = rand::random();
            let deadline = Instant::now() + wait;
            let sock = &self.socket().await?.0;
            sock.send(&build(conn, txid)).await?;
            match recv_until(sock, &mut buf, deadline, |b| parse(b, txid)).await {
                Err(TrackerError::Timeout) => {
                    // Perhaps the tracker forgot our connection id: get a fresh one.
                    self.conn = None;
                }
                Err(TrackerError::Failure(msg)) => {
                    // Trackers report an expired connection id this way too.
                    self.conn = None;
                    return Err(TrackerError::Failure(msg));
                }
                other => return other,
            }
        }
        Err(TrackerError::Timeout)
    }
}

/// Read datagrams until `parse` accepts one or reports the tracker's error, or `deadline`.
async fn recv_until<T>(
    sock: &UdpSocket,
    buf: &mut [u8],
    deadline: Instant,
    parse: impl Fn(&[u8]) -> Result<T, TrackerError>,
) -> Result<T, TrackerError> {
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(buf)).await {
            Err(_) => return Err(TrackerError::Timeout),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(TrackerError::Io(e)),
        };
        match parse(&buf[..n]) {
            Ok(v) => return Ok(v),
            Err(e @ TrackerError::Failure(_)) => return Err(e),
            Err(e) => tracing::debug!(error = %error_chain(&e), len = n, "ignoring UDP datagram"),
        }
    }
}
