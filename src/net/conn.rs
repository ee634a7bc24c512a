//! One task per connection: handshake, then a reader (socket → events for the driver) and
//! a writer (commands from the driver → socket). No decisions are made here.
//!
//! The reader lives in [`super::reader`] (back-pressure, per-peer limits, the download cap).
//!
//! Encryption (MSE/PE, [`super::crypt`]): a connection whose handshake selected RC4 has its
//! reader decrypt every byte it reads and its writer encrypt every byte it writes, each half
//! owning its own RC4 stream. Only then does the writer copy block data (into one encrypted
//! buffer per flush); plaintext connections write blocks zero-copy.
//!
//! Rate limits (see [`super::limit`]): with an upload cap the writer acquires each Piece's
//! bytes just before it writes it, and writes (and reports served) block by block instead
//! of a whole batch at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::Instrument;

use super::crypt::DialMemory;
pub use super::dial::dial;
use super::limit::Limits;
use super::reader::{self, EventBudget};
use crate::config::Encryption;
use crate::engine::PeerKey;
use crate::store::{Reservation, StoreHandle};
use crate::types::{BlockRef, InfoHash, PeerId};
use crate::wire::mse::{Cipher, MseError};
use crate::wire::rc4::Rc4;
use crate::wire::{self, Handshake, Message};

/// Commands queued per connection. The driver never waits on a connection: a peer whose
/// queue is full is dropped (it is not reading what we send).
pub const CMD_QUEUE: usize = 4096;

/// Commands handled per write batch (64 blocks = 1 MiB of uploads).
const BATCH: usize = 64;

/// Socket reads go into a buffer of at least this much free space (a few blocks).
pub(super) const READ_CHUNK: usize = 128 * 1024;

/// What a torrent's connections learn once its metadata is known (at once for a
/// `.torrent`; after the fetch for a magnet, while the connections run).
pub struct Content {
    pub num_pieces: u32,
    pub store: StoreHandle,
}

/// What every connection of a torrent shares.
pub struct ConnCtx {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    /// Set once, by the driver, when the download begins. Until then messages are decoded
    /// without a piece count ([`wire::Decoder::without_piece_count`]) and blocks dropped.
    pub content: std::sync::OnceLock<Content>,
    pub events: mpsc::Sender<PeerEvent>,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
    /// Dial from this address (the one we listen on), so peers see where to reach us.
    pub local_addr: Option<std::net::IpAddr>,
    /// Upload caps, the session's and the torrent's (Piece bytes).
    pub up_limit: Limits,
    /// Download caps, the session's and the torrent's (bytes read).
    pub down_limit: Limits,
    /// Our handshake sets the BEP 5 DHT bit: the session runs a DHT node and the torrent
    /// is not known to be private (the engine sends the `Port` message itself).
    pub dht: bool,
    /// MSE/PE policy (`--encryption`).
    pub encryption: Encryption,
    /// What worked with each address dialled under `Encryption::Prefer`.
    pub dial_memory: DialMemory,
}

impl ConnCtx {
    /// Our handshake's bytes.
    pub(super) fn our_handshake(&self) -> [u8; 68] {
        Handshake::new(self.info_hash, self.our_id)
            .with_dht(self.dht)
            .to_bytes()
    }
}

/// How a connection we dialled failed, as the doctor counts it
/// ([`Attempts`](crate::snapshot::Attempts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Refused,
    TimedOut,
    /// Closed at our plaintext handshake, under `--encryption off`.
    PeerRequiresEncryption,
    /// Dropped the encrypted handshake `--encryption require` insists on.
    RefusedByOurEncryption,
    WrongInfoHash,
    Other,
}

/// From a connection task to the driver.
pub enum PeerEvent {
    Connected {
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        reserved: [u8; 8],
        outbound: bool,
        cmds: mpsc::Sender<ConnCmd>,
    },
    ConnectFailed {
        addr: SocketAddr,
        /// Why, for the give-up message (`connection refused`, `timed out`, ...).
        error: String,
        /// The kind of failure, counted for the doctor.
        kind: Failure,
    },
    DialedSelf {
        addr: SocketAddr,
    },
    /// Any message but Piece and extension messages. Its bytes are held against the
    /// connection's [`EventBudget`] until the driver drops the event.
    Message {
        key: PeerKey,
        msg: Message,
        budget: EventBudget,
    },
    /// The peer's BEP 10 extension handshake, decoded on the connection's task.
    ExtHandshake {
        key: PeerKey,
        handshake: Box<wire::ExtHandshake>,
        budget: EventBudget,
    },
    /// A BEP 9 `ut_metadata` message.
    Metadata {
        key: PeerKey,
        msg: wire::MetadataMsg,
        budget: EventBudget,
    },
    /// A BEP 11 `ut_pex` message.
    Pex {
        key: PeerKey,
        msg: Box<wire::PexMsg>,
        budget: EventBudget,
    },
    Block {
        key: PeerKey,
        block: BlockRef,
        data: bytes::Bytes,
        reservation: Reservation,
    },
    Served {
        key: PeerKey,
        block: BlockRef,
    },
    Closed {
        key: PeerKey,
        reason: String,
    },
}

