//! Positioned, vectored writes of blocks laid end to end: the buffered write path.

use std::fs::File;
use std::io::{self, IoSlice};

use bytes::Bytes;

/// Slices per `pwritev` call: well under every system's `IOV_MAX` (1024 on Linux).
const MAX_IOV: usize = 512;

/// The parts of `blocks` (laid end to end) that cover `len` bytes from `start`.
pub(super) fn span_slices(blocks: &[Bytes], start: u64, len: u64) -> Vec<IoSlice<'_>> {
    let end = start + len;
    let mut out = Vec::new();
    let mut at = 0u64;
    for block in blocks {
        let (lo, hi) = (at, at + block.len() as u64);
        at = hi;
        if hi <= start || lo >= end {
            continue;
        }
        let from = start.saturating_sub(lo) as usize;
        let to = (end.min(hi) - lo) as usize;
        out.push(IoSlice::new(&block[from..to]));
    }
    out
}

/// `pwritev` until every slice is written (short writes resume where they stopped).
pub(super) fn write_all_vectored_at(
    file: &File,
    mut slices: Vec<IoSlice<'_>>,
    mut offset: u64,
) -> io::Result<()> {
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let batch = rest.len().min(MAX_IOV);
        match rustix::io::pwritev(file, &rest[..batch], offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
