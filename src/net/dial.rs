//! Dialling a peer: connect (bounded by the connect timeout), then the handshake
//! (bounded by the handshake timeout): plaintext, or MSE first as `--encryption` says
//! ([`crypt::dial_plan`]), with one plaintext retry under `Encryption::Prefer`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::conn::{established, ConnCtx, ConnError, Failure, PeerEvent, READ_CHUNK};
use super::crypt::{self, DialPlan};
use crate::config::Encryption;
use crate::engine::PeerKey;
use crate::wire::mse::Cipher;
use crate::wire::Handshake;

/// Dial `addr` and run the connection until it ends. Under `Encryption::Prefer` an
/// encrypted handshake the peer drops is retried once in plaintext, and the address is
/// remembered with what worked (nothing when neither did).
pub async fn dial(key: PeerKey, addr: SocketAddr, ctx: Arc<ConnCtx>) {
    // Held until the connection ends: the process's dialled sockets stay under its
    // descriptor limit however many torrents dial at once (`budget.rs`).
    let _slot = super::budget::dial_slot().await;
    let plan = crypt::dial_plan(ctx.encryption, ctx.dial_memory.get(addr));
    let Some(stream) = connect_or_report(addr, &ctx).await else {
        return;
    };
    let prefer = ctx.encryption == Encryption::Prefer;
    let hs = match (open(stream, plan, &ctx).await, plan) {
        (Err(e), DialPlan::Mse(_)) if prefer && !matches!(e, ConnError::SelfConnection) => {
            let error = crate::error::error_chain(&e);
            tracing::info!(%error, "encrypted handshake failed; dialling again in plaintext");
            let Some(stream) = connect_or_report(addr, &ctx).await else {
                return;
            };
            let r = open(stream, DialPlan::Plaintext, &ctx).await;
            // Only a plaintext handshake that works says the peer wants plaintext: a peer
            // that dropped both (busy, or not ready for the torrent yet) is dialled
            // encrypted again next time (Transmission requiring encryption drops
            // connections for a moment after it starts, and would be lost for good).
            if r.is_ok() {
                ctx.dial_memory.set(addr, false);
            }
            r
        }
        (r, plan) => {
            if r.is_ok() && prefer && plan != DialPlan::Plaintext {
                ctx.dial_memory.set(addr, true);
            }
            r
        }
    };
    match hs {
        Ok(o) => established(key, o.rd, o.wr, o.buf, addr, o.theirs, o.cipher, true, ctx).await,
        Err(e) => {
            tracing::info!(error = %e, "handshake failed");
            let ev = match e {
                ConnError::SelfConnection => PeerEvent::DialedSelf { addr },
                e => PeerEvent::ConnectFailed {
                    addr,
                    kind: handshake_failure(&e, ctx.encryption),
                    error: format!("handshake failed: {}", crate::error::error_chain(&e)),
                },
            };
            let _ = ctx.events.send(ev).await;
        }
    }
}

/// Connects within the connect timeout; a failure is reported to the driver.
async fn connect_or_report(addr: SocketAddr, ctx: &ConnCtx) -> Option<TcpStream> {
    let (error, kind) = match timeout(ctx.connect_timeout, connect(addr, ctx.local_addr)).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "connect failed");
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Failure::Refused,
                std::io::ErrorKind::TimedOut => Failure::TimedOut,
                _ => Failure::Other,
            };
            (connect_error(&e), kind)
        }
        Err(_) => {
            tracing::info!("connect timed out");
            ("connection timed out".to_string(), Failure::TimedOut)
        }
    };
    let _ = ctx
        .events
        .send(PeerEvent::ConnectFailed { addr, error, kind })
        .await;
    None
}

/// What a failed handshake says, as far as it can be told: a peer that hangs up on our
/// plaintext handshake under `--encryption off` most likely requires encryption (that is
/// what libtorrent and Transmission set to require it do); one that hangs up on the
/// encrypted handshake `require` insists on does not speak it. Under `prefer` both kinds
/// were tried, so a hang-up says nothing about encryption.
fn handshake_failure(e: &ConnError, policy: Encryption) -> Failure {
    use std::io::ErrorKind as K;
    let hung_up = match e {
        ConnError::Eof => true,
        ConnError::Io(io) => matches!(
            io.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted
        ),
        ConnError::Mse(_) => policy == Encryption::Require,
        _ => false,
    };
    match (e, policy) {
        (ConnError::WrongInfoHash, _) => Failure::WrongInfoHash,
        (ConnError::Timeout(_), _) => Failure::TimedOut,
        (_, Encryption::Off) if hung_up => Failure::PeerRequiresEncryption,
        (_, Encryption::Require) if hung_up => Failure::RefusedByOurEncryption,
        _ => Failure::Other,
    }
}

/// A dialled connection past its handshake.
struct Opened {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    theirs: Handshake,
    cipher: Option<Cipher>,
}

/// The whole handshake of a connection we dialled, bounded by the handshake timeout.
async fn open(stream: TcpStream, plan: DialPlan, ctx: &ConnCtx) -> Result<Opened, ConnError> {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let (mut rd, mut wr) = stream.into_split();
    let (theirs, cipher) = timeout(
        ctx.handshake_timeout,
        dial_handshake(&mut rd, &mut wr, &mut buf, plan, ctx),
    )
    .await
    .unwrap_or(Err(ConnError::Timeout("handshake")))?;
    Ok(Opened {
        rd,
        wr,
        buf,
        theirs,
        cipher,
    })
}

/// A connect error as a person reads it: `connection refused`, not `Connection refused
/// (os error 111)`.
fn connect_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        k @ (K::ConnectionRefused
        | K::TimedOut
        | K::ConnectionReset
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable) => k.to_string(),
        _ => e.to_string(),
    }
}

async fn connect(addr: SocketAddr, local: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = local.filter(|ip| !ip.is_unspecified() && ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// The handshake of a connection we dialled: ours first (plaintext, or as the initial
/// payload of MSE), then theirs, which must name our torrent and not be ourselves.
async fn dial_handshake(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    plan: DialPlan,
    ctx: &ConnCtx,
) -> Result<(Handshake, Option<Cipher>), ConnError> {
    let ours = ctx.our_handshake();
    let mut cipher = match plan {
        DialPlan::Plaintext => {
            wr.write_all(&ours).await?;
            None
        }
        DialPlan::Mse(provide) => {
            crypt::initiate(rd, wr, buf, ctx.info_hash, provide, ours.to_vec()).await?
        }
    };
    let theirs = crypt::read_handshake(rd, buf, cipher.as_mut().map(|c| &mut c.decrypt)).await?;
    if theirs.info_hash != ctx.info_hash {
        return Err(ConnError::WrongInfoHash);
    }
    if theirs.peer_id == ctx.our_id {
        return Err(ConnError::SelfConnection);
    }
    Ok((theirs, cipher))
}
