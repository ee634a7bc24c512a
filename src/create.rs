//! Building a `.torrent` (BEP 3, v1) from a file or a directory.
//!
//! Owns: choosing the file list (regular files, symlinks followed as mktorrent and
//! transmission-create do, a link back into its own ancestors skipped so a walk always ends;
//! version-control and OS clutter left out unless asked for; sorted by path components
//! byte-wise so the same tree always gives the same torrent), choosing a piece length,
//! hashing pieces on every core, and writing canonical bencode. What was left out is
//! reported ([`Skipped`]) so the caller can name it.
//!
//! Invariants of the output: the `info` dictionary is canonical (sorted keys), every path
//! component passes [`metainfo::check_component`], and the bytes parse back with
//! [`Metainfo::from_bytes`](crate::metainfo::Metainfo::from_bytes).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::bencode::{self, Value};
use crate::layout::{Layout, LayoutError};
use crate::metainfo;
use crate::sha1_pair::digest_pair;
use crate::types::BLOCK_SIZE;

/// What to put in the torrent.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// A file or a directory.
    pub path: PathBuf,
    /// The first is `announce`; when there are several, each becomes its own tier of
    /// `announce-list` (BEP 12), in order.
    pub trackers: Vec<String>,
    /// A power of two ≥ 16 KiB; `None` picks one with [`auto_piece_length`].
    pub piece_length: Option<u32>,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    /// Keep [`JUNK`] files and directories too (left out by default).
    pub include_junk: bool,
}

/// Names left out of a directory's torrent unless [`CreateOptions::include_junk`]: version
/// control metadata and the files operating systems leave behind, which nobody means to
/// share (the list mktorrent users pass by hand with `-e`).
pub const JUNK: &[&str] = &[
    ".git",
    ".svn",
    ".hg",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
];

/// What [`create_torrent_reporting`] left out of the file list, by disk path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Names in [`JUNK`] (a directory counts once).
    pub junk: Vec<PathBuf>,
    /// Entries that cannot be shared, each with why: a broken symlink, a link to one of
    /// its own ancestors, a device, FIFO or socket.
    pub unreadable: Vec<(PathBuf, &'static str)>,
}

