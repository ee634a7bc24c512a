//! HTTP announce and scrape (BEP 3, BEP 23 compact, BEP 7 `peers6`, BEP 48 scrape) on a
//! bare tokio `TcpListener`: no web framework, one request per connection.
//!
//! Owns: parsing a request head into a [`Request`] (pure, [`parse_request`], in
//! `http_parse.rs`), turning it into
//! a full HTTP response ([`respond`], pure given the registry), and the accept loop.
//!
//! Every byte is hostile: the head is at most [`MAX_HEAD`] bytes and must arrive within
//! the head timeout ([`HttpLimits`]); only `GET /announce?…` and `GET /scrape?…` are served; query values are
//! percent-decoded byte by byte (`info_hash` and `peer_id` are raw bytes, `+` is a literal
//! `+`); numbers are plain decimal; the
//! connection is closed after the response.
//!
//! Connections are capped per source (IPv4 address or IPv6 /64) and in total
//! ([`HttpLimits`], table in `http_conns.rs`). The accept loop never waits for a free slot:
//! a connection over its source's share is closed at once, and when the table is full the
//! oldest connection of the source holding most is cancelled. So slow or idle connections
//! (slowloris) from one address hold at most its share for at most the head timeout, and
//! never delay an announce from another address. A scrape answers each info-hash once,
//! however often it is repeated (a bencoded dictionary cannot repeat a key). The peer's address is the connection's source
//! address (the `ip` parameter is ignored, as opentracker does, so nobody can register a
//! third party). Tracker-level errors are `200 OK` with a bencoded `failure reason` (what
//! clients show the user); requests that are not tracker requests get a 4xx status.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::quota::Source;
use super::registry::{canonical, Announce, AnnounceReply, Registry};
use super::{lock, stopped};
use crate::bencode::{self, Value};

#[path = "http_conns.rs"]
mod conns;
#[path = "http_parse.rs"]
mod parse;
use conns::{Admit, Conns};
pub use parse::{
    head_end, parse_request, percent_decode, AnnounceQuery, HttpError, Request, MAX_HEAD,
    MAX_SCRAPE,
};

/// Connection caps and the head timeout of the HTTP front end.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections served at once (512: each costs one 8 KiB buffer and a task).
    pub max_connections: usize,
    /// Connections from one source at once (8: a client announces one request at a time per
    /// tracker; browsers open at most 6 per host; a few more for a NAT of several clients).
    pub max_per_source: usize,
    /// Time allowed for the whole request head to arrive (3 s: an honest client sends its
    /// head, a few hundred bytes, in one segment right after connecting; this is the time a
    /// slow connection can hold one of its source's slots).
    pub head_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_per_source: 8,
            head_timeout: Duration::from_secs(3),
        }
    }
}

/// Time allowed to write the response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Lingering close: at most this long and this many bytes read and discarded after the
/// response.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// The full HTTP response to a request head from `from`.
pub fn respond(head: &[u8], from: SocketAddr, reg: &Mutex<Registry>, now: Instant) -> Vec<u8> {
    match answer(head, from, reg, now) {
        Ok(body) => http_response((200, "OK"), &body),
        Err(e) => {
            tracing::debug!(%from, error = %e, "tracker request refused");
            http_response(e.status(), &failure_body(&e.to_string()))
        }
    }
}

fn answer(
    head: &[u8],
    from: SocketAddr,
    reg: &Mutex<Registry>,
    now: Instant,
) -> Result<Vec<u8>, HttpError> {
    match parse_request(head)? {
        Request::Announce(q) => {
            let addr = canonical(SocketAddr::new(from.ip(), q.port));
            let a = Announce {
                info_hash: q.info_hash,
                peer_id: q.peer_id,
                addr,
                left: q.left,
                event: q.event,
                numwant: q.numwant,
                both_families: true,
            };
            let reply = lock(reg)
                .announce(&a, now)
                .map_err(|e| HttpError::Refused(e.to_string()))?;
            tracing::trace!(%addr, info_hash = %q.info_hash, "http announce");
            Ok(announce_body(&reply, q.compact, q.no_peer_id))
        }
        Request::Scrape(mut hashes) => {
            // One entry per swarm: a repeated info_hash would be a repeated dictionary key.
            hashes.sort_unstable_by_key(|h| h.0);
            hashes.dedup();
            let counts = lock(reg).scrape(&hashes);
            let files = hashes
                .iter()
                .zip(&counts)
                .map(|(h, c)| {
                    let entry = Value::Dict(vec![
                        (&b"complete"[..], Value::Int(c.complete.into())),
                        (&b"downloaded"[..], Value::Int(c.downloaded.into())),
                        (&b"incomplete"[..], Value::Int(c.incomplete.into())),
                    ]);
                    (&h.0[..], entry)
                })
                .collect();
            Ok(bencode::to_vec(&Value::Dict(vec![(
                &b"files"[..],
                Value::Dict(files),
            )])))
        }
    }
}

