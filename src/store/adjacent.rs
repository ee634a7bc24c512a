//! Two verified neighbours (pieces `p` and `p + 1`) written as one run.
//!
//! Why: every write is a request to the device with a fixed cost (on this VM, a
//! virtio notification and an extent lookup per `pwrite`, ~50 µs of CPU for a 256 KiB
//! direct write), and on a spinning disk a seek. The picker starts neighbours together
//! (extent affinity) and the store hashes two ready pieces at once, preferring neighbours;
//! written as one run, they cost one request per file span instead of two.

use bytes::Bytes;

use super::{Storage, StoreError};

impl Storage {
    /// Positioned writes of verified pieces `piece` and `piece + 1`, each given as its blocks
    /// in order (adding up to its size exactly), as one run of writes.
    pub fn write_adjacent(
        &self,
        piece: u32,
        first: &[Bytes],
        second: &[Bytes],
    ) -> Result<(), StoreError> {
        let next = piece.saturating_add(1);
        self.check_whole_piece(piece, first)?;
        self.check_whole_piece(next, second)?;
        let layout = self.layout();
        let len = u64::from(layout.piece_size(piece)) + u64::from(layout.piece_size(next));
        let Ok(len) = u32::try_from(len) else {
            // Pieces of 2 GiB and more do not exist (MAX_PIECE_LEN); write them apart anyway.
            self.write_piece(piece, first)?;
            return self.write_piece(next, second);
        };
        self.create_empties(piece)?;
        self.create_empties(next)?;
        let blocks: Vec<Bytes> = first.iter().chain(second).cloned().collect();
        self.write_spans(&layout.run_spans(piece, len), 0, &blocks)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::layout::Layout;

    fn blocks(data: &[u8]) -> Vec<Bytes> {
        data.chunks(16384).map(Bytes::copy_from_slice).collect()
    }

    /// Two neighbours over three files (one boundary inside each piece, one between them):
    /// every byte lands where the layout says, direct or buffered.
    #[test]
    fn neighbours_land_across_file_boundaries() {
        for direct in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let piece = 65536u32;
            let lens = [40_000u64, 100_000, 200_000];
            let layout = Layout::new(piece, &lens).unwrap();
            let files: Vec<(PathBuf, u64)> = (0..3)
                .map(|i| (PathBuf::from(format!("f{i}")), lens[i]))
                .collect();
            let storage = Storage::open(dir.path(), &files, layout.clone(), true)
                .unwrap()
                .with_direct_writes(direct);
            let all: Vec<u8> = (0..lens.iter().sum::<u64>())
                .map(|i| (i % 251) as u8)
                .collect();
            let p3 = &all[3 * piece as usize..4 * piece as usize];
            storage.write_piece(3, &blocks(p3)).unwrap();
            for p in [1u32, 4] {
                let a = &all[(p * piece) as usize..((p + 1) * piece) as usize];
                let end = (((p + 2) * piece) as usize).min(all.len());
                let b = &all[((p + 1) * piece) as usize..end];
                storage.write_adjacent(p, &blocks(a), &blocks(b)).unwrap();
            }
            storage.sync_all().unwrap();
            let mut got = Vec::new();
            for (path, len) in &files {
                // f0 lies in piece 0 alone, never written: never created either.
                let data = std::fs::read(dir.path().join(path));
                got.extend(data.unwrap_or_else(|_| vec![0; *len as usize]));
            }
            let written = (piece as usize)..all.len();
            assert_eq!(got[written.clone()], all[written], "direct {direct}");
        }
    }

    #[test]
    fn wrong_sizes_and_the_last_piece_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(32768, &[65536]).unwrap();
        let files = [(PathBuf::from("f"), 65536u64)];
        let storage = Storage::open(dir.path(), &files, layout, true).unwrap();
        let piece = blocks(&[7u8; 32768]);
        assert!(storage.write_adjacent(0, &piece, &piece[..1]).is_err());
        assert!(storage.write_adjacent(1, &piece, &piece).is_err());
        storage.write_adjacent(0, &piece, &piece).unwrap();
    }
}