/// From the driver to a connection task.
#[derive(Debug)]
pub enum ConnCmd {
    Send(Message),
    Serve(BlockRef),
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o")]
    Io(#[from] std::io::Error),
    #[error("timed out ({0})")]
    Timeout(&'static str),
    #[error("protocol")]
    Wire(#[from] wire::WireError),
    #[error("peer is serving another torrent")]
    WrongInfoHash,
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("connection closed by peer")]
    Eof,
    #[error("reading a block to upload")]
    Store(#[from] crate::store::StoreError),
    #[error("driver went away")]
    DriverGone,
    #[error("asked to upload before the torrent's metadata is known")]
    NoContent,
    #[error("encryption handshake")]
    Mse(#[from] MseError),
    #[error("refusing plaintext connection: --encryption require")]
    PlaintextRefused,
    #[error("refusing encrypted connection: --encryption off")]
    EncryptedRefused,
}

/// An incoming connection whose handshake the session has read and routed to this
/// torrent by its info-hash: our handshake is still to be sent.
pub struct Incoming {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub handshake: Handshake,
    /// Whatever the peer sent after its handshake (decrypted).
    pub buf: BytesMut,
    /// The stream's RC4 pair when its MSE handshake selected RC4.
    pub cipher: Option<Cipher>,
}

/// Run a routed incoming connection until it ends: answer its handshake, then serve it.
pub async fn accept(key: PeerKey, incoming: Box<Incoming>, ctx: Arc<ConnCtx>) {
    let Incoming {
        stream,
        addr,
        handshake: theirs,
        mut buf,
        mut cipher,
    } = *incoming;
    let _ = stream.set_nodelay(true);
    if theirs.peer_id == ctx.our_id {
        // We dialled our own listen address (a tracker or a peer's PEX lists us). Our
        // handshake tells the dialing side so (it stops dialing that address); then close.
        tracing::debug!("incoming connection from ourselves");
        let mut stream = stream;
        let mut ours = ctx.our_handshake();
        if let Some(c) = &mut cipher {
            c.encrypt.apply(&mut ours);
        }
        let _ = timeout(ctx.handshake_timeout, stream.write_all(&ours)).await;
        return;
    }
    if buf.capacity() < READ_CHUNK {
        buf.reserve(READ_CHUNK);
    }
    let (rd, mut wr) = stream.into_split();
    let mut ours = ctx.our_handshake();
    if let Some(c) = &mut cipher {
        c.encrypt.apply(&mut ours);
    }
    match timeout(ctx.handshake_timeout, wr.write_all(&ours)).await {
        Ok(Ok(())) => established(key, rd, wr, buf, addr, theirs, cipher, false, ctx).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "sending our handshake failed"),
        Err(_) => tracing::debug!("sending our handshake timed out"),
    }
}

/// A connection past its handshake: announce it to the driver, then run its reader and
/// writer until either ends.
#[allow(clippy::too_many_arguments)]
pub(super) async fn established(
    key: PeerKey,
    mut rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    addr: SocketAddr,
    theirs: Handshake,
    cipher: Option<Cipher>,
    outbound: bool,
    ctx: Arc<ConnCtx>,
) {
    let (decrypt, encrypt) = match cipher {
        Some(c) => (Some(c.decrypt), Some(c.encrypt)),
        None => (None, None),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE);
    let connected = PeerEvent::Connected {
        key,
        addr,
        peer_id: theirs.peer_id,
        reserved: theirs.reserved,
        outbound,
        cmds: cmd_tx,
    };
    if ctx.events.send(connected).await.is_err() {
        return;
    }
    tracing::info!(
        key,
        outbound,
        encrypted = encrypt.is_some(),
        "peer connected"
    );
    let writer = write_loop(key, wr, cmd_rx, encrypt, ctx.clone());
    let mut writer = tokio::spawn(writer.instrument(tracing::Span::current()));
    let result = tokio::select! {
        r = reader::read_loop(key, &mut rd, buf, decrypt, &ctx) => r,
        w = &mut writer => match w {
            Ok(r) => r,
            Err(_) => Err(ConnError::DriverGone),
        },
    };
    writer.abort();
    let reason = match result {
        Ok(()) => "closed".to_string(),
        Err(e) => crate::error::error_chain(&e),
    };
    tracing::info!(key, %reason, "peer disconnected");
    let _ = ctx.events.send(PeerEvent::Closed { key, reason }).await;
}

/// Commands are batched: everything already queued (up to [`BATCH`]) is handled together.
/// Control messages are encoded into one buffer; the blocks to serve are read from the
/// store in one blocking job; the whole batch goes out in vectored writes, in command
/// order, with block data never copied.
async fn write_loop(
    key: PeerKey,
    mut wr: OwnedWriteHalf,
    mut cmds: mpsc::Receiver<ConnCmd>,
    mut encrypt: Option<Rc4>,
    ctx: Arc<ConnCtx>,
) -> Result<(), ConnError> {
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut batch = Vec::with_capacity(BATCH);
    let mut segments: Vec<Bytes> = Vec::with_capacity(2 * BATCH + 1);
    let mut served = Vec::with_capacity(BATCH);
    loop {
        match timeout(ctx.keepalive, cmds.recv()).await {
            Err(_) => {
                let mut keepalive = [0u8; 4];
                if let Some(c) = &mut encrypt {
                    c.apply(&mut keepalive);
                }
                wr.write_all(&keepalive).await?;
                continue;
            }
            Ok(None) => {
                let _ = wr.shutdown().await;
                return Ok(());
            }
            Ok(Some(cmd)) => batch.push(cmd),
        }
        while batch.len() < BATCH {
            match cmds.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let blocks: Vec<BlockRef> = batch
            .iter()
            .filter_map(|c| match c {
                ConnCmd::Serve(b) => Some(*b),
                ConnCmd::Send(_) => None,
            })
            .collect();
        let mut data = if blocks.is_empty() {
            Vec::new()
        } else {
            // The engine asks to serve only once it exists, after the content is set.
            let store = &ctx.content.get().ok_or(ConnError::NoContent)?.store;
            store.read_blocks(blocks).await?
        }
        .into_iter();
        for cmd in batch.drain(..) {
            match cmd {
                ConnCmd::Send(msg) => wire::encode(&msg, &mut out),
                ConnCmd::Serve(block) => {
                    let Some(bytes) = data.next() else { break };
                    if ctx.up_limit.active() {
                        let limit = &ctx.up_limit;
                        // Send what is paid for, then wait for this block's turn.
                        flush(
                            key,
                            &mut wr,
                            &mut out,
                            &mut segments,
                            &mut served,
                            &mut encrypt,
                            &ctx,
                        )
                        .await?;
                        limit.acquire(bytes.len() as u64 + 13).await;
                    }
                    out.extend_from_slice(&wire::piece_header(
                        block.piece,
                        block.offset,
                        bytes.len() as u32,
                    ));
                    segments.push(out.split().freeze());
                    segments.push(bytes);
                    served.push(block);
                }
            }
        }
        flush(
            key,
            &mut wr,
            &mut out,
            &mut segments,
            &mut served,
            &mut encrypt,
            &ctx,
        )
        .await?;
    }
}

/// Write what is buffered and report the blocks in it as served.
async fn flush(
    key: PeerKey,
    wr: &mut OwnedWriteHalf,
    out: &mut BytesMut,
    segments: &mut Vec<Bytes>,
    served: &mut Vec<BlockRef>,
    encrypt: &mut Option<Rc4>,
    ctx: &ConnCtx,
) -> Result<(), ConnError> {
    if !out.is_empty() {
        segments.push(out.split().freeze());
    }
    if segments.is_empty() {
        return Ok(());
    }
    match encrypt {
        None => write_segments(wr, segments).await?,
        Some(c) => {
            // RC4 needs the bytes in one mutable buffer: the one copy encryption costs.
            let mut all = Vec::with_capacity(segments.iter().map(Bytes::len).sum());
            for s in segments.drain(..) {
                all.extend_from_slice(&s);
            }
            c.apply(&mut all);
            wr.write_all(&all).await?;
        }
    }
    for block in served.drain(..) {
        let _ = ctx.events.send(PeerEvent::Served { key, block }).await;
    }
    Ok(())
}

/// Write every segment, as few `writev` calls as the kernel allows.
async fn write_segments(wr: &mut OwnedWriteHalf, segments: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<std::io::IoSlice<'_>> = segments[first..]
            .iter()
            .take(64)
            .map(|s| std::io::IoSlice::new(s))
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let seg = &mut segments[first];
            if n >= seg.len() {
                n -= seg.len();
                first += 1;
            } else {
                seg.advance(n);
                n = 0;
            }
        }
        while first < segments.len() && segments[first].is_empty() {
            first += 1;
        }
    }
    segments.clear();
    Ok(())
}
