//! The store's building blocks for resume data: file stamps, sync, finding pieces with data,
//! and rechecking a subset of pieces.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{replace_root_with_file, write_all, Fixture, PIECE};
use crate::store::{recheck, recheck_pieces, FileStamp, StoreError};
use crate::types::Bitfield;

#[test]
fn stamps_report_size_and_mtime_or_none() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    std::fs::remove_file(fx.file_path(4)).unwrap();
    let stamps = s.stamps();
    assert_eq!(stamps.len(), 5);
    for (i, st) in stamps.iter().enumerate().take(4) {
        let meta = std::fs::metadata(fx.file_path(i)).unwrap();
        let want = FileStamp::of(&meta);
        assert_eq!(st, &Some(want), "file {i}");
        assert_eq!(want.size, fx.layout.file_len(i));
        assert!(want.mtime_nanos < 1_000_000_000);
        let secs = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(want.mtime_secs, secs as i64);
    }
    assert_eq!(stamps[4], None);
}

#[test]
fn sync_all_syncs_written_files_only_and_clears_them() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    assert_eq!(s.dirty_files(), Vec::<usize>::new());
    s.sync_all().unwrap();
    // Piece 0 spans files 0 and 2 (file 1 is empty); piece 3 spans files 3 and 4.
    write_all(&fx, &s, [0]);
    assert_eq!(s.dirty_files(), vec![0, 2]);
    s.sync_all().unwrap();
    assert_eq!(s.dirty_files(), Vec::<usize>::new());
    write_all(&fx, &s, [3]);
    assert_eq!(s.dirty_files(), vec![3, 4]);
    // A written file deleted since has nothing left to make durable.
    std::fs::remove_file(fx.file_path(4)).unwrap();
    s.sync_all().unwrap();
    assert_eq!(s.dirty_files(), Vec::<usize>::new());
    // What was synced is what a fresh storage reads back.
    let again = fx.open(true).unwrap();
    assert_eq!(again.read(0, 0, PIECE).unwrap(), fx.piece(0));
}

#[test]
fn sync_all_failure_keeps_the_file_marked() {
    // More files than the open-file cache holds, so the first ones must be reopened to sync.
    let lens = vec![1000u64; 300];
    let fx = Fixture::with(PIECE, &lens);
    let s = fx.open(true).unwrap();
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    assert_eq!(s.dirty_files().len(), 300);
    replace_root_with_file(&fx.root());
    let err = s.sync_all().unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(
        s.dirty_files().contains(&0),
        "a failed file is synced next time"
    );
}

/// Writes `len` bytes of ones at `offset` of file `i`, behind the storage's back.
fn poke(fx: &Fixture, i: usize, offset: u64, len: usize) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.file_path(i))
        .unwrap();
    f.write_all_at(&vec![1; len], offset).unwrap();
}

/// Whether this filesystem reports holes (SEEK_DATA on a fresh sparse file finds none).
fn seek_data_supported(fx: &Fixture) -> bool {
    let f = std::fs::File::open(fx.file_path(0)).unwrap();
    rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(0)) == Err(rustix::io::Errno::NXIO)
}

#[test]
fn pieces_with_data_finds_pieces_touching_data_extents() {
    // Pieces of 64 KiB over files of 300 KiB and 200 KiB: 8 pieces; piece 4 (256..320 KiB)
    // spans the end of file 0 and the start of file 1.
    const K: u64 = 1024;
    let fx = Fixture::with(64 * 1024, &[300 * K, 200 * K]);
    assert_eq!(fx.layout.num_pieces(), 8);
    let created = fx.open(true).unwrap();
    let none = Bitfield::new(8);
    // Files the storage just created hold nothing, whatever the filesystem says.
    assert_eq!(created.pieces_with_data(&none), Vec::<u32>::new());
    let supported = seek_data_supported(&fx);
    eprintln!("SEEK_DATA supported here: {supported}");

    poke(&fx, 0, 70_000, 100); // piece 1
    poke(&fx, 1, 100, 10); // piece 4, in file 1
    poke(&fx, 1, 200 * K - 10, 10); // piece 7, the last byte of the torrent
    let s = fx.open(false).unwrap();
    if !supported {
        // Without SEEK_DATA every existing byte counts as data.
        assert_eq!(s.pieces_with_data(&none), (0..8).collect::<Vec<_>>());
        return;
    }
    assert_eq!(s.pieces_with_data(&none), vec![1, 4, 7]);
    let mut skip = Bitfield::new(8);
    skip.set(4);
    skip.set(0);
    assert_eq!(s.pieces_with_data(&skip), vec![1, 7]);

    // Data at the end of file 0 also lands in piece 4 (and not in piece 5).
    let fx2 = Fixture::with(64 * 1024, &[300 * K, 200 * K]);
    drop(fx2.open(true).unwrap());
    poke(&fx2, 0, 300 * K - 10, 10);
    assert_eq!(fx2.open(false).unwrap().pieces_with_data(&none), vec![4]);

    // A missing file has no data; a truncated one none past its end.
    std::fs::remove_file(fx.file_path(0)).unwrap();
    assert_eq!(s.pieces_with_data(&none), vec![4, 7]);
    let f1 = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.file_path(1))
        .unwrap();
    f1.set_len(150 * K).unwrap();
    assert_eq!(s.pieces_with_data(&none), vec![4]);
}

