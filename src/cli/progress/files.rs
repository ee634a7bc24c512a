//! Each file's progress in a multi-file torrent, derived from the verified-pieces bitfield
//! and the files' sizes: pure, and bounded work per frame (one pass over the pieces and
//! the files, whatever their number).

use crate::snapshot::FileSize;
use crate::types::Bitfield;

/// A file's verified bytes of its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLine {
    pub index: usize,
    pub done: u64,
    pub len: u64,
}

/// Verified bytes of each file, or `None` when `have` does not match the files (no
/// bitfield yet, or sizes that disagree with it).
pub fn file_progress(have: &Bitfield, piece_len: u32, files: &[FileSize]) -> Option<Vec<FileLine>> {
    let pl = piece_len as u64;
    let total: u64 = files.iter().try_fold(0u64, |a, f| a.checked_add(f.len))?;
    if pl == 0 || total == 0 || total.div_ceil(pl) != have.len() as u64 {
        return None;
    }
    let mut out = Vec::with_capacity(files.len());
    let mut start = 0u64;
    for (index, f) in files.iter().enumerate() {
        let end = start + f.len;
        let mut done = 0;
        if f.len > 0 {
            let (first, last) = (start / pl, (end - 1) / pl);
            for p in first..=last {
                if have.get(p as u32) {
                    let (ps, pe) = (p * pl, (p + 1) * pl);
                    done += pe.min(end) - ps.max(start);
                }
            }
        }
        out.push(FileLine {
            index,
            done,
            len: f.len,
        });
        start = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(lens: &[u64]) -> Vec<FileSize> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| FileSize {
                path: format!("f{i}"),
                len,
                wanted: true,
            })
            .collect()
    }

    #[test]
    fn pieces_split_over_files_count_to_each() {
        // Pieces of 10: [0,10) [10,20) [20,25); files 5, 0, 12, 8.
        let fs = files(&[5, 0, 12, 8]);
        let mut have = Bitfield::new(3);
        assert_eq!(
            file_progress(&have, 10, &fs)
                .unwrap()
                .iter()
                .map(|f| f.done)
                .collect::<Vec<_>>(),
            [0, 0, 0, 0]
        );
        have.set(0);
        have.set(2);
        let got: Vec<u64> = file_progress(&have, 10, &fs)
            .unwrap()
            .iter()
            .map(|f| f.done)
            .collect();
        // Piece 0 covers file 0 (5) and 5 bytes of file 2; piece 2 covers file 3's last 5.
        assert_eq!(got, [5, 0, 5, 5]);
    }

    #[test]
    fn a_bitfield_of_another_size_gives_nothing() {
        assert!(file_progress(&Bitfield::new(0), 10, &files(&[5, 6])).is_none());
        assert!(file_progress(&Bitfield::new(2), 0, &files(&[5, 6])).is_none());
        assert!(file_progress(&Bitfield::new(1), 10, &files(&[u64::MAX, 6])).is_none());
    }
}