/// Tracker URLs a torrent may carry: http, https (BEP 3) and udp (BEP 15), with a host.
pub fn check_tracker_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https" | "udp") {
        return Err(format!(
            "{url:?}: a tracker URL starts with http://, https:// or udp://"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?}: a tracker URL needs a host"));
    }
    Ok(())
}

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: no regular files found")]
    EmptyDirectory(PathBuf),
    #[error("{0}: contains no data (every file is empty)")]
    NoData(PathBuf),
    #[error("{0}: not a regular file or directory")]
    NotAFile(PathBuf),
    #[error("{0}: file name is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    #[error("{path}: cannot be stored in a torrent: {reason}")]
    UnsafeName { path: PathBuf, reason: &'static str },
    #[error("piece length {0} must be a power of two of at least 16 KiB")]
    InvalidPieceLength(u32),
    #[error("tracker: {0}")]
    BadTracker(String),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Smallest and largest piece lengths [`auto_piece_length`] picks.
const MIN_AUTO_PIECE: u32 = BLOCK_SIZE;
const MAX_AUTO_PIECE: u32 = 16 << 20;
/// Pieces above which [`auto_piece_length`] doubles the piece length: keeps the `pieces`
/// string near 20–40 KB, as mature creators do (mktorrent, libtorrent aim at ~1500).
const TARGET_MAX_PIECES: u64 = 2000;
/// Bytes read per positioned read while hashing: large reads keep the disk busy.
const READ_CHUNK: usize = 4 << 20;

/// A power of two in [16 KiB, 16 MiB] giving between ~1000 and 2000 pieces when possible.
pub fn auto_piece_length(total: u64) -> u32 {
    let mut len = MIN_AUTO_PIECE;
    while len < MAX_AUTO_PIECE && total.div_ceil(u64::from(len)) > TARGET_MAX_PIECES {
        len *= 2;
    }
    len
}

/// Build the torrent described by `opts` and return its bencoded bytes.
pub fn create_torrent(opts: &CreateOptions) -> Result<Vec<u8>, CreateError> {
    create_torrent_reporting(opts).map(|(bytes, _)| bytes)
}

/// [`create_torrent`], also saying what was left out of the file list.
pub fn create_torrent_reporting(opts: &CreateOptions) -> Result<(Vec<u8>, Skipped), CreateError> {
    for t in &opts.trackers {
        check_tracker_url(t).map_err(CreateError::BadTracker)?;
    }
    let root = &opts.path;
    // `metadata` follows a symlink given as the root, as it follows those inside.
    let meta = std::fs::metadata(root).map_err(io_err(root))?;
    let name = component_name(root)?;
    let mut skipped = Skipped::default();
    let files: Vec<(Vec<String>, PathBuf, u64)> = if meta.is_file() {
        vec![(Vec::new(), root.clone(), meta.len())]
    } else if meta.is_dir() {
        let mut found = Vec::new();
        let mut walk = Walk {
            include_junk: opts.include_junk,
            ancestors: vec![dir_id(&meta)],
            out: &mut found,
            skipped: &mut skipped,
        };
        walk.dir(root, &mut Vec::new())?;
        if found.is_empty() {
            return Err(CreateError::EmptyDirectory(root.clone()));
        }
        // Sorting the component lists sorts byte-wise component by component, so
        // `a/b` < `a-b` (unlike sorting whole path strings).
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    } else {
        return Err(CreateError::NotAFile(root.clone()));
    };

    let lens: Vec<u64> = files.iter().map(|f| f.2).collect();
    let total: u64 = lens.iter().sum();
    if total == 0 {
        return Err(CreateError::NoData(root.clone()));
    }
    let piece_length = match opts.piece_length {
        Some(p) if p >= BLOCK_SIZE && p.is_power_of_two() => p,
        Some(p) => return Err(CreateError::InvalidPieceLength(p)),
        None => auto_piece_length(total),
    };
    let layout = Layout::new(piece_length, &lens)?;
    let disk_paths: Vec<&Path> = files.iter().map(|f| f.1.as_path()).collect();
    let pieces = hash_pieces(&layout, &disk_paths)?;

    let mut info = vec![
        (&b"name"[..], Value::Bytes(name.as_bytes())),
        (b"piece length", Value::Int(i64::from(piece_length))),
        (b"pieces", Value::Bytes(&pieces)),
    ];
    if meta.is_file() {
        info.push((b"length", Value::Int(total as i64)));
    } else {
        let list = files
            .iter()
            .map(|(comps, _, len)| {
                Value::Dict(vec![
                    (&b"length"[..], Value::Int(*len as i64)),
                    (
                        b"path",
                        Value::List(comps.iter().map(|c| Value::Bytes(c.as_bytes())).collect()),
                    ),
                ])
            })
            .collect();
        info.push((b"files", Value::List(list)));
    }
    if opts.private {
        info.push((b"private", Value::Int(1)));
    }

    let mut top = vec![(&b"info"[..], Value::Dict(info))];
    if let Some(first) = opts.trackers.first() {
        top.push((b"announce", Value::Bytes(first.as_bytes())));
    }
    if opts.trackers.len() > 1 {
        let tiers = opts
            .trackers
            .iter()
            .map(|t| Value::List(vec![Value::Bytes(t.as_bytes())]))
            .collect();
        top.push((b"announce-list", Value::List(tiers)));
    }
    if let Some(c) = &opts.comment {
        top.push((b"comment", Value::Bytes(c.as_bytes())));
    }
    if let Some(c) = &opts.created_by {
        top.push((b"created by", Value::Bytes(c.as_bytes())));
    }
    if let Some(d) = opts.creation_date {
        top.push((b"creation date", Value::Int(d)));
    }
    Ok((bencode::to_vec(&Value::Dict(top)), skipped))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The torrent name: the last component of `path` (resolving `.` and the like first).
fn component_name(path: &Path) -> Result<String, CreateError> {
    let abs = if path.file_name().is_some() {
        path.to_path_buf()
    } else {
        std::fs::canonicalize(path).map_err(io_err(path))?
    };
    let name = abs
        .file_name()
        .ok_or_else(|| CreateError::NotAFile(path.to_path_buf()))?;
    checked_component(name, path)
}

fn checked_component(name: &std::ffi::OsStr, path: &Path) -> Result<String, CreateError> {
    let name = name
        .to_str()
        .ok_or_else(|| CreateError::NonUtf8Path(path.to_path_buf()))?;
    metainfo::check_component(name).map_err(|reason| CreateError::UnsafeName {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(name.to_owned())
}

/// A directory's identity (device, inode): how a symlink back to an ancestor is seen.
fn dir_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// The walk of a directory tree, following symlinks.
struct Walk<'a> {
    include_junk: bool,
    /// The directories from the root down to the one being read: a link to any of them
    /// would walk forever.
    ancestors: Vec<(u64, u64)>,
    /// (components below the root, disk path, length) of each regular file.
    out: &'a mut Vec<(Vec<String>, PathBuf, u64)>,
    skipped: &'a mut Skipped,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, prefix: &mut Vec<String>) -> Result<(), CreateError> {
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let path = entry.path();
            let name = entry.file_name();
            if !self.include_junk && name.to_str().is_some_and(|n| JUNK.contains(&n)) {
                self.skipped.junk.push(path);
                continue;
            }
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                // A link to nothing: the link is there, its target is not.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.skipped.unreadable.push((path, "broken symlink"));
                    continue;
                }
                Err(e) => return Err(io_err(&path)(e)),
            };
            if meta.is_dir() && self.ancestors.contains(&dir_id(&meta)) {
                self.skipped
                    .unreadable
                    .push((path, "symlink to a directory that contains it"));
                continue;
            }
            if !(meta.is_file() || meta.is_dir()) {
                self.skipped
                    .unreadable
                    .push((path, "not a regular file or directory"));
                continue;
            }
            prefix.push(checked_component(&name, &path)?);
            if meta.is_dir() {
                self.ancestors.push(dir_id(&meta));
                self.dir(&path, prefix)?;
                self.ancestors.pop();
            } else {
                self.out.push((prefix.clone(), path, meta.len()));
            }
            prefix.pop();
        }
        Ok(())
    }
}

