//! The per-torrent resume record: which pieces were verified and written, what each file
//! looked like when that was true, and the transfer totals.
//!
//! Format: one bencoded dictionary (canonical, keys sorted):
//!
//! | key | value |
//! |---|---|
//! | `swarm resume` | format version, [`VERSION`] |
//! | `info-hash` | 20 bytes |
//! | `num pieces` | the bitfield's length in pieces |
//! | `pieces` | the bitfield, MSB first as on the wire, spare bits clear |
//! | `files` | one dict per file, in torrent order: `size`, `mtime secs`, `mtime nanos`; an empty dict for a file not created yet (files are created by their first write) |
//! | `uploaded`, `downloaded`, `seeding secs` | totals, non-negative |
//! | `part` | optional: the part file (skipped files' bytes of boundary pieces), as a `files` entry |
//!
//! Keys we do not know are ignored, so a later writer may add some without a new version.
//!
//! Invariants: [`ResumeRecord::decode`] treats its input as hostile: the input is capped
//! before parsing, every key is checked against the torrent the caller has in hand, and it
//! never panics. A record is only trusted when [`judge`] finds every file exactly as
//! recorded; otherwise the caller rechecks.
//!
//! How to save one so that it is true after a crash: take the bitfield of written pieces,
//! then [`Storage::sync_all`](crate::store::Storage::sync_all), then
//! [`Storage::stamps`](crate::store::Storage::stamps), then write the record with
//! [`write_atomic`](super::write_atomic). Pieces written after the bitfield was taken are not
//! in the record; [`Storage::pieces_with_data`](crate::store::Storage::pieces_with_data) finds
//! them on the next start.

use crate::bencode::{self, Value};
use crate::types::{Bitfield, BitfieldError, InfoHash};

pub use crate::store::FileStamp;

/// The format version written under `swarm resume`.
pub const VERSION: i64 = 1;

/// Largest record [`ResumeRecord::decode`] accepts, whatever the torrent. Budget:
/// - the bitfield of [`MAX_PIECES`](crate::layout::Layout::MAX_PIECES) = 2^24 pieces, the
///   most a layout allows: 2 MiB (a sane torrent needs 2^22 pieces at most, 512 KiB);
/// - 100,000 files at the most each entry can take, [`MAX_FILE_ENTRY`] = 89 bytes: 8.9 MB;
/// - the fixed keys, the hash and the totals: about 200 bytes, budgeted [`MAX_FIXED`] = 512.
///
/// That is under 11 MiB; 16 MiB leaves room for a later key or two. A torrent beyond that
/// (the metainfo allows up to a million files) cannot keep resume data and is rechecked.
/// Decoding also caps the input at [`max_record_len`] for the torrent at hand, which is far
/// tighter for ordinary torrents.
pub const MAX_RECORD: usize = 16 << 20;

/// The longest encoding of one `files` entry:
/// `d11:mtime nanosi999999999e10:mtime secsi-9223372036854775808e4:sizei9223372036854775807ee`.
pub const MAX_FILE_ENTRY: usize = 89;

/// Everything but the bitfield and the files, at the longest: keys, the 20-byte hash and
/// four 20-digit integers come to about 200 bytes.
pub const MAX_FIXED: usize = 512;

/// The longest record a torrent of `num_pieces` pieces and `num_files` files can have
/// (capped at [`MAX_RECORD`]).
pub fn max_record_len(num_pieces: u32, num_files: usize) -> usize {
    let bitfield = Bitfield::byte_len(num_pieces);
    let files = num_files.saturating_mul(MAX_FILE_ENTRY);
    MAX_FIXED
        .saturating_add(MAX_FILE_ENTRY)
        .saturating_add(bitfield)
        .saturating_add(files)
        .min(MAX_RECORD)
}

/// What one torrent's progress looked like when it was last saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRecord {
    pub info_hash: InfoHash,
    /// Pieces verified and written (and synced) when the record was made.
    pub pieces: Bitfield,
    /// Each file of the torrent, in order, as it was right after that sync (`None`: not
    /// created yet).
    pub files: Vec<Option<FileStamp>>,
    /// The part file as it was right after that sync (`None`: there was none).
    pub part: Option<FileStamp>,
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeding_secs: u64,
}

/// Why a resume record was refused. Each says what the caller can log before rechecking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("resume record is {len} bytes, more than the {max} this torrent can need")]
    TooLarge { len: usize, max: usize },
    #[error("resume record is not bencode")]
    Bencode(#[source] bencode::BencodeError),
    #[error("resume record is not a dictionary")]
    NotADict,
    #[error("resume record lacks `{key}`")]
    Missing { key: String },
    #[error("resume record's `{key}` is not {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("resume record has format version {found}, this swarm reads {VERSION}")]
    UnknownVersion { found: i64 },
    #[error("resume record is for torrent {found}, not {expected}")]
    WrongInfoHash { found: InfoHash, expected: InfoHash },
    #[error("resume record has {found} pieces, the torrent {expected}")]
    WrongPieceCount { found: i64, expected: u32 },
    #[error("resume record's bitfield is {got} bytes, {pieces} pieces need {expected}")]
    BitfieldLength {
        got: usize,
        expected: usize,
        pieces: u32,
    },
    #[error("resume record's bitfield has bits set past piece {pieces}")]
    SpareBits { pieces: u32 },
    #[error("resume record has {found} files, the torrent {expected}")]
    WrongFileCount { found: usize, expected: usize },
    #[error("resume record's `{key}` is negative ({value})")]
    Negative { key: String, value: i64 },
    #[error("resume record's `{key}` is {value}, out of range")]
    OutOfRange { key: String, value: i64 },
}

