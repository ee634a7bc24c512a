//! The part file: where the bytes of skipped files go, so a skipped file never appears in the
//! download directory.
//!
//! With file selection, a piece that straddles a wanted and a skipped file is still
//! downloaded and verified whole; the bytes of its skipped side land here instead of in the
//! skipped file. Uploads, recheck and the data scan read them from here, and when a skipped
//! file later becomes wanted, [`Storage::adopt_parts`] copies its bytes into the real file.
//!
//! Invariants:
//! - The part file is the one path outside the download directory the store writes, and it
//!   is exactly the path the caller gave; it (and its directory) is created by the first
//!   write that needs it, never before.
//! - A file is held here only if it was skipped and absent when [`Storage::with_part_file`]
//!   ran; a held file is never created under the root (nor an empty one).
//! - Byte `x` of the torrent (`file_start(f) + offset`) lives at offset `x` of the part file,
//!   so it is sparse and holds only what was written (the skipped sides of boundary pieces).
//! - Adopting never loses data that was durable: the copy into the real file is fsynced (and
//!   so are the directories it created) before the part file is deleted.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{extents, FileStamp, Storage, StoreError};
use crate::types::Bitfield;

/// Most bytes [`Storage::adopt_parts`] holds while copying: the data is at most a couple of
/// pieces per file, and 1 MiB keeps syscalls few without a big allocation.
const COPY_BUF: u64 = 1 << 20;

/// The part file of one torrent, and which files it holds.
#[derive(Debug)]
pub(super) struct Part {
    pub path: PathBuf,
    /// Per file: skipped by the selection.
    pub skipped: Vec<bool>,
    /// Per file: its bytes live in the part file (skipped, and absent at
    /// [`Storage::with_part_file`]).
    pub held: Vec<bool>,
    /// The part file before we touched it.
    pub stamp_at_open: Option<FileStamp>,
}

impl Storage {
    /// Files with `skipped[i] == true` that do NOT exist on disk at this moment keep their
    /// bytes in the part file at `part` instead (reads, writes, recheck and the data scan all
    /// go there). A skipped file that already exists (an earlier run downloaded it) keeps
    /// using the real file: nothing is moved into the part file. Only `stat`s; creates
    /// nothing. `skipped.len()` must equal the number of files (else
    /// [`StoreError::FileCountMismatch`]).
    pub fn with_part_file(
        mut self,
        part: PathBuf,
        skipped: &[bool],
    ) -> Result<Storage, StoreError> {
        let n = self.paths.len();
        if skipped.len() != n {
            return Err(StoreError::FileCountMismatch {
                got: skipped.len(),
                expected: n,
            });
        }
        let stamp_at_open = stamp(&part)?;
        let part_len = stamp_at_open.map_or(0, |s| s.size);
        let mut held = vec![false; n];
        for i in (0..n).filter(|&i| skipped[i]) {
            if stamp(&self.paths[i])?.is_some() {
                continue;
            }
            held[i] = true;
            // What the part file held at open is this file's data that existed at open.
            let start = self.layout.file_start(i);
            self.data_lens[i] = part_len.saturating_sub(start).min(self.layout.file_len(i));
            self.dirty[i].store(false, Ordering::Release);
        }
        // Data found in the part file at open may still be only in the page cache.
        self.dirty[n].store(part_len > 0, Ordering::Release);
        let held_count = held.iter().filter(|&&h| h).count();
        tracing::debug!(part = %part.display(), held = held_count, "part file configured");
        self.part = Some(Part {
            path: part,
            skipped: skipped.to_vec(),
            held,
            stamp_at_open,
        });
        Ok(self)
    }

    /// Whether file `file` is held in the part file.
    pub fn in_part(&self, file: usize) -> bool {
        self.part
            .as_ref()
            .is_some_and(|p| p.held.get(file) == Some(&true))
    }

    /// The part file's stamp as it was before anything of ours touched it (`None`: absent,
    /// or no part file configured).
    pub fn part_stamp_at_open(&self) -> Option<FileStamp> {
        self.part.as_ref().and_then(|p| p.stamp_at_open)
    }

    /// The part file's stamp now (`None`: absent, or no part file configured).
    pub fn part_stamp(&self) -> Option<FileStamp> {
        let part = self.part.as_ref()?;
        fs::metadata(&part.path).ok().map(|m| FileStamp::of(&m))
    }

