//! Where a torrent's files are, and what is there before we touch them.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{FileStamp, StoreError};

/// `root/rel`, refusing anything but plain relative components.
pub(super) fn safe_join(root: &Path, rel: &Path) -> Result<PathBuf, StoreError> {
    let unsafe_path = || StoreError::UnsafePath {
        path: rel.to_path_buf(),
    };
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(unsafe_path());
    }
    let path = root.join(rel);
    if !path.starts_with(root) {
        return Err(unsafe_path());
    }
    Ok(path)
}

/// `stat`s `path`: how many bytes of it exist (capped at `len`) and its stamp. Missing is
/// fine with `create` (nothing exists yet), [`StoreError::Missing`] without.
pub(super) fn inspect_file(
    path: &Path,
    len: u64,
    create: bool,
) -> Result<(u64, Option<FileStamp>), StoreError> {
    match fs::metadata(path) {
        Ok(m) => Ok((m.len().min(len), Some(FileStamp::of(&m)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => Ok((0, None)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "inspecting",
            source: e,
        }),
    }
}
