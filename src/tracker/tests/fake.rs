//! Tiny fake trackers for tests: an HTTP responder and a UDP responder on 127.0.0.1 port 0,
//! each recording what it received and answering through a closure. Not a tracker server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::tracker::udp::PROTOCOL_ID;

/// What an HTTP handler answers: status line text (e.g. `"200 OK"`), extra headers, body.
pub struct Reply {
    pub status: &'static str,
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: "200 OK",
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

pub struct FakeHttp {
    pub addr: SocketAddr,
    /// Request targets (path and query) in arrival order.
    pub requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHttp {
    pub async fn start(
        handler: impl Fn(&str, SocketAddr) -> Reply + Send + Sync + 'static,
    ) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (handler, log) = (Arc::new(handler), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let target = head.split(' ').nth(1).unwrap_or("").to_string();
                    log.lock().unwrap().push(target.clone());
                    let reply = handler(&target, addr);
                    let mut out = format!(
                        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for h in &reply.headers {
                        out.push_str(h);
                        out.push_str("\r\n");
                    }
                    out.push_str("\r\n");
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&reply.body);
                    let _ = sock.write_all(&bytes).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FakeHttp {
            addr,
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A UDP responder: `handler(datagram)` returns the datagrams to send back.
pub struct FakeUdp {
    pub addr: SocketAddr,
    /// Datagrams received, in order.
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl Drop for FakeUdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUdp {
    pub async fn start(mut handler: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> FakeUdp {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                log.lock().unwrap().push(buf[..n].to_vec());
                for reply in handler(&buf[..n]) {
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        });
        FakeUdp {
            addr,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// A well-behaved BEP 15 responder: connection id `conn`, the given compact v4 peers.
/// Datagrams with a bad connection id get no answer.
pub fn udp_tracker(conn: u64, peers: Vec<u8>) -> impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send {
    move |req| {
        if req.len() < 16 {
            return vec![];
        }
        let (action, txid) = (u32_at(req, 8), u32_at(req, 12));
        let mut out = Vec::new();
        match action {
            0 if u64_at(req, 0) == PROTOCOL_ID => {
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(&txid.to_be_bytes());
                out.extend_from_slice(&conn.to_be_bytes());
            }
            1 if u64_at(req, 0) == conn && req.len() >= 98 => {
                for v in [1, txid, 1800, 0, 1] {
                    out.extend_from_slice(&u32::to_be_bytes(v));
                }
                out.extend_from_slice(&peers);
            }
            2 if u64_at(req, 0) == conn => {
                for v in [2, txid, 4, 9, 1] {
                    out.extend_from_slice(&u32::to_be_bytes(v));
                }
            }
            _ => return vec![],
        }
        vec![out]
    }
}