impl ResumeRecord {
    /// The canonical bencoding. Totals beyond `i64::MAX` (bencode's range) are saturated;
    /// nobody transfers 8 EiB.
    pub fn encode(&self) -> Vec<u8> {
        let int = |n: u64| Value::Int(n.min(i64::MAX as u64) as i64);
        let stamp = |f: &Option<FileStamp>| match f {
            None => Value::Dict(vec![]),
            Some(f) => Value::Dict(vec![
                (&b"size"[..], int(f.size)),
                (&b"mtime secs"[..], Value::Int(f.mtime_secs)),
                (&b"mtime nanos"[..], Value::Int(i64::from(f.mtime_nanos))),
            ]),
        };
        let files = self.files.iter().map(stamp).collect();
        // Keys in sorted order (canonical bencode): `part` sits between `num pieces` and
        // `pieces`; it is left out when there is no part file.
        let mut entries = vec![
            (&b"swarm resume"[..], Value::Int(VERSION)),
            (&b"info-hash"[..], Value::Bytes(&self.info_hash.0)),
            (&b"num pieces"[..], Value::Int(i64::from(self.pieces.len()))),
        ];
        if self.part.is_some() {
            entries.push((&b"part"[..], stamp(&self.part)));
        }
        entries.extend([
            (&b"pieces"[..], Value::Bytes(self.pieces.as_bytes())),
            (&b"files"[..], Value::List(files)),
            (&b"uploaded"[..], int(self.uploaded)),
            (&b"downloaded"[..], int(self.downloaded)),
            (&b"seeding secs"[..], int(self.seeding_secs)),
        ]);
        let v = Value::Dict(entries);
        bencode::to_vec(&v)
    }

