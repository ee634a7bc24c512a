//! SHA-1 of two messages at once, on one core: how pieces are verified when two are ready.
//!
//! Why: with the CPU's SHA extensions (SHA-NI), one SHA-1 is bound by the latency of its
//! chain of `sha1rnds4` instructions, not by the core's throughput: the `sha1` crate (and
//! OpenSSL) reach ~1.9 GB/s here, ~0.56 s of CPU per GiB, the largest single cost of a
//! download. Two independent messages interleaved keep the SHA unit busy while either
//! chain waits: `cargo bench --bench store -- hash` gives 1.79 GiB/s for one 256 KiB piece
//! and 2.76 GiB/s for a pair (PERFORMANCE.md, "Two pieces per hash").
//!
//! What it owns: the SHA-NI compression of one or two message streams, the message
//! padding, and the walk over a piece's blocks (chunks of any length) as 64-byte blocks.
//! Without SHA-NI (or off x86-64) [`digest_pair`] is two runs of the `sha1` crate, so the
//! result never depends on the machine; tests compare every path with that crate.
//!
//! Invariant: the only `unsafe` is the call into the `#[target_feature]` function, made
//! after the features were detected at run time; the instructions themselves and every
//! load are safe Rust.
#![allow(unsafe_code)]

use sha1::{Digest, Sha1};

/// SHA-1 digests of the concatenation of `a`'s chunks and of `b`'s chunks.
pub fn digest_pair<A: AsRef<[u8]>, B: AsRef<[u8]>>(a: &[A], b: &[B]) -> ([u8; 20], [u8; 20]) {
    #[cfg(target_arch = "x86_64")]
    if shani::available() {
        return shani::pair(a, b);
    }
    (portable(a), portable(b))
}

/// The `sha1` crate's digest of the concatenated chunks: the path without SHA-NI, and the
/// reference the tests compare with.
fn portable<C: AsRef<[u8]>>(chunks: &[C]) -> [u8; 20] {
    let mut h = Sha1::new();
    for c in chunks {
        h.update(c.as_ref());
    }
    h.finalize().into()
}

#[cfg(target_arch = "x86_64")]
/// The SHA-1 initial state (FIPS 180-4, 5.3.1).
const INIT: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

#[cfg(target_arch = "x86_64")]
/// A message given as chunks of any lengths, read as 64-byte blocks: whole blocks straight
/// from a chunk, a block that straddles chunks copied into `carry`, and the last partial
/// block left for the padding.
struct Blocks<'a, C> {
    chunks: &'a [C],
    /// Current chunk and offset in it.
    at: (usize, usize),
    /// Bytes not yet consumed, over all chunks.
    left: u64,
    /// Total message length in bytes (for the padding).
    len: u64,
    carry: [u8; 64],
}

#[cfg(target_arch = "x86_64")]
impl<'a, C: AsRef<[u8]>> Blocks<'a, C> {
    fn new(chunks: &'a [C]) -> Self {
        let len = chunks.iter().map(|c| c.as_ref().len() as u64).sum();
        Blocks {
            chunks,
            at: (0, 0),
            left: len,
            len,
            carry: [0; 64],
        }
    }

    /// The next run of whole blocks (a multiple of 64 bytes, at least 64), without consuming
    /// it; `None` when fewer than 64 bytes remain.
    fn run(&mut self) -> Option<&[u8]> {
        if self.left < 64 {
            return None;
        }
        self.skip_empty();
        let (i, off) = self.at;
        let chunk = &self.chunks[i].as_ref()[off..];
        if chunk.len() >= 64 {
            return Some(&chunk[..chunk.len() / 64 * 64]);
        }
        // A block that straddles chunks: gather it.
        let (mut i, mut off, mut filled) = (i, off, 0);
        while filled < 64 {
            let c = &self.chunks[i].as_ref()[off..];
            let n = c.len().min(64 - filled);
            self.carry[filled..filled + n].copy_from_slice(&c[..n]);
            filled += n;
            i += 1;
            off = 0;
        }
        Some(&self.carry)
    }

    /// Consumes `n` bytes (at most what is left).
    fn advance(&mut self, mut n: usize) {
        self.left -= n as u64;
        while n > 0 {
            let (i, off) = self.at;
            let rest = self.chunks[i].as_ref().len() - off;
            if n < rest {
                self.at.1 += n;
                return;
            }
            n -= rest;
            self.at = (i + 1, 0);
        }
    }

    fn skip_empty(&mut self) {
        while self.at.0 < self.chunks.len() && self.at.1 == self.chunks[self.at.0].as_ref().len() {
            self.at = (self.at.0 + 1, 0);
        }
    }

