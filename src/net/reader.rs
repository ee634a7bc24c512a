//! A connection's reader: socket bytes → frames → events for the driver.
//!
//! Everything that costs per peer is paid here, on the connection's own task, not on the
//! driver that serves every peer of the torrent:
//! - frames are decoded and validated ([`Decoder`]);
//! - BEP 10 extension messages are decoded into typed values (the handshake, BEP 9
//!   `ut_metadata`, BEP 11 `ut_pex`, under the ids our handshake gave); the driver gets
//!   only those. Messages under any other id end here;
//! - [`PeerGuard`] caps repeated extension handshakes and extension messages a second
//!   (a flood ends the connection) and throttles whole bitfields.
//!
//! Back-pressure, so the shared event channel never holds more than a bounded amount per
//! peer:
//! - before a Piece is passed on, the reader reserves its bytes in the store's budget;
//! - every other event holds its bytes (its in-memory size, plus the message's wire
//!   length) against the connection's own [`EVENT_BUDGET`] until the driver drops it.
//!
//! When either budget is spent the reader stops reading its socket, and TCP slows the peer.
//!
//! Encryption: with an RC4 stream (`decrypt`) every byte read is decrypted in place, in the
//! order read, before it is decoded; `buf` arrives already decrypted.
//!
//! Download cap (see [`super::limit`]): the reader reads at most [`LIMITED_READ`] bytes at
//! a time and acquires them before reading again.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

use super::conn::{ConnCtx, ConnError, PeerEvent, READ_CHUNK};
use crate::engine::PeerKey;
use crate::types::BlockRef;
use crate::wire::rc4::Rc4;
use crate::wire::{
    Decoder, ExtHandshake, Message, MetadataMsg, PeerGuard, PexMsg, Verdict, WireError,
    OUR_UT_METADATA, OUR_UT_PEX,
};

/// Bytes of non-Piece events one connection may have queued toward the driver: 32 KiB is
/// about 350 Request events (a leecher keeps up to its `reqq`, 500 with us, in flight, and
/// the driver takes each in microseconds), or one bitfield of 256 k pieces. An event larger
/// than the budget (a bitfield of a huge torrent) takes all of it, so it goes alone.
pub const EVENT_BUDGET: usize = 32 * 1024;

/// Free space below which the read buffer is replaced: one block frame (a Piece message
/// with a 16 KiB block and its header).
const READ_REFILL: usize = 16 * 1024 + 13;

/// Most bytes read at once under a download cap: one block and its header, so the cap is
/// shared out in small, fair steps.
pub const LIMITED_READ: u64 = 16 * 1024 + 13;

/// What an event in the driver's channel costs besides its payload: its own size.
const EVENT_OVERHEAD: usize = std::mem::size_of::<PeerEvent>();

