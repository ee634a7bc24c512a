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
        self.write_adjacent_from(piece, first, second, None)
    }

    /// [`Storage::write_adjacent`], the direct part from `image` (both pieces' bytes in
    /// order in an aligned buffer, see `Storage::image`) where it can.
    pub(super) fn write_adjacent_from(
        &self,
        piece: u32,
        first: &[Bytes],
        second: &[Bytes],
        image: Option<&[u8]>,
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
        self.write_spans(&layout.run_spans(piece, len), 0, &blocks, image)
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

    /// The aligned middle goes from the image, the unaligned edges from the blocks (the
    /// two hold the same bytes in real use; here they differ, to see which was written).
    #[test]
    fn the_direct_part_comes_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let piece = 65536u32;
        // One file starting 1000 bytes into the torrent: the pieces' file offsets are
        // unaligned, so each has a buffered head and tail around its direct middle.
        let lens = [1000u64, 4 * piece as u64];
        let layout = Layout::new(piece, &lens).unwrap();
        let files = [(PathBuf::from("a"), lens[0]), (PathBuf::from("b"), lens[1])];
        let storage = Storage::open(dir.path(), &files, layout, true)
            .unwrap()
            .with_direct_writes(true);
        let from_blocks = vec![1u8; 2 * piece as usize];
        let mut image = storage.image(2 * piece as usize).unwrap();
        image.bytes_mut().fill(2);
        let blocks = blocks(&from_blocks);
        let (a, b) = blocks.split_at(4);
        storage
            .write_adjacent_from(1, a, b, Some(image.bytes()))
            .unwrap();
        storage.release_image(image);
        let got = std::fs::read(dir.path().join("b")).unwrap();
        let run = &got[piece as usize - 1000..3 * piece as usize - 1000];
        if storage.direct.enabled() {
            // The image's windows are aligned in memory only where the file offset is
            // aligned too: here the file offset is 1000 bytes off the piece's, so the
            // image cannot be used and everything came from the blocks, through a copy.
            assert!(run.iter().all(|&x| x == 1));
        }
    }

    #[test]
    fn an_aligned_image_is_written_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let piece = 65536u32;
        let layout = Layout::new(piece, &[4 * piece as u64]).unwrap();
        let files = [(PathBuf::from("f"), 4 * piece as u64)];
        let storage = Storage::open(dir.path(), &files, layout, true)
            .unwrap()
            .with_direct_writes(true);
        let mut image = storage.image(2 * piece as usize).unwrap();
        image.bytes_mut().fill(2);
        let blocks = blocks(&vec![1u8; 2 * piece as usize]);
        let (a, b) = blocks.split_at(4);
        storage
            .write_adjacent_from(1, a, b, Some(image.bytes()))
            .unwrap();
        storage.release_image(image);
        let got = std::fs::read(dir.path().join("f")).unwrap();
        let run = &got[piece as usize..3 * piece as usize];
        let want = if storage.direct.enabled() { 2 } else { 1 };
        assert!(
            run.iter().all(|&x| x == want),
            "direct {}",
            storage.direct.enabled()
        );
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
