//! MSE/PE at the connection edge: runs the sans-IO handshakes of [`crate::wire::mse`] on a
//! socket, applies the `--encryption` policy ([`Encryption`]) to both directions, and
//! remembers per address whether an encrypted dial worked.
//!
//! Invariants:
//! - Every byte read after an MSE handshake that selected RC4 goes through the connection's
//!   one decrypting [`Rc4`], in the order it arrived; bytes past the handshake that arrived
//!   with it are decrypted here before anyone decodes them (RC4 is a stream cipher).
//! - The handshakes only buffer what [`crate::wire::mse`] bounds; callers bound them in time.
//! - [`DialMemory`] holds at most [`MEMORY_CAP`] addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::ConnError;
use crate::config::Encryption;
use crate::types::InfoHash;
use crate::wire::mse::{self, Cipher, CryptoMethods, Initiator, MseError, Responder};
use crate::wire::rc4::Rc4;
use crate::wire::Handshake;

/// Addresses whose outcome [`DialMemory`] keeps: a few thousand covers every peer a big
/// swarm shows one torrent (trackers hand out ~50-200 at a time, `max_peers` is 50), at
/// ~50 bytes each.
pub const MEMORY_CAP: usize = 4096;

/// Per address, whether an encrypted dial worked (`true`) or the peer dropped it and a
/// plaintext one was needed (`false`), so the next dial goes straight to what works.
#[derive(Default)]
pub struct DialMemory(Mutex<HashMap<SocketAddr, bool>>);

impl DialMemory {
    pub fn get(&self, addr: SocketAddr) -> Option<bool> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&addr).copied()
    }

    pub fn set(&self, addr: SocketAddr, encrypted: bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MEMORY_CAP && !map.contains_key(&addr) {
            // Any one goes: forgetting costs one more failed encrypted dial at most.
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        map.insert(addr, encrypted);
    }
}

/// How to open one outgoing connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialPlan {
    Plaintext,
    /// MSE, offering these methods for the payload stream.
    Mse(CryptoMethods),
}

/// The first dial's plan under `policy`, given what `remembered` says about the address.
pub fn dial_plan(policy: Encryption, remembered: Option<bool>) -> DialPlan {
    match (policy, remembered) {
        (Encryption::Off, _) | (Encryption::Prefer, Some(false)) => DialPlan::Plaintext,
        (Encryption::Prefer, _) => DialPlan::Mse(CryptoMethods::BOTH),
        (Encryption::Require, _) => DialPlan::Mse(CryptoMethods::RC4),
    }
}

/// What an incoming MSE handshake looks torrents up by: `HASH('req2', info-hash)` of each
/// (none under `Encryption::Off`, which never runs the responder).
pub fn skeys<'a>(
    policy: Encryption,
    torrents: impl Iterator<Item = &'a InfoHash>,
) -> HashMap<[u8; 20], InfoHash> {
    match policy {
        Encryption::Off => HashMap::new(),
        _ => torrents.map(|ih| (mse::req2_hash(ih), *ih)).collect(),
    }
}

/// The log line of an incoming connection the policy refused.
pub fn refusal(e: &ConnError, addr: SocketAddr) -> String {
    let (kind, policy) = match e {
        ConnError::PlaintextRefused => ("plaintext", "require"),
        _ => ("encrypted", "off"),
    };
    format!("refusing {kind} connection from {addr}: --encryption {policy}")
}

/// Runs the initiator's side ("A") of MSE on a fresh connection, sending `ia` (our
/// BitTorrent handshake) inside it. On return `buf` holds the bytes after the handshake,
/// already decrypted when the returned cipher is `Some`.
pub async fn initiate<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    info_hash: InfoHash,
    provide: CryptoMethods,
    ia: Vec<u8>,
) -> Result<Option<Cipher>, ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut init = Initiator::new(info_hash, provide, ia, &mut rand::thread_rng())?;
    wr.write_all(&init.take_output()).await?;
    loop {
        let n = init.receive(buf)?;
        buf.advance(n);
        let out = init.take_output();
        if !out.is_empty() {
            wr.write_all(&out).await?;
        }
        if init.is_done() {
            break;
        }
        if rd.read_buf(buf).await? == 0 {
            return Err(init.closed().into());
        }
    }
    let mut cipher = init.finish().ok_or(MseError::Failed)?.cipher;
    if let Some(c) = &mut cipher {
        c.decrypt.apply(buf);
    }
    Ok(cipher)
}

/// Reads a BitTorrent handshake, decrypting what is read with `decrypt` (the bytes already
/// in `buf` are plaintext). Bytes after it stay in `buf`, decrypted.
pub async fn read_handshake<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    mut decrypt: Option<&mut Rc4>,
) -> Result<Handshake, ConnError> {
    loop {
        if let Some(h) = Handshake::decode(buf)? {
            buf.advance(Handshake::LEN);
            return Ok(h);
        }
        let old = buf.len();
        if rd.read_buf(buf).await? == 0 {
            return Err(ConnError::Eof);
        }
        if let Some(c) = decrypt.as_deref_mut() {
            c.apply(&mut buf[old..]);
        }
    }
}

