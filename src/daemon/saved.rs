//! The daemon's list of torrents and settings on disk: `daemon.json` in the state
//! directory, written atomically after every change. Each torrent's `.torrent` is kept
//! beside it (`torrents/<info-hash>.torrent`, as magnets' are), and its verified pieces in
//! its resume record: this file holds only what the user decided.
//!
//! Invariants: the file is hostile input when read back: capped in size, decoded strictly
//! (unknown fields are refused, every hash is 40 hex digits, no torrent twice), and a save
//! path in it is used only if it is inside the download root (checked by the core, as for
//! a request). A file that cannot be read is an error naming it: the daemon does not start
//! with an empty list over a list it could not read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::selection::Priority;
use crate::state::{self, StateError};
use crate::types::InfoHash;

/// Name of the file in the state directory.
pub const FILE: &str = "daemon.json";

/// Format version written.
pub const VERSION: u32 = 1;

/// Largest `daemon.json` read back: 100,000 torrents at ~1 KiB each is 100 MB; 64 MiB is
/// far more than any daemon we expect (1,000 torrents take ~400 KB).
pub const MAX_LEN: u64 = 64 << 20;

/// Why the saved state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("reading the daemon's state")]
    Read(#[source] StateError),
    #[error("{} is not valid daemon state", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} has format version {found}, this swarm reads {VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{} names torrent {hash:?}, which is not an info-hash", path.display())]
    BadHash { path: PathBuf, hash: String },
    #[error("{} lists torrent {hash} twice", path.display())]
    Duplicate { path: PathBuf, hash: String },
    #[error("writing the daemon's state")]
    Write(#[source] StateError),
}

/// Everything the daemon keeps of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub version: u32,
    pub save_path: Option<PathBuf>,
    pub dl_limit: Option<u64>,
    pub up_limit: Option<u64>,
    pub categories: BTreeMap<String, Option<PathBuf>>,
    pub torrents: Vec<SavedTorrent>,
}

/// One torrent's decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedTorrent {
    /// 40 hex digits.
    pub info_hash: String,
    /// The link it was added from, until its metadata is known (then the `.torrent` kept
    /// in the state directory is used).
    pub magnet: Option<String>,
    pub save_path: PathBuf,
    pub category: String,
    pub paused: bool,
    pub added_on: i64,
    pub completion_on: Option<i64>,
    /// One per file: 0 skip, 1 normal, 6 high (qBittorrent's numbers); `None`: every file.
    pub priorities: Option<Vec<u8>>,
    pub up_limit: Option<u64>,
    pub down_limit: Option<u64>,
    pub sequential: bool,
    pub first_last: bool,
}

impl SavedTorrent {
    pub fn hash(&self) -> Option<InfoHash> {
        InfoHash::from_hex(&self.info_hash)
    }

    pub fn file_priorities(&self) -> Option<Vec<Priority>> {
        let p = self.priorities.as_ref()?;
        Some(p.iter().map(|&n| priority_of(n)).collect())
    }
}

/// qBittorrent's file priority number for ours (what `daemon.json` keeps, and what the
/// API shows).
pub fn number_of(p: Priority) -> u8 {
    match p {
        Priority::Skip => 0,
        Priority::Normal => 1,
        Priority::High => 6,
    }
}

/// Ours for qBittorrent's number (anything above normal is high).
pub fn priority_of(n: u8) -> Priority {
    match n {
        0 => Priority::Skip,
        1..=5 => Priority::Normal,
        _ => Priority::High,
    }
}

/// Reads `dir/daemon.json`; `Ok(None)` when there is none yet (a first start).
pub fn load(dir: &Path) -> Result<Option<Saved>, SavedError> {
    let path = dir.join(FILE);
    let Some(bytes) = state::read_capped(&path, MAX_LEN).map_err(SavedError::Read)? else {
        return Ok(None);
    };
    decode(&bytes, path).map(Some)
}

/// Parses the bytes of `daemon.json` (read from `path`, which errors name) strictly: the
/// version, every info-hash well formed, none twice. Public for the fuzz target.
pub fn decode(bytes: &[u8], path: PathBuf) -> Result<Saved, SavedError> {
    let saved: Saved = serde_json::from_slice(bytes).map_err(|source| SavedError::Decode {
        path: path.clone(),
        source,
    })?;
    if saved.version != VERSION {
        return Err(SavedError::Version {
            path,
            found: saved.version,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for t in &saved.torrents {
        let Some(h) = t.hash() else {
            return Err(SavedError::BadHash {
                path,
                hash: t.info_hash.chars().take(64).collect(),
            });
        };
        if !seen.insert(h) {
            return Err(SavedError::Duplicate {
                path,
                hash: t.info_hash.clone(),
            });
        }
    }
    Ok(saved)
}

/// Writes `dir/daemon.json` atomically (temp file, fsync, rename, fsync the directory).
pub fn store(dir: &Path, saved: &Saved) -> Result<(), SavedError> {
    let bytes = serde_json::to_vec_pretty(saved).expect("plain data serialises");
    state::write_atomic(&dir.join(FILE), &bytes).map_err(SavedError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> Saved {
        Saved {
            version: VERSION,
            save_path: Some("/srv/dl".into()),
            dl_limit: Some(1000),
            up_limit: None,
            categories: [("tv".to_string(), Some(PathBuf::from("/srv/dl/tv")))].into(),
            torrents: vec![SavedTorrent {
                info_hash: "0123456789abcdef0123456789abcdef01234567".into(),
                save_path: "/srv/dl".into(),
                category: "tv".into(),
                paused: true,
                added_on: 1_700_000_000,
                priorities: Some(vec![0, 1, 6]),
                ..SavedTorrent::default()
            }],
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        store(dir.path(), &one()).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back, one());
        let prios = back.torrents[0].file_priorities().unwrap();
        assert_eq!(prios, [Priority::Skip, Priority::Normal, Priority::High]);

        let write = |s: &str| std::fs::write(dir.path().join(FILE), s).unwrap();
        let text = serde_json::to_string(&one()).unwrap();
        write(&text.replace("\"paused\"", "\"surprise\":1,\"paused\""));
        assert!(matches!(load(dir.path()), Err(SavedError::Decode { .. })));
        write(&text.replace("0123456789abcdef", "zz23456789abcdef"));
        assert!(matches!(load(dir.path()), Err(SavedError::BadHash { .. })));
        write(&text.replace("\"version\":1", "\"version\":9"));
        assert!(matches!(
            load(dir.path()),
            Err(SavedError::Version { found: 9, .. })
        ));
        let mut twice = one();
        twice.torrents.push(twice.torrents[0].clone());
        write(&serde_json::to_string(&twice).unwrap());
        assert!(matches!(
            load(dir.path()),
            Err(SavedError::Duplicate { .. })
        ));
        write("{\"version\": 1");
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is not valid daemon state"), "{e}");
    }

    #[test]
    fn qbittorrent_priority_numbers() {
        for p in [Priority::Skip, Priority::Normal, Priority::High] {
            assert_eq!(priority_of(number_of(p)), p);
        }
        assert_eq!(priority_of(7), Priority::High);
        assert_eq!(priority_of(4), Priority::Normal);
    }
}