/// SHA-1 of every piece, concatenated. Each thread hashes one contiguous range of pieces.
fn hash_pieces(layout: &Layout, paths: &[&Path]) -> Result<Vec<u8>, CreateError> {
    let n = layout.num_pieces();
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get() as u32)
        .clamp(1, n.max(1));
    let per = n.div_ceil(threads);
    let results: Vec<Result<Vec<u8>, CreateError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per).min(n)..((t + 1) * per).min(n);
                s.spawn(move || hash_range(layout, paths, range))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out = Vec::with_capacity(n as usize * 20);
    for r in results {
        out.extend_from_slice(&r?);
    }
    Ok(out)
}

/// Hash pieces `range`, reading up to [`READ_CHUNK`] bytes (whole pieces) per batch and
/// merging the reads of consecutive pieces that continue in the same file.
fn hash_range(
    layout: &Layout,
    paths: &[&Path],
    range: std::ops::Range<u32>,
) -> Result<Vec<u8>, CreateError> {
    let per_batch = (READ_CHUNK / layout.piece_len() as usize).max(1) as u32;
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(range.len() * 20);
    let mut open: Option<(usize, File)> = None;
    let mut first = range.start;
    while first < range.end {
        let last = (first + per_batch).min(range.end);
        // (file, file_offset, len) runs covering pieces first..last, in stream order.
        let mut runs: Vec<(usize, u64, usize)> = Vec::new();
        for p in first..last {
            for s in layout.piece_spans(p) {
                match runs.last_mut() {
                    Some(r) if r.0 == s.file && r.1 + r.2 as u64 == s.file_offset => {
                        r.2 += s.len as usize
                    }
                    _ => runs.push((s.file, s.file_offset, s.len as usize)),
                }
            }
        }
        let batch_len = (layout.piece_start(last - 1) - layout.piece_start(first)) as usize
            + layout.piece_size(last - 1) as usize;
        buf.resize(batch_len, 0);
        let mut pos = 0;
        for (file, offset, len) in runs {
            if open.as_ref().map(|o| o.0) != Some(file) {
                let f = File::open(paths[file]).map_err(io_err(paths[file]))?;
                open = Some((file, f));
            }
            if let Some((_, f)) = &open {
                f.read_exact_at(&mut buf[pos..pos + len], offset)
                    .map_err(io_err(paths[file]))?;
            }
            pos += len;
        }
        // Two pieces at a time (`sha1_pair`), the odd one out alone.
        let mut ranges = Vec::with_capacity((last - first) as usize);
        let mut piece_pos = 0;
        for p in first..last {
            let size = layout.piece_size(p) as usize;
            ranges.push(piece_pos..piece_pos + size);
            piece_pos += size;
        }
        for two in ranges.chunks(2) {
            match two {
                [a, b] => {
                    let (x, y) = digest_pair(&[&buf[a.clone()]], &[&buf[b.clone()]]);
                    out.extend_from_slice(&x);
                    out.extend_from_slice(&y);
                }
                [a] => out.extend_from_slice(&Sha1::digest(&buf[a.clone()])),
                _ => {}
            }
        }
        first = last;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
