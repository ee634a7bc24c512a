//! Blocking, positioned file I/O for one torrent: [`Storage`].
//!
//! Invariants:
//! - Every path is `root` joined with a relative path made only of normal components, checked
//!   once in [`Storage::open`]; nothing is ever opened outside `root`.
//! - At most [`max_open_files`] files are open at once (an LRU of `Arc<File>`, sized under
//!   the process's `RLIMIT_NOFILE`), so torrents with thousands of files do not exhaust
//!   descriptors; an open that still fails with EMFILE/ENFILE evicts handles and retries
//!   instead of failing the torrent. The cache lock is held only to look up or insert a
//!   handle, never across a syscall that touches file data or opens a file.
//! - Nothing is created or opened by [`Storage::open`], which only `stat`s: a file (and its
//!   directories) is created, sparse at its full length, when the first write reaches it;
//!   an empty file when the piece at its position is first written. A torrent of a million
//!   files contacts peers at once and holds descriptors only for files in use.
//! - All data I/O is positioned (`pread`/`pwritev`), so threads share handles without seeking.
//! - A file is marked dirty when it held data at open and after every successful write to
//!   it, and cleared only just before [`Storage::sync_all`] fsyncs it (re-marked if that
//!   fails), so a sync covers at least every write that completed before it began.
//! - With a part file (`part.rs`), every byte of a file it holds goes there, at the file's
//!   global offset, through the same handle cache (key `num_files`); that file is never
//!   created under `root`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::direct::{Direct, DirectError};
use super::part::Part;
use super::paths::{inspect_file, safe_join};
use super::pool::is_out_of_descriptors;
use super::pool::{max_open_files, FileCache};
use super::vectored::{span_slices, write_all_vectored_at};
use super::{extents, StoreError};
use crate::layout::{FileSpan, Layout};
use crate::types::Bitfield;

/// The files of one torrent under a root directory. `Send + Sync`; share as `Arc<Storage>`.
#[derive(Debug)]
pub struct Storage {
    pub(super) paths: Vec<PathBuf>,
    /// Bytes of each file that existed before `open` (0 for a file it created). Recheck
    /// treats anything past this as absent: a file we just made holds no data worth hashing.
    pub(super) data_lens: Vec<u64>,
    /// Each file as it was before `open` touched it (`None`: it did not exist).
    opened: Vec<Option<FileStamp>>,
    pub(super) layout: Layout,
    cache: FileCache,
    /// Per file, then the part file (index `num_files`): written since the last
    /// [`Storage::sync_all`] (or since open).
    pub(super) dirty: Vec<AtomicBool>,
    /// Per file: known to exist at its full length (it did at open, or a write made it so).
    pub(super) sized: Vec<AtomicBool>,
    /// Empty files by the piece whose writing creates them, sorted by piece.
    empties: Vec<(u32, usize)>,
    /// Whether writes may create files (a download); a seed only writes files that exist.
    create: bool,
    /// Whether (and how) verified data bypasses the page cache.
    direct: Direct,
    /// Where the bytes of skipped, absent files go (see `part.rs`).
    pub(super) part: Option<Part>,
}

/// What a file looked like: its size and modification time, to the nanosecond as the
/// filesystem keeps it. Equal stamps are how a resume record recognises files it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    /// Seconds since the Unix epoch (negative before 1970).
    pub mtime_secs: i64,
    /// Always below 1,000,000,000.
    pub mtime_nanos: u32,
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            size: meta.len(),
            mtime_secs: meta.mtime(),
            // The kernel keeps it in [0, 1e9); clamp rather than trust that blindly.
            mtime_nanos: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        }
    }
}

