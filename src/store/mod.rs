//! The piece store: buffers downloaded blocks, verifies each piece with SHA-1, writes verified
//! pieces with positioned writes, serves block reads for uploads, and rechecks existing data on
//! resume.
//!
//! Layers:
//! - [`Storage`] (`files.rs`): blocking, positioned I/O over the torrent's files, with a bounded
//!   open-file cache. `Send + Sync`, shared as `Arc<Storage>`.
//! - The part file (`part.rs`): where the bytes of skipped files go, so they never appear in
//!   the download directory; [`Storage::adopt_parts`] moves them out when a file is wanted.
//! - [`recheck`] (`recheck.rs`): parallel hashing of what is already on disk.
//! - [`spawn`] (`task.rs`): the store task, the single owner of buffered blocks. Connection
//!   tasks talk to it through a cloneable [`StoreHandle`].
//!
//! Invariants:
//! - Unverified bytes never reach the disk: a piece is written only after its SHA-1 matched.
//! - Every path the store opens is `root` joined with only normal components (no absolute
//!   paths, no `..`), so nothing is written outside the download directory, except the one
//!   part file whose path the caller gave ([`Storage::with_part_file`]).
//! - A file skipped by the selection and absent at open is never created: its bytes go to
//!   the part file, addressed by their offset in the torrent.
//! - Hashing and disk I/O never run on the async runtime's worker threads.
//! - Buffered block memory is bounded by [`StoreConfig::max_buffer`]: a block's bytes are
//!   covered by a [`Reservation`] from the moment its Piece message is read until the piece
//!   is written (or the block is dropped).
//!
//! The store knows nothing of peers beyond an opaque `u64` key, nor of the wire protocol.

mod adjacent;
mod direct;
mod extents;
mod files;
mod handle;
mod pairs;
mod part;
mod paths;
mod pool;
mod recheck;
mod smart_ban;
mod stream;
mod task;
mod vectored;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use bytes::Bytes;
use sha1::{Digest, Sha1};

pub use files::{FileStamp, Storage};
pub use handle::{Reservation, StoreClosed, StoreHandle};
pub use pool::{nofile_limits, MAX_OPEN_FILES};
pub use recheck::{recheck, recheck_pieces};
pub use task::{spawn, StoreConfig, StoreEvent};

/// Everything that can go wrong in the store. Disk errors carry the path they concern.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed; `op` says what we were doing ("reading", "writing", ...).
    #[error("{op} {}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A file of the torrent does not exist and we were told not to create it.
    #[error("missing file {}", path.display())]
    Missing { path: PathBuf },
    /// A file path is absolute, contains `..` or is otherwise not strictly below the root.
    #[error("refusing unsafe path {} (must stay under the download directory)", path.display())]
    UnsafePath { path: PathBuf },
    /// The file list handed to [`Storage::open`] does not match the layout.
    #[error("file list does not match the layout: {got} files given, layout has {expected}")]
    FileCountMismatch { got: usize, expected: usize },
    /// A file's length differs from the layout's.
    #[error("{} is {got} bytes in the file list but {expected} in the layout", path.display())]
    FileLengthMismatch {
        path: PathBuf,
        got: u64,
        expected: u64,
    },
    /// A read named bytes outside the piece.
    #[error("range {offset}+{len} is outside piece {piece}")]
    OutOfRange { piece: u32, offset: u32, len: u32 },
    /// The blocks handed to `write_piece` do not add up to the piece's size.
    #[error("piece {piece} is {expected} bytes but {got} bytes were given")]
    WrongPieceSize { piece: u32, expected: u32, got: u64 },
    /// A piece index past the torrent's last piece was asked for.
    #[error("piece {piece} does not exist (the torrent has {pieces})")]
    NoSuchPiece { piece: u32, pieces: u32 },
    /// A recheck was cancelled before it finished.
    #[error("recheck cancelled")]
    Cancelled,
    /// A blocking read was abandoned because the runtime is shutting down.
    #[error("store is shutting down")]
    ShuttingDown,
}

impl StoreError {
    /// A copy of a disk error (I/O or a missing file) to report elsewhere, keeping the OS
    /// error code and message; `None` for the other kinds, which are not the disk's fault.
    pub fn disk_copy(&self) -> Option<StoreError> {
        match self {
            StoreError::Io { path, op, source } => {
                let source = match source.raw_os_error() {
                    Some(code) => std::io::Error::from_raw_os_error(code),
                    None => std::io::Error::new(source.kind(), source.to_string()),
                };
                Some(StoreError::Io {
                    path: path.clone(),
                    op,
                    source,
                })
            }
            StoreError::Missing { path } => Some(StoreError::Missing { path: path.clone() }),
            _ => None,
        }
    }
}

/// SHA-1 over `blocks` in order, without concatenating them first.
pub fn hash_blocks(blocks: &[Bytes]) -> [u8; 20] {
    let mut h = Sha1::new();
    for b in blocks {
        h.update(b);
    }
    h.finalize().into()
}
