//! The MSE initiator ("A", the side that dialled); protocol, limits and invariants are in
//! the parent module's docs.

use super::{
    be16, fill, finish_cipher, random_pad, req2_hash, sha1, stream_keys, sync, CryptoMethods, Done,
    Method, MseError, Streams, INITIATOR_SYNC_LIMIT, MAX_IA, MAX_PAD, VC_LEN,
};
use crate::types::InfoHash;
use crate::wire::dh::{KeyPair, KEY_LEN};
use crate::wire::rc4::Rc4;
use rand::RngCore;

enum IState {
    /// Reading Yb.
    Key,
    /// Looking for ENCRYPT(VC) after PadB.
    Sync([u8; VC_LEN]),
    /// Reading crypto_select and len(PadD).
    Select,
    /// Reading PadD.
    PadD(Method, usize),
    Done(Method),
    Failed,
}

/// The side that dialled ("A"). Sends Ya and PadA at once ([`take_output`](Self::take_output)).
pub struct Initiator {
    keys: KeyPair,
    info_hash: InfoHash,
    provide: CryptoMethods,
    ia: Vec<u8>,
    state: IState,
    streams: Option<Streams>,
    buf: Vec<u8>,
    out: Vec<u8>,
    received: usize,
}

impl Initiator {
    /// A handshake for `info_hash` offering `provide`, carrying `initial_payload` (normally
    /// our 68-byte BitTorrent handshake) encrypted inside step 3.
    pub fn new(
        info_hash: InfoHash,
        provide: CryptoMethods,
        initial_payload: Vec<u8>,
        rng: &mut impl RngCore,
    ) -> Result<Initiator, MseError> {
        if provide.is_empty() {
            return Err(MseError::NoCommonMethod {
                offered: 0,
                ours: 0,
            });
        }
        if initial_payload.len() > MAX_IA {
            return Err(MseError::IaTooLong {
                len: initial_payload.len(),
            });
        }
        let keys = KeyPair::generate(rng);
        let mut out = keys.public().to_vec();
        out.extend_from_slice(&random_pad(rng));
        Ok(Initiator {
            keys,
            info_hash,
            provide,
            ia: initial_payload,
            state: IState::Key,
            streams: None,
            buf: Vec::with_capacity(KEY_LEN),
            out,
            received: 0,
        })
    }

    /// Bytes to send now (empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Feeds received bytes; returns how many belong to the handshake (a prefix of `input`).
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, MseError> {
        let mut pos = 0;
        let r = self.step(input, &mut pos);
        self.received += pos;
        if r.is_err() {
            self.state = IState::Failed;
            self.buf = Vec::new();
        }
        r.map(|()| pos)
    }

    fn step(&mut self, input: &[u8], pos: &mut usize) -> Result<(), MseError> {
        loop {
            match self.state {
                IState::Key => {
                    if !fill(&mut self.buf, KEY_LEN, input, pos) {
                        return Ok(());
                    }
                    let mut yb = [0u8; KEY_LEN];
                    yb.copy_from_slice(&self.buf);
                    let s = self.keys.shared_secret(&yb).ok_or(MseError::BadPublicKey)?;
                    let pattern = self.send_step3(&s);
                    self.buf.clear();
                    self.state = IState::Sync(pattern);
                }
                IState::Sync(pattern) => {
                    match sync(&mut self.buf, &pattern, MAX_PAD + VC_LEN, input, pos) {
                        None => return Ok(()),
                        Some(false) => {
                            return Err(MseError::SyncNotFound {
                                limit: INITIATOR_SYNC_LIMIT,
                            })
                        }
                        Some(true) => {}
                    }
                    self.buf.clear();
                    self.state = IState::Select;
                }
                IState::Select => {
                    if !fill(&mut self.buf, 6, input, pos) {
                        return Ok(());
                    }
                    self.decrypt_buf();
                    let b = &self.buf;
                    let select = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    let method = match select {
                        0x01 => Method::Plaintext,
                        0x02 => Method::Rc4,
                        _ => return Err(MseError::SelectNotOffered(select)),
                    };
                    if !self.provide.contains(method) {
                        return Err(MseError::SelectNotOffered(select));
                    }
                    let len = be16(&b[4..6]);
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong { len });
                    }
                    self.buf.clear();
                    self.state = IState::PadD(method, len);
                }
                IState::PadD(method, len) => {
                    if !fill(&mut self.buf, len, input, pos) {
                        return Ok(());
                    }
                    // PadD is encrypted: it advances the B→A stream even though it is discarded.
                    self.decrypt_buf();
                    self.buf = Vec::new();
                    self.state = IState::Done(method);
                }
                IState::Done(_) => return Ok(()),
                IState::Failed => return Err(MseError::Failed),
            }
        }
    }

    fn decrypt_buf(&mut self) {
        if let Some(st) = &mut self.streams {
            st.decrypt.apply(&mut self.buf);
        }
    }

    /// Queues step 3 and returns ENCRYPT(VC) as B will send it (A's sync pattern).
    fn send_step3(&mut self, s: &[u8; KEY_LEN]) -> [u8; VC_LEN] {
        let (key_a, key_b) = stream_keys(s, &self.info_hash);
        let mut encrypt = Rc4::new_drop1024(&key_a);
        let mut decrypt = Rc4::new_drop1024(&key_b);
        let mut pattern = [0u8; VC_LEN];
        decrypt.apply(&mut pattern);

        self.out.extend_from_slice(&sha1(&[b"req1", s]));
        let req3 = sha1(&[b"req3", s]);
        let req2 = req2_hash(&self.info_hash);
        self.out.extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
        let start = self.out.len();
        self.out.extend_from_slice(&[0u8; VC_LEN]);
        self.out
            .extend_from_slice(&self.provide.bits().to_be_bytes());
        self.out.extend_from_slice(&0u16.to_be_bytes()); // len(PadC): empty
        let ia = std::mem::take(&mut self.ia);
        // `new` checked IA against MAX_IA, which fits in a u16.
        self.out.extend_from_slice(&(ia.len() as u16).to_be_bytes());
        self.out.extend_from_slice(&ia);
        encrypt.apply(&mut self.out[start..]);
        self.streams = Some(Streams { encrypt, decrypt });
        pattern
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, IState::Done(_))
    }

    /// Input bytes held right now (never more than [`MAX_BUFFER`](super::MAX_BUFFER)).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The error to report when the peer closes the connection now.
    pub fn closed(&self) -> MseError {
        match self.state {
            IState::Key => MseError::PublicKeyTooShort {
                got: self.buf.len(),
            },
            _ => MseError::Closed {
                received: self.received,
            },
        }
    }

    /// The outcome, once [`is_done`](Self::is_done); `None` before.
    pub fn finish(self) -> Option<Done> {
        let IState::Done(method) = self.state else {
            return None;
        };
        Some(Done {
            method,
            cipher: finish_cipher(method, self.streams),
            info_hash: self.info_hash,
            initial_payload: Vec::new(),
        })
    }
}