/// The bencoded announce reply: compact strings (6-byte `peers`, 18-byte `peers6`) or the
/// dictionary list of BEP 3 (both families in one `peers` list).
pub fn announce_body(reply: &AnnounceReply, compact: bool, no_peer_id: bool) -> Vec<u8> {
    let mut d = vec![
        (&b"complete"[..], Value::Int(reply.complete.into())),
        (&b"incomplete"[..], Value::Int(reply.incomplete.into())),
        (&b"interval"[..], Value::Int(secs(reply.interval))),
        (&b"min interval"[..], Value::Int(secs(reply.min_interval))),
    ];
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let ips: Vec<Vec<u8>> = reply
        .peers
        .iter()
        .chain(&reply.peers6)
        .map(|p| p.addr.ip().to_string().into_bytes())
        .collect();
    if compact {
        for p in &reply.peers {
            compact_addr(p.addr, &mut v4);
        }
        for p in &reply.peers6 {
            compact_addr(p.addr, &mut v6);
        }
        d.push((&b"peers"[..], Value::Bytes(&v4)));
        if !v6.is_empty() {
            d.push((&b"peers6"[..], Value::Bytes(&v6)));
        }
    } else {
        let list = reply
            .peers
            .iter()
            .chain(&reply.peers6)
            .zip(&ips)
            .map(|(p, ip)| {
                let mut e = vec![
                    (&b"ip"[..], Value::Bytes(ip)),
                    (&b"port"[..], Value::Int(p.addr.port().into())),
                ];
                if !no_peer_id {
                    e.push((&b"peer id"[..], Value::Bytes(&p.peer_id.0)));
                }
                Value::Dict(e)
            })
            .collect();
        d.push((&b"peers"[..], Value::List(list)));
    }
    bencode::to_vec(&Value::Dict(d))
}

/// IPv4: 4 address bytes + port; IPv6: 16 + port; big-endian.
pub fn compact_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn secs(d: Duration) -> i64 {
    d.as_secs().min(i64::MAX as u64) as i64
}

fn failure_body(msg: &str) -> Vec<u8> {
    bencode::to_vec(&Value::Dict(vec![(
        &b"failure reason"[..],
        Value::Bytes(msg.as_bytes()),
    )]))
}

fn http_response((code, reason): (u16, &str), body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Accept connections until `stop`, within `limits` (see the module docs). In-flight
/// connections are aborted on stop.
pub(crate) async fn serve(
    listener: TcpListener,
    reg: Arc<Mutex<Registry>>,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns: Conns<tokio::task::Id, AbortHandle> =
        Conns::new(limits.max_connections, limits.max_per_source);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                conns.remove(id);
            }
            r = listener.accept() => {
                let (stream, from) = match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "http tracker accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let src = Source::of(from.ip());
                match conns.admit(src) {
                    Admit::No => {
                        tracing::trace!(%from, "http tracker: too many connections from source");
                        // Best effort, never waits: the socket buffer of a new connection
                        // takes this whole.
                        let _ = stream.try_write(BUSY);
                        continue;
                    }
                    Admit::Evict(h) => h.abort(),
                    Admit::Yes => {}
                }
                let reg = reg.clone();
                let head_timeout = limits.head_timeout;
                let h = tasks.spawn(async move {
                    connection(stream, from, &reg, head_timeout).await;
                });
                conns.insert(h.id(), src, h);
            }
            _ = stopped(&mut stop) => break,
        }
    }
    tasks.abort_all();
}

/// The answer to a connection over its source's share.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

async fn connection(
    mut stream: TcpStream,
    from: SocketAddr,
    reg: &Mutex<Registry>,
    head_timeout: Duration,
) {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let read = tokio::time::timeout(head_timeout, async {
        loop {
            let n = stream.read(&mut buf[len..]).await.ok()?;
            if n == 0 {
                return None;
            }
            let before = len;
            len += n;
            if let Some((head, _)) = head_end(&buf[..len], before) {
                return Some(Ok(head));
            }
            if len == MAX_HEAD {
                return Some(Err(HttpError::HeadTooLarge));
            }
        }
    })
    .await;
    let response = match read {
        Ok(Some(Ok(head))) => respond(&buf[..head], from, reg, Instant::now()),
        Ok(Some(Err(e))) => http_response(e.status(), &failure_body(&e.to_string())),
        // Closed, reset or too slow: nobody to answer.
        Ok(None) | Err(_) => return,
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
    // Lingering close: closing with unread bytes (the rest of an oversized head, a body)
    // makes the kernel send RST, which can destroy the response before the client reads
    // it. Drain a bounded amount for a bounded time first.
    let _ = tokio::time::timeout(LINGER, async {
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
