//! RC4, the stream cipher of Message Stream Encryption (MSE/PE), written here rather than
//! pulled from a crate: it is thirty lines, and MSE needs only the keystream XOR.
//!
//! Owns one keystream's state. Invariant: applying the same keystream to the same bytes twice
//! gives them back, so one type encrypts and decrypts. MSE uses the "RC4-drop1024" variant
//! ([`Rc4::new_drop1024`]): the first 1,024 bytes of keystream are discarded because RC4's
//! early output leaks key bytes. RC4 is weak; MSE is obfuscation against traffic shaping,
//! not confidentiality, and interop requires exactly this cipher.

/// Keystream bytes MSE discards after the key setup (the MSE specification).
pub const DROP: usize = 1024;

/// One RC4 keystream.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// Plain RC4 key setup. Keys in MSE are always 20 bytes; an empty key (never ours) acts
    /// as the one-byte key `[0]` instead of dividing by zero.
    pub fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (n, b) in s.iter_mut().enumerate() {
            *b = n as u8;
        }
        let mut j: u8 = 0;
        for n in 0..256 {
            let k = key.get(n % key.len().max(1)).copied().unwrap_or(0);
            j = j.wrapping_add(s[n]).wrapping_add(k);
            s.swap(n, usize::from(j));
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// RC4 with the first [`DROP`] keystream bytes discarded, as MSE keys it.
    pub fn new_drop1024(key: &[u8]) -> Rc4 {
        let mut rc4 = Rc4::new(key);
        rc4.apply(&mut [0u8; DROP]);
        rc4
    }

    /// XORs `data` with the next `data.len()` keystream bytes (encrypts or decrypts in place).
    pub fn apply(&mut self, data: &mut [u8]) {
        let (mut i, mut j, s) = (self.i, self.j, &mut self.s);
        for b in data {
            i = i.wrapping_add(1);
            let si = s[usize::from(i)];
            j = j.wrapping_add(si);
            let sj = s[usize::from(j)];
            s[usize::from(i)] = sj;
            s[usize::from(j)] = si;
            *b ^= s[usize::from(si.wrapping_add(sj))];
        }
        self.i = i;
        self.j = j;
    }
}

impl std::fmt::Debug for Rc4 {
    // The state is key material; never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4(..)")
    }
}