#[test]
fn pieces_with_data_sees_what_write_piece_wrote() {
    // File 1 is one filesystem block, so every piece boundary stays block-aligned inside
    // every file and extents map to pieces exactly (a misaligned file would let a block
    // spill into the neighbouring piece, which is harmless but inexact).
    let fx = Fixture::with(64 * 1024, &[1 << 20, 4096, 1 << 20]);
    drop(fx.open(true).unwrap());
    let s = fx.open(false).unwrap();
    let none = Bitfield::new(fx.layout.num_pieces());
    if !seek_data_supported(&fx) {
        return;
    }
    write_all(&fx, &s, [2, 16, 30]);
    // Piece 16 starts where file 0 ends: all of file 1 and the start of file 2.
    assert_eq!(s.pieces_with_data(&none), vec![2, 16, 30]);
}

fn progress_of(run: impl FnOnce(&AtomicU64) -> Bitfield) -> (Vec<u32>, u64) {
    let progress = AtomicU64::new(0);
    let have = run(&progress);
    (have.iter_ones().collect(), progress.load(Ordering::Relaxed))
}

#[test]
fn recheck_pieces_checks_only_the_listed_pieces() {
    let fx = Fixture::new();
    let s = fx.open(true).unwrap();
    write_all(&fx, &s, [0, 2]);
    let s = fx.open(true).unwrap();
    let no = AtomicBool::new(false);
    // Unsorted, with a duplicate: piece 2 is present, 1 and 3 are not; 0 is not asked.
    let (have, progress) =
        progress_of(|p| recheck_pieces(&s, &fx.hashes, &[2, 1, 3, 2], 2, p, &no).unwrap());
    assert_eq!(have, vec![2]);
    let sizes: u64 = [1, 2, 3]
        .map(|p| fx.layout.piece_size(p) as u64)
        .iter()
        .sum();
    assert_eq!(progress, sizes);
    let (have, progress) = progress_of(|p| recheck_pieces(&s, &fx.hashes, &[], 2, p, &no).unwrap());
    assert_eq!((have, progress), (vec![], 0));
    let (all, progress) =
        progress_of(|p| recheck_pieces(&s, &fx.hashes, &[3, 2, 1, 0], 3, p, &no).unwrap());
    assert_eq!(all, vec![0, 2]);
    assert_eq!(progress, fx.layout.total_len());
    assert!(matches!(
        recheck_pieces(&s, &fx.hashes, &[1, 4], 2, &AtomicU64::new(0), &no),
        Err(StoreError::NoSuchPiece {
            piece: 4,
            pieces: 4
        })
    ));
    assert!(matches!(
        recheck_pieces(
            &s,
            &fx.hashes,
            &[1],
            2,
            &AtomicU64::new(0),
            &AtomicBool::new(true)
        ),
        Err(StoreError::Cancelled)
    ));
}

#[test]
fn recheck_pieces_equals_recheck_restricted_to_the_subset() {
    // Small pieces, many per read, runs merged across files; some pieces missing on disk.
    let fx = Fixture::with(4096, &[100_000, 3, 250_000, 0, 77_777]);
    let s = fx.open(true).unwrap();
    let n = fx.layout.num_pieces();
    write_all(&fx, &s, (0..n).filter(|p| p % 7 != 3));
    // Absent data is not present: cut file 4 short.
    let f4 = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.file_path(4))
        .unwrap();
    f4.set_len(1000).unwrap();
    let s = fx.open(true).unwrap();
    let no = AtomicBool::new(false);
    let full = recheck(&s, &fx.hashes, 2, &AtomicU64::new(0), &no).unwrap();
    assert!(!full.get(n - 1), "the cut file's pieces are gone");
    let subsets: Vec<Vec<u32>> = vec![
        (0..n).filter(|p| p % 5 < 3).collect(),
        (0..n).rev().step_by(4).collect(),
        (n - 30..n).collect(),
        vec![3, 10, 17],
    ];
    for subset in subsets {
        for threads in [1, 2, 3, 8] {
            let (have, progress) =
                progress_of(|p| recheck_pieces(&s, &fx.hashes, &subset, threads, p, &no).unwrap());
            let mut want: Vec<u32> = subset.iter().copied().filter(|&p| full.get(p)).collect();
            want.sort_unstable();
            assert_eq!(have, want, "{threads} threads");
            let sizes: u64 = subset.iter().map(|&p| fx.layout.piece_size(p) as u64).sum();
            assert_eq!(progress, sizes);
        }
    }
}
