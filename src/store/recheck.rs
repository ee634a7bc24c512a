//! Resume: hash what is already on disk and report which pieces are present.
//!
//! Each of `threads` threads takes an equal share of the pieces to check (one contiguous
//! range for a full [`recheck`]; runs of contiguous pieces for [`recheck_pieces`]) and walks
//! each run with large sequential reads (whole pieces, about [`READ_BUF`] bytes at a time,
//! adjacent file runs merged into one `pread`), hashing piece by piece straight from the
//! buffer, two pieces at once where it can (`sha1_pair`). Pieces longer than [`READ_BUF`] are read and hashed [`READ_BUF`] bytes at a time
//! instead, so a thread never holds more than [`READ_BUF`] of data whatever the piece length
//! (a 64 MiB piece costs 4 MiB per thread, not 64).
//!
//! Invariants: absent data (a missing file, a file shorter than the layout says) only means
//! the pieces touching it are not present, never an error; any other I/O error aborts the
//! whole recheck. `progress` grows by each piece's size once that piece has been judged, so
//! it ends at the total size of the pieces checked (the torrent's length for [`recheck`]).

use std::ops::Range;
use std::slice;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha1::{Digest, Sha1};

use super::{Storage, StoreError};
use crate::sha1_pair::digest_pair;
use crate::types::Bitfield;

/// Target size of one read, and the most data a hashing thread holds. Large enough that
/// syscall overhead vanishes next to hashing, small enough to stay in L2/L3-friendly
/// territory per thread.
pub const READ_BUF: usize = 4 << 20;

