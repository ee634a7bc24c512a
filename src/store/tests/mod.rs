//! Tempdir-based tests of the store: a multi-file torrent whose pieces straddle files
//! (including an empty file) and whose last piece and block are short.

mod part;
mod resume;
mod stream;
mod task;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::{hash_blocks, recheck, Storage, StoreError};
use crate::layout::Layout;
use crate::types::{BlockRef, BLOCK_SIZE};

/// Two blocks per piece.
const PIECE: u32 = 2 * BLOCK_SIZE;

pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub files: Vec<(PathBuf, u64)>,
    pub layout: Layout,
    pub data: Vec<u8>,
    pub hashes: Vec<[u8; 20]>,
}

impl Fixture {
    /// Files of 10000, 0, 70000, 40000 and 13 bytes in nested directories: 120013 bytes,
    /// 4 pieces; piece 0 spans files 0 and 2, piece 2 files 2 and 3, piece 3 files 3 and 4
    /// and is 21709 bytes (blocks of 16384 and 5325).
    pub fn new() -> Self {
        Self::with(PIECE, &[10000, 0, 70000, 40000, 13])
    }

    pub fn with(piece_len: u32, lens: &[u64]) -> Self {
        Self::with_in(tempfile::tempdir().unwrap(), piece_len, lens)
    }

    /// A fixture whose files live under `dir`.
    pub fn with_in(dir: tempfile::TempDir, piece_len: u32, lens: &[u64]) -> Self {
        let files: Vec<(PathBuf, u64)> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| (PathBuf::from(format!("d{}/sub/f{i}.bin", i % 2)), len))
            .collect();
        let layout = Layout::new(piece_len, lens).unwrap();
        let data = pseudo_random(layout.total_len() as usize);
        let hashes = (0..layout.num_pieces())
            .map(|p| {
                let start = layout.piece_start(p) as usize;
                let end = start + layout.piece_size(p) as usize;
                Sha1::digest(&data[start..end]).into()
            })
            .collect();
        Fixture {
            dir,
            files,
            layout,
            data,
            hashes,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("dl")
    }

    /// Opens the storage; with `create`, then makes every missing file, sparse at its full
    /// length, as `Storage::open` itself once did (most tests want files to exist).
    pub fn open(&self, create: bool) -> Result<Storage, StoreError> {
        let s = self.open_lazy(create)?;
        if create {
            for i in 0..self.files.len() {
                let path = self.file_path(i);
                if !path.exists() {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    let f = std::fs::File::create(&path).unwrap();
                    f.set_len(self.files[i].1).unwrap();
                }
            }
        }
        Ok(s)
    }

    /// `Storage::open` alone: files appear when written.
    pub fn open_lazy(&self, create: bool) -> Result<Storage, StoreError> {
        Storage::open(&self.root(), &self.files, self.layout.clone(), create)
    }

    pub fn piece(&self, p: u32) -> &[u8] {
        let start = self.layout.piece_start(p) as usize;
        &self.data[start..start + self.layout.piece_size(p) as usize]
    }

    /// The blocks of piece `p` with their data.
    pub fn blocks(&self, p: u32) -> Vec<(BlockRef, Bytes)> {
        (0..self.layout.blocks_in_piece(p))
            .map(|n| {
                let b = self.layout.block(p, n).unwrap();
                let start = b.offset as usize;
                let data = Bytes::copy_from_slice(&self.piece(p)[start..start + b.len as usize]);
                (b, data)
            })
            .collect()
    }

    /// Every file on disk holds exactly the torrent's bytes.
    pub fn assert_files_written(&self) {
        for i in 0..self.files.len() {
            assert_eq!(
                std::fs::read(self.file_path(i)).unwrap(),
                self.expected_file(i),
                "file {i}"
            );
        }
    }

    pub fn file_path(&self, i: usize) -> PathBuf {
        self.root().join(&self.files[i].0)
    }

    /// What file `i` should contain once complete.
    pub fn expected_file(&self, i: usize) -> &[u8] {
        let start = self.layout.file_start(i) as usize;
        &self.data[start..start + self.layout.file_len(i) as usize]
    }

    /// The bytes of piece `p` as they are on disk now.
    pub fn on_disk(&self, p: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for s in self.layout.piece_spans(p) {
            let f = std::fs::read(self.file_path(s.file)).unwrap();
            let start = s.file_offset as usize;
            out.extend_from_slice(&f[start..start + s.len as usize]);
        }
        out
    }
}

