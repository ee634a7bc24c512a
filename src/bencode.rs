//! A small, strict, zero-copy bencode decoder and a canonical encoder.
//!
//! Owns: turning bytes into [`Value`]s that borrow from the input, the raw byte span of a
//! top-level dictionary entry (so `info` can be hashed exactly as it was received), and
//! canonical encoding. Knows nothing about torrents.
//!
//! Strictness (every input is hostile): integers have no leading zeros, no `-0`, and must fit
//! an `i64`; string length prefixes have no leading zeros and are checked against the bytes
//! that remain *before* anything is sliced or allocated; dictionary keys must be unique (so
//! two readers of the same bytes can never disagree about which duplicate wins); nesting is
//! limited to [`MAX_DEPTH`]; [`decode`] must consume the whole input. Dictionary key *order* is
//! not enforced: real torrents in the wild are not always sorted, and their info-hash is
//! taken over the bytes as given.
//!
//! Every container element consumes at least two input bytes, so the memory a decode can
//! allocate is bounded by a small multiple of the input length.

use std::fmt;

/// Deepest nesting of lists and dictionaries accepted (real torrents use 4 or 5).
pub const MAX_DEPTH: usize = 64;

/// A decoded bencode value borrowing from its input.
#[derive(Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Entries in the order they appeared in the input (keys unique).
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// Why some bytes are not strict bencode. Positions are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("unexpected end of input at byte {pos}")]
    UnexpectedEof { pos: usize },
    #[error("unexpected byte 0x{byte:02x} at byte {pos}")]
    UnexpectedByte { pos: usize, byte: u8 },
    #[error("malformed integer at byte {pos}")]
    InvalidInt { pos: usize },
    #[error("integer out of range at byte {pos}")]
    IntOverflow { pos: usize },
    #[error("malformed string length at byte {pos}")]
    InvalidLength { pos: usize },
    #[error("string at byte {pos} claims {len} bytes but only {remaining} remain")]
    LengthExceedsInput {
        pos: usize,
        len: u64,
        remaining: usize,
    },
    #[error("dictionary key at byte {pos} is not a byte string")]
    NonStringKey { pos: usize },
    #[error("duplicate dictionary key {key:?}")]
    DuplicateKey { key: String },
    #[error("nesting deeper than {max} at byte {pos}")]
    TooDeep { pos: usize, max: usize },
    #[error("{count} trailing bytes after the value at byte {pos}")]
    TrailingBytes { pos: usize, count: usize },
    #[error("top-level value is not a dictionary")]
    NotADict,
}

