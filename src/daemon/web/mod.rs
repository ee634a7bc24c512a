//! The daemon's HTTP edge: sockets, caps, authentication and the embedded page. The API's
//! meaning lives in `qbt`, given to [`serve`] as a [`Handler`] and a [`Render`].
//!
//! What it owns:
//! - one accept loop and one task per connection (at most [`MAX_CONNECTIONS`]), HTTP/1.1
//!   through hyper, with capped headers, a header read timeout and a body read timeout;
//! - `auth/login` and `auth/logout`, the session table and the login limiter
//!   ([`auth`]), the Host and Origin/Referer checks ([`check`]);
//! - body parsing into an [`ApiRequest`] (query, urlencoded form, multipart) under caps;
//! - answering: reads from the latest [`View`] (never waiting on the core), commands
//!   sent to the core and awaited with a timeout.
//!
//! Invariants: no request below `/api/v2/` other than `auth/login` reaches the handler
//! without a live session; no request whose Host is not the address reached (or its
//! loopback names) gets past the first check; no API request carrying a foreign Origin or
//! Referer does anything; no body over [`MAX_BODY`] is kept in memory.
//!
//! The auth tables sit behind one `std` mutex held for a few map operations and never
//! across an await: they are the edge's own state, not the core's.

pub mod auth;
pub mod check;
mod edge;
pub mod multipart;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

pub use auth::{hash_password, random_password, verify_password};

use super::api::{ApiRequest, ApiResponse, Outcome, ReplyKind, Step, SyncState};
use super::model::{Request, View};

/// The API's semantics for one request (`qbt::handle`).
pub type Handler = fn(&ApiRequest, &View, &mut SyncState) -> Step;
/// The answer to a command's outcome (`qbt::render`).
pub type Render = fn(ReplyKind, Outcome) -> ApiResponse;

/// A whole request body: a few `.torrent` files at [`multipart::MAX_UPLOAD`] each and
/// their fields. Larger → 413.
pub const MAX_BODY: usize = 20 << 20;
/// Connections served at once; more wait in the kernel's backlog. A browser opens six, a
/// few tools a handful each.
pub const MAX_CONNECTIONS: usize = 128;
/// Request headers: count (hyper's default is 100) and total size (hyper's minimum read
/// buffer, 8 KiB, is enough for a browser's headers and a cookie; 16 KiB leaves room).
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// A client has this long to send its request headers (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// ... and this long to send a body of up to [`MAX_BODY`] (≥ 350 KiB/s).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a command may take in the core before the client gets 503. qBittorrent has no
/// equivalent (it runs commands on its GUI thread); 30 s covers an add that writes state.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// On stop, how long open connections get to finish their request.
const DRAIN_ON_STOP: Duration = Duration::from_secs(5);

/// How the edge authenticates.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The user name (`--web-user`, default `admin` as in qBittorrent).
    pub user: String,
    /// The password as [`hash_password`] stores it (argon2id PHC string).
    pub password_hash: String,
    /// Host header values accepted besides the address reached and, on loopback, the
    /// loopback names (e.g. `nas.lan:8080` behind a name the owner chose). Empty by
    /// default.
    pub extra_hosts: Vec<String>,
}

impl WebConfig {
    pub fn new(user: impl Into<String>, password_hash: impl Into<String>) -> Self {
        WebConfig {
            user: user.into(),
            password_hash: password_hash.into(),
            extra_hosts: Vec::new(),
        }
    }
}

/// What every connection task shares.
struct Shared {
    cfg: WebConfig,
    view: watch::Receiver<Arc<View>>,
    commands: mpsc::Sender<Request>,
    handler: Handler,
    render: Render,
    auth: Mutex<AuthState>,
    /// Password checks at once: argon2 takes ~19 MiB and tens of ms each, so a login flood
    /// cannot take the memory or all the blocking threads.
    hashing: Semaphore,
}

#[derive(Default)]
struct AuthState {
    sessions: auth::Sessions,
    limiter: auth::LoginLimiter,
}

/// Serves HTTP on `listener` until `stop` turns true (or its sender goes), then lets open
/// requests finish for a few seconds and returns. Requests are answered from the latest
/// `view`; commands go to `commands` and their reply is awaited for [`COMMAND_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    cfg: WebConfig,
    view: watch::Receiver<Arc<View>>,
    commands: mpsc::Sender<Request>,
    handler: Handler,
    render: Render,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        cfg,
        view,
        commands,
        handler,
        render,
        auth: Mutex::new(AuthState::default()),
        hashing: Semaphore::new(2),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // A free slot first, so that past the cap connections wait in the backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            r = stop.changed() => { if r.is_err() { break } continue }
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(e) => {
                    tracing::debug!("web: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            r = stop.changed() => { if r.is_err() { break } continue }
        };
        while conns.try_join_next().is_some() {}
        let local = match stream.local_addr() {
            Ok(l) => l,
            Err(_) => continue,
        };
        conns.spawn(connection(
            stream,
            peer,
            local,
            shared.clone(),
            stop.clone(),
            permit,
        ));
    }
    let _ = tokio::time::timeout(DRAIN_ON_STOP, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(edge::respond(req, peer, local, &shared).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("web: {peer}: {e}");
            }
            return;
        }
        () = stopping => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