impl Storage {
    /// Checks every path and `stat`s every file; creates and opens nothing. With `create`,
    /// writes later create missing files and directories, and extend short files (sparse,
    /// `set_len` to the full length; existing data is kept). Without `create`, a missing file
    /// is [`StoreError::Missing`]; a short file is accepted (recheck will find the pieces it
    /// lacks).
    ///
    /// `files` are relative paths, already sanitised by the caller; this still rejects any
    /// absolute or `..` component with [`StoreError::UnsafePath`].
    pub fn open(
        root: &Path,
        files: &[(PathBuf, u64)],
        layout: Layout,
        create: bool,
    ) -> Result<Storage, StoreError> {
        if files.len() != layout.num_files() {
            return Err(StoreError::FileCountMismatch {
                got: files.len(),
                expected: layout.num_files(),
            });
        }
        let mut paths = Vec::with_capacity(files.len());
        let mut data_lens = Vec::with_capacity(files.len());
        let mut opened = Vec::with_capacity(files.len());
        let mut sized = Vec::with_capacity(files.len());
        let mut empties = Vec::new();
        for (i, (rel, len)) in files.iter().enumerate() {
            let path = safe_join(root, rel)?;
            if *len != layout.file_len(i) {
                return Err(StoreError::FileLengthMismatch {
                    path,
                    got: *len,
                    expected: layout.file_len(i),
                });
            }
            let (data_len, stamp) = inspect_file(&path, *len, create)?;
            sized.push(AtomicBool::new(stamp.is_some_and(|s| s.size >= *len)));
            if *len == 0 && stamp.is_none() {
                let last = layout.num_pieces().saturating_sub(1) as u64;
                let piece = (layout.file_start(i) / u64::from(layout.piece_len())).min(last);
                empties.push((piece as u32, i));
            }
            data_lens.push(data_len);
            opened.push(stamp);
            paths.push(path);
        }
        tracing::debug!(root = %root.display(), files = paths.len(), create, "storage opened");
        Ok(Storage {
            // Data that was there at open may still be only in the page cache (an earlier
            // process was killed): the first sync covers it too.
            // The last flag is the part file's.
            dirty: (data_lens.iter().map(|&n| n > 0))
                .chain(std::iter::once(false))
                .map(AtomicBool::new)
                .collect(),
            paths,
            data_lens,
            opened,
            layout,
            cache: FileCache::new(max_open_files()),
            sized,
            empties,
            create,
            direct: Direct::new(false),
            part: None,
        })
    }

    /// Each file's size and mtime as they were before [`Storage::open`] created or extended
    /// anything: what a resume record made earlier must match.
    pub fn stamps_at_open(&self) -> &[Option<FileStamp>] {
        &self.opened
    }

