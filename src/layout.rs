//! Piece and block geometry: how a torrent's bytes split into pieces, blocks and files.
//!
//! Invariants (checked once in [`Layout::new`]): piece length > 0, at least one piece when
//! the total is > 0, every piece index < `num_pieces`. The last piece may be short; every
//! block is [`BLOCK_SIZE`] except possibly the last block of a piece.

use crate::types::{BlockRef, BLOCK_SIZE};

/// Whether the store hashes pieces of `piece_len` as a stream instead of buffering them
/// whole: when two of them (one being hashed and written while the next arrives) would
/// not fit in `budget_cap`, the most the store's buffer may ever grow to. Below that, whole
/// pieces are buffered, hashed, then written (unverified data never reaches the disk);
/// above it, memory stays within the configured budget whatever the piece length. The
/// engine (pieces in progress, the store's budget) and the store follow this one rule.
pub fn streamed(piece_len: u32, budget_cap: usize) -> bool {
    2 * piece_len as u64 > budget_cap as u64
}

/// Why a geometry is impossible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("piece length is zero")]
    ZeroPieceLength,
    #[error("total length overflows")]
    Overflow,
    #[error("{pieces} pieces is more than swarm supports (max {max})")]
    TooManyPieces { pieces: u64, max: u64 },
}

/// Piece geometry of one torrent plus where each file starts in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    piece_len: u32,
    total_len: u64,
    num_pieces: u32,
    /// Start offset of each file in the torrent's concatenated byte stream.
    file_starts: Vec<u64>,
    file_lens: Vec<u64>,
}

/// A contiguous run of a piece that lies inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index into the torrent's file list.
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Offset inside the piece.
    pub piece_offset: u32,
    pub len: u32,
}

impl Layout {
    /// Upper bound on pieces: keeps every per-piece table a bounded size (2^24 pieces of
    /// 16 KiB is already 256 GiB; real torrents use far fewer).
    pub const MAX_PIECES: u64 = 1 << 24;

    pub fn new(piece_len: u32, file_lens: &[u64]) -> Result<Self, LayoutError> {
        if piece_len == 0 {
            return Err(LayoutError::ZeroPieceLength);
        }
        let mut file_starts = Vec::with_capacity(file_lens.len());
        let mut total: u64 = 0;
        for &len in file_lens {
            file_starts.push(total);
            total = total.checked_add(len).ok_or(LayoutError::Overflow)?;
        }
        let pieces = total.div_ceil(piece_len as u64);
        if pieces > Self::MAX_PIECES {
            return Err(LayoutError::TooManyPieces {
                pieces,
                max: Self::MAX_PIECES,
            });
        }
        Ok(Layout {
            piece_len,
            total_len: total,
            num_pieces: pieces as u32,
            file_starts,
            file_lens: file_lens.to_vec(),
        })
    }

    pub fn piece_len(&self) -> u32 {
        self.piece_len
    }

    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    pub fn num_files(&self) -> usize {
        self.file_lens.len()
    }

    pub fn file_len(&self, file: usize) -> u64 {
        self.file_lens[file]
    }

    /// Start of `file` in the concatenated stream.
    pub fn file_start(&self, file: usize) -> u64 {
        self.file_starts[file]
    }

    /// Byte offset of a piece in the concatenated stream.
    pub fn piece_start(&self, piece: u32) -> u64 {
        piece as u64 * self.piece_len as u64
    }

    /// Size of `piece` (the last one may be short); 0 for an index out of range.
    pub fn piece_size(&self, piece: u32) -> u32 {
        if piece >= self.num_pieces {
            return 0;
        }
        let start = self.piece_start(piece);
        (self.total_len - start).min(self.piece_len as u64) as u32
    }