    /// For every file that is wanted (not skipped) but absent on disk, while the part file
    /// exists: copies the part file's data extents within that file's byte range into the
    /// real file (creating it and its directories, sized to full length, sparse), fsyncs it,
    /// and counts it as data that existed at open (so a recheck reads it). `stamps_at_open`
    /// is not changed: a resume record is judged against the files as they were before.
    /// When afterwards no file is held in the part file, deletes the part file (only after
    /// the copies are durable). Returns the indexes of the files that received data.
    ///
    /// Blocking; call once, right after opening, before any recheck or download.
    pub fn adopt_parts(&mut self) -> Result<Vec<usize>, StoreError> {
        let Some(part) = &self.part else {
            return Ok(Vec::new());
        };
        let src = match File::open(&part.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&part.path, "opening", e)),
        };
        let part_len = (src.metadata())
            .map_err(|e| io_err(&part.path, "inspecting", e))?
            .len();
        let found = extents::data_extents(&src, part_len);
        let mut adopted = Vec::new();
        for i in 0..self.paths.len() {
            if part.skipped[i] || stamp(&self.paths[i])?.is_some() {
                continue;
            }
            let (start, len) = (self.layout.file_start(i), self.layout.file_len(i));
            if len == 0 {
                self.adopt_empty(i, &found)?;
                continue;
            }
            let mine = within(&found, start, start + len);
            if mine.is_empty() {
                continue;
            }
            if copy_out(&src, &part.path, &mine, start, &self.paths[i], len)? {
                adopted.push(i);
            }
        }
        for &i in &adopted {
            self.data_lens[i] = self.layout.file_len(i);
            self.sized[i].store(true, Ordering::Release);
        }
        if !part.held.contains(&true) {
            match fs::remove_file(&part.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err(&part.path, "removing", e));
                }
                _ => self.dirty[self.paths.len()].store(false, Ordering::Release),
            }
        }
        // Nothing should be cached for a file that did not exist; drop any handle anyway
        // (the part file's included, now that it may be gone).
        self.close_files();
        tracing::info!(part = %part.path.display(), files = ?adopted, "adopted part file data");
        Ok(adopted)
    }

    /// Creates the wanted, absent, empty file `file` when the piece at its position has data
    /// in the part file (`found`): that piece may already be verified and never be written
    /// again, and writing it is what creates an empty file.
    fn adopt_empty(&self, file: usize, found: &[Range<u64>]) -> Result<(), StoreError> {
        let layout = &self.layout;
        let last = layout.num_pieces().saturating_sub(1);
        let at = layout.file_start(file) / u64::from(layout.piece_len());
        let piece = u32::try_from(at).unwrap_or(u32::MAX).min(last);
        let lo = layout.piece_start(piece);
        if within(found, lo, lo + u64::from(layout.piece_size(piece))).is_empty() {
            return Ok(());
        }
        new_file(&self.paths[file], 0, |_| Ok(()))?;
        Ok(())
    }

    /// Where file `file`'s bytes live: the handle key (the file itself, or `num_files` for
    /// the part file) and the offset there of the file's byte 0.
    pub(super) fn home(&self, file: usize) -> (usize, u64) {
        match self.in_part(file) {
            true => (self.paths.len(), self.layout.file_start(file)),
            false => (file, 0),
        }
    }

    /// The path of handle `key`: a file's, or the part file's.
    pub(super) fn key_path(&self, key: usize) -> &Path {
        match (self.paths.get(key), &self.part) {
            (Some(p), _) => p,
            (None, Some(part)) => &part.path,
            // Only files held in a part file map past the last file.
            (None, None) => Path::new(""),
        }
    }

    /// Marks in `hit` the pieces of held files that have data in the part file (what existed
    /// at open, as [`Storage::data_len`] says). Conservative where the filesystem cannot tell.
    pub(super) fn mark_part_pieces(&self, hit: &mut Bitfield) {
        let Some(part) = &self.part else { return };
        let held: Vec<usize> = (0..self.paths.len())
            .filter(|&i| part.held[i] && self.data_lens[i] > 0)
            .collect();
        if held.is_empty() {
            return;
        }
        let len = part.stamp_at_open.map_or(0, |s| s.size);
        let found = match File::open(&part.path) {
            Ok(f) => extents::data_extents(&f, len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                let path = part.path.display();
                tracing::debug!(%path, error = %e, "cannot look for data; assuming some");
                std::iter::once(0..len).collect()
            }
        };
        for i in held {
            let start = self.layout.file_start(i);
            let mine = within(&found, start, start + self.data_lens[i]);
            let rel: Vec<Range<u64>> = mine
                .iter()
                .map(|r| r.start - start..r.end - start)
                .collect();
            extents::mark_pieces(&self.layout, i, &rel, hit);
        }
    }
}

