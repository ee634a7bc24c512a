//! `.torrent` files (BEP 3, v1): bytes → a validated [`Metainfo`].
//!
//! Owns: the info-hash, which is the SHA-1 of the `info` value's bytes *exactly as received*
//! (found with [`bencode::dict_value_span`]), so unknown keys and unsorted dictionaries still
//! hash to what every other client computes; and path sanitising, so no file of a hostile
//! torrent can land outside the download directory.
//!
//! Parsing is two-pass: the strict, depth-limited [`bencode::dict_value_span`] first validates the
//! whole input (so serde_bencode, which recurses without limit, only ever sees well-formed,
//! shallow, duplicate-free input), then serde_bencode fills the typed fields.
//!
//! Invariants of a [`Metainfo`]: 0 < piece length ≤ [`MAX_PIECE_LEN`]; `piece_hashes.len() == num_pieces`;
//! total length > 0; every `files[].path` is relative, made only of normal components
//! ([`check_component`]), unique, and never both a file and a directory; `layout` matches
//! `files` and `piece_length`. Optional descriptive fields (`announce`, `comment`, ...) that
//! have the wrong type are ignored rather than fatal, as mature clients do.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

use crate::bencode::{self, BencodeError};
use crate::layout::{Layout, LayoutError};
use crate::types::InfoHash;

/// Largest piece length accepted: 64 MiB. Real torrents use 16 KiB to 16 MiB (libtorrent's
/// creator tops out at 16 MiB, BEP 52 recommends at most a few MiB); this leaves four times
/// that headroom while keeping any piece a bounded amount of work for the store, which
/// hashes pieces larger than its buffer share incrementally instead of holding them whole.
pub const MAX_PIECE_LEN: u32 = 64 << 20;

/// Largest `.torrent` file the CLI will read (the biggest real ones are a few MiB).
pub const MAX_TORRENT_FILE: u64 = 50 << 20;
/// Most files one torrent may list.
pub const MAX_FILES: usize = 1_000_000;
/// Most components in one file path (the torrent name included).
pub const MAX_PATH_DEPTH: usize = 256;

