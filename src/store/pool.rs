//! The open-file cache of every [`Storage`](super::Storage) in the process: one LRU of
//! handles shared by all torrents, and how many handles it may hold, sized from the
//! process's descriptor limit.
//!
//! Invariants:
//! - The process keeps at most [`max_open_files`] handles cached, all torrents together,
//!   and one storage at most its own cap within that. A bound per storage alone is no
//!   bound: a seed of 500 single-file torrents kept one handle per torrent it had served
//!   and ran out of descriptors (issue 20); inserting past the process cap closes the
//!   least recently used handle of any storage.
//! - A handle evicted while another thread still uses it stays open until that thread's
//!   `Arc` drops, so the descriptors in use are at most the cap plus the reads and writes
//!   under way.
//! - A [`FileCache`] dropped (its storage closed) leaves nothing behind in the table.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Most handles one storage keeps open: 128, the cache size that kept a many-file torrent's
/// working set from thrashing. Below that when the descriptor limit is low.
pub const MAX_OPEN_FILES: usize = 128;

/// Most handles the whole process keeps open: four storages' worth of
/// [`MAX_OPEN_FILES`]. Many torrents at once are mostly idle seeds, each needing a
/// handle only while it serves a request; libtorrent's session-wide `file_pool_size`
/// (40) shows that far fewer suffice.
pub const MAX_PROCESS_OPEN_FILES: usize = 4 * MAX_OPEN_FILES;

/// Fewest handles a cache keeps, however low the limit: a piece spans few files.
const MIN_OPEN_FILES: usize = 8;

/// Soft `RLIMIT_NOFILE` when it cannot be read: Linux's usual default.
const DEFAULT_NOFILE: u64 = 1024;

/// Handles the process may keep open, all storages together: a quarter of the soft
/// descriptor limit, within [`MIN_OPEN_FILES`, `MAX_PROCESS_OPEN_FILES`]. The other three
/// quarters are for sockets, the listener, locks and the state directory (`ulimit -n 256`
/// gives 64, and 500 torrents still seed). Read once per process.
pub fn max_open_files() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        let soft = nofile_limits().map_or(DEFAULT_NOFILE, |(soft, _)| soft);
        pool_size(soft)
    })
}

fn pool_size(soft_limit: u64) -> usize {
    (soft_limit / 4).clamp(MIN_OPEN_FILES as u64, MAX_PROCESS_OPEN_FILES as u64) as usize
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

/// The process's table of cached handles, shared by every [`FileCache`]. One per process
/// ([`Pool::process`]); a test makes its own so parallel tests do not share a cap.
#[derive(Debug)]
pub(super) struct Pool {
    table: Mutex<Table>,
    next_owner: AtomicU64,
}

/// A cached handle's key: the owning cache, and the file's index in its storage.
type Key = (u64, usize);

#[derive(Debug)]
struct Table {
    open: HashMap<Key, Cached>,
    /// Each handle by its last use, oldest first: the eviction order.
    by_age: BTreeMap<u64, Key>,
    /// Handles cached per owner (absent: none).
    per_owner: HashMap<u64, usize>,
    tick: u64,
    cap: usize,
}

#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    writable: bool,
    last_use: u64,
}

impl Pool {
    pub fn new(cap: usize) -> Arc<Pool> {
        Arc::new(Pool {
            table: Mutex::new(Table {
                open: HashMap::new(),
                by_age: BTreeMap::new(),
                per_owner: HashMap::new(),
                tick: 0,
                cap: cap.max(1),
            }),
            next_owner: AtomicU64::new(0),
        })
    }

    /// The pool every storage of this process shares, of [`max_open_files`] handles.
    pub fn process() -> Arc<Pool> {
        static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
        POOL.get_or_init(|| Pool::new(max_open_files())).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after every statement that can panic: keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles cached, all owners together.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }
}

impl Table {
    fn owned(&self, owner: u64) -> usize {
        self.per_owner.get(&owner).copied().unwrap_or(0)
    }

    fn remove(&mut self, key: Key) -> Option<Arc<File>> {
        let c = self.open.remove(&key)?;
        self.by_age.remove(&c.last_use);
        if let Some(n) = self.per_owner.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&key.0);
            }
        }
        Some(c.file)
    }

    fn insert(&mut self, key: Key, file: Arc<File>, writable: bool) {
        self.tick += 1;
        let last_use = self.tick;
        self.by_age.insert(last_use, key);
        *self.per_owner.entry(key.0).or_insert(0) += 1;
        self.open.insert(
            key,
            Cached {
                file,
                writable,
                last_use,
            },
        );
    }

    fn touch(&mut self, key: Key) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(c) = self.open.get_mut(&key) {
            self.by_age.remove(&c.last_use);
            c.last_use = tick;
            self.by_age.insert(tick, key);
        }
    }

    /// The least recently used handle, of `owner` only if given.
    fn oldest(&self, owner: Option<u64>) -> Option<Key> {
        self.by_age
            .values()
            .find(|k| owner.is_none_or(|o| k.0 == o))
            .copied()
    }
}

/// One storage's view of the process's [`Pool`]: a small LRU of open handles keyed by file
/// index, at most `cap` of them. Dropping it closes its handles.
#[derive(Debug)]
pub(super) struct FileCache {
    pool: Arc<Pool>,
    owner: u64,
    cap: usize,
}