impl<'a> Value<'a> {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, `None` if it is not a string or not valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key` when `self` is a dictionary.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => f
                .debug_map()
                .entries(d.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
                .finish(),
        }
    }
}

/// Decode exactly one value that spans the whole input.
pub fn decode(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    let (v, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(BencodeError::TrailingBytes {
            pos: used,
            count: input.len() - used,
        });
    }
    Ok(v)
}

/// Decode one value at the start of `input`; returns it and the number of bytes it used.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), BencodeError> {
    let mut p = Parser { input, pos: 0 };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

/// Bytes an error message quotes at most from hostile input: enough to recognise a key or
/// path, never a 20 MB key echoed whole into a log or terminal.
pub const EXCERPT_MAX: usize = 64;

/// `bytes` as text for an error message: lossy UTF-8 of at most [`EXCERPT_MAX`] bytes, with
/// "…" when cut.
pub fn excerpt(bytes: &[u8]) -> String {
    if bytes.len() <= EXCERPT_MAX {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut s = String::from_utf8_lossy(&bytes[..EXCERPT_MAX]).into_owned();
    s.push('…');
    s
}

/// The raw bytes of the value stored under `key` in the top-level dictionary `input`
/// (`None` when the key is absent). The whole input is validated as by [`decode`].
pub fn dict_value_span<'a>(input: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, BencodeError> {
    let mut p = Parser { input, pos: 0 };
    if p.peek()? != b'd' {
        return Err(BencodeError::NotADict);
    }
    let mut span = None;
    p.dict(0, |p, k, depth| {
        let start = p.pos;
        p.skip(depth)?;
        if k == key {
            span = Some(start..p.pos);
        }
        Ok(())
    })?;
    if p.pos != input.len() {
        return Err(BencodeError::TrailingBytes {
            pos: p.pos,
            count: input.len() - p.pos,
        });
    }
    Ok(span.map(|r| &input[r]))
}

/// Append the canonical encoding of `v` to `out` (dictionary keys sorted byte-wise).
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(l) => {
            out.push(b'l');
            for item in l {
                encode(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => {
            let mut entries: Vec<&(&[u8], Value)> = d.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'd');
            for (k, v) in entries {
                encode_bytes(k, out);
                encode(v, out);
            }
            out.push(b'e');
        }
    }
}

/// Convenience: the canonical encoding of `v` as a fresh vector.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::UnexpectedEof { pos: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, BencodeError> {
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                let depth = self.enter(depth)?;
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                let mut entries = Vec::new();
                self.dict(depth, |p, key, depth| {
                    entries.push((key, p.value(depth)?));
                    Ok(())
                })?;
                Ok(Value::Dict(entries))
            }
            byte => Err(BencodeError::UnexpectedByte {
                pos: self.pos,
                byte,
            }),
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, BencodeError> {
        if depth >= MAX_DEPTH {
            return Err(BencodeError::TooDeep {
                pos: self.pos,
                max: MAX_DEPTH,
            });
        }
        Ok(depth + 1)
    }

    /// Parse a dictionary at `pos`. After each key, `on_value(self, key, depth)` must consume
    /// exactly that entry's value. Rejects non-string and duplicate keys.
    fn dict(
        &mut self,
        depth: usize,
        mut on_value: impl FnMut(&mut Self, &'a [u8], usize) -> Result<(), BencodeError>,
    ) -> Result<(), BencodeError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut keys: Vec<&'a [u8]> = Vec::new();
        let mut sorted = true;
        while self.peek()? != b'e' {
            if !self.peek()?.is_ascii_digit() {
                return Err(BencodeError::NonStringKey { pos: self.pos });
            }
            let key = self.bytes()?;
            if let Some(last) = keys.last() {
                sorted &= *last < key;
            }
            keys.push(key);
            on_value(self, key, depth)?;
        }
        self.pos += 1;
        // Strictly ascending keys are unique; only unsorted dictionaries pay for a sort.
        if !sorted {
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(BencodeError::DuplicateKey { key: excerpt(w[0]) });
            }
        }
        Ok(())
    }

    /// Validate and step over one value without building it.
    fn skip(&mut self, depth: usize) -> Result<(), BencodeError> {
        match self.peek()? {
            b'i' => self.int().map(drop),
            b'0'..=b'9' => self.bytes().map(drop),
            b'l' => {
                let depth = self.enter(depth)?;
                self.pos += 1;
                while self.peek()? != b'e' {
                    self.skip(depth)?;
                }
                self.pos += 1;
                Ok(())
            }
            b'd' => self.dict(depth, |p, _, depth| p.skip(depth)),
            byte => Err(BencodeError::UnexpectedByte {
                pos: self.pos,
                byte,
            }),
        }
    }

    fn int(&mut self) -> Result<i64, BencodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut n: i64 = 0;
        loop {
            match self.peek()? {
                b'e' => break,
                d @ b'0'..=b'9' => {
                    let d = i64::from(d - b'0');
                    // Accumulate negatively so i64::MIN is representable.
                    n = n
                        .checked_mul(10)
                        .and_then(|n| {
                            if negative {
                                n.checked_sub(d)
                            } else {
                                n.checked_add(d)
                            }
                        })
                        .ok_or(BencodeError::IntOverflow { pos: start })?;
                    self.pos += 1;
                }
                _ => return Err(BencodeError::InvalidInt { pos: start }),
            }
        }
        let digits = &self.input[digits_start..self.pos];
        let bad = digits.is_empty()
            || (digits.len() > 1 && digits[0] == b'0')
            || (negative && digits == b"0");
        if bad {
            return Err(BencodeError::InvalidInt { pos: start });
        }
        self.pos += 1; // 'e'
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], BencodeError> {
        let start = self.pos;
        let mut len: u64 = 0;
        loop {
            match self.peek()? {
                b':' => break,
                d @ b'0'..=b'9' => {
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(u64::from(d - b'0')))
                        .ok_or(BencodeError::InvalidLength { pos: start })?;
                    self.pos += 1;
                }
                _ => return Err(BencodeError::InvalidLength { pos: start }),
            }
        }
        let ndigits = self.pos - start;
        if ndigits == 0 || (ndigits > 1 && self.input[start] == b'0') {
            return Err(BencodeError::InvalidLength { pos: start });
        }
        self.pos += 1; // ':'
        let remaining = self.input.len() - self.pos;
        if len > remaining as u64 {
            return Err(BencodeError::LengthExceedsInput {
                pos: start,
                len,
                remaining,
            });
        }
        let s = &self.input[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }
}

#[cfg(test)]
#[path = "bencode_tests.rs"]
mod tests;
