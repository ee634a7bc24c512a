//! Writes of verified data that bypass the page cache (`O_DIRECT`), where the filesystem
//! allows it.
//!
//! Why: a buffered write copies every byte into freshly allocated page-cache pages. On a
//! machine whose memory is reclaimed under it (a VM with free page reporting or proactive
//! reclaim, a busy desktop) those first touches are slow: the same 1 GiB copy measured
//! 0.32 s of system time on a warm machine and 2.66 s after other files had been deleted,
//! and swarm's download wall time varied 1.7–4.3 s with it (PERFORMANCE.md, "The page
//! cache under our writes"). A direct write instead copies into one of a few reused,
//! aligned buffers of ours and lets the device read from there: the cost is the same in
//! every run, and no dirty pages pile up for the final fsync.
//!
//! Rules:
//! - Only the 4 KiB-aligned middle of a span goes direct; the unaligned head and tail
//!   (pieces straddle file boundaries anywhere) are written buffered by the caller.
//! - At most [`CHUNK`] bytes per direct write, from a pool of at most [`POOL`] buffers, so
//!   memory stays bounded whatever the piece length.
//! - The first `EINVAL` or `EOPNOTSUPP` (a filesystem without `O_DIRECT`, such as tmpfs before
//!   Linux 6.6, or one that wants a larger alignment) turns direct writes off for this storage; the write is then done
//!   buffered, and so are all later ones. Nothing is lost or written twice.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Alignment of offsets, lengths and buffers: the page size, which covers every common
/// logical block size (512 B or 4 KiB).
pub const ALIGN: u64 = 4096;

/// Most bytes per direct write (and per pooled buffer): 1 MiB, a few pieces' worth, large
/// enough that the device sees big requests, small enough that the pool stays ~2 MiB.
pub const CHUNK: usize = 1 << 20;

/// Buffers kept for reuse: one per hashing thread on the reference machine.
const POOL: usize = 2;

/// Direct-write state of one storage.
#[derive(Debug)]
pub(super) struct Direct {
    enabled: AtomicBool,
    pool: Mutex<Vec<Vec<u8>>>,
    /// `O_DIRECT` handles of the files written last, by file index, most recent last (at
    /// most [`POOL`]: pieces arrive in any order, but each writer works on one file at a
    /// time, so a file is opened once per run of writes to it, not once per piece).
    handles: Mutex<Vec<(usize, Arc<File>)>>,
}

/// What a direct write could not do.
pub(super) enum DirectError {
    /// The filesystem refused `O_DIRECT`: write this range buffered (direct is now off).
    Unsupported,
    Io(io::Error),
}

