//! The lock on a download target: one `fetch` of a torrent into a directory at a time.
//!
//! A lock is the file `<state dir>/locks/<info-hash>-<key of the directory>.lock`, a hard
//! link to the holder's owner file (`locks/owner-<pid>-<nonce>`), which the holder keeps
//! `flock`ed and which holds its pid for the message the second process prints. One
//! descriptor per process however many torrents it fetches. The kernel drops an `flock`
//! when its holder exits, however it exits, so a crash leaves no stale lock: a lock file
//! nobody has `flock`ed is removed and taken. Where hard links are not supported, the lock
//! is an `flock` on the lock file itself (a descriptor each).
//!
//! Invariant: while a [`DirLock`] lives, no other process holds the lock of the same
//! (torrent, canonical directory). A live lock file is deleted only by its holder; a dead
//! one only by a process holding its `flock`, after checking the path still names it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

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
    held: Held,
    path: PathBuf,
}

#[derive(Debug)]
enum Held {
    /// The lock file is a hard link to this process's owner file, whose `flock` stands
    /// for every lock the process holds: one descriptor however many torrents (500
    /// torrents in one `fetch` under `ulimit -n 256` ran out of descriptors with one each).
    Link(Arc<Owner>),
    /// Where hard links are not supported: an `flock` on the lock file itself.
    Own(File),
}

impl Drop for DirLock {
    fn drop(&mut self) {
        match &self.held {
            Held::Link(owner) => {
                // Only while it still names our owner file (nobody else removes a live one).
                if same_file(&self.path, &owner.file) {
                    let _ = std::fs::remove_file(&self.path);
                }
            }
            Held::Own(file) => {
                // Unlink while still holding the lock, so nobody takes a lock on a file
                // that is about to vanish without noticing (see the module doc).
                let _ = std::fs::remove_file(&self.path);
                let _ = flock(file, FlockOperation::Unlock);
            }
        }
    }
}

/// This process's owner file in one locks directory, exclusively `flock`ed while any of
/// its locks lives; removed when the last one drops.
#[derive(Debug)]
struct Owner {
    file: File,
    path: PathBuf,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// The owner file of `locks` for this process, made on first use.
fn owner(locks: &Path) -> std::io::Result<Arc<Owner>> {
    static OWNERS: Mutex<Vec<(PathBuf, Weak<Owner>)>> = Mutex::new(Vec::new());
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    owners.retain(|(_, w)| w.strong_count() > 0);
    if let Some(o) = owners
        .iter()
        .find(|(p, _)| p == locks)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(o);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("owner-{}-{nanos}", std::process::id());
    let path = locks.join(&name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)?;
    // The pid for the message a second process prints; the name to clean up after a crash.
    writeln!(file, "{}\n{name}", std::process::id())?;
    let owner = Arc::new(Owner { file, path });
    owners.push((locks.to_path_buf(), Arc::downgrade(&owner)));
    Ok(owner)
}

fn same_file(path: &Path, file: &File) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
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
    let owner = owner(&locks).map_err(io(&locks))?;
    // A few tries: each failure means a holder left (or had died) between our looks.
    for _ in 0..5 {
        match std::fs::hard_link(&owner.path, &path) {
            Ok(()) => {
                return Ok(DirLock {
                    held: Held::Link(owner),
                    path,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // No hard links here (some FUSE and network filesystems): a descriptor each.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) => {
                return acquire_own(&path, dir)
            }
            Err(e) => return Err(io(&path)(e)),
        }
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let pid = text.lines().next().and_then(|l| l.trim().parse().ok());
        let held = LockError::Held {
            dir: dir.to_path_buf(),
            pid,
        };
        if same_file(&path, &owner.file) {
            return Err(held);
        }
        // Exclusive, so two processes finding the same dead lock take turns removing it.
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => return Err(held),
            Err(e) => return Err(io(&path)(e.into())),
            Ok(()) => {}
        }
        // Nobody holds it: its holder died. Remove it (and that holder's owner file) if
        // it is still the file we looked at, and try again.
        if same_file(&path, &file) {
            let _ = std::fs::remove_file(&path);
            if let Some(name) = text.lines().nth(1).filter(|n| n.starts_with("owner-")) {
                let dead = locks.join(name.trim());
                if same_file(&dead, &file) {
                    let _ = std::fs::remove_file(dead);
                }
            }
        }
        let _ = flock(&file, FlockOperation::Unlock);
    }
    Err(LockError::Io {
        path,
        source: std::io::Error::other("kept vanishing while being locked"),
    })
}

/// The lock as an `flock` on its own file, held open.
fn acquire_own(path: &Path, dir: &Path) -> Result<DirLock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    for _ in 0..5 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: text.lines().next().and_then(|l| l.trim().parse().ok()),
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        if !same_file(path, &file) {
            continue;
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        return Ok(DirLock {
            held: Held::Own(file),
            path: path.to_path_buf(),
        });
    }
    Err(io(std::io::Error::other(
        "kept vanishing while being locked",
    )))
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
        // A second lock of the same target in the same process is refused too.
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

    #[test]
    fn many_locks_share_one_descriptor_and_leave_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let locks: Vec<DirLock> = (0..600u32)
            .map(|i| {
                let mut ih = [0; 20];
                ih[..4].copy_from_slice(&i.to_be_bytes());
                acquire(tmp.path(), &InfoHash(ih), &out).unwrap()
            })
            .collect();
        let Held::Link(first) = &locks[0].held else {
            panic!("hard links work in a tempdir")
        };
        assert!(locks
            .iter()
            .all(|l| matches!(&l.held, Held::Link(o) if Arc::ptr_eq(o, first))));
        drop(locks);
        let left = std::fs::read_dir(tmp.path().join("locks")).unwrap().count();
        assert_eq!(left, 0, "every lock file and the owner file are removed");
    }

    #[test]
    fn a_dead_holders_lock_is_taken_and_a_live_flock_is_respected() {
        let tmp = tempfile::tempdir().unwrap();
        let (ih, out) = (InfoHash([9; 20]), tmp.path().join("out"));
        let locks = tmp.path().join("locks");
        std::fs::create_dir_all(&locks).unwrap();
        let path = locks.join(format!("{ih}-{}.lock", dir_key(&out)));
        // A crashed holder's files: a lock file and its owner file, nobody's flock.
        std::fs::write(locks.join("owner-1-2"), "1\nowner-1-2\n").unwrap();
        std::fs::hard_link(locks.join("owner-1-2"), &path).unwrap();
        let lock = acquire(tmp.path(), &ih, &out).unwrap();
        assert!(
            !locks.join("owner-1-2").exists(),
            "the dead owner file is cleaned up"
        );
        drop(lock);
        // An older swarm's lock: an flock on the lock file itself.
        let old = File::create(&path).unwrap();
        std::fs::write(&path, "4242\n").unwrap();
        flock(&old, FlockOperation::LockExclusive).unwrap();
        match acquire(tmp.path(), &ih, &out) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(4242)),
            other => panic!("expected Held, got {other:?}"),
        }
    }
}
