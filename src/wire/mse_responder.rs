//! The MSE responder ("B", the side that accepted); protocol, limits and invariants are in
//! the parent module's docs.

use super::{
    be16, fill, finish_cipher, random_pad, req2_hash, sha1, stream_keys, sync, CryptoMethods, Done,
    Method, MseError, Streams, MAX_IA, MAX_PAD, RESPONDER_SYNC_LIMIT, VC_LEN,
};
use crate::types::InfoHash;
use crate::wire::dh::{KeyPair, KEY_LEN};
use crate::wire::rc4::Rc4;
use rand::RngCore;

enum RState {
    /// Reading Ya.
    Key,
    /// Looking for HASH('req1', S) after PadA.
    Sync,
    /// Reading HASH('req2', SKEY) xor HASH('req3', S).
    Skey,
    /// Waiting for the caller's lookup of this `HASH('req2', SKEY)`.
    AwaitSkey([u8; 20]),
    /// Reading VC, crypto_provide, len(PadC).
    Provide,
    /// Reading PadC.
    PadC(Method, usize),
    /// Reading len(IA).
    IaLen(Method),
    /// Reading IA.
    Ia(Method, usize),
    Done(Method),
    Failed,
}

/// The side that accepted ("B"). Sends Yb and PadB once Ya is in.
pub struct Responder {
    keys: KeyPair,
    pad: Vec<u8>,
    accept: CryptoMethods,
    prefer: Method,
    state: RState,
    secret: Option<[u8; KEY_LEN]>,
    req1: [u8; 20],
    info_hash: Option<InfoHash>,
    streams: Option<Streams>,
    initial_payload: Vec<u8>,
    buf: Vec<u8>,
    out: Vec<u8>,
    received: usize,
}

impl Responder {
    /// A handshake accepting the methods in `accept` (RC4 preferred; see [`prefer`](Self::prefer)).
    pub fn new(accept: CryptoMethods, rng: &mut impl RngCore) -> Responder {
        Responder {
            keys: KeyPair::generate(rng),
            pad: random_pad(rng),
            accept,
            prefer: Method::Rc4,
            state: RState::Key,
            secret: None,
            req1: [0; 20],
            info_hash: None,
            streams: None,
            initial_payload: Vec::new(),
            buf: Vec::with_capacity(KEY_LEN),
            out: Vec::new(),
            received: 0,
        }
    }

    /// Which method to select when the peer offers both and we accept both.
    pub fn prefer(mut self, method: Method) -> Responder {
        self.prefer = method;
        self
    }

