//! Shared pieces of the hostile-peer tests of issue 20 (item 5): raw connections from a
//! chosen 127.0.0.x, frame builders, a bounded frame reader that does not trust its peer,
//! a scripted listening attacker, and descriptor counts. Every wait is bounded; nothing
//! here binds anything but loopback.
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use swarm::types::{InfoHash, PeerId};
use swarm::wire::Handshake;

/// Ceiling of any single wait here: nothing may hang CI.
pub const WAIT: Duration = Duration::from_secs(120);
/// Largest frame an attacker reads from the victim: twice the largest message swarm sends
/// (a 16 KiB block plus headers, or a 64 KiB extension frame); more means a broken stream.
pub const MAX_FRAME: usize = 128 * 1024;

pub fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A TCP connection from `from` (port 0) to `to`, or the error (a refused connection is
/// an outcome some tests want to see).
pub async fn try_connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    match tokio::time::timeout(WAIT, s.connect(to)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

pub async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to).await.expect("connect failed")
}

/// A BEP 3 frame: length, `id`, payload.
pub fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    f.push(id);
    f.extend_from_slice(payload);
    f
}

/// A BEP 10 extended message: id 20, extension id `ext`, payload.
pub fn ext_frame(ext: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![ext];
    p.extend_from_slice(payload);
    frame(20, &p)
}

/// Our attacker's BitTorrent handshake for `info_hash` (extension and fast bits set).
pub fn handshake(info_hash: InfoHash, tag: &[u8; 12]) -> [u8; 68] {
    let mut id = *b"-EV0001-000000000000";
    id[8..].copy_from_slice(tag);
    Handshake::new(info_hash, PeerId(id)).to_bytes()
}

/// Reads exactly `n` bytes, bounded by [`WAIT`]; `None` on EOF, error or timeout.
pub async fn read_exact(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; n];
    match tokio::time::timeout(WAIT, s.read_exact(&mut b)).await {
        Ok(Ok(_)) => Some(b),
        _ => None,
    }
}

/// The next frame as (id, payload); keep-alives are skipped. `None` when the stream
/// ends, stalls past [`WAIT`], or sends a frame longer than [`MAX_FRAME`].
pub async fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    loop {
        let len = read_exact(s, 4).await?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        if len == 0 {
            continue;
        }
        if len > MAX_FRAME {
            return None;
        }
        let body = read_exact(s, len).await?;
        return Some((body[0], body[1..].to_vec()));
    }
}

/// Reads and drops everything until the stream ends (or [`WAIT`] passes); returns the
/// bytes read.
pub async fn drain(s: &mut TcpStream) -> usize {
    let mut b = vec![0u8; 64 * 1024];
    let mut n = 0;
    let _ = tokio::time::timeout(WAIT, async {
        while let Ok(k) = s.read(&mut b).await {
            if k == 0 {
                break;
            }
            n += k;
        }
    })
    .await;
    n
}

/// Writes `chunk` again and again until the peer closes (true) or `limit` bytes are
/// written or [`WAIT`] passes (false: the victim kept taking it).
pub async fn write_until_closed(s: &mut TcpStream, chunk: &[u8], limit: usize) -> bool {
    let mut sent = 0;
    let closed = tokio::time::timeout(WAIT, async {
        while sent < limit {
            if s.write_all(chunk).await.is_err() {
                return true;
            }
            sent += chunk.len();
        }
        false
    })
    .await;
    matches!(closed, Ok(true))
}

/// An async script run on each connection a [`Scripted`] listener accepts: the
/// connection's index (0 first) and the stream.
pub type Script =
    Arc<dyn Fn(usize, TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A listening attacker on its own loopback address: every accepted connection runs the
/// script, bounded by [`WAIT`]. Dropping it stops accepting.
pub struct Scripted {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Scripted {
    pub async fn start(bind: IpAddr, script: Script) -> Scripted {
        let listener = TcpListener::bind(SocketAddr::new(bind, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, flag) = (accepted.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while let Ok(Ok((sock, _))) = tokio::time::timeout(WAIT, listener.accept()).await {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let n = count.fetch_add(1, Ordering::Relaxed);
                let fut = script(n, sock);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(WAIT, fut).await;
                });
            }
        });
        Scripted {
            addr,
            accepted,
            stop,
            task,
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

/// A listener that only counts the connections it accepts (and closes them): a dial
/// that must never happen lands here.
pub struct Sentinel {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Sentinel {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Sentinel> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicUsize::new(0));
        let count = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok(Ok(_)) = tokio::time::timeout(WAIT, listener.accept()).await {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Sentinel { addr, hits, task })
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Open descriptors of this process (Linux `/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Polls `f` every 50 ms until it holds, at most `limit`; returns whether it did.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(limit, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}