/// The handshake of an incoming connection under `policy`: plaintext or MSE, told apart by
/// the first bytes ([`mse::looks_plaintext`]). `lookup` maps `HASH('req2', info_hash)` to
/// one of our torrents. Returns the peer's BitTorrent handshake and the cipher of the
/// stream (our handshake, sent later, goes through its `encrypt`); `buf` keeps what
/// followed, decrypted. The caller bounds it in time.
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    policy: Encryption,
    lookup: impl Fn(&[u8; 20]) -> Option<InfoHash>,
) -> Result<(Handshake, Option<Cipher>), ConnError> {
    let plaintext = loop {
        if let Some(p) = mse::looks_plaintext(buf) {
            break p;
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ConnError::Eof);
        }
    };
    let accept = match (plaintext, policy) {
        (true, Encryption::Require) => return Err(ConnError::PlaintextRefused),
        (true, _) => return Ok((read_handshake(stream, buf, None).await?, None)),
        (false, Encryption::Off) => return Err(ConnError::EncryptedRefused),
        (false, Encryption::Prefer) => CryptoMethods::BOTH,
        (false, Encryption::Require) => CryptoMethods::RC4,
    };
    let mut resp = Responder::new(accept, &mut rand::thread_rng());
    loop {
        let n = resp.receive_with(buf, &lookup)?;
        buf.advance(n);
        let out = resp.take_output();
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        if resp.is_done() {
            break;
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(resp.closed().into());
        }
    }
    let done = resp.finish().ok_or(MseError::Failed)?;
    let mut cipher = done.cipher;
    let mut rest = std::mem::take(buf);
    if let Some(c) = &mut cipher {
        c.decrypt.apply(&mut rest);
    }
    // The peer's IA (normally its handshake) comes first, then the stream.
    buf.extend_from_slice(&done.initial_payload);
    buf.extend_from_slice(&rest);
    let theirs = read_handshake(stream, buf, cipher.as_mut().map(|c| &mut c.decrypt)).await?;
    Ok((theirs, cipher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_policy_and_memory() {
        use DialPlan::*;
        assert_eq!(dial_plan(Encryption::Off, Some(true)), Plaintext);
        assert_eq!(
            dial_plan(Encryption::Prefer, None),
            Mse(CryptoMethods::BOTH)
        );
        assert_eq!(dial_plan(Encryption::Prefer, Some(false)), Plaintext);
        assert_eq!(
            dial_plan(Encryption::Require, Some(false)),
            Mse(CryptoMethods::RC4)
        );
    }

    #[test]
    fn memory_is_capped() {
        let m = DialMemory::default();
        for i in 0..(MEMORY_CAP as u32 + 100) {
            m.set(SocketAddr::from((i.to_be_bytes(), 1)), false);
        }
        assert_eq!(m.0.lock().unwrap().len(), MEMORY_CAP);
        let a = SocketAddr::from(([1, 2, 3, 4], 5));
        m.set(a, true);
        assert_eq!(m.get(a), Some(true));
    }

    fn handshake(ih: InfoHash) -> [u8; 68] {
        Handshake::new(ih, crate::types::PeerId([7; 20])).to_bytes()
    }

    /// Both sides over an in-memory pipe: the responder finds the torrent, reads the IA
    /// handshake, and the two RC4 pairs match (what one encrypts the other decrypts), also
    /// for bytes that arrive in the same read as the handshake's end.
    #[tokio::test]
    async fn initiator_and_responder_meet_over_a_pipe() {
        let ih = InfoHash([9; 20]);
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let dialer = tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(a);
            let mut buf = BytesMut::new();
            let ia = handshake(ih).to_vec();
            let mut c = initiate(&mut rd, &mut wr, &mut buf, ih, CryptoMethods::BOTH, ia)
                .await
                .unwrap()
                .expect("RC4 selected");
            let mut msg = *b"hello";
            c.encrypt.apply(&mut msg);
            wr.write_all(&msg).await.unwrap();
            let theirs = read_handshake(&mut rd, &mut buf, Some(&mut c.decrypt)).await;
            // The message may come in a later read than the handshake.
            while buf.len() < 5 {
                let old = buf.len();
                if rd.read_buf(&mut buf).await.unwrap() == 0 {
                    break;
                }
                c.decrypt.apply(&mut buf[old..]);
            }
            (theirs.unwrap(), buf)
        });
        let mut buf = BytesMut::new();
        let lookup = |h: &[u8; 20]| (*h == mse::req2_hash(&ih)).then_some(ih);
        let (theirs, cipher) = accept_handshake(&mut b, &mut buf, Encryption::Require, lookup)
            .await
            .unwrap();
        assert_eq!(theirs.info_hash, ih);
        let mut c = cipher.expect("RC4 selected");
        // Our handshake and a message in one write: the dialer decrypts both in order.
        let mut out = handshake(ih).to_vec();
        out.extend_from_slice(b"world");
        c.encrypt.apply(&mut out);
        b.write_all(&out).await.unwrap();
        while buf.len() < 5 {
            let old = buf.len();
            assert!(b.read_buf(&mut buf).await.unwrap() > 0);
            c.decrypt.apply(&mut buf[old..]);
        }
        assert_eq!(&buf[..], b"hello");
        let (theirs, rest) = dialer.await.unwrap();
        assert_eq!(theirs.info_hash, ih);
        assert_eq!(&rest[..], b"world");
    }

    #[tokio::test]
    async fn policies_refuse_the_other_kind() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&handshake(InfoHash([1; 20]))).await.unwrap();
        let mut buf = BytesMut::new();
        let r = accept_handshake(&mut b, &mut buf, Encryption::Require, |_| None).await;
        assert!(matches!(r, Err(ConnError::PlaintextRefused)));

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0x55; 96]).await.unwrap();
        let mut buf = BytesMut::new();
        let r = accept_handshake(&mut b, &mut buf, Encryption::Off, |_| None).await;
        assert!(matches!(r, Err(ConnError::EncryptedRefused)));
    }
}
