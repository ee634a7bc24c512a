//! The process's state directory and the two ways it touches files: atomic writes and capped
//! reads.
//!
//! Owns: where state lives ([`default_root`], [`StateDir`]), [`write_atomic`] and
//! [`read_capped`]. The per-torrent resume record is in [`resume`].
//!
//! Invariants:
//! - A reader never sees a half-written file: [`write_atomic`] writes a temp file in the same
//!   directory, fsyncs it, renames it over the target and fsyncs the directory, so after a
//!   crash (kill -9 or power loss) the path holds either the old or the new bytes. A failed
//!   write leaves no temp file behind.
//! - Everything read back is hostile input: [`read_capped`] never allocates more than its cap,
//!   whatever the file's size says.
//! - This module never reads the environment; `cli` passes `$XDG_STATE_HOME` and `$HOME` to
//!   [`default_root`].

pub mod resume;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::InfoHash;

/// Everything that can go wrong with state files. The message names the operation and the
/// path; the cause is the `source` (print chains with `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O call failed; `op` says what we were doing ("creating", "renaming", ...).
    #[error("{op} {}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// A state file is larger than anything we would have written.
    #[error("{op} {}: {size} bytes is more than the {max} allowed", path.display())]
    TooLarge {
        path: PathBuf,
        op: &'static str,
        size: u64,
        max: u64,
    },
}

impl StateError {
    fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

/// `$XDG_STATE_HOME/swarm` when that is set, non-empty and absolute (the XDG spec says to
/// ignore relative values), else `$HOME/.local/state/swarm` (the spec's default) when `$HOME`
/// is set, non-empty and absolute, else `None`. Pure: the caller passes the environment in.
pub fn default_root(xdg_state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| {
        v.filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = absolute(xdg_state_home) {
        return Some(xdg.join("swarm"));
    }
    absolute(home).map(|h| h.join(".local/state/swarm"))
}

/// The process's state directory: resume records now; node cache and torrent list later.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// Subdirectory of the state root holding one resume record per torrent.
const RESUME_DIR: &str = "resume";
/// Subdirectory of the state root holding each torrent's part file.
const PARTS_DIR: &str = "parts";

/// Subdirectory of the state root holding the `.torrent` of each fetched magnet.
const TORRENTS_DIR: &str = "torrents";

impl StateDir {
    /// Creates `root` (and its `resume` subdirectory) if needed, mode 0700 on unix: the
    /// directory lists what this user downloads, which is nobody else's business. Existing
    /// directories keep their mode.
    pub fn open(root: &Path) -> Result<StateDir, StateError> {
        let resume = root.join(RESUME_DIR);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&resume)
            .map_err(|e| StateError::io(&resume, "creating directory", e))?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/torrents/<40 lower-case hex digits>.torrent`: the `.torrent` of a magnet whose
    /// metadata was fetched, so a later start needs no fetch.
    pub fn torrent_path(&self, info_hash: &InfoHash) -> PathBuf {
        self.root
            .join(TORRENTS_DIR)
            .join(format!("{}.torrent", info_hash.to_hex()))
    }

    /// Writes a fetched `.torrent` to [`Self::torrent_path`] atomically (its directory
    /// created mode 0700 on unix, as the root).
    pub fn save_torrent(&self, info_hash: &InfoHash, bytes: &[u8]) -> Result<PathBuf, StateError> {
        let dir = self.root.join(TORRENTS_DIR);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| StateError::io(&dir, "creating directory", e))?;
        let path = self.torrent_path(info_hash);
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// `root/resume/<40 lower-case hex digits>.resume`.
    pub fn resume_path(&self, info_hash: &InfoHash) -> PathBuf {
        self.root
            .join(RESUME_DIR)
            .join(format!("{}.resume", info_hash.to_hex()))
    }

    /// `root/parts/<40 lower-case hex digits>.parts`: the bytes of skipped files that share
    /// a piece with a wanted one (see `store::part`).
    pub fn part_path(&self, info_hash: &InfoHash) -> PathBuf {
        self.root
            .join(PARTS_DIR)
            .join(format!("{}.parts", info_hash.to_hex()))
    }
}

/// Distinguishes temp files of concurrent writes within this process (the pid covers other
/// processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably: temp file `.<name>.tmp.<pid>.<n>` in
/// the same directory (so the rename cannot cross filesystems), `sync_all`, rename over
/// `path`, then fsync the directory so the rename itself survives a power cut. On failure
/// before the rename the temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let name = path.file_name().ok_or_else(|| {
        StateError::io(
            path,
            "naming a temp file for",
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| StateError::io(&temp, "creating", e))?;
    let written = file
        .write_all(bytes)
        .map_err(|e| StateError::io(&temp, "writing", e))
        .and_then(|()| {
            file.sync_all()
                .map_err(|e| StateError::io(&temp, "syncing", e))
        })
        .and_then(|()| {
            std::fs::rename(&temp, path).map_err(|e| StateError::io(path, "renaming over", e))
        });
    drop(file);
    if let Err(e) = written {
        // Best effort: the error that matters is the one we return.
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(dir, "syncing directory", e))
}

/// The contents of `path`, `None` if it does not exist, [`StateError::TooLarge`] if it holds
/// more than `max` bytes. Allocates at most `max` bytes (plus one for the probe), whatever
/// the file's metadata claims and even if it grows while being read.
pub fn read_capped(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StateError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, "opening", e)),
    };
    let too_large = |size| StateError::TooLarge {
        path: path.to_path_buf(),
        op: "reading",
        size,
        max,
    };
    let len = file
        .metadata()
        .map_err(|e| StateError::io(path, "inspecting", e))?
        .len();
    if len > max {
        return Err(too_large(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    // One byte past the cap tells a file that grew since `metadata` from one that is exactly
    // `max` bytes long.
    file.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| StateError::io(path, "reading", e))?;
    if out.len() as u64 > max {
        return Err(too_large(out.len() as u64));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests;