    /// Bytes to send now (empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Feeds received bytes; returns how many belong to the handshake (a prefix of `input`).
    /// Stops early while [`pending_skey`](Self::pending_skey) waits for the caller.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, MseError> {
        let mut pos = 0;
        let r = self.step(input, &mut pos);
        self.received += pos;
        if r.is_err() {
            self.fail();
        }
        r.map(|()| pos)
    }

    /// [`receive`](Self::receive) with a synchronous torrent lookup by `HASH('req2', SKEY)`.
    pub fn receive_with(
        &mut self,
        input: &[u8],
        lookup: impl FnOnce(&[u8; 20]) -> Option<InfoHash>,
    ) -> Result<usize, MseError> {
        let mut n = self.receive(input)?;
        if let Some(req2) = self.pending_skey() {
            self.resolve_skey(lookup(&req2))?;
            n += self.receive(input.get(n..).unwrap_or_default())?;
        }
        Ok(n)
    }

    /// The `HASH('req2', SKEY)` to look up, while the handshake waits for it.
    pub fn pending_skey(&self) -> Option<[u8; 20]> {
        match self.state {
            RState::AwaitSkey(h) => Some(h),
            _ => None,
        }
    }

    /// The answer to [`pending_skey`](Self::pending_skey): the torrent whose [`req2_hash`]
    /// matched, or `None` (an error: the peer wants a torrent we do not have).
    pub fn resolve_skey(&mut self, found: Option<InfoHash>) -> Result<(), MseError> {
        let (RState::AwaitSkey(want), Some(s)) = (&self.state, &self.secret) else {
            return Err(MseError::Failed);
        };
        // A lookup that answers with the wrong torrent would only surface as a bad VC.
        let Some(ih) = found.filter(|ih| req2_hash(ih) == *want) else {
            self.fail();
            return Err(MseError::UnknownTorrent);
        };
        let (key_a, key_b) = stream_keys(s, &ih);
        self.streams = Some(Streams {
            encrypt: Rc4::new_drop1024(&key_b),
            decrypt: Rc4::new_drop1024(&key_a),
        });
        self.info_hash = Some(ih);
        self.state = RState::Provide;
        Ok(())
    }

    fn fail(&mut self) {
        self.state = RState::Failed;
        self.buf = Vec::new();
    }

    fn step(&mut self, input: &[u8], pos: &mut usize) -> Result<(), MseError> {
        loop {
            match self.state {
                RState::Key => {
                    if !fill(&mut self.buf, KEY_LEN, input, pos) {
                        return Ok(());
                    }
                    let mut ya = [0u8; KEY_LEN];
                    ya.copy_from_slice(&self.buf);
                    let s = self.keys.shared_secret(&ya).ok_or(MseError::BadPublicKey)?;
                    self.req1 = sha1(&[b"req1", &s]);
                    self.secret = Some(s);
                    self.out.extend_from_slice(self.keys.public());
                    self.out.append(&mut self.pad);
                    self.buf.clear();
                    self.state = RState::Sync;
                }
                RState::Sync => {
                    let req1 = self.req1;
                    match sync(&mut self.buf, &req1, MAX_PAD + 20, input, pos) {
                        None => return Ok(()),
                        Some(false) => {
                            return Err(MseError::SyncNotFound {
                                limit: RESPONDER_SYNC_LIMIT,
                            })
                        }
                        Some(true) => {}
                    }
                    self.buf.clear();
                    self.state = RState::Skey;
                }
                RState::Skey => {
                    if !fill(&mut self.buf, 20, input, pos) {
                        return Ok(());
                    }
                    let s = self.secret.unwrap_or([0; KEY_LEN]);
                    let req3 = sha1(&[b"req3", &s]);
                    let mut req2 = [0u8; 20];
                    for ((r, a), b) in req2.iter_mut().zip(&self.buf).zip(req3) {
                        *r = a ^ b;
                    }
                    self.buf.clear();
                    self.state = RState::AwaitSkey(req2);
                }
                RState::AwaitSkey(_) | RState::Done(_) => return Ok(()),
                RState::Provide => {
                    if !fill(&mut self.buf, VC_LEN + 4 + 2, input, pos) {
                        return Ok(());
                    }
                    self.decrypt_buf();
                    let b = &self.buf;
                    if b[..VC_LEN] != [0u8; VC_LEN] {
                        return Err(MseError::BadVerification);
                    }
                    let offered = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                    let method = self.choose(offered)?;
                    let len = be16(&b[12..14]);
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong { len });
                    }
                    self.buf.clear();
                    self.state = RState::PadC(method, len);
                }
                RState::PadC(method, len) => {
                    if !fill(&mut self.buf, len, input, pos) {
                        return Ok(());
                    }
                    // PadC is encrypted: it advances the A→B stream even though it is discarded.
                    self.decrypt_buf();
                    self.buf.clear();
                    self.state = RState::IaLen(method);
                }
                RState::IaLen(method) => {
                    if !fill(&mut self.buf, 2, input, pos) {
                        return Ok(());
                    }
                    self.decrypt_buf();
                    let len = be16(&self.buf);
                    if len > MAX_IA {
                        return Err(MseError::IaTooLong { len });
                    }
                    self.buf.clear();
                    self.state = RState::Ia(method, len);
                }
                RState::Ia(method, len) => {
                    if !fill(&mut self.buf, len, input, pos) {
                        return Ok(());
                    }
                    self.decrypt_buf();
                    self.initial_payload = std::mem::take(&mut self.buf);
                    self.send_step4(method);
                    self.state = RState::Done(method);
                }
                RState::Failed => return Err(MseError::Failed),
            }
        }
    }

    /// The method to select from the peer's `crypto_provide` (rule in the module docs).
    fn choose(&self, offered: u32) -> Result<Method, MseError> {
        let common = CryptoMethods::from_bits(offered).intersection(self.accept);
        let other = match self.prefer {
            Method::Rc4 => Method::Plaintext,
            Method::Plaintext => Method::Rc4,
        };
        [self.prefer, other]
            .into_iter()
            .find(|m| common.contains(*m))
            .ok_or(MseError::NoCommonMethod {
                offered,
                ours: self.accept.bits(),
            })
    }

    fn decrypt_buf(&mut self) {
        if let Some(st) = &mut self.streams {
            st.decrypt.apply(&mut self.buf);
        }
    }

    fn send_step4(&mut self, method: Method) {
        let mut msg = [0u8; VC_LEN + 4 + 2]; // VC, crypto_select, len(PadD) = 0
        msg[VC_LEN..VC_LEN + 4].copy_from_slice(&method.bit().to_be_bytes());
        if let Some(st) = &mut self.streams {
            st.encrypt.apply(&mut msg);
        }
        self.out.extend_from_slice(&msg);
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, RState::Done(_))
    }

    /// Input bytes held right now (never more than [`MAX_BUFFER`](super::MAX_BUFFER)).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The error to report when the peer closes the connection now.
    pub fn closed(&self) -> MseError {
        match self.state {
            RState::Key => MseError::PublicKeyTooShort {
                got: self.buf.len(),
            },
            _ => MseError::Closed {
                received: self.received,
            },
        }
    }

    /// The outcome, once [`is_done`](Self::is_done); `None` before.
    pub fn finish(self) -> Option<Done> {
        let (RState::Done(method), Some(info_hash)) = (self.state, self.info_hash) else {
            return None;
        };
        Some(Done {
            method,
            cipher: finish_cipher(method, self.streams),
            info_hash,
            initial_payload: self.initial_payload,
        })
    }
}