    /// Parses a record and checks it belongs to the torrent in hand: info-hash `expect`,
    /// `num_pieces` pieces, `num_files` files. Never panics; allocates in proportion to the
    /// input, which is capped at [`max_record_len`] first.
    pub fn decode(
        bytes: &[u8],
        expect: &InfoHash,
        num_pieces: u32,
        num_files: usize,
    ) -> Result<ResumeRecord, ResumeError> {
        let max = max_record_len(num_pieces, num_files);
        if bytes.len() > max {
            return Err(ResumeError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        let root = bencode::decode(bytes).map_err(ResumeError::Bencode)?;
        if root.as_dict().is_none() {
            return Err(ResumeError::NotADict);
        }
        let version = int(&root, "swarm resume")?;
        if version != VERSION {
            return Err(ResumeError::UnknownVersion { found: version });
        }

        let hash = bytes_of(&root, "info-hash")?;
        let hash: [u8; 20] = hash.try_into().map_err(|_| ResumeError::WrongType {
            key: "info-hash".into(),
            expected: "20 bytes",
        })?;
        if hash != expect.0 {
            return Err(ResumeError::WrongInfoHash {
                found: InfoHash(hash),
                expected: *expect,
            });
        }

        let found = int(&root, "num pieces")?;
        if found != i64::from(num_pieces) {
            return Err(ResumeError::WrongPieceCount {
                found,
                expected: num_pieces,
            });
        }
        let pieces =
            Bitfield::from_bytes(bytes_of(&root, "pieces")?, num_pieces).map_err(|e| match e {
                BitfieldError::WrongLength {
                    got,
                    expected,
                    pieces,
                } => ResumeError::BitfieldLength {
                    got,
                    expected,
                    pieces,
                },
                BitfieldError::SpareBits { pieces } => ResumeError::SpareBits { pieces },
            })?;

        let list = get(&root, "files")?
            .as_list()
            .ok_or_else(|| ResumeError::WrongType {
                key: "files".into(),
                expected: "a list",
            })?;
        if list.len() != num_files {
            return Err(ResumeError::WrongFileCount {
                found: list.len(),
                expected: num_files,
            });
        }
        let files = list
            .iter()
            .enumerate()
            .map(|(i, v)| file_stamp(&format!("files[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        let part = match root.get(b"part") {
            None => None,
            Some(v) => file_stamp("part", v)?,
        };

        Ok(ResumeRecord {
            info_hash: *expect,
            pieces,
            files,
            part,
            uploaded: non_negative(&root, "uploaded")?,
            downloaded: non_negative(&root, "downloaded")?,
            seeding_secs: non_negative(&root, "seeding secs")?,
        })
    }
}

/// One stamp dictionary; `at` names it in errors (`files[3]`, `part`).
fn file_stamp(at: &str, v: &Value) -> Result<Option<FileStamp>, ResumeError> {
    match v.as_dict() {
        None => {
            return Err(ResumeError::WrongType {
                key: at.to_string(),
                expected: "a dictionary",
            })
        }
        Some([]) => return Ok(None),
        Some(_) => {}
    }
    let key = |k: &str| format!("{at}.{k}");
    let size = get_at(v, "size", key)?;
    let size = checked_non_negative(size, || key("size"))?;
    let mtime_secs = get_at(v, "mtime secs", key)?;
    let nanos = get_at(v, "mtime nanos", key)?;
    let mtime_nanos = match u32::try_from(nanos) {
        Ok(n) if n < 1_000_000_000 => n,
        _ if nanos < 0 => {
            return Err(ResumeError::Negative {
                key: key("mtime nanos"),
                value: nanos,
            })
        }
        _ => {
            return Err(ResumeError::OutOfRange {
                key: key("mtime nanos"),
                value: nanos,
            })
        }
    };
    Ok(Some(FileStamp {
        size,
        mtime_secs,
        mtime_nanos,
    }))
}

fn get<'v, 'a>(dict: &'v Value<'a>, key: &str) -> Result<&'v Value<'a>, ResumeError> {
    dict.get(key.as_bytes())
        .ok_or_else(|| ResumeError::Missing { key: key.into() })
}

fn int(dict: &Value, key: &str) -> Result<i64, ResumeError> {
    get(dict, key)?
        .as_int()
        .ok_or_else(|| ResumeError::WrongType {
            key: key.into(),
            expected: "an integer",
        })
}

/// An integer under `k` of a nested dict, with `path` naming it in errors.
fn get_at(dict: &Value, k: &str, path: impl Fn(&str) -> String) -> Result<i64, ResumeError> {
    match dict.get(k.as_bytes()) {
        None => Err(ResumeError::Missing { key: path(k) }),
        Some(v) => v.as_int().ok_or_else(|| ResumeError::WrongType {
            key: path(k),
            expected: "an integer",
        }),
    }
}

fn bytes_of<'a>(dict: &Value<'a>, key: &str) -> Result<&'a [u8], ResumeError> {
    get(dict, key)?
        .as_bytes()
        .ok_or_else(|| ResumeError::WrongType {
            key: key.into(),
            expected: "a byte string",
        })
}

fn non_negative(dict: &Value, key: &str) -> Result<u64, ResumeError> {
    checked_non_negative(int(dict, key)?, || key.into())
}

fn checked_non_negative(value: i64, key: impl Fn() -> String) -> Result<u64, ResumeError> {
    u64::try_from(value).map_err(|_| ResumeError::Negative { key: key(), value })
}

/// Why the files on disk are not what a record says; one log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the record lists {recorded} files, the torrent has {on_disk}")]
    FileCount { recorded: usize, on_disk: usize },
    #[error("file {file} is missing")]
    Missing { file: usize },
    #[error("file {file} was created since")]
    Appeared { file: usize },
    #[error("file {file} is {size} bytes, recorded {recorded}")]
    Size {
        file: usize,
        size: u64,
        recorded: u64,
    },
    #[error(
        "file {file} was modified at {}.{:09}, recorded {}.{:09}",
        at.mtime_secs, at.mtime_nanos, recorded.mtime_secs, recorded.mtime_nanos
    )]
    Modified {
        file: usize,
        at: FileStamp,
        recorded: FileStamp,
    },
    #[error("the part file {}", part_change(*recorded, *on_disk))]
    Part {
        recorded: Option<FileStamp>,
        on_disk: Option<FileStamp>,
    },
}

fn part_change(recorded: Option<FileStamp>, on_disk: Option<FileStamp>) -> &'static str {
    match (recorded, on_disk) {
        (Some(_), None) => "is missing",
        (None, Some(_)) => "was created since",
        _ => "was modified since",
    }
}

/// Whether `record` still describes the files: `Ok` only when every file exists with exactly
/// the recorded size and mtime (to the nanosecond). `on_disk` is
/// [`Storage::stamps`](crate::store::Storage::stamps), in torrent order. The first
/// difference found is returned.
pub fn judge(
    record: &ResumeRecord,
    on_disk: &[Option<FileStamp>],
    part: Option<FileStamp>,
) -> Result<(), Mismatch> {
    if record.part != part {
        return Err(Mismatch::Part {
            recorded: record.part,
            on_disk: part,
        });
    }
    if record.files.len() != on_disk.len() {
        return Err(Mismatch::FileCount {
            recorded: record.files.len(),
            on_disk: on_disk.len(),
        });
    }
    for (file, (recorded, now)) in record.files.iter().zip(on_disk).enumerate() {
        let (recorded, now) = match (recorded, now) {
            (None, None) => continue,
            (None, Some(_)) => return Err(Mismatch::Appeared { file }),
            (Some(_), None) => return Err(Mismatch::Missing { file }),
            (Some(r), Some(n)) => (r, n),
        };
        if now.size != recorded.size {
            return Err(Mismatch::Size {
                file,
                size: now.size,
                recorded: recorded.size,
            });
        }
        if now != recorded {
            return Err(Mismatch::Modified {
                file,
                at: *now,
                recorded: *recorded,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