impl FileCache {
    /// A cache of at most `cap` handles (and [`MAX_OPEN_FILES`]) in the process's pool.
    pub fn new(cap: usize) -> Self {
        FileCache::in_pool(Pool::process(), cap.min(MAX_OPEN_FILES))
    }

    pub fn in_pool(pool: Arc<Pool>, cap: usize) -> Self {
        let owner = pool.next_owner.fetch_add(1, Ordering::Relaxed);
        FileCache {
            pool,
            owner,
            cap: cap.max(1),
        }
    }

    pub fn get(&self, file: usize, write: bool) -> Option<Arc<File>> {
        let key = (self.owner, file);
        let mut t = self.pool.lock();
        let c = t.open.get(&key)?;
        if write && !c.writable {
            return None;
        }
        let handle = c.file.clone();
        t.touch(key);
        Some(handle)
    }

    pub fn insert(&self, file: usize, handle: Arc<File>, writable: bool) {
        // Declared before the guard, so evicted handles close after the lock is released.
        let mut closed = Vec::new();
        let mut t = self.pool.lock();
        let key = (self.owner, file);
        closed.extend(t.remove(key));
        if t.owned(self.owner) >= self.cap {
            if let Some(k) = t.oldest(Some(self.owner)) {
                closed.extend(t.remove(k));
            }
        }
        while t.open.len() >= t.cap {
            let Some(k) = t.oldest(None) else { break };
            closed.extend(t.remove(k));
        }
        t.insert(key, handle, writable);
    }

    /// Closes the least recently used `1/share` of the process's cached handles, whoever
    /// holds them (at least one, if any): out of descriptors is a process-wide state, and
    /// the caller may hold none itself. Returns how many.
    pub fn evict_oldest_share(&self, share: usize) -> usize {
        let mut closed = Vec::new();
        let mut t = self.pool.lock();
        let len = t.open.len();
        let n = (len / share.max(1)).max(1).min(len);
        for _ in 0..n {
            let Some(k) = t.oldest(None) else { break };
            closed.extend(t.remove(k));
        }
        closed.len()
    }

    pub fn clear(&self) {
        let mut closed = Vec::new();
        let mut t = self.pool.lock();
        let mine: Vec<Key> = t
            .open
            .keys()
            .filter(|k| k.0 == self.owner)
            .copied()
            .collect();
        for k in mine {
            closed.extend(t.remove(k));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pool.lock().owned(self.owner)
    }
}

impl Drop for FileCache {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_fits_under_the_descriptor_limit() {
        assert_eq!(pool_size(128), 32);
        assert_eq!(pool_size(256), 64);
        assert_eq!(pool_size(1024), 256);
        assert_eq!(pool_size(10), MIN_OPEN_FILES);
        assert_eq!(pool_size(u64::MAX), MAX_PROCESS_OPEN_FILES);
        assert!((MIN_OPEN_FILES..=MAX_PROCESS_OPEN_FILES).contains(&max_open_files()));
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
        let c = FileCache::in_pool(Pool::new(100), 3);
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

    #[test]
    fn the_cap_holds_for_all_storages_together() {
        let f = || Arc::new(File::open("/dev/null").unwrap());
        let pool = Pool::new(4);
        // 500 single-file torrents, each served once: the process keeps 4 handles.
        let mut caches: Vec<FileCache> = (0..500)
            .map(|_| FileCache::in_pool(pool.clone(), MAX_OPEN_FILES))
            .collect();
        for c in &mut caches {
            c.insert(0, f(), false);
            assert!(pool.len() <= 4);
        }
        assert_eq!(pool.len(), 4);
        assert!(caches[0].get(0, false).is_none(), "the oldest was closed");
        assert!(caches[499].get(0, false).is_some());
        // A storage's own cap still holds within the process's.
        let one = FileCache::in_pool(Pool::new(100), 2);
        for i in 0..5 {
            one.insert(i, f(), false);
        }
        assert_eq!(one.len(), 2);
        assert!(one.get(4, false).is_some() && one.get(3, false).is_some());
    }

    #[test]
    fn out_of_descriptors_closes_other_storages_handles_and_drop_frees_its_own() {
        let f = || Arc::new(File::open("/dev/null").unwrap());
        let pool = Pool::new(10);
        let busy = FileCache::in_pool(pool.clone(), 10);
        for i in 0..6 {
            busy.insert(i, f(), false);
        }
        // A storage holding nothing meets EMFILE: it closes the oldest half of everyone's.
        let idle = FileCache::in_pool(pool.clone(), 10);
        assert_eq!(idle.evict_oldest_share(2), 3);
        assert_eq!(busy.len(), 3);
        assert!(busy.get(0, false).is_none() && busy.get(5, false).is_some());
        idle.insert(0, f(), true);
        assert!(idle.get(0, true).is_some());
        assert!(busy.get(0, false).is_none(), "keys are per storage");
        drop(busy);
        assert_eq!(pool.len(), 1, "a dropped cache leaves nothing behind");
        idle.clear();
        assert_eq!(pool.len(), 0);
        assert_eq!(idle.evict_oldest_share(2), 0);
    }
}
