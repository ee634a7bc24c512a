//! The part file: skipped files never appear in the download directory, their side of
//! boundary pieces is served, rechecked and later adopted from the part file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::{write_all, Fixture};
use crate::store::{recheck, recheck_pieces, Storage, StoreError};
use crate::types::Bitfield;

const KIB: u64 = 1024;

/// 16 KiB pieces over files of 20, 30 and 25 KiB: piece 1 spans files 0 and 1, piece 3 files
/// 1 and 2; pieces 1..=3 touch the middle file; the last piece is 11 KiB.
fn three_files() -> Fixture {
    Fixture::with(16 * KIB as u32, &[20 * KIB, 30 * KIB, 25 * KIB])
}

fn part_path(fx: &Fixture) -> PathBuf {
    fx.dir.path().join("state/torrent.part")
}

fn open_with_part(fx: &Fixture, skipped: &[bool]) -> Storage {
    fx.open_lazy(true)
        .unwrap()
        .with_part_file(part_path(fx), skipped)
        .unwrap()
}

/// Every regular file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn check(fx: &Fixture, s: &Storage, pieces: &[u32]) -> Vec<u32> {
    let (progress, cancel) = (AtomicU64::new(0), AtomicBool::new(false));
    let have = recheck_pieces(s, &fx.hashes, pieces, 2, &progress, &cancel).unwrap();
    have.iter_ones().collect()
}

fn check_all(fx: &Fixture, s: &Storage) -> Vec<u32> {
    let (progress, cancel) = (AtomicU64::new(0), AtomicBool::new(false));
    let have = recheck(s, &fx.hashes, 2, &progress, &cancel).unwrap();
    have.iter_ones().collect()
}

fn no_skip(fx: &Fixture) -> Bitfield {
    Bitfield::new(fx.layout.num_pieces())
}

#[test]
fn skipped_sides_go_to_the_part_file_and_are_adopted_later() {
    for direct in [false, true] {
        let fx = three_files();
        let part = part_path(&fx);
        let s = open_with_part(&fx, &[true, false, true]).with_direct_writes(direct);
        assert_eq!(
            (s.in_part(0), s.in_part(1), s.in_part(2)),
            (true, false, true)
        );
        assert_eq!(s.part_stamp_at_open(), None);
        write_all(&fx, &s, [1, 2, 3]);
        // Only the middle file exists in the download directory, complete.
        assert_eq!(files_under(&fx.root()), [fx.file_path(1)]);
        assert_eq!(std::fs::read(fx.file_path(1)).unwrap(), fx.expected_file(1));
        // Served from the real file and the part file together.
        for p in 1..=3 {
            let size = fx.layout.piece_size(p);
            assert_eq!(s.read(p, 0, size).unwrap(), fx.piece(p), "piece {p}");
        }
        // The part file is addressed by global offset: it ends with piece 3's skipped side.
        assert_eq!(s.part_stamp().unwrap().size, fx.layout.piece_start(4));
        assert_eq!(s.stamps()[0], None);
        assert!(s.dirty_files().contains(&3), "the part file is dirty");
        s.sync_all().unwrap();
        assert!(s.dirty_files().is_empty());
        drop(s);

        // A new session with the same selection finds the pieces, and only those.
        let again = open_with_part(&fx, &[true, false, true]);
        assert!(again.part_stamp_at_open().is_some());
        assert_eq!(check(&fx, &again, &[0, 1, 2, 3, 4]), [1, 2, 3]);
        assert_eq!(check_all(&fx, &again), [1, 2, 3]);
        let with_data = again.pieces_with_data(&no_skip(&fx));
        assert!(
            [1, 2, 3].iter().all(|p| with_data.contains(p)),
            "{with_data:?}"
        );
        drop(again);

        // A wider selection adopts the part file's bytes into the real files.
        let mut wide = open_with_part(&fx, &[false, false, false]);
        assert_eq!(wide.adopt_parts().unwrap(), [0, 2]);
        assert!(!part.exists(), "the part file is gone");
        assert_eq!(wide.stamps_at_open()[0], None, "stamps at open unchanged");
        let f0 = std::fs::read(fx.file_path(0)).unwrap();
        let f2 = std::fs::read(fx.file_path(2)).unwrap();
        assert_eq!(f0.len() as u64, 20 * KIB);
        assert_eq!(f2.len() as u64, 25 * KIB);
        assert_eq!(
            f0[16 * KIB as usize..],
            fx.expected_file(0)[16 * KIB as usize..]
        );
        assert_eq!(
            f2[..14 * KIB as usize],
            fx.expected_file(2)[..14 * KIB as usize]
        );
        assert_eq!(wide.data_len(0), 20 * KIB);
        assert_eq!(check(&fx, &wide, &[0, 1, 2, 3, 4]), [1, 2, 3]);
        let with_data = wide.pieces_with_data(&no_skip(&fx));
        assert!(
            [1, 2, 3].iter().all(|p| with_data.contains(p)),
            "{with_data:?}"
        );
        // The rest arrives and every file is whole.
        write_all(&fx, &wide, [0, 4]);
        fx.assert_files_written();
        assert_eq!(wide.adopt_parts().unwrap(), Vec::<usize>::new());
    }
}