    /// Bytes of `file` that existed before this storage was opened.
    pub fn data_len(&self, file: usize) -> u64 {
        self.data_lens[file]
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Full path of file `file` of the torrent.
    pub fn path(&self, file: usize) -> &Path {
        &self.paths[file]
    }

    /// Positioned read of bytes `[offset, offset+len)` of `piece`, across files.
    pub fn read(&self, piece: u32, offset: u32, len: u32) -> Result<Bytes, StoreError> {
        let size = self.layout.piece_size(piece);
        if piece >= self.layout.num_pieces() || offset as u64 + len as u64 > size as u64 {
            return Err(StoreError::OutOfRange { piece, offset, len });
        }
        let mut buf = vec![0u8; len as usize];
        for span in self.layout.spans(piece, offset, len) {
            let (key, base) = self.home(span.file);
            let file = self.file(key, false)?;
            let start = (span.piece_offset - offset) as usize;
            let dst = &mut buf[start..start + span.len as usize];
            file.read_exact_at(dst, base + span.file_offset)
                .map_err(|e| self.io(key, "reading", short_read(e)))?;
        }
        Ok(Bytes::from(buf))
    }

    /// Positioned writes of a (verified) piece given as its blocks in order. The blocks may
    /// have any sizes, but must add up to the piece's size exactly.
    ///
    /// No fsync: durability is [`Storage::sync_all`]'s job, called before resume data that
    /// names the piece is saved.
    pub fn write_piece(&self, piece: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        self.check_whole_piece(piece, blocks)?;
        self.write_at(piece, 0, blocks)
    }

    /// That `blocks` add up to exactly piece `piece`, an existing piece.
    pub(super) fn check_whole_piece(&self, piece: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let size = self.layout.piece_size(piece);
        let got: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        if piece >= self.layout.num_pieces() {
            return Err(StoreError::OutOfRange {
                piece,
                offset: 0,
                len: got.min(u32::MAX as u64) as u32,
            });
        }
        if got != size as u64 {
            return Err(StoreError::WrongPieceSize {
                piece,
                expected: size,
                got,
            });
        }
        Ok(())
    }

    /// Positioned writes of `blocks`, laid end to end, at `offset` of `piece`; the caller
    /// has checked that they lie inside the piece. Used directly for pieces the store
    /// streams (written before they are verified).
    pub(super) fn write_at(
        &self,
        piece: u32,
        offset: u32,
        blocks: &[Bytes],
    ) -> Result<(), StoreError> {
        let len: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        self.create_empties(piece)?;
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.write_spans(&self.layout.spans(piece, offset, len), offset, blocks)
    }

    /// Writes `blocks`, laid end to end from byte `offset` of the first span's piece, into
    /// `spans`. One vectored positioned write per file span instead of one write per block,
    /// and no gathering copy: the blocks go to the kernel straight from the socket buffers
    /// (or through one aligned buffer, for the direct middle).
    pub(super) fn write_spans(
        &self,
        spans: &[FileSpan],
        offset: u32,
        blocks: &[Bytes],
    ) -> Result<(), StoreError> {
        spans.iter().try_for_each(|span| {
            let (key, base) = self.home(span.file);
            let file = self.file(key, true)?;
            let at = u64::from(span.piece_offset - offset);
            let (start, end) = (span.file_offset, span.file_offset + u64::from(span.len));
            let buffered = |from: u64, to: u64| {
                if from == to {
                    return Ok(());
                }
                let slices = span_slices(blocks, at + (from - start), to - from);
                write_all_vectored_at(&file, slices, base + from)
                    .map_err(|e| self.io(key, "writing", e))
            };
            // The part file is always written buffered: it only ever takes the small
            // skipped sides of boundary pieces.
            let direct = match key == span.file {
                true => self.direct_middle(span.file, blocks, at, start, end)?,
                false => None,
            };
            match direct {
                // The aligned middle went straight to the device: the edges remain.
                Some((a, b)) => {
                    buffered(start, a)?;
                    buffered(b, end)?;
                }
                None => buffered(start, end)?,
            }
            // After the write, so a concurrent sync_all that cleared the flag before the
            // write landed leaves it set for the next one.
            self.dirty[key].store(true, Ordering::Release);
            Ok(())
        })
    }

    /// Writes the aligned middle of the file range `[start, end)` (bytes `at..` of
    /// `blocks`) with `O_DIRECT`, when direct writes are on and the filesystem takes them;
    /// returns the range written, or `None` when the caller must write it all buffered.
    fn direct_middle(
        &self,
        file: usize,
        blocks: &[Bytes],
        at: u64,
        start: u64,
        end: u64,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let Some((a, b)) = self.direct.middle(start, end) else {
            return Ok(None);
        };
        let slices = span_slices(blocks, at + (a - start), b - a);
        let parts: Vec<&[u8]> = slices.iter().map(|s| &**s).collect();
        match self.direct.write(file, &self.paths[file], &parts, a) {
            Ok(()) => Ok(Some((a, b))),
            Err(DirectError::Unsupported) => Ok(None),
            // Out of descriptors for the direct handle: the buffered path evicts and retries.
            Err(DirectError::Io(e)) if is_out_of_descriptors(&e) => Ok(None),
            Err(DirectError::Io(e)) => Err(self.io(file, "writing", e)),
        }
    }

    /// Writes of verified data bypass the page cache (`O_DIRECT`, see `direct.rs`) where the
    /// filesystem allows it. Off unless asked for.
    pub fn with_direct_writes(mut self, on: bool) -> Storage {
        self.direct = Direct::new(on);
        self
    }

    /// Makes every write so far durable: `fsync` (data and size) of each file (and of the
    /// part file) that held data at open or was written since open or the last sync. Files never written are skipped; a written file deleted since
    /// has nothing left to make durable. On error the file stays marked for the next try.
    pub fn sync_all(&self) -> Result<(), StoreError> {
        for (i, dirty) in self.dirty.iter().enumerate() {
            if !dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            // `file` holds the cache lock only for the lookup, never across the fsync. Any
            // descriptor of the file will do: fsync flushes the inode, not the descriptor.
            let synced = match self.file(i, false) {
                Ok(f) => f.sync_all().map_err(|e| self.io(i, "syncing", e)),
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = synced {
                dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Size and mtime of each file of the torrent, in order; `None` for a file that cannot
    /// be inspected (missing, or no permission), which no resume record can match.
    /// A file held in the part file has `None`.
    pub fn stamps(&self) -> Vec<Option<FileStamp>> {
        (self.paths.iter().enumerate())
            .map(|(i, p)| match self.in_part(i) {
                true => None,
                false => fs::metadata(p).ok().map(|m| FileStamp::of(&m)),
            })
            .collect()
    }

    /// Pieces outside `skip` that have some bytes in a data extent of their files (found with
    /// `lseek(SEEK_DATA/SEEK_HOLE)`, one walk per file), ascending. Pieces lying wholly in holes
    /// or in missing files hold nothing a recheck could verify and are left out.
    ///
    /// Conservative where it cannot tell: a filesystem without `SEEK_DATA` counts as data up
    /// to the file's length, and a file that cannot be opened (other than missing) as data
    /// everywhere, so the recheck that follows finds out. Bytes past what existed at open
    /// ([`Storage::data_len`]) count as no data, as they do for recheck.
    pub fn pieces_with_data(&self, skip: &Bitfield) -> Vec<u32> {
        let mut hit = Bitfield::new(self.layout.num_pieces());
        for (i, path) in self.paths.iter().enumerate() {
            let len = self.data_lens[i];
            if len == 0 || self.in_part(i) {
                continue;
            }
            // A fresh read-only descriptor: the walk moves the file offset and must not
            // churn the cache of handles that downloads and uploads are using.
            let found = match File::open(path) {
                Ok(f) => extents::data_extents(&f, len),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let path = path.display();
                    tracing::debug!(%path, error = %e, "cannot look for data; assuming some");
                    std::iter::once(0..len).collect()
                }
            };
            extents::mark_pieces(&self.layout, i, &found, &mut hit);
        }
        self.mark_part_pieces(&mut hit);
        hit.iter_ones().filter(|&p| !skip.get(p)).collect()
    }

    /// Reads into `buf` from `offset` of file `file` until `buf` is full or the file ends;
    /// returns the bytes read. A missing file reads as empty. Used by recheck, where absent
    /// data is an answer, not an error.
    pub(super) fn read_available(
        &self,
        file: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StoreError> {
        let (key, base) = self.home(file);
        let handle = match self.file(key, false) {
            Ok(f) => f,
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(0)
            }
            Err(e) => return Err(e),
        };
        let mut done = 0;
        while done < buf.len() {
            match handle.read_at(&mut buf[done..], base + offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(key, "reading", e)),
            }
        }
        Ok(done)
    }

    /// Files written since the last sync.
    #[cfg(test)]
    pub(super) fn dirty_files(&self) -> Vec<usize> {
        (0..self.dirty.len())
            .filter(|&i| self.dirty[i].load(Ordering::Acquire))
            .collect()
    }

    /// Creates the empty files that sit at `piece` (once; a download only; never one held
    /// in the part file).
    pub(super) fn create_empties(&self, piece: u32) -> Result<(), StoreError> {
        let from = self.empties.partition_point(|&(p, _)| p < piece);
        for &(_, file) in self.empties[from..]
            .iter()
            .take_while(|&&(p, _)| p == piece)
        {
            if !self.sized[file].load(Ordering::Acquire) && !self.in_part(file) {
                drop(self.file(file, true)?);
            }
        }
        Ok(())
    }

    /// Closes every cached handle (each reopens on its next use): a torrent that goes idle
    /// after its check then holds no descriptor, so a session of thousands of torrents
    /// does not hold one per torrent.
    pub fn close_files(&self) {
        self.cache.clear();
        self.direct.close();
    }

    /// The files `piece` covers, for a message: `a.bin, b.bin` (the first few).
    pub fn files_of_piece(&self, piece: u32) -> String {
        let spans = self.layout.piece_spans(piece);
        let mut names: Vec<String> = spans
            .iter()
            .take(3)
            .map(|s| self.paths[s.file].display().to_string())
            .collect();
        if spans.len() > 3 {
            names.push(format!("and {} more", spans.len() - 3));
        }
        names.join(", ")
    }

    /// Handles currently in the open-file cache.
    #[cfg(test)]
    pub(super) fn open_handles(&self) -> usize {
        self.cache.len()
    }

    /// An error on handle `key` (a file, or the part file), naming its path.
    pub(super) fn io(&self, key: usize, op: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.key_path(key).to_path_buf(),
            op,
            source,
        }
    }

    /// A handle for `file` (a file's index, or `num_files` for the part file), from the
    /// cache or freshly opened. `write` demands a writable handle; otherwise a read-only one
    /// will do (files we may not write, e.g. when seeding from a read-only directory, are
    /// opened read-only). A write creates the part file, never sizing it: it stays sparse.
    fn file(&self, file: usize, write: bool) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.cache.get(file, write) {
            // A torrent file deleted (or replaced) while we held it open would go on reading
            // and writing an inode no path names: bytes written there are lost, and the user
            // who deleted it expects it gone. Open the path again instead (the fresh handle
            // replaces this one), which fails if the file is gone.
            let deleted = file < self.paths.len() && f.metadata().is_ok_and(|m| m.nlink() == 0);
            if !deleted {
                return Ok(f);
            }
            tracing::warn!(path = %self.key_path(file).display(), "file deleted while in use");
        }
        // Open outside the lock: opening can be slow (network filesystems) and must not
        // stall other threads' cached lookups. A racing thread may open the same file; the
        // later insert simply replaces the earlier handle.
        let path = self.key_path(file);
        let is_part = file >= self.paths.len();
        let create = write && (is_part || self.create && !self.sized[file].load(Ordering::Acquire));
        let rw = self.retry_emfile(|| {
            let mut o = OpenOptions::new();
            o.read(true).write(true);
            if create {
                o.create(true);
            }
            match o.open(path) {
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    if let Some(dir) = path.parent() {
                        fs::create_dir_all(dir)?;
                    }
                    o.open(path)
                }
                r => r,
            }
        });
        let (handle, writable) = match rw {
            Ok(f) => (f, true),
            Err(e) if !write && e.kind() == io::ErrorKind::PermissionDenied => {
                let f = self
                    .retry_emfile(|| File::open(path))
                    .map_err(|e| self.io(file, "opening", e))?;
                (f, false)
            }
            Err(e) => {
                let op = if write {
                    "opening for writing"
                } else {
                    "opening"
                };
                return Err(self.io(file, op, e));
            }
        };
        if create && !is_part {
            // First write to this file by us: give it its full (sparse) length once, so
            // its size is right however the download ends.
            let len = self.layout.file_len(file);
            let short = handle.metadata().map(|m| m.len() < len);
            if short.map_err(|e| self.io(file, "inspecting", e))? {
                handle
                    .set_len(len)
                    .map_err(|e| self.io(file, "extending", e))?;
            }
            self.sized[file].store(true, Ordering::Release);
        }
        let handle = Arc::new(handle);
        self.cache.insert(file, handle.clone(), writable);
        Ok(handle)
    }

    /// Runs `open`; when it fails for want of descriptors (EMFILE, ENFILE), closes some of
    /// our cached handles and tries again, a few times: another torrent or a burst of
    /// sockets took the room, and a smaller cache is better than a failed torrent.
    fn retry_emfile<T>(&self, mut open: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let mut tries = 0;
        loop {
            match open() {
                Err(e) if is_out_of_descriptors(&e) && tries < 4 => {
                    tries += 1;
                    let closed = self.cache.evict_oldest_share(2);
                    tracing::debug!(closed, error = %e, "out of descriptors; closed cached files");
                    if closed == 0 {
                        // Nothing of ours to close: give other owners a moment.
                        std::thread::sleep(std::time::Duration::from_millis(10 << tries));
                    }
                }
                r => return r,
            }
        }
    }
}

/// A read past the end of a file (it was shortened under us) says so, instead of the
/// standard library's "failed to fill whole buffer".
fn short_read(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(e.kind(), "the file is shorter than the torrent says")
    } else {
        e
    }
}