/// Hashes existing data on `threads` threads; returns the pieces whose SHA-1 matches
/// `hashes`. Checks `cancel` between reads (→ [`StoreError::Cancelled`]) and adds the bytes
/// judged so far to `progress`.
pub fn recheck(
    storage: &Storage,
    hashes: &[[u8; 20]],
    threads: usize,
    progress: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<Bitfield, StoreError> {
    let n = storage.layout().num_pieces();
    let all = 0..n;
    check_runs(
        storage,
        hashes,
        slice::from_ref(&all),
        threads,
        progress,
        cancel,
    )
}

/// Like [`recheck`], but hashes only `pieces` (any order, duplicates ignored); every other
/// piece is reported absent. Contiguous pieces are read together, as [`recheck`] reads, so
/// a list of long runs costs what those runs cost in a full recheck. `progress` grows by the
/// size of each listed piece. An index past the last piece is [`StoreError::NoSuchPiece`].
pub fn recheck_pieces(
    storage: &Storage,
    hashes: &[[u8; 20]],
    pieces: &[u32],
    threads: usize,
    progress: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<Bitfield, StoreError> {
    let n = storage.layout().num_pieces();
    if let Some(&piece) = pieces.iter().find(|&&p| p >= n) {
        return Err(StoreError::NoSuchPiece { piece, pieces: n });
    }
    let mut sorted = pieces.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<Range<u32>> = Vec::new();
    for p in sorted {
        match runs.last_mut() {
            Some(r) if r.end == p => r.end += 1,
            _ => runs.push(p..p + 1),
        }
    }
    check_runs(storage, hashes, &runs, threads, progress, cancel)
}

/// Hashes the pieces of `runs` (sorted, disjoint, non-empty) on up to `threads` threads,
/// each taking an equal share of the pieces as a list of runs.
fn check_runs(
    storage: &Storage,
    hashes: &[[u8; 20]],
    runs: &[Range<u32>],
    threads: usize,
    progress: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<Bitfield, StoreError> {
    let n = storage.layout().num_pieces();
    let total: u32 = runs.iter().map(|r| r.end - r.start).sum();
    let threads = threads.clamp(1, total.max(1) as usize) as u32;
    let shares = split(runs, total.div_ceil(threads));
    let cx = Ctx {
        storage,
        hashes,
        progress,
        cancel,
        abort: AtomicBool::new(false),
    };
    let results: Vec<Result<Vec<u32>, StoreError>> = std::thread::scope(|s| {
        let workers: Vec<_> = shares
            .iter()
            .map(|share| {
                let cx = &cx;
                s.spawn(move || {
                    let r = cx.check_share(share);
                    if r.is_err() {
                        cx.abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut have = Bitfield::new(n);
    let mut first_err = None;
    for r in results {
        match r {
            Ok(pieces) => pieces.into_iter().for_each(|p| {
                have.set(p);
            }),
            // Prefer a real error over the Cancelled that other threads report after it.
            Err(StoreError::Cancelled) if first_err.is_some() => {}
            Err(e) => first_err = Some(e),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => {
            tracing::info!(pieces = total, have = have.count_ones(), "recheck done");
            Ok(have)
        }
    }
}

/// Cuts `runs` into consecutive shares of `per_share` pieces (the last may be smaller).
fn split(runs: &[Range<u32>], per_share: u32) -> Vec<Vec<Range<u32>>> {
    let mut shares = Vec::new();
    let mut share = Vec::new();
    let mut room = per_share;
    for r in runs {
        let mut r = r.clone();
        while !r.is_empty() {
            let take = room.min(r.end - r.start);
            share.push(r.start..r.start + take);
            r.start += take;
            room -= take;
            if room == 0 {
                shares.push(std::mem::take(&mut share));
                room = per_share;
            }
        }
    }
    if !share.is_empty() {
        shares.push(share);
    }
    shares
}

/// A run of bytes that lies in one file and lands contiguously in the read buffer.
#[derive(Clone, Copy)]
struct Run {
    file: usize,
    file_offset: u64,
    buf_offset: usize,
    len: usize,
}

/// What every recheck thread shares.
struct Ctx<'a> {
    storage: &'a Storage,
    hashes: &'a [[u8; 20]],
    progress: &'a AtomicU64,
    cancel: &'a AtomicBool,
    /// Set when any thread fails, so the others stop early.
    abort: AtomicBool,
}

impl Ctx<'_> {
    /// One thread's work: each run of its share in turn, through one buffer.
    fn check_share(&self, share: &[Range<u32>]) -> Result<Vec<u32>, StoreError> {
        let layout = self.storage.layout();
        let piece_len = layout.piece_len() as u64;
        let per_buf = (READ_BUF as u64 / piece_len).max(1);
        let run_bytes = |r: &Range<u32>| {
            layout.piece_start(r.end).min(layout.total_len())
                - layout.piece_start(r.start).min(layout.total_len())
        };
        let longest = share.iter().map(run_bytes).max().unwrap_or(0);
        let mut found = Vec::new();
        if piece_len > READ_BUF as u64 {
            let mut buf = vec![0u8; READ_BUF.min(longest as usize)];
            for r in share {
                for p in r.clone() {
                    self.check_large_piece(p, &mut buf, &mut found)?;
                }
            }
            return Ok(found);
        }
        let mut buf = vec![0u8; (per_buf * piece_len).min(longest) as usize];
        for r in share {
            self.check_range(r.clone(), &mut buf, &mut found)?;
        }
        Ok(found)
    }

    /// Hashes one piece longer than `buf`, `buf.len()` bytes at a time; stops reading at
    /// the first absent byte (the piece cannot match). A match goes to `found`.
    fn check_large_piece(
        &self,
        piece: u32,
        buf: &mut [u8],
        found: &mut Vec<u32>,
    ) -> Result<(), StoreError> {
        let (storage, layout) = (self.storage, self.storage.layout());
        let mut hasher = Sha1::new();
        let mut absent = false;
        'spans: for span in layout.piece_spans(piece) {
            let mut done = 0u64;
            while done < span.len as u64 {
                if self.cancel.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed) {
                    return Err(StoreError::Cancelled);
                }
                let at = span.file_offset + done;
                let want = (span.len as u64 - done).min(buf.len() as u64) as usize;
                // Past the data that existed at open there is nothing to find.
                let existing = storage.data_len(span.file).saturating_sub(at);
                let dst = &mut buf[..existing.min(want as u64) as usize];
                let got = storage.read_available(span.file, at, dst)?;
                if got < want {
                    absent = true;
                    break 'spans;
                }
                hasher.update(&buf[..got]);
                done += got as u64;
            }
        }
        if !absent {
            let digest: [u8; 20] = hasher.finalize().into();
            if self.hashes.get(piece as usize) == Some(&digest) {
                found.push(piece);
            }
        }
        let size = layout.piece_size(piece);
        self.progress.fetch_add(u64::from(size), Ordering::Relaxed);
        Ok(())
    }

    /// Hashes the contiguous `pieces` about [`READ_BUF`] bytes at a time; `buf` holds at least
    /// that many pieces' bytes, or the whole range if that is less. Matches go to `found`.
    fn check_range(
        &self,
        pieces: Range<u32>,
        buf: &mut [u8],
        found: &mut Vec<u32>,
    ) -> Result<(), StoreError> {
        let (storage, hashes, progress) = (self.storage, self.hashes, self.progress);
        let layout = storage.layout();
        let piece_len = layout.piece_len() as usize;
        let per_buf = (READ_BUF / piece_len).max(1) as u32;
        // Buffer ranges that could not be read (missing file or past its end).
        let mut holes: Vec<Range<usize>> = Vec::new();
        let mut p = pieces.start;
        while p < pieces.end {
            if self.cancel.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed) {
                return Err(StoreError::Cancelled);
            }
            let chunk = p..(p + per_buf).min(pieces.end);
            holes.clear();
            let mut run: Option<Run> = None;
            for q in chunk.clone() {
                for span in layout.piece_spans(q) {
                    let next = Run {
                        file: span.file,
                        file_offset: span.file_offset,
                        buf_offset: (q - p) as usize * piece_len + span.piece_offset as usize,
                        len: span.len as usize,
                    };
                    match &mut run {
                        Some(r)
                            if r.file == next.file
                                && r.file_offset + r.len as u64 == next.file_offset
                                && r.buf_offset + r.len == next.buf_offset =>
                        {
                            r.len += next.len
                        }
                        _ => {
                            if let Some(r) = run.replace(next) {
                                read_run(storage, r, buf, &mut holes)?;
                            }
                        }
                    }
                }
            }
            if let Some(r) = run {
                read_run(storage, r, buf, &mut holes)?;
            }
            // Present pieces are hashed two at a time (`sha1_pair`); absent ones only count.
            let mut present = Vec::with_capacity(chunk.len());
            for q in chunk.clone() {
                let lo = (q - p) as usize * piece_len;
                let hi = lo + layout.piece_size(q) as usize;
                if !holes.iter().any(|h| h.start < hi && lo < h.end) {
                    present.push((q, lo..hi));
                } else {
                    progress.fetch_add((hi - lo) as u64, Ordering::Relaxed);
                }
            }
            for two in present.chunks(2) {
                let digests = match two {
                    [(_, a), (_, b)] => {
                        let (x, y) = digest_pair(&[&buf[a.clone()]], &[&buf[b.clone()]]);
                        [x, y]
                    }
                    [(_, a)] => [Sha1::digest(&buf[a.clone()]).into(); 2],
                    _ => continue,
                };
                for ((q, range), digest) in two.iter().zip(digests) {
                    if hashes.get(*q as usize) == Some(&digest) {
                        found.push(*q);
                    }
                    progress.fetch_add(range.len() as u64, Ordering::Relaxed);
                }
            }
            p = chunk.end;
        }
        Ok(())
    }
}

fn read_run(
    storage: &Storage,
    r: Run,
    buf: &mut [u8],
    holes: &mut Vec<Range<usize>>,
) -> Result<(), StoreError> {
    // Past the data that existed at open there is nothing to find (and reading a fresh
    // sparse file would only make the kernel zero-fill pages for us to hash).
    let existing = storage.data_len(r.file).saturating_sub(r.file_offset);
    let want = (r.len as u64).min(existing) as usize;
    let dst = &mut buf[r.buf_offset..r.buf_offset + want];
    let got = storage.read_available(r.file, r.file_offset, dst)?;
    if got < r.len {
        holes.push(r.buf_offset + got..r.buf_offset + r.len);
    }
    Ok(())
}