#[test]
fn a_skipped_file_that_exists_is_used_in_place() {
    let fx = three_files();
    let part = part_path(&fx);
    std::fs::create_dir_all(fx.file_path(0).parent().unwrap()).unwrap();
    std::fs::write(fx.file_path(0), fx.expected_file(0)).unwrap();
    let s = open_with_part(&fx, &[true, false, true]);
    assert!(!s.in_part(0) && s.in_part(2));
    // Piece 1 spans the existing file 0 and file 1; piece 2 lies in file 1.
    write_all(&fx, &s, [1, 2]);
    assert!(!part.exists(), "nothing went to the part file");
    assert_eq!(std::fs::read(fx.file_path(0)).unwrap(), fx.expected_file(0));
    assert_eq!(s.read(1, 0, 16 * KIB as u32).unwrap(), fx.piece(1));
    assert!(s.stamps()[0].is_some());
    // Piece 3 reaches file 2, which is absent: that side goes to the part file.
    write_all(&fx, &s, [3]);
    assert!(part.exists());
    assert!(!fx.file_path(2).exists());
    assert_eq!(s.read(3, 0, 16 * KIB as u32).unwrap(), fx.piece(3));
}

#[test]
fn an_empty_skipped_file_is_never_created_and_part_data_is_found() {
    // Piece 1 spans file 0, the empty file 1 and file 2.
    let fx = Fixture::with(16 * KIB as u32, &[20 * KIB, 0, 30 * KIB]);
    let skipped = [true, true, false];
    let s = open_with_part(&fx, &skipped);
    assert!(s.in_part(1), "an absent empty skipped file is held");
    write_all(&fx, &s, [1]);
    s.sync_all().unwrap();
    assert_eq!(files_under(&fx.root()), [fx.file_path(2)]);
    drop(s);
    let s = open_with_part(&fx, &skipped);
    let with_data = s.pieces_with_data(&no_skip(&fx));
    assert!(with_data.contains(&1), "{with_data:?}");
    assert_eq!(check_all(&fx, &s), [1]);
    // Wanted later: the empty file at the adopted piece is created too (that piece is
    // verified and will not be written again).
    let mut s = open_with_part(&fx, &[false, false, false]);
    assert_eq!(s.adopt_parts().unwrap(), [0]);
    assert_eq!(std::fs::metadata(fx.file_path(1)).unwrap().len(), 0);
    assert_eq!(check_all(&fx, &s), [1]);
}

#[test]
fn a_single_skipped_file_lives_wholly_in_the_part_file() {
    let fx = Fixture::with(16 * KIB as u32, &[40 * KIB]);
    let s = open_with_part(&fx, &[true]);
    write_all(&fx, &s, 0..fx.layout.num_pieces());
    assert!(files_under(&fx.root()).is_empty());
    assert_eq!(s.read(2, 100, 1000).unwrap(), &fx.piece(2)[100..1100]);
    s.sync_all().unwrap();
    drop(s);
    let s = open_with_part(&fx, &[true]);
    assert_eq!(check_all(&fx, &s), [0, 1, 2]);
    assert_eq!(s.pieces_with_data(&no_skip(&fx)), [0, 1, 2]);
}

#[test]
fn part_file_errors_name_the_path() {
    let fx = three_files();
    let err = fx
        .open_lazy(true)
        .unwrap()
        .with_part_file(part_path(&fx), &[true])
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::FileCountMismatch {
            got: 1,
            expected: 3
        }
    ));
    // The part file's directory is a regular file: its creation fails, naming it.
    let blocker = fx.dir.path().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let part = blocker.join("torrent.part");
    let s = fx
        .open_lazy(true)
        .unwrap()
        .with_part_file(part.clone(), &[true, false, true])
        .unwrap();
    let err = s
        .write_piece(1, &[bytes::Bytes::copy_from_slice(fx.piece(1))])
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Io { .. }));
    assert!(
        msg.starts_with(&format!("opening for writing {}", part.display())),
        "{msg}"
    );
}

/// Neighbours written as one run (`write_adjacent`) and a streamed piece written in parts
/// (`write_at`) take the same mapping as `write_piece`.
#[test]
fn every_write_path_respects_the_part_file() {
    let fx = three_files();
    let s = open_with_part(&fx, &[true, false, true]);
    let whole = |p: u32| vec![bytes::Bytes::copy_from_slice(fx.piece(p))];
    s.write_adjacent(1, &whole(1), &whole(2)).unwrap();
    let p3 = bytes::Bytes::copy_from_slice(fx.piece(3));
    // Cut inside file 1, then across into file 2's (skipped) side.
    s.write_at(3, 0, &[p3.slice(..1000)]).unwrap();
    s.write_at(3, 1000, &[p3.slice(1000..)]).unwrap();
    assert_eq!(files_under(&fx.root()), [fx.file_path(1)]);
    assert_eq!(std::fs::read(fx.file_path(1)).unwrap(), fx.expected_file(1));
    for p in 1..=3 {
        let size = fx.layout.piece_size(p);
        assert_eq!(s.read(p, 0, size).unwrap(), fx.piece(p), "piece {p}");
    }
    s.sync_all().unwrap();
    drop(s);
    assert_eq!(
        check_all(&fx, &open_with_part(&fx, &[true, false, true])),
        [1, 2, 3]
    );
}