/// Bytes of a connection's [`EVENT_BUDGET`] held by one event; released when the driver
/// drops the event.
#[derive(Debug)]
pub struct EventBudget(#[allow(dead_code)] OwnedSemaphorePermit);

async fn hold(budget: &Arc<Semaphore>, bytes: usize) -> Result<EventBudget, ConnError> {
    let n = (EVENT_OVERHEAD + bytes).min(EVENT_BUDGET) as u32;
    budget
        .clone()
        .acquire_many_owned(n)
        .await
        .map(EventBudget)
        .map_err(|_| ConnError::DriverGone)
}

/// What an extension handshake costs in memory once decoded.
fn handshake_size(hs: &ExtHandshake) -> usize {
    std::mem::size_of::<ExtHandshake>()
        + hs.m.iter().map(|(n, _)| n.len() + 32).sum::<usize>()
        + hs.v.as_ref().map_or(0, |v| v.len())
}

/// What a decoded PEX message costs in memory.
fn pex_size(msg: &PexMsg) -> usize {
    std::mem::size_of::<PexMsg>()
        + (msg.added.len() + msg.dropped.len()) * 8
        + (msg.added6.len() + msg.dropped6.len()) * 32
}

/// The next message in `buf`; the decoder learns the piece count as soon as it is known.
fn next(
    dec: &mut Decoder,
    buf: &mut BytesMut,
    ctx: &ConnCtx,
) -> Result<Option<Message>, WireError> {
    if dec.is_unsized() {
        if let Some(c) = ctx.content.get() {
            dec.set_num_pieces(c.num_pieces);
        }
    }
    dec.decode(buf)
}

pub(super) async fn read_loop(
    key: PeerKey,
    rd: &mut OwnedReadHalf,
    mut buf: BytesMut,
    mut decrypt: Option<Rc4>,
    ctx: &ConnCtx,
) -> Result<(), ConnError> {
    let mut dec = match ctx.content.get() {
        Some(c) => Decoder::new(c.num_pieces),
        None => Decoder::without_piece_count(),
    }
    .grow_by(READ_CHUNK);
    let budget = Arc::new(Semaphore::new(EVENT_BUDGET));
    let mut guard = PeerGuard::new(Instant::now());
    loop {
        while let Some(msg) = next(&mut dec, &mut buf, ctx)? {
            let event = match msg {
                Message::Piece {
                    piece,
                    offset,
                    data,
                } => {
                    // Before the metadata nothing was requested: dropped.
                    let Some(content) = ctx.content.get() else {
                        continue;
                    };
                    let len = data.len() as u32;
                    let reservation = content.store.reserve(len).await;
                    PeerEvent::Block {
                        key,
                        block: BlockRef { piece, offset, len },
                        data,
                        reservation,
                    }
                }
                msg => {
                    if let Verdict::Wait(wait) = guard.check(&msg, Instant::now())? {
                        tracing::trace!(key, ?wait, "throttling a peer's bitfields");
                        tokio::time::sleep(wait).await;
                    }
                    match msg {
                        Message::Extended { id: 0, payload } => {
                            let hs = ExtHandshake::decode(&payload).map_err(WireError::from)?;
                            tracing::trace!(key, ?hs, "extension handshake");
                            PeerEvent::ExtHandshake {
                                key,
                                budget: hold(&budget, handshake_size(&hs)).await?,
                                handshake: Box::new(hs),
                            }
                        }
                        // Sent under the ids our handshake gave (BEP 10); a malformed
                        // one ends this connection only.
                        Message::Extended {
                            id: OUR_UT_METADATA,
                            payload,
                        } => match MetadataMsg::decode(&payload, None).map_err(WireError::from)? {
                            Some(msg) => PeerEvent::Metadata {
                                key,
                                budget: hold(&budget, payload.len()).await?,
                                msg,
                            },
                            // A message type BEP 9 may add later: ignored.
                            None => continue,
                        },
                        Message::Extended {
                            id: OUR_UT_PEX,
                            payload,
                        } => {
                            let msg = PexMsg::decode(&payload).map_err(WireError::from)?;
                            PeerEvent::Pex {
                                key,
                                budget: hold(&budget, pex_size(&msg)).await?,
                                msg: Box::new(msg),
                            }
                        }
                        // An id we never gave: counted by the guard, then dropped here.
                        Message::Extended { .. } => continue,
                        msg => PeerEvent::Message {
                            key,
                            budget: hold(&budget, msg.encoded_len()).await?,
                            msg,
                        },
                    }
                }
            };
            ctx.events
                .send(event)
                .await
                .map_err(|_| ConnError::DriverGone)?;
        }
        // A new buffer only when the current one cannot take a whole block frame: every
        // buffer stays alive while any block cut from it waits for its piece, so buffers
        // left half empty would hold memory nobody uses.
        if buf.capacity() - buf.len() < READ_REFILL {
            buf.reserve(READ_CHUNK);
        }
        let read = match ctx.down_limit.active() {
            false => timeout(ctx.idle_timeout, rd.read_buf(&mut buf)).await,
            true => {
                let mut limited = (&mut *rd).take(LIMITED_READ);
                timeout(ctx.idle_timeout, limited.read_buf(&mut buf)).await
            }
        };
        match read {
            Err(_) => return Err(ConnError::Timeout("peer idle")),
            Ok(Ok(0)) => return Err(ConnError::Eof),
            Ok(Ok(n)) => {
                // The n bytes just read end the buffer; RC4 goes through them in order.
                if let Some(c) = &mut decrypt {
                    let len = buf.len();
                    c.apply(&mut buf[len - n..]);
                }
                if ctx.down_limit.active() {
                    ctx.down_limit.acquire(n as u64).await;
                }
            }
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}