/// Why a `.torrent` was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    #[error("not valid bencode")]
    Bencode(#[from] BencodeError),
    #[error("malformed torrent")]
    Schema(#[source] serde_bencode::Error),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("piece length is zero")]
    PieceLengthZero,
    #[error("piece length {0} is out of range")]
    PieceLengthOutOfRange(i64),
    #[error("piece length {got} is more than the limit of {max} bytes")]
    PieceLengthTooLarge { got: i64, max: u32 },
    #[error("`pieces` is {0} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error("torrent needs {expected} piece hashes but has {got}")]
    PieceCountMismatch { expected: u64, got: u64 },
    #[error("file {:?} has negative length {length}", bencode::excerpt(path.as_bytes()))]
    NegativeLength { path: String, length: i64 },
    #[error("torrent lists no files")]
    NoFiles,
    #[error("torrent has both `length` and `files`")]
    BothLengthAndFiles,
    #[error("torrent contains no data (total length is zero)")]
    Empty,
    #[error("{count} files is more than the limit of {max}")]
    TooManyFiles { count: usize, max: usize },
    #[error("path {:?} is {depth} components deep (limit {max})", bencode::excerpt(path.as_bytes()))]
    PathTooDeep {
        path: String,
        depth: usize,
        max: usize,
    },
    #[error("unsafe path {:?}: {reason}", bencode::excerpt(path.as_bytes()))]
    UnsafePath { path: String, reason: &'static str },
    #[error("path {:?} appears twice", bencode::excerpt(path.as_bytes()))]
    DuplicatePath { path: String },
    #[error("path {:?} is both a file and a directory", bencode::excerpt(path.as_bytes()))]
    PathConflict { path: String },
    #[error("bad piece geometry")]
    Layout(#[from] LayoutError),
}

/// One file of the torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative to the download directory: `name` for a single-file torrent, `name/…` for a
    /// multi-file one. Always safe to join onto the download directory.
    pub path: PathBuf,
    pub length: u64,
}

/// A parsed, validated v1 torrent.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub name: String,
    pub piece_length: u32,
    pub piece_hashes: Vec<[u8; 20]>,
    pub files: Vec<FileEntry>,
    pub multi_file: bool,
    pub announce: Option<String>,
    /// Non-empty tiers of non-empty URLs, as given.
    pub announce_list: Vec<Vec<String>>,
    pub private: bool,
    /// BEP 19 web seeds.
    pub url_list: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    pub layout: Layout,
    /// The raw `info` dictionary, exactly the bytes the info-hash is taken over: what we
    /// serve to peers fetching the metadata (BEP 9).
    pub info_bytes: bytes::Bytes,
}

impl Metainfo {
    /// Parse and validate a `.torrent` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        // Pass 1: strict validation of the whole input (depth, lengths, duplicate keys,
        // trailing bytes) while finding the raw `info` bytes.
        let info_bytes =
            bencode::dict_value_span(bytes, b"info")?.ok_or(MetainfoError::MissingField("info"))?;
        let info_hash = InfoHash(Sha1::digest(info_bytes).into());

        // Pass 2: typed fields.
        let raw: RawTorrent = serde_bencode::from_bytes(bytes).map_err(MetainfoError::Schema)?;
        let info = raw.info.ok_or(MetainfoError::MissingField("info"))?;

        let name = lossy(&info.name.ok_or(MetainfoError::MissingField("name"))?);
        check_name(&name)?;

        let piece_length = match info.piece_length {
            None => return Err(MetainfoError::MissingField("piece length")),
            Some(0) => return Err(MetainfoError::PieceLengthZero),
            Some(n) if n < 0 => return Err(MetainfoError::PieceLengthOutOfRange(n)),
            Some(n) if n > i64::from(MAX_PIECE_LEN) => {
                return Err(MetainfoError::PieceLengthTooLarge {
                    got: n,
                    max: MAX_PIECE_LEN,
                })
            }
            Some(n) => u32::try_from(n).map_err(|_| MetainfoError::PieceLengthOutOfRange(n))?,
        };
        let pieces = info.pieces.ok_or(MetainfoError::MissingField("pieces"))?;

        let (files, multi_file) = match (info.length, info.files) {
            (Some(_), Some(_)) => return Err(MetainfoError::BothLengthAndFiles),
            (None, None) => return Err(MetainfoError::MissingField("length or files")),
            (Some(length), None) => {
                let length = non_negative(length, || name.clone())?;
                let path = PathBuf::from(&name);
                (vec![FileEntry { path, length }], false)
            }
            (None, Some(list)) => (multi_files(&name, list)?, true),
        };

        let lens: Vec<u64> = files.iter().map(|f| f.length).collect();
        let layout = Layout::new(piece_length, &lens)?;
        if layout.total_len() == 0 {
            return Err(MetainfoError::Empty);
        }
        if pieces.len() % 20 != 0 {
            return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
        }
        let expected = u64::from(layout.num_pieces());
        let got = (pieces.len() / 20) as u64;
        if expected != got {
            return Err(MetainfoError::PieceCountMismatch { expected, got });
        }
        let piece_hashes = pieces
            .chunks_exact(20)
            .map(|c| {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                h
            })
            .collect();

        Ok(Metainfo {
            info_hash,
            name,
            piece_length,
            piece_hashes,
            files,
            multi_file,
            announce: raw.announce.and_then(Lenient::into_string),
            announce_list: raw
                .announce_list
                .map(Lenient::into_tiers)
                .unwrap_or_default(),
            private: matches!(info.private, Some(Lenient::Int(1))),
            url_list: raw.url_list.map(Lenient::into_urls).unwrap_or_default(),
            comment: raw.comment.and_then(Lenient::into_string),
            created_by: raw.created_by.and_then(Lenient::into_string),
            creation_date: raw.creation_date.and_then(Lenient::into_int),
            layout,
            info_bytes: bytes::Bytes::copy_from_slice(info_bytes),
        })
    }

    /// A `.torrent` file around an info dictionary fetched from peers (BEP 9), with the
    /// magnet's trackers as `announce` and one tier each in `announce-list`. The caller
    /// has checked that `info` hashes to the info-hash it wanted; [`Self::from_bytes`]
    /// then validates it as it would any `.torrent`.
    pub fn torrent_bytes(info: &[u8], trackers: &[String]) -> Vec<u8> {
        use crate::bencode::Value;
        let mut out = Vec::with_capacity(info.len() + 64 + 32 * trackers.len());
        out.push(b'd');
        if let Some(first) = trackers.first() {
            let tiers = trackers
                .iter()
                .map(|t| Value::List(vec![Value::Bytes(t.as_bytes())]))
                .collect();
            let head = Value::Dict(vec![
                (b"announce", Value::Bytes(first.as_bytes())),
                (b"announce-list", Value::List(tiers)),
            ]);
            let head = crate::bencode::to_vec(&head);
            // The dictionary's entries without its own `d`…`e`.
            out.extend_from_slice(&head[1..head.len() - 1]);
        }
        out.extend_from_slice(b"4:info");
        out.extend_from_slice(info);
        out.push(b'e');
        out
    }

    pub fn total_length(&self) -> u64 {
        self.layout.total_len()
    }

    pub fn num_pieces(&self) -> u32 {
        self.layout.num_pieces()
    }

    /// Tracker tiers: `announce-list` when present and non-empty, else `[[announce]]`;
    /// empty when the torrent names no tracker (DHT/PEX only).
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else if let Some(a) = &self.announce {
            vec![vec![a.clone()]]
        } else {
            Vec::new()
        }
    }
}