/// Deterministic bytes (xorshift64), so a failing test reproduces.
/// The next store event, within a generous bound.
pub(super) async fn next_event(
    events: &mut tokio::sync::mpsc::Receiver<crate::store::StoreEvent>,
) -> crate::store::StoreEvent {
    tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
        .await
        .expect("store event in time")
        .expect("event channel open")
}

/// Waits for `n` `Verified` events (any other event fails) and checks they name every
/// piece `0..n` once.
pub(super) async fn expect_all_verified(
    events: &mut tokio::sync::mpsc::Receiver<crate::store::StoreEvent>,
    n: u32,
) {
    let mut verified = Vec::new();
    for _ in 0..n {
        match next_event(events).await {
            crate::store::StoreEvent::Verified { piece } => verified.push(piece),
            other => panic!("unexpected {other:?}"),
        }
    }
    verified.sort();
    assert_eq!(verified, (0..n).collect::<Vec<_>>());
}

/// `data` cut at `cuts` (offsets, clamped to its length) into blocks.
fn cut(data: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    cuts.windows(2)
        .map(|w| data.slice(w[0].min(data.len())..w[1].min(data.len())))
        .collect()
}

pub(super) fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn write_all(fx: &Fixture, s: &Storage, pieces: impl IntoIterator<Item = u32>) {
    for p in pieces {
        let blocks: Vec<Bytes> = fx.blocks(p).into_iter().map(|(_, d)| d).collect();
        s.write_piece(p, &blocks).unwrap();
    }
}

/// Recheck as a new session would: on a freshly opened storage (`_s` wrote the data).
fn run_recheck(fx: &Fixture, _s: &Storage, threads: usize) -> Vec<u32> {
    let s = fx.open(true).unwrap();
    let progress = AtomicU64::new(0);
    let have = recheck(&s, &fx.hashes, threads, &progress, &AtomicBool::new(false)).unwrap();
    assert_eq!(progress.load(Ordering::Relaxed), fx.layout.total_len());
    have.iter_ones().collect()
}

#[test]
fn hash_blocks_equals_hash_of_concatenation() {
    let data = pseudo_random(40000);
    let blocks = [
        Bytes::copy_from_slice(&data[..16384]),
        Bytes::copy_from_slice(&data[16384..16390]),
        Bytes::new(),
        Bytes::copy_from_slice(&data[16390..]),
    ];
    let want: [u8; 20] = Sha1::digest(&data).into();
    assert_eq!(hash_blocks(&blocks), want);
}

#[test]
fn files_are_created_sparse_at_full_length_by_their_first_write() {
    let fx = Fixture::new();
    let s = fx.open_lazy(true).unwrap();
    assert!(!fx.root().exists(), "open creates nothing");
    assert!(s.stamps_at_open().iter().all(Option::is_none));
    // Piece 1 lies in file 2 only: file 2 (and its directories) appear, nothing else.
    write_all(&fx, &s, [1]);
    let exists: Vec<bool> = (0..fx.files.len())
        .map(|i| fx.file_path(i).exists())
        .collect();
    assert_eq!(exists, [false, false, true, false, false]);
    assert_eq!(std::fs::metadata(fx.file_path(2)).unwrap().len(), 70000);
    // Piece 0 spans file 0, the empty file 1 and file 2: all exist afterwards.
    write_all(&fx, &s, [0]);
    for i in 0..3 {
        let meta = std::fs::metadata(s.path(i)).unwrap();
        assert_eq!(meta.len(), fx.files[i].1, "file {i}");
    }
    // Reopening keeps data and does not truncate.
    drop(s);
    let s = fx.open_lazy(true).unwrap();
    assert_eq!(fx.on_disk(1), fx.piece(1));
    assert_eq!(s.read(1, 0, 100).unwrap(), &fx.piece(1)[..100]);
}

#[test]
fn a_short_file_is_extended_by_its_first_write_keeping_its_data() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    drop(s);
    let f3 = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.file_path(3))
        .unwrap();
    f3.set_len(5).unwrap();
    let s = fx.open(true).unwrap();
    assert_eq!(s.data_len(3), 5);
    write_all(&fx, &s, [3]);
    assert_eq!(std::fs::metadata(fx.file_path(3)).unwrap().len(), 40000);
}

#[test]
fn write_then_read_crosses_files() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    for i in 0..fx.files.len() {
        assert_eq!(std::fs::read(fx.file_path(i)).unwrap(), fx.expected_file(i));
    }
    // Piece 0 spans file 0 (10000 bytes), the empty file 1, then file 2.
    assert_eq!(s.read(0, 9000, 2000).unwrap(), &fx.piece(0)[9000..11000]);
    // The whole last piece crosses files 3 and 4.
    let last = fx.layout.num_pieces() - 1;
    let size = fx.layout.piece_size(last);
    assert_eq!(s.read(last, 0, size).unwrap(), fx.piece(last));
    assert!(matches!(
        s.read(last, 1, size),
        Err(StoreError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.read(fx.layout.num_pieces(), 0, 1),
        Err(StoreError::OutOfRange { .. })
    ));
}

