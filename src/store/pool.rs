//! The open-file cache of a [`Storage`](super::Storage): a small LRU of handles, and how
//! many handles it may hold, sized from the process's descriptor limit.
//!
//! Invariant: the cache never holds more than its capacity; a handle evicted while another
//! thread still uses it stays open until that thread's `Arc` drops.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, OnceLock};

/// Most handles one storage keeps open: 128, the cache size that kept a many-file torrent's
/// working set from thrashing. Below that when the descriptor limit is low.
pub const MAX_OPEN_FILES: usize = 128;

/// Fewest handles a cache keeps, however low the limit: a piece spans few files.
const MIN_OPEN_FILES: usize = 8;

/// Soft `RLIMIT_NOFILE` when it cannot be read: Linux's usual default.
const DEFAULT_NOFILE: u64 = 1024;

/// Handles a storage may keep open: a quarter of the soft descriptor limit, within
/// [`MIN_OPEN_FILES`, `MAX_OPEN_FILES`]. The other three quarters are for sockets,
/// the listener, the state directory and other torrents (`ulimit -n 128` gives 32, and a
/// 3,000-file torrent still seeds). Read once per process.
pub fn max_open_files() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        let soft = nofile_limits().map_or(DEFAULT_NOFILE, |(soft, _)| soft);
        pool_size(soft)
    })
}

fn pool_size(soft_limit: u64) -> usize {
    ((soft_limit / 4) as usize).clamp(MIN_OPEN_FILES, MAX_OPEN_FILES)
}

/// The soft and hard `RLIMIT_NOFILE` from `/proc/self/limits` (`u64::MAX`: unlimited;
/// the crate forbids `unsafe`, so no `getrlimit` through libc; `None` elsewhere than
/// Linux).
pub fn nofile_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile(&text)
}

fn parse_nofile(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut words = line["Max open files".len()..].split_whitespace();
    let mut next = || match words.next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((next()?, next()?))
}

/// The open failed for want of descriptors (ours or the system's).
pub(super) fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// A small LRU of open handles, keyed by file index.
#[derive(Debug)]
pub(super) struct FileCache {
    open: HashMap<usize, Cached>,
    tick: u64,
    cap: usize,
}

#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    writable: bool,
    last_use: u64,
}

impl FileCache {
    pub fn new(cap: usize) -> Self {
        FileCache {
            open: HashMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    pub fn get(&mut self, file: usize, write: bool) -> Option<Arc<File>> {
        self.tick += 1;
        let c = self.open.get_mut(&file)?;
        if write && !c.writable {
            return None;
        }
        c.last_use = self.tick;
        Some(c.file.clone())
    }

    pub fn insert(&mut self, file: usize, handle: Arc<File>, writable: bool) {
        self.tick += 1;
        if !self.open.contains_key(&file) && self.open.len() >= self.cap {
            self.evict(1);
        }
        self.open.insert(
            file,
            Cached {
                file: handle,
                writable,
                last_use: self.tick,
            },
        );
    }

    /// Closes the least recently used `1/share` of the handles (at least one, if any);
    /// returns how many.
    pub fn evict_oldest_share(&mut self, share: usize) -> usize {
        let n = (self.open.len() / share.max(1)).max(1).min(self.open.len());
        self.evict(n);
        n
    }

    fn evict(&mut self, n: usize) {
        // A sort of at most `cap` (≤ 128) entries costs far less than the open() that
        // makes room necessary.
        let mut by_age: Vec<(u64, usize)> =
            self.open.iter().map(|(&k, c)| (c.last_use, k)).collect();
        by_age.sort_unstable();
        for (_, k) in by_age.into_iter().take(n) {
            self.open.remove(&k);
        }
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_fits_under_the_descriptor_limit() {
        assert_eq!(pool_size(128), 32);
        assert_eq!(pool_size(1024), MAX_OPEN_FILES);
        assert_eq!(pool_size(10), MIN_OPEN_FILES);
        assert_eq!(pool_size(u64::MAX), MAX_OPEN_FILES);
        assert!(max_open_files() >= MIN_OPEN_FILES && max_open_files() <= MAX_OPEN_FILES);
    }

    #[test]
    fn soft_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            128                  1048576              files     \n";
        assert_eq!(parse_nofile(text), Some((128, 1_048_576)));
        let unlimited = text.replace("128    ", "unlimited");
        assert_eq!(parse_nofile(&unlimited), Some((u64::MAX, 1_048_576)));
        let both = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(both), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_nofile("Max open files  lots\n"), None);
        assert_eq!(parse_nofile("nothing here"), None);
    }

    #[test]
    fn eviction_closes_the_least_recently_used() {
        let f = || Arc::new(File::open("/dev/null").unwrap());
        let mut c = FileCache::new(3);
        for i in 0..3 {
            c.insert(i, f(), false);
        }
        assert!(c.get(0, false).is_some()); // 1 is now the oldest
        c.insert(3, f(), false);
        assert_eq!(c.len(), 3);
        assert!(c.get(1, false).is_none());
        assert_eq!(c.evict_oldest_share(2), 1);
        assert!(c.get(2, false).is_none(), "2 was the oldest left");
        assert_eq!(c.len(), 2);
        assert!(
            c.get(0, true).is_none(),
            "read-only handle does not serve a write"
        );
    }
}
