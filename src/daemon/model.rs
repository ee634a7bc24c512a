//! What the daemon's front ends (the qBittorrent-compatible API, the web page) see and ask
//! for: plain data, no I/O.
//!
//! - [`View`]: everything a read request can answer from, published on a `watch` channel
//!   by the daemon core a few times a second. Requests read the latest `Arc<View>` and
//!   never wait on a torrent, the disk or the session: a torrent being checked or a slow
//!   disk cannot freeze the page.
//! - [`Command`]: every change a request can ask for, sent to the daemon core, which
//!   answers each with a [`CommandReply`] or a [`CommandError`].
//!
//! Invariants: a `View` is internally consistent (one snapshot per torrent, taken at one
//! refresh); hashes in it are unique and sorted; paths in it are absolute.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::selection::Priority;
use crate::snapshot::Snapshot;
use crate::types::InfoHash;

/// One torrent as the daemon holds it.
#[derive(Debug, Clone, Default)]
pub struct TorrentView {
    pub info_hash: InfoHash,
    pub name: String,
    /// The engine's last published progress (rates, peers, bytes, phase, trackers).
    pub snapshot: Snapshot,
    /// Stopped by the user (qBittorrent's paused/stopped).
    pub paused: bool,
    /// Why its last run failed, if it did (a disk error, a selection that matches nothing).
    pub error: Option<String>,
    /// The same, when the disk was why (the diagnosis names it as the cause).
    pub disk_error: Option<String>,
    /// Downloading (or fetching metadata) without progress for a while
    /// ([`crate::doctor::stall`]): the diagnosis is then why.
    pub stalled: bool,
    /// The directory its content is in (the torrent's name is joined below it).
    pub save_path: PathBuf,
    /// "" when none.
    pub category: String,
    /// Unix seconds.
    pub added_on: i64,
    /// Unix seconds when every wanted piece was first verified.
    pub completion_on: Option<i64>,
    /// Bytes per second; `None`: no cap of its own.
    pub up_limit: Option<u64>,
    pub down_limit: Option<u64>,
    pub sequential: bool,
    pub first_last: bool,
    /// Empty until a magnet's metadata is known.
    pub files: Arc<[FileView]>,
    /// Announce URLs by tier, in order.
    pub trackers: Vec<Vec<String>>,
    pub magnet_uri: String,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileView {
    /// The path inside the torrent, `/`-separated, with the torrent's name first for a
    /// multi-file torrent (as `swarm info` and qBittorrent show it).
    pub path: String,
    pub size: u64,
    pub priority: Priority,
}

/// What the whole daemon looks like at one moment.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Sorted by info-hash.
    pub torrents: Vec<TorrentView>,
    /// Category name → its save path (`None`: the default save path).
    pub categories: BTreeMap<String, Option<PathBuf>>,
    pub prefs: Prefs,
    /// The session's listen port.
    pub listen_port: u16,
    /// DHT nodes in the routing table (0 without a DHT).
    pub dht_nodes: usize,
    /// What the session knows beyond each torrent (DHT, port mapping, incoming
    /// connections), for each torrent's diagnosis.
    pub facts: crate::doctor::SessionFacts,
}

impl View {
    pub fn torrent(&self, hash: &InfoHash) -> Option<&TorrentView> {
        self.torrents
            .binary_search_by(|t| t.info_hash.0.cmp(&hash.0))
            .ok()
            .map(|i| &self.torrents[i])
    }
}

/// The settings `app/preferences` shows and `app/setPreferences` changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefs {
    /// Where new torrents go unless told otherwise (inside the download root).
    pub save_path: PathBuf,
    /// The only directory (and below) a request may name as a save path.
    pub download_root: PathBuf,
    pub listen_port: u16,
    /// Session-wide caps, bytes per second; `None`: unlimited.
    pub dl_limit: Option<u64>,
    pub up_limit: Option<u64>,
}

/// A change to [`Prefs`]; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefsPatch {
    pub save_path: Option<PathBuf>,
    pub listen_port: Option<u16>,
    /// `Some(None)`: unlimited.
    pub dl_limit: Option<Option<u64>>,
    pub up_limit: Option<Option<u64>>,
}

/// Which torrents a command is for (qBittorrent's `hashes=all` or `h1|h2|…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hashes {
    All,
    Some(Vec<InfoHash>),
}

/// One thing to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddSource {
    /// The bytes of a `.torrent` (already capped in size by the front end).
    Torrent(Vec<u8>),
    /// A `magnet:` link.
    Magnet(String),
}

/// `torrents/add`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddRequest {
    pub sources: Vec<AddSource>,
    /// `None`: the category's path, else the default save path.
    pub save_path: Option<PathBuf>,
    pub category: Option<String>,
    pub paused: bool,
    pub sequential: bool,
    pub first_last: bool,
    pub up_limit: Option<u64>,
    pub down_limit: Option<u64>,
}

/// Every change a front end can ask of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Add(AddRequest),
    Delete {
        hashes: Hashes,
        delete_files: bool,
    },
    Pause(Hashes),
    Resume(Hashes),
    Recheck(Hashes),
    /// File indexes from 0, as `torrents/files` numbers them.
    FilePrio {
        hash: InfoHash,
        files: Vec<usize>,
        priority: Priority,
    },
    SetCategory {
        hashes: Hashes,
        category: String,
    },
    CreateCategory {
        name: String,
        save_path: Option<PathBuf>,
    },
    /// Bytes per second; `None`: no cap of its own.
    SetUploadLimit {
        hashes: Hashes,
        limit: Option<u64>,
    },
    SetDownloadLimit {
        hashes: Hashes,
        limit: Option<u64>,
    },
    SetPreferences(PrefsPatch),
}

/// What a command did, when it says more than "done".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    Done,
    /// `Add`: the torrents added (a source already in the daemon is not counted).
    Added(Vec<InfoHash>),
}

/// Why a command was refused. The front end maps each onto a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no such torrent")]
    NotFound,
    /// Malformed or contradictory input (a bad `.torrent`, an unknown file index).
    #[error("{0}")]
    BadRequest(String),
    /// A save path outside the download root, or a torrent whose paths escape it.
    #[error("{0}")]
    Forbidden(String),
    /// The daemon could not do it (a disk error writing its state).
    #[error("{0}")]
    Failed(String),
}

/// A command and where its answer goes.
pub type Request = (
    Command,
    tokio::sync::oneshot::Sender<Result<CommandReply, CommandError>>,
);