/// Why one path component is unsafe to join onto a directory, or `Ok` if it is a plain,
/// portable file name. Shared with torrent creation so we never write what we would refuse.
pub fn check_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    if c.is_empty() {
        Err("empty path component")
    } else if c == "." || c == ".." {
        Err("`.` or `..` component")
    } else if b[0] == b'/' || b[0] == b'\\' {
        Err("absolute path")
    } else if b.contains(&0) {
        Err("NUL byte in path component")
    } else if b.contains(&b'/') || b.contains(&b'\\') {
        Err("path separator inside a component")
    } else if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        Err("Windows drive prefix")
    } else {
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), MetainfoError> {
    check_component(name).map_err(|reason| MetainfoError::UnsafePath {
        path: name.to_owned(),
        reason,
    })
}

fn multi_files(name: &str, list: Vec<RawFile>) -> Result<Vec<FileEntry>, MetainfoError> {
    if list.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    if list.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles {
            count: list.len(),
            max: MAX_FILES,
        });
    }
    let mut files = Vec::with_capacity(list.len());
    let mut seen_files: HashSet<PathBuf> = HashSet::with_capacity(list.len());
    let mut seen_dirs: HashSet<PathBuf> = HashSet::new();
    for f in list {
        let comps: Vec<String> = f
            .path
            .ok_or(MetainfoError::MissingField("path"))?
            .iter()
            .map(|c| lossy(c))
            .collect();
        let shown = std::iter::once(name)
            .chain(comps.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("/");
        if comps.is_empty() {
            return Err(MetainfoError::UnsafePath {
                path: shown,
                reason: "empty path list",
            });
        }
        if comps.len() + 1 > MAX_PATH_DEPTH {
            return Err(MetainfoError::PathTooDeep {
                path: shown,
                depth: comps.len() + 1,
                max: MAX_PATH_DEPTH,
            });
        }
        for c in &comps {
            check_component(c).map_err(|reason| MetainfoError::UnsafePath {
                path: shown.clone(),
                reason,
            })?;
        }
        let length = f.length.ok_or(MetainfoError::MissingField("length"))?;
        let length = non_negative(length, || shown.clone())?;
        let path: PathBuf = std::iter::once(name)
            .chain(comps.iter().map(String::as_str))
            .collect();
        record_path(&path, &shown, &mut seen_files, &mut seen_dirs)?;
        files.push(FileEntry { path, length });
    }
    Ok(files)
}

