//! Where a file holds data: its data extents from `lseek(SEEK_DATA/SEEK_HOLE)`, and which
//! pieces those extents touch. Used on resume to find pieces written after the last saved
//! record without reading the holes of a sparse download.
//!
//! Invariants: extents are sorted, disjoint, non-empty and within `[0, len)`; when the
//! filesystem cannot say, the answer errs towards "data" (a needless hash costs time, a
//! missed piece would cost a re-download).

use std::fs::File;
use std::ops::Range;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::layout::Layout;
use crate::types::Bitfield;

/// The data extents of `file` within `[0, len)`. Past the file's end there is no data; a
/// filesystem without `SEEK_DATA` (EINVAL, or any other error on the first seek) counts as
/// data up to the file's end.
pub(super) fn data_extents(file: &File, len: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            // No data at or after `pos` (including `pos` at or past the end of the file).
            Err(Errno::NXIO) => break,
            Err(e) if pos == 0 => {
                tracing::debug!(error = %e, "SEEK_DATA unsupported; counting the file as data");
                let end = file.metadata().map_or(len, |m| m.len().min(len));
                if end > 0 {
                    out.push(0..end);
                }
                return out;
            }
            // It worked before: assume data from here on rather than guess.
            Err(_) => {
                out.push(pos..len);
                break;
            }
        };
        if start >= len {
            break;
        }
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            // There is always a hole at the end of the file, so this is > start; guard anyway
            // so a misbehaving filesystem cannot make us loop.
            Ok(e) if e > start => e.min(len),
            _ => len,
        };
        out.push(start..end);
        pos = end;
    }
    out
}

/// Sets in `hit` every piece that overlaps one of `extents` of `file` (offsets within the
/// file, as [`data_extents`] returns them, clipped to the file's length in the layout).
pub(super) fn mark_pieces(
    layout: &Layout,
    file: usize,
    extents: &[Range<u64>],
    hit: &mut Bitfield,
) {
    let start = layout.file_start(file);
    let file_len = layout.file_len(file);
    let piece_len = u64::from(layout.piece_len());
    for e in extents {
        let (lo, hi) = (e.start.min(file_len), e.end.min(file_len));
        if lo >= hi {
            continue;
        }
        let first = (start + lo) / piece_len;
        let last = (start + hi - 1) / piece_len;
        for p in first..=last {
            // Pieces index fits u32: the layout caps them at 2^24.
            hit.set(p as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one extent is the point
    fn extents_map_to_every_piece_they_touch() {
        // files 10, 0, 25, 5 bytes; pieces of 16 bytes: 0..16, 16..32, 32..40.
        let l = Layout::new(16, &[10, 0, 25, 5]).unwrap();
        let mut hit = Bitfield::new(l.num_pieces());
        // File 2 starts at 10: its byte 5 is stream byte 15 (piece 0), byte 6 is piece 1.
        mark_pieces(&l, 2, &[5..7], &mut hit);
        assert_eq!(hit.iter_ones().collect::<Vec<_>>(), vec![0, 1]);
        let mut hit = Bitfield::new(l.num_pieces());
        // Past the file's length counts for nothing; empty extents neither.
        mark_pieces(&l, 3, &[5..100, 2..2], &mut hit);
        assert!(hit.is_clear());
        mark_pieces(&l, 3, &[4..100], &mut hit);
        assert_eq!(hit.iter_ones().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn data_extents_of_sparse_empty_and_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        const MIB: u64 = 1 << 20;
        f.set_len(4 * MIB).unwrap();
        let supported = rustix::fs::seek(&f, SeekFrom::Data(0)) == Err(Errno::NXIO);
        if !supported {
            // No SEEK_DATA here: the whole (existing) file is data.
            assert_eq!(data_extents(&f, 8 * MIB), vec![0..4 * MIB]);
            return;
        }
        assert_eq!(data_extents(&f, 4 * MIB), vec![]);
        std::os::unix::fs::FileExt::write_all_at(&f, &[1; 100], MIB + 10).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[1; 100], 3 * MIB).unwrap();
        let e = data_extents(&f, 8 * MIB);
        assert_eq!(e.len(), 2, "{e:?}");
        // Extents are whole filesystem blocks around what was written.
        assert!(e[0].start <= MIB + 10 && MIB + 110 <= e[0].end && e[0].end < 2 * MIB);
        assert!(e[1].start <= 3 * MIB && 3 * MIB + 100 <= e[1].end && e[1].end <= 4 * MIB);
        // Clipped to `len`.
        assert_eq!(data_extents(&f, MIB), vec![]);
        let clipped = data_extents(&f, MIB + 20);
        assert_eq!(clipped, vec![e[0].start..MIB + 20]);
    }
}