/// `path`'s stamp, `None` when it does not exist (also when a directory on its way is a
/// file: then it cannot exist, and creating it is what will fail, naming it).
fn stamp(path: &Path) -> Result<Option<FileStamp>, StoreError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(FileStamp::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(io_err(path, "inspecting", e)),
    }
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The parts of `extents` (sorted, disjoint) that lie within `[lo, hi)`.
fn within(extents: &[Range<u64>], lo: u64, hi: u64) -> Vec<Range<u64>> {
    extents
        .iter()
        .map(|e| e.start.max(lo)..e.end.min(hi))
        .filter(|r| r.start < r.end)
        .collect()
}

/// Copies the part file's `extents` (global offsets) into a new file at `dest` of `len`
/// bytes whose byte 0 is global offset `start`. `false` when `dest` appeared meanwhile.
fn copy_out(
    src: &File,
    src_path: &Path,
    extents: &[Range<u64>],
    start: u64,
    dest: &Path,
    len: u64,
) -> Result<bool, StoreError> {
    new_file(dest, len, |out| {
        let biggest = extents.iter().map(|r| r.end - r.start).max().unwrap_or(0);
        let mut buf = vec![0u8; biggest.min(COPY_BUF) as usize];
        for r in extents {
            let mut at = r.start;
            while at < r.end {
                let n = (r.end - at).min(COPY_BUF) as usize;
                src.read_exact_at(&mut buf[..n], at)
                    .map_err(|e| io_err(src_path, "reading", e))?;
                out.write_all_at(&buf[..n], at - start)
                    .map_err(|e| io_err(dest, "writing", e))?;
                at += n as u64;
            }
        }
        Ok(())
    })
}

/// Creates `dest` (and its directories), `len` bytes long and sparse, lets `fill` write it,
/// then fsyncs it and every directory whose entry it added. `false` when `dest` appeared
/// meanwhile: it is left alone, never overwritten.
fn new_file(
    dest: &Path,
    len: u64,
    fill: impl FnOnce(&File) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let new_dirs = match dest.parent() {
        Some(dir) => create_dirs(dir).map_err(|e| io_err(dir, "creating", e))?,
        None => Vec::new(),
    };
    let out = match OpenOptions::new().write(true).create_new(true).open(dest) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err(dest, "creating", e)),
    };
    out.set_len(len).map_err(|e| io_err(dest, "extending", e))?;
    fill(&out)?;
    out.sync_all().map_err(|e| io_err(dest, "syncing", e))?;
    for dir in new_dirs {
        sync_dir(&dir).map_err(|e| io_err(&dir, "syncing", e))?;
    }
    Ok(true)
}

/// Creates `dir` and its missing ancestors; returns the directories whose entries changed
/// and must be synced for the new file in `dir` to be durable: `dir` itself, and the
/// parent of every directory created.
fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut sync = vec![dir.to_path_buf()];
    let mut d = dir;
    while !d.exists() {
        match d.parent() {
            Some(p) => {
                sync.push(p.to_path_buf());
                d = p;
            }
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    Ok(sync)
}

/// fsyncs a directory, so the entries added to it are durable. A filesystem that cannot
/// sync a directory (EINVAL) has nothing more to offer; that is not an error.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_clips_to_the_range() {
        let e = [0..10, 20..30, 40..50];
        assert_eq!(within(&e, 5, 45), vec![5..10, 20..30, 40..45]);
        assert_eq!(within(&e, 10, 20), Vec::<Range<u64>>::new());
        assert_eq!(within(&e, 25, 25), Vec::<Range<u64>>::new());
        assert_eq!(within(&[], 0, 100), Vec::<Range<u64>>::new());
    }

    #[test]
    fn create_dirs_names_every_changed_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let sync = create_dirs(&dir).unwrap();
        assert!(dir.is_dir());
        let want = [dir.clone(), tmp.path().join("a"), tmp.path().to_path_buf()];
        assert_eq!(sync, want);
        assert_eq!(create_dirs(&dir).unwrap(), [dir]);
    }
}