impl Direct {
    pub fn new(enabled: bool) -> Direct {
        Direct {
            enabled: AtomicBool::new(enabled),
            pool: Mutex::new(Vec::new()),
            handles: Mutex::new(Vec::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The aligned middle `[a, b)` of the file range `[start, end)`, if it is not empty
    /// and direct writes are on.
    pub fn middle(&self, start: u64, end: u64) -> Option<(u64, u64)> {
        if !self.enabled() {
            return None;
        }
        let a = start.div_ceil(ALIGN) * ALIGN;
        let b = end / ALIGN * ALIGN;
        (b > a).then_some((a, b))
    }

    /// Writes `data` (the parts of one contiguous range whose start `at` and total length
    /// are multiples of [`ALIGN`]) into file `index` at `path`, bypassing the page cache.
    pub fn write(
        &self,
        index: usize,
        path: &Path,
        data: &[&[u8]],
        at: u64,
    ) -> Result<(), DirectError> {
        let file = self.handle(index, path).map_err(|e| self.failed(e))?;
        let mut buf = self.take();
        let r = copy_and_write(&file, &mut buf, data, at);
        self.give_back(buf);
        r.map_err(|e| self.failed(e))
    }

    /// The cached `O_DIRECT` handle of file `index`, or a fresh one (replacing the least
    /// recently used). Opened outside the lock.
    fn handle(&self, index: usize, path: &Path) -> io::Result<Arc<File>> {
        {
            let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(pos) = handles.iter().position(|(i, _)| *i == index) {
                let hit = handles.remove(pos);
                let file = hit.1.clone();
                handles.push(hit);
                return Ok(file);
            }
        }
        let file = Arc::new(
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)?,
        );
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if handles.len() >= POOL {
            handles.remove(0);
        }
        handles.push((index, file.clone()));
        Ok(file)
    }

    /// Closes the cached handles (the storage is closing its files).
    pub fn close(&self) {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn failed(&self, e: io::Error) -> DirectError {
        // EINVAL: no O_DIRECT here, or another alignment; EOPNOTSUPP: some filesystems
        // say it that way.
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) {
            if self.enabled.swap(false, Ordering::Relaxed) {
                tracing::debug!("the filesystem refuses O_DIRECT; writing through the page cache");
            }
            DirectError::Unsupported
        } else {
            DirectError::Io(e)
        }
    }

    fn take(&self) -> Vec<u8> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.unwrap_or_else(|| vec![0u8; CHUNK + ALIGN as usize])
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL {
            pool.push(buf);
        }
    }
}

/// Copies `data` into the aligned window of `buf` and writes it at `at` in [`CHUNK`]-sized
/// writes (the total, and so the last write, is aligned by the caller), resuming after
/// short writes.
fn copy_and_write(file: &File, buf: &mut [u8], data: &[&[u8]], mut at: u64) -> io::Result<()> {
    let skip = buf.as_ptr().align_offset(ALIGN as usize);
    let window = &mut buf[skip..skip + CHUNK];
    let mut fill = 0;
    for part in data {
        let mut part = *part;
        while !part.is_empty() {
            let n = (CHUNK - fill).min(part.len());
            window[fill..fill + n].copy_from_slice(&part[..n]);
            fill += n;
            part = &part[n..];
            if fill == CHUNK {
                write_all_at(file, &window[..fill], at)?;
                at += fill as u64;
                fill = 0;
            }
        }
    }
    if fill > 0 {
        write_all_at(file, &window[..fill], at)?;
    }
    Ok(())
}

/// `pwrite` until all of `data` is written; a short write that leaves an unaligned rest is
/// the filesystem refusing the alignment, reported as EINVAL as the kernel would.
fn write_all_at(file: &File, data: &[u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match file.write_at(&data[done..], at + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if (done + n) % ALIGN as usize != 0 && done + n != data.len() => {
                return Err(io::Error::from_raw_os_error(libc::EINVAL))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_middle_is_aligned_and_off_when_disabled() {
        let d = Direct::new(true);
        assert_eq!(d.middle(0, 8192), Some((0, 8192)));
        assert_eq!(d.middle(100, 10_000), Some((4096, 8192)));
        assert_eq!(d.middle(100, 4000), None);
        assert_eq!(d.middle(4095, 8191), None);
        assert_eq!(d.middle(4095, 8193), Some((4096, 8192)));
        assert_eq!(Direct::new(false).middle(0, 8192), None);
    }

    #[test]
    fn a_refusal_turns_direct_off_and_other_errors_do_not() {
        let d = Direct::new(true);
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(d.failed(eio), DirectError::Io(_)));
        assert!(d.enabled());
        let einval = io::Error::from_raw_os_error(libc::EINVAL);
        assert!(matches!(d.failed(einval), DirectError::Unsupported));
        assert!(!d.enabled());
        assert_eq!(d.middle(0, 8192), None);
    }

    /// Whatever the filesystem under the test's temp dir does with O_DIRECT, the bytes end
    /// up right: written direct, or refused (then direct is off and nothing was written).
    #[test]
    fn a_direct_write_lands_or_turns_direct_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0u8; 3 * CHUNK]).unwrap();
        let d = Direct::new(true);
        let a: Vec<u8> = (0..CHUNK + 8192).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..8192).map(|i| (i % 13) as u8).collect();
        match d.write(0, &path, &[&a, &b], 4096) {
            Ok(()) => {
                let got = std::fs::read(&path).unwrap();
                assert_eq!(&got[4096..4096 + a.len()], &a[..]);
                assert_eq!(&got[4096 + a.len()..4096 + a.len() + b.len()], &b[..]);
                assert!(got[..4096].iter().all(|&x| x == 0));
                assert!(d.enabled());
            }
            Err(DirectError::Unsupported) => assert!(!d.enabled()),
            Err(DirectError::Io(e)) => panic!("{e}"),
        }
    }
}