    /// The final one or two padded blocks (FIPS 180-4, 5.1.1): the last partial block,
    /// `0x80`, zeros, and the message length in bits, big-endian. Call once `run` is `None`.
    fn padding(&mut self) -> ([u8; 128], usize) {
        let mut out = [0u8; 128];
        let mut n = 0;
        while self.left > 0 {
            self.skip_empty();
            let (i, off) = self.at;
            let c = &self.chunks[i].as_ref()[off..];
            let take = c.len().min(self.left as usize);
            out[n..n + take].copy_from_slice(&c[..take]);
            n += take;
            self.advance(take);
        }
        out[n] = 0x80;
        let blocks = if n + 1 + 8 <= 64 { 1 } else { 2 };
        out[blocks * 64 - 8..blocks * 64].copy_from_slice(&(self.len * 8).to_be_bytes());
        (out, blocks * 64)
    }
}

#[cfg(target_arch = "x86_64")]
fn to_bytes(state: [u32; 5]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use super::{to_bytes, Blocks, INIT};
    use core::arch::x86_64::*;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }

    pub fn pair<A: AsRef<[u8]>, B: AsRef<[u8]>>(a: &[A], b: &[B]) -> ([u8; 20], [u8; 20]) {
        // SAFETY: `available()` was true: this CPU has every feature `pair_shani` enables.
        unsafe { pair_shani(a, b) }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn pair_shani<A: AsRef<[u8]>, B: AsRef<[u8]>>(a: &[A], b: &[B]) -> ([u8; 20], [u8; 20]) {
        let (mut ma, mut mb) = (Blocks::new(a), Blocks::new(b));
        let (mut sa, mut sb) = (State::new(), State::new());
        // Both messages, a run at a time, as long as both have whole blocks.
        while let (Some(ra), Some(rb)) = (ma.run(), mb.run()) {
            let n = ra.len().min(rb.len());
            let (ra, rb) = (ra[..n].as_chunks::<64>().0, rb[..n].as_chunks::<64>().0);
            for (x, y) in ra.iter().zip(rb) {
                two(&mut sa, &mut sb, x, y);
            }
            ma.advance(n);
            mb.advance(n);
        }
        (finish(&mut sa, &mut ma), finish(&mut sb, &mut mb))
    }

    /// The rest of one message alone, then its padding.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn finish<C: AsRef<[u8]>>(s: &mut State, m: &mut Blocks<'_, C>) -> [u8; 20] {
        while let Some(r) = m.run() {
            let n = r.len();
            for x in r.as_chunks::<64>().0 {
                one(s, x);
            }
            m.advance(n);
        }
        let (pad, n) = m.padding();
        for x in pad[..n].as_chunks::<64>().0 {
            one(s, x);
        }
        to_bytes(s.words())
    }

    /// One message's chaining state, in the lane order the SHA instructions use.
    struct State {
        abcd: __m128i,
        e: __m128i,
    }

    impl State {
        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
        fn new() -> State {
            let s = INIT.map(|w| w as i32);
            State {
                abcd: _mm_set_epi32(s[0], s[1], s[2], s[3]),
                e: _mm_set_epi32(s[4], 0, 0, 0),
            }
        }

        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
        fn words(&self) -> [u32; 5] {
            [
                _mm_extract_epi32::<3>(self.abcd) as u32,
                _mm_extract_epi32::<2>(self.abcd) as u32,
                _mm_extract_epi32::<1>(self.abcd) as u32,
                _mm_extract_epi32::<0>(self.abcd) as u32,
                _mm_extract_epi32::<3>(self.e) as u32,
            ]
        }
    }

    /// The working registers of one block: the message schedule (five groups of four
    /// words, reused in a ring) and the two halves of the round state.
    struct Work {
        w0: __m128i,
        w1: __m128i,
        w2: __m128i,
        w3: __m128i,
        w4: __m128i,
        h0: __m128i,
        h1: __m128i,
    }

    /// Four big-endian message words from 16 bytes, first word in the highest lane.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    #[inline]
    fn words(q: &[u8]) -> __m128i {
        let w = |i: usize| i32::from_be_bytes([q[i], q[i + 1], q[i + 2], q[i + 3]]);
        _mm_set_epi32(w(0), w(4), w(8), w(12))
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    #[inline]
    fn start(s: &State, x: &[u8; 64]) -> Work {
        let w0 = words(&x[0..16]);
        Work {
            w0,
            w1: words(&x[16..32]),
            w2: words(&x[32..48]),
            w3: words(&x[48..64]),
            w4: _mm_setzero_si128(),
            h0: s.abcd,
            h1: _mm_add_epi32(s.e, w0),
        }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    #[inline]
    fn end(s: &mut State, w: &Work) {
        s.abcd = _mm_add_epi32(s.abcd, w.h0);
        s.e = _mm_sha1nexte_epu32(w.h1, s.e);
    }

    /// Four rounds into `$t` from `$o`, with message words `$w`, round function `$f`;
    /// with `= ($a, $b, $c, $d)`, `$w` is first computed from the four previous groups.
    macro_rules! step {
        ($k:ident, $t:ident, $o:ident, $w:ident, $f:literal) => {
            $k.$t = _mm_sha1rnds4_epu32::<$f>($k.$o, _mm_sha1nexte_epu32($k.$t, $k.$w));
        };
        ($k:ident, $t:ident, $o:ident, $w:ident = ($a:ident, $b:ident, $c:ident, $d:ident), $f:literal) => {
            $k.$w = _mm_sha1msg2_epu32(
                _mm_xor_si128(_mm_sha1msg1_epu32($k.$a, $k.$b), $k.$c),
                $k.$d,
            );
            step!($k, $t, $o, $w, $f);
        };
    }

    /// The 80 rounds of one block for each work set given, step by step in turn, so that
    /// two independent chains overlap in the core.
    macro_rules! rounds {
        ($($k:ident),+) => {
            $( $k.h1 = _mm_sha1rnds4_epu32::<0>($k.h0, $k.h1); )+
            $( step!($k, h0, h1, w1, 0); )+
            $( step!($k, h1, h0, w2, 0); )+
            $( step!($k, h0, h1, w3, 0); )+
            $( step!($k, h1, h0, w4 = (w0, w1, w2, w3), 0); )+
            $( step!($k, h0, h1, w0 = (w1, w2, w3, w4), 1); )+
            $( step!($k, h1, h0, w1 = (w2, w3, w4, w0), 1); )+
            $( step!($k, h0, h1, w2 = (w3, w4, w0, w1), 1); )+
            $( step!($k, h1, h0, w3 = (w4, w0, w1, w2), 1); )+
            $( step!($k, h0, h1, w4 = (w0, w1, w2, w3), 1); )+
            $( step!($k, h1, h0, w0 = (w1, w2, w3, w4), 2); )+
            $( step!($k, h0, h1, w1 = (w2, w3, w4, w0), 2); )+
            $( step!($k, h1, h0, w2 = (w3, w4, w0, w1), 2); )+
            $( step!($k, h0, h1, w3 = (w4, w0, w1, w2), 2); )+
            $( step!($k, h1, h0, w4 = (w0, w1, w2, w3), 2); )+
            $( step!($k, h0, h1, w0 = (w1, w2, w3, w4), 3); )+
            $( step!($k, h1, h0, w1 = (w2, w3, w4, w0), 3); )+
            $( step!($k, h0, h1, w2 = (w3, w4, w0, w1), 3); )+
            $( step!($k, h1, h0, w3 = (w4, w0, w1, w2), 3); )+
            $( step!($k, h0, h1, w4 = (w0, w1, w2, w3), 3); )+
        };
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn one(s: &mut State, x: &[u8; 64]) {
        let mut k = start(s, x);
        rounds!(k);
        end(s, &k);
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn two(sa: &mut State, sb: &mut State, x: &[u8; 64], y: &[u8; 64]) {
        let (mut ka, mut kb) = (start(sa, x), start(sb, y));
        rounds!(ka, kb);
        end(sa, &ka);
        end(sb, &kb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            let c = c.min(data.len());
            if c >= at {
                out.push(data[at..c].to_vec());
                at = c;
            }
        }
        out.push(data[at..].to_vec());
        out
    }

    #[test]
    fn known_answers() {
        let empty: [&[u8]; 0] = [];
        let (a, b) = digest_pair(&empty, &[b"abc"]);
        assert_eq!(hex(&a), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&b), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        let (a, b) = digest_pair(&[&long[..10], &long[10..]], &[long]);
        assert_eq!(hex(&a), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(a, b);
    }

    /// Every length around the padding's edges (55, 56, 63, 64, …), cut into chunks at
    /// random places, paired with messages of other lengths: the same digests as the
    /// `sha1` crate's.
    #[test]
    fn the_same_digests_as_the_sha1_crate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let data: Vec<u8> = (0..70_000).map(|_| rng.gen()).collect();
        let lens = [
            0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 16384, 65_537,
        ];
        for &la in &lens {
            for &lb in &lens {
                let (a, b) = (&data[..la], &data[la % 7..la % 7 + lb]);
                let mut cuts = [rng.gen_range(0..=la), rng.gen_range(0..=la)];
                cuts.sort();
                let ca = split(a, &cuts);
                let mut cuts: Vec<usize> = (0..5).map(|_| rng.gen_range(0..=lb)).collect();
                cuts.sort();
                let cb = split(b, &cuts);
                let (da, db) = digest_pair(&ca, &cb);
                assert_eq!(da, portable(&[a]), "a: {la} bytes in {} chunks", ca.len());
                assert_eq!(db, portable(&[b]), "b: {lb} bytes in {} chunks", cb.len());
            }
        }
    }

    #[test]
    fn pieces_of_blocks_like_the_store_holds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let blocks = |n: usize, last: usize, rng: &mut rand::rngs::StdRng| -> Vec<Vec<u8>> {
            (0..n)
                .map(|i| {
                    let len = if i + 1 == n { last } else { 16384 };
                    (0..len).map(|_| rng.gen()).collect()
                })
                .collect()
        };
        let a = blocks(16, 16384, &mut rng);
        let b = blocks(3, 1234, &mut rng);
        let (da, db) = digest_pair(&a, &b);
        assert_eq!(da, portable(&a));
        assert_eq!(db, portable(&b));
    }

    fn hex(d: &[u8; 20]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }
}