#[test]
fn a_file_deleted_or_shortened_while_open_is_an_error_not_stale_or_short_data() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    // Piece 0's files are cached now; file 0 goes away under us.
    assert_eq!(s.read(0, 0, 100).unwrap(), &fx.piece(0)[..100]);
    std::fs::remove_file(fx.file_path(0)).unwrap();
    let err = s.read(0, 0, 100).unwrap_err();
    let msg = crate::error::error_chain(&err);
    let path = fx.file_path(0).display().to_string();
    assert!(msg.starts_with(&format!("opening {path}: ")), "{msg}");
    // Nor is it written into the deleted inode, or brought back empty.
    assert!(s
        .write_piece(0, &[Bytes::copy_from_slice(fx.piece(0))])
        .is_err());
    assert!(!fx.file_path(0).exists());
    // The last piece's file is cut short.
    let last = fx.layout.num_pieces() - 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(fx.file_path(4))
        .unwrap()
        .set_len(0)
        .unwrap();
    let err = s.read(last, 0, fx.layout.piece_size(last)).unwrap_err();
    let msg = crate::error::error_chain(&err);
    assert!(msg.contains("shorter than the torrent says"), "{msg}");
    assert!(err.disk_copy().is_some());
}

#[test]
fn write_piece_takes_blocks_of_any_size_across_files() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    for p in 0..fx.layout.num_pieces() {
        // Cuts that fall on, before and after file boundaries, and an empty block.
        let data = Bytes::copy_from_slice(fx.piece(p));
        let blocks = cut(&data, &[0, 1, 1, 9999, 10001, 12345, data.len()]);
        s.write_piece(p, &blocks).unwrap();
    }
    for i in 0..fx.files.len() {
        assert_eq!(std::fs::read(fx.file_path(i)).unwrap(), fx.expected_file(i));
    }
}

#[test]
fn write_piece_rejects_wrong_size() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    let err = s.write_piece(0, &[Bytes::from(vec![0; 100])]).unwrap_err();
    assert!(matches!(err, StoreError::WrongPieceSize { piece: 0, .. }));
    assert!(matches!(
        s.write_piece(99, &[]),
        Err(StoreError::OutOfRange { piece: 99, .. })
    ));
}

#[test]
fn open_without_create_names_the_missing_file() {
    let fx = Fixture::new();
    write_all(&fx, &fx.open(true).unwrap(), 0..fx.layout.num_pieces());
    std::fs::remove_file(fx.file_path(2)).unwrap();
    let err = fx.open(false).unwrap_err();
    match &err {
        StoreError::Missing { path } => assert_eq!(path, &fx.file_path(2)),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(err
        .to_string()
        .contains(&*fx.file_path(2).to_string_lossy()));
}

#[test]
fn open_rejects_unsafe_paths_and_mismatched_lists() {
    let fx = Fixture::with(PIECE, &[10]);
    for bad in ["../x", "/etc/passwd", "a/../../b", "", "./a"] {
        let files = [(PathBuf::from(bad), 10)];
        let err = Storage::open(&fx.root(), &files, fx.layout.clone(), true).unwrap_err();
        assert!(
            matches!(err, StoreError::UnsafePath { .. }),
            "{bad}: {err:?}"
        );
    }
    let files = [(PathBuf::from("a"), 11)];
    let err = Storage::open(&fx.root(), &files, fx.layout.clone(), true).unwrap_err();
    assert!(matches!(err, StoreError::FileLengthMismatch { .. }));
    let err = Storage::open(&fx.root(), &[], fx.layout.clone(), true).unwrap_err();
    assert!(matches!(err, StoreError::FileCountMismatch { got: 0, .. }));
    assert!(!fx.root().exists(), "nothing created for a refused list");
}

#[test]
fn recheck_finds_exactly_the_pieces_present() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    assert_eq!(run_recheck(&fx, &s, 2), Vec::<u32>::new());
    // A storage that just created its files hashes nothing at all.
    let fresh = Fixture::new();
    let created = fresh.open(true).unwrap();
    let progress = AtomicU64::new(0);
    let none = recheck(
        &created,
        &fresh.hashes,
        2,
        &progress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(none.is_clear());
    write_all(&fx, &s, [0, 2]);
    for threads in [1, 2, 3, 8] {
        assert_eq!(
            run_recheck(&fx, &s, threads),
            vec![0, 2],
            "{threads} threads"
        );
    }
    write_all(&fx, &s, [1, 3]);
    assert_eq!(run_recheck(&fx, &s, 2), vec![0, 1, 2, 3]);
    // Truncating file 3 (pieces 2 and 3) and deleting file 4 (piece 3) loses those pieces,
    // without an error.
    let f3 = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.file_path(3))
        .unwrap();
    f3.set_len(5).unwrap();
    std::fs::remove_file(fx.file_path(4)).unwrap();
    assert_eq!(run_recheck(&fx, &s, 2), vec![0, 1]);
}

