//! The lock on a download target: one `fetch` of a torrent into a directory at a time.
//!
//! A lock is an `flock` on `<state dir>/locks/<info-hash>-<key of the directory>.lock`,
//! which holds the owner's pid for the message the second process prints. The kernel
//! drops an `flock` when its holder exits, however it exits, so a crash leaves no stale
//! lock; the file left behind is reused by the next run.
//!
//! Invariant: while a [`DirLock`] lives, no other process holds the lock of the same
//! (torrent, canonical directory). The file is deleted only by its holder; a process that
//! locked a file just unlinked (a race with a holder leaving) sees the path no longer names
//! what it locked, and tries again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use sha1::{Digest, Sha1};

use crate::types::InfoHash;

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("already being downloaded into {} by another swarm process{}", dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { dir: PathBuf, pid: Option<u32> },
    #[error("lock file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; dropping it releases the lock and removes its file.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so nobody takes a lock on a file that is
        // about to vanish without noticing (see the module doc).
        let _ = std::fs::remove_file(&self.path);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// Takes the lock of downloading `info_hash` into `dir` (which need not exist yet).
pub fn acquire(state_root: &Path, info_hash: &InfoHash, dir: &Path) -> Result<DirLock, LockError> {
    let locks = state_root.join("locks");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { path, source }
    };
    std::fs::create_dir_all(&locks).map_err(io(&locks))?;
    let path = locks.join(format!("{info_hash}-{}.lock", dir_key(dir)));
    // A few tries: each failure means a holder left between our open and our flock.
    for _ in 0..5 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(e) => return Err(io(&path)(e.into())),
        }
        let ours = file.metadata().map_err(io(&path))?;
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
            _ => continue,
        }
        file.set_len(0).map_err(io(&path))?;
        file.rewind().map_err(io(&path))?;
        writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
        return Ok(DirLock { file, path });
    }
    Err(LockError::Io {
        path,
        source: std::io::Error::other("kept vanishing while being locked"),
    })
}

/// A short, stable name for a directory: SHA-1 of its canonical path (of the nearest
/// existing ancestor, with the rest appended, when it does not exist yet), so `out`,
/// `./out` and `/abs/out` share one lock.
fn dir_key(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut rest = Vec::new();
    let mut base = abs.as_path();
    let canonical = loop {
        if let Ok(c) = std::fs::canonicalize(base) {
            break c;
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => break base.to_path_buf(),
        }
    };
    let full = rest.iter().rev().fold(canonical, |p, n| p.join(n));
    let digest = Sha1::digest(full.as_os_str().as_encoded_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let ih = InfoHash([7; 20]);
        let out = tmp.path().join("out");
        let first = acquire(tmp.path(), &ih, &out).unwrap();
        // Another descriptor in the same process conflicts as another process would.
        let again = tmp.path().join(".").join("out");
        match acquire(tmp.path(), &ih, &again) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        // Another torrent, or another directory, is free.
        let other = acquire(tmp.path(), &InfoHash([8; 20]), &out).unwrap();
        let elsewhere = acquire(tmp.path(), &ih, &tmp.path().join("b")).unwrap();
        drop((other, elsewhere));
        drop(first);
        acquire(tmp.path(), &ih, &out).unwrap();
    }
}