/// Refuse a path already used by a file, or one that a file needs as a directory or that
/// sits under an earlier file.
fn record_path(
    path: &Path,
    shown: &str,
    files: &mut HashSet<PathBuf>,
    dirs: &mut HashSet<PathBuf>,
) -> Result<(), MetainfoError> {
    if files.contains(path) {
        return Err(MetainfoError::DuplicatePath {
            path: shown.to_owned(),
        });
    }
    if dirs.contains(path) {
        return Err(MetainfoError::PathConflict {
            path: shown.to_owned(),
        });
    }
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            break;
        }
        if files.contains(dir) {
            return Err(MetainfoError::PathConflict {
                path: dir.to_string_lossy().into_owned(),
            });
        }
        // Ancestors of a known directory are known too: stop early to keep this linear.
        if !dirs.insert(dir.to_path_buf()) {
            break;
        }
    }
    files.insert(path.to_path_buf());
    Ok(())
}

fn non_negative(length: i64, path: impl FnOnce() -> String) -> Result<u64, MetainfoError> {
    u64::try_from(length).map_err(|_| MetainfoError::NegativeLength {
        path: path(),
        length,
    })
}

/// Names in old torrents are sometimes not UTF-8 (a legacy code page); replacement
/// characters are safe in a path, and any collision they cause is caught as a duplicate.
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[derive(Deserialize)]
struct RawTorrent {
    info: Option<RawInfo>,
    announce: Option<Lenient>,
    #[serde(rename = "announce-list")]
    announce_list: Option<Lenient>,
    #[serde(rename = "url-list")]
    url_list: Option<Lenient>,
    comment: Option<Lenient>,
    #[serde(rename = "created by")]
    created_by: Option<Lenient>,
    #[serde(rename = "creation date")]
    creation_date: Option<Lenient>,
}

#[derive(Deserialize)]
struct RawInfo {
    name: Option<ByteBuf>,
    #[serde(rename = "piece length")]
    piece_length: Option<i64>,
    pieces: Option<ByteBuf>,
    length: Option<i64>,
    files: Option<Vec<RawFile>>,
    private: Option<Lenient>,
}

#[derive(Deserialize)]
struct RawFile {
    length: Option<i64>,
    path: Option<Vec<ByteBuf>>,
}

/// Any bencode value, for optional fields where a wrong type should be ignored, not fatal.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    Int(i64),
    Bytes(ByteBuf),
    List(Vec<Lenient>),
    Other(serde::de::IgnoredAny),
}

impl Lenient {
    fn into_string(self) -> Option<String> {
        match self {
            Lenient::Bytes(b) => String::from_utf8(b.into_vec())
                .ok()
                .filter(|s| !s.is_empty()),
            _ => None,
        }
    }

    fn into_int(self) -> Option<i64> {
        match self {
            Lenient::Int(i) => Some(i),
            _ => None,
        }
    }

    /// A list of strings; anything else in it is skipped.
    fn into_strings(self) -> Vec<String> {
        match self {
            Lenient::List(l) => l.into_iter().filter_map(Lenient::into_string).collect(),
            _ => Vec::new(),
        }
    }

    fn into_tiers(self) -> Vec<Vec<String>> {
        match self {
            Lenient::List(l) => l
                .into_iter()
                .map(Lenient::into_strings)
                .filter(|t| !t.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// BEP 19 allows a single URL string or a list of them.
    fn into_urls(self) -> Vec<String> {
        match self {
            Lenient::Bytes(_) => self.into_string().into_iter().collect(),
            other => other.into_strings(),
        }
    }
}

#[cfg(test)]
#[path = "metainfo_tests.rs"]
mod tests;