#[test]
fn recheck_many_pieces_per_read_buffer() {
    // Small pieces: many per 4 MiB read, with runs merged across piece boundaries.
    let fx = Fixture::with(4096, &[100_000, 3, 250_000, 0, 77_777]);
    let s = fx.open(true).unwrap();
    let n = fx.layout.num_pieces();
    write_all(&fx, &s, (0..n).filter(|p| p % 3 != 1));
    let want: Vec<u32> = (0..n).filter(|p| p % 3 != 1).collect();
    assert_eq!(run_recheck(&fx, &s, 2), want);
}

#[test]
fn recheck_can_be_cancelled() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    let progress = AtomicU64::new(0);
    let r = recheck(&s, &fx.hashes, 2, &progress, &AtomicBool::new(true));
    assert!(matches!(r, Err(StoreError::Cancelled)));
}

#[test]
fn open_file_cache_is_bounded() {
    let lens = vec![1000u64; 300];
    let fx = Fixture::with(PIECE, &lens);
    let s = fx.open(true).unwrap();
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    assert!(s.open_handles() <= super::pool::max_open_files());
    for p in 0..fx.layout.num_pieces() {
        let size = fx.layout.piece_size(p);
        assert_eq!(s.read(p, 0, size).unwrap(), fx.piece(p));
    }
    assert!(s.open_handles() <= super::pool::max_open_files());
}

#[test]
fn io_errors_name_the_operation_and_path() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    replace_root_with_file(&fx.root());
    let err = s
        .write_piece(1, &[Bytes::from(fx.piece(1).to_vec())])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "opening for writing {}",
            fx.file_path(2).display()
        )),
        "{msg}"
    );
    assert!(matches!(err, StoreError::Io { .. }));
}

/// Turns the download directory into a regular file, so every open below it fails with
/// ENOTDIR, even as root (where permission bits would not stop us).
pub(super) fn replace_root_with_file(root: &Path) {
    std::fs::remove_dir_all(root).unwrap();
    std::fs::write(root, b"not a directory").unwrap();
}

/// Direct writes (`direct.rs`): the aligned middle of each file span bypasses the page
/// cache, the unaligned edges go through it; with odd file lengths, oddly cut blocks and
/// pieces in any order, every byte lands where it belongs.
#[test]
fn direct_writes_put_every_byte_in_place() {
    let fx = Fixture::with(64 * 1024, &[300_000, 0, 200_000, 7, 1 << 20]);
    let s = fx.open_lazy(true).unwrap().with_direct_writes(true);
    let n = fx.layout.num_pieces();
    for p in (0..n).rev() {
        let data = Bytes::copy_from_slice(fx.piece(p));
        let blocks = cut(&data, &[0, 1, 4097, 16384, 40000, data.len()]);
        s.write_piece(p, &blocks).unwrap();
    }
    for i in 0..fx.files.len() {
        assert_eq!(
            std::fs::read(fx.file_path(i)).unwrap(),
            fx.expected_file(i),
            "file {i}"
        );
    }
    assert_eq!(s.read(3, 100, 9000).unwrap(), &fx.piece(3)[100..9100]);
}

/// tmpfs refused `O_DIRECT` before Linux 6.6 (the first refusal turns direct writes off and
/// the write is done buffered); newer ones take it. Either way every byte lands. Skipped
/// where there is no /dev/shm.
#[test]
fn direct_writes_fall_back_where_the_filesystem_refuses_them() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return;
    };
    let fx = Fixture::with_in(dir, 64 * 1024, &[300_000, 200_000]);
    let s = fx.open_lazy(true).unwrap().with_direct_writes(true);
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    for i in 0..fx.files.len() {
        assert_eq!(
            std::fs::read(fx.file_path(i)).unwrap(),
            fx.expected_file(i),
            "file {i}"
        );
    }
}