    /// Number of blocks in `piece`.
    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_SIZE)
    }

    /// Blocks in a full-size piece (an upper bound for every piece).
    pub fn max_blocks_per_piece(&self) -> u32 {
        self.piece_len.div_ceil(BLOCK_SIZE)
    }

    /// The `n`th block of `piece`; `None` when out of range.
    pub fn block(&self, piece: u32, n: u32) -> Option<BlockRef> {
        let size = self.piece_size(piece);
        let offset = n.checked_mul(BLOCK_SIZE)?;
        if offset >= size {
            return None;
        }
        Some(BlockRef {
            piece,
            offset,
            len: (size - offset).min(BLOCK_SIZE),
        })
    }

    /// Index of a block within its piece, if `b` is exactly one of this layout's blocks.
    pub fn block_index(&self, b: &BlockRef) -> Option<u32> {
        if !b.offset.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let n = b.offset / BLOCK_SIZE;
        (self.block(b.piece, n)? == *b).then_some(n)
    }

    /// Whether `b` lies inside a piece (any offset/length up to one block, as a peer may
    /// request). Used to validate incoming Requests.
    pub fn is_valid_request(&self, b: &BlockRef) -> bool {
        let size = self.piece_size(b.piece);
        b.len > 0 && b.len <= BLOCK_SIZE && (b.offset as u64 + b.len as u64) <= size as u64
    }

    /// The file runs that make up bytes `[offset, offset+len)` of `piece`, in order.
    pub fn spans(&self, piece: u32, offset: u32, len: u32) -> Vec<FileSpan> {
        let size = self.piece_size(piece);
        if offset as u64 + len as u64 > size as u64 || len == 0 {
            return Vec::new();
        }
        self.spans_from(piece, offset, len)
    }

    /// The file runs of the `len` bytes from the start of `piece` on, across the pieces that
    /// follow it (`piece_offset` counts from `piece`'s start); empty if that runs past the
    /// end of the torrent.
    pub fn run_spans(&self, piece: u32, len: u32) -> Vec<FileSpan> {
        if piece >= self.num_pieces()
            || len == 0
            || self.piece_start(piece) + len as u64 > self.total_len()
        {
            return Vec::new();
        }
        self.spans_from(piece, 0, len)
    }

    /// `spans` without the bounds check (the callers check).
    fn spans_from(&self, piece: u32, offset: u32, len: u32) -> Vec<FileSpan> {
        let mut out = Vec::new();
        let mut pos = self.piece_start(piece) + offset as u64;
        let end = pos + len as u64;
        // First file whose range contains `pos` (skipping empty files).
        let mut file = match self.file_starts.partition_point(|&s| s <= pos) {
            0 => 0,
            n => n - 1,
        };
        // partition_point lands on the last file starting at or before pos; empty files
        // share a start with their successor, so walk forward past any that end at pos.
        while pos < end && file < self.file_lens.len() {
            let fstart = self.file_starts[file];
            let fend = fstart + self.file_lens[file];
            if pos >= fend {
                file += 1;
                continue;
            }
            let run = (end.min(fend) - pos) as u32;
            out.push(FileSpan {
                file,
                file_offset: pos - fstart,
                piece_offset: (pos - self.piece_start(piece)) as u32,
                len: run,
            });
            pos += run as u64;
            file += 1;
        }
        out
    }

    /// The file runs covering a whole piece.
    pub fn piece_spans(&self, piece: u32) -> Vec<FileSpan> {
        self.spans(piece, 0, self.piece_size(piece))
    }

    /// Pieces that touch `file` (inclusive range), `None` for an empty file.
    pub fn file_pieces(&self, file: usize) -> Option<std::ops::RangeInclusive<u32>> {
        let len = self.file_lens[file];
        if len == 0 {
            return None;
        }
        let start = self.file_starts[file];
        let first = (start / self.piece_len as u64) as u32;
        let last = ((start + len - 1) / self.piece_len as u64) as u32;
        Some(first..=last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_and_block_are_short() {
        // 2.5 pieces of 32 KiB; the last piece is 16 KiB + 100 bytes.
        let l = Layout::new(32768, &[32768 * 2 + 16384 + 100]).unwrap();
        assert_eq!(l.num_pieces(), 3);
        assert_eq!(l.piece_size(0), 32768);
        assert_eq!(l.piece_size(2), 16484);
        assert_eq!(l.piece_size(3), 0);
        assert_eq!(l.blocks_in_piece(2), 2);
        assert_eq!(
            l.block(2, 1),
            Some(BlockRef {
                piece: 2,
                offset: 16384,
                len: 100
            })
        );
        assert_eq!(l.block(2, 2), None);
        assert_eq!(l.block_index(&l.block(2, 1).unwrap()), Some(1));
        assert_eq!(
            l.block_index(&BlockRef {
                piece: 2,
                offset: 16384,
                len: 99
            }),
            None
        );
    }

    #[test]
    fn spans_cross_files_and_skip_empty_ones() {
        // files: 10, 0, 25, 5 bytes; pieces of 16 bytes -> 40 bytes, 3 pieces.
        let l = Layout::new(16, &[10, 0, 25, 5]).unwrap();
        assert_eq!(l.num_pieces(), 3);
        let s = l.piece_spans(0);
        assert_eq!(
            s,
            vec![
                FileSpan {
                    file: 0,
                    file_offset: 0,
                    piece_offset: 0,
                    len: 10
                },
                FileSpan {
                    file: 2,
                    file_offset: 0,
                    piece_offset: 10,
                    len: 6
                },
            ]
        );
        let s = l.piece_spans(2);
        assert_eq!(
            s,
            vec![
                FileSpan {
                    file: 2,
                    file_offset: 22,
                    piece_offset: 0,
                    len: 3
                },
                FileSpan {
                    file: 3,
                    file_offset: 0,
                    piece_offset: 3,
                    len: 5
                },
            ]
        );
        assert_eq!(l.file_pieces(1), None);
        assert_eq!(l.file_pieces(2), Some(0..=2));
        assert_eq!(l.file_pieces(3), Some(2..=2));
    }

    #[test]
    fn request_validation() {
        let l = Layout::new(32768, &[40000]).unwrap();
        let ok = BlockRef {
            piece: 1,
            offset: 0,
            len: 7232,
        };
        assert!(l.is_valid_request(&ok));
        assert!(!l.is_valid_request(&BlockRef { len: 7233, ..ok }));
        assert!(!l.is_valid_request(&BlockRef { piece: 2, ..ok }));
        assert!(!l.is_valid_request(&BlockRef {
            piece: 0,
            offset: 0,
            len: BLOCK_SIZE + 1
        }));
        assert!(!l.is_valid_request(&BlockRef { len: 0, ..ok }));
    }

    #[test]
    fn pieces_stream_when_two_do_not_fit_the_cap() {
        assert!(!streamed(16 << 20, 32 << 20));
        assert!(streamed((16 << 20) + 1, 32 << 20));
        assert!(streamed(64 << 20, 32 << 20));
        assert!(!streamed(256 << 10, 4 << 20));
        // No overflow at the extremes.
        assert!(streamed(u32::MAX, u32::MAX as usize));
        assert!(!streamed(u32::MAX, usize::MAX));
    }

    #[test]
    fn rejects_zero_piece_len() {
        assert_eq!(Layout::new(0, &[1]), Err(LayoutError::ZeroPieceLength));
        assert!(matches!(
            Layout::new(1, &[u64::MAX, 1]),
            Err(LayoutError::Overflow)
        ));
    }
}
