//! The daemon's core: one session, the torrent list and the daemon's own state on disk.
//! It carries out [`Command`](super::model::Command)s one at a time and publishes a fresh [`View`] a few times a
//! second, so front ends answer reads without waiting on it.
//!
//! Invariants:
//! - Every change a command makes is in `daemon.json` (written atomically) before the
//!   command is answered; a torrent's `.torrent` is in the state directory before it is in
//!   the list. A restart (or a kill -9) comes back with the same torrents in the same
//!   states, and their resume records spare the re-hash.
//! - No request makes swarm write outside the download root: save paths are checked
//!   lexically (absolute, no `..`, below the root) before anything is created, and a
//!   torrent's own paths are already confined to its save path by the metainfo parser.
//! - Deleting data removes only the torrent's own files (and directories left empty),
//!   never a directory tree wholesale.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

mod commands;

use super::model::{CommandError, CommandReply, FileView, Prefs, Request, TorrentView, View};
use super::saved::{self, Saved, SavedTorrent};
use crate::config::{SessionConfig, TorrentConfig};
use crate::doctor::stall::Stall;
use crate::doctor::SessionFacts;
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::net::limit::{RateLimiter, TorrentRates};
use crate::selection::{torrent_paths, Priority};
use crate::session::{
    Content, MagnetSource, Mode, Session, Sources, Status, TorrentError, TorrentHandle, TorrentSpec,
};
use crate::snapshot::Phase;
use crate::state::StateDir;
use crate::types::InfoHash;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The session's settings; `state_dir` must be set (the daemon lives in it).
    pub session: SessionConfig,
    /// Every torrent's engine settings (a torrent's own choices are applied on top).
    pub torrent: TorrentConfig,
    /// Where torrents go unless told otherwise (absolute).
    pub download_dir: PathBuf,
    /// The only directory (and below) a request may name as a save path (absolute).
    pub download_root: PathBuf,
    /// How often the [`View`] is refreshed.
    pub refresh: Duration,
}

/// Why the daemon cannot start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the daemon needs a state directory (--state-dir)")]
    NoStateDir,
    #[error("opening the state directory")]
    State(#[source] crate::state::StateError),
    #[error("the daemon's saved state")]
    Saved(#[from] saved::SavedError),
    #[error("starting the session")]
    Session(#[source] crate::session::SessionError),
}

/// A running daemon core.
pub struct Daemon {
    view: watch::Receiver<Arc<View>>,
    commands: mpsc::Sender<Request>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Commands queued at once; a front end waits for room beyond that.
const COMMAND_QUEUE: usize = 64;

impl Daemon {
    /// Starts the session and every saved torrent (paused ones stay paused).
    pub async fn start(cfg: DaemonConfig) -> Result<Daemon, DaemonError> {
        let root = cfg
            .session
            .state_dir
            .clone()
            .ok_or(DaemonError::NoStateDir)?;
        let state = StateDir::open(&root).map_err(DaemonError::State)?;
        let saved = saved::load(state.root())?.unwrap_or(Saved {
            version: saved::VERSION,
            ..Saved::default()
        });
        let session = Session::start(cfg.session.clone())
            .await
            .map_err(DaemonError::Session)?;
        let session_facts = session.watch_facts(cfg.session.dht);
        let (view_tx, view) = watch::channel(Arc::new(View::default()));
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let mut core = Core {
            save_path: saved
                .save_path
                .clone()
                .filter(|p| inside(p, &cfg.download_root))
                .unwrap_or_else(|| cfg.download_dir.clone()),
            categories: saved.categories.clone(),
            cfg,
            session,
            state,
            torrents: BTreeMap::new(),
            view: view_tx,
            facts: session_facts,
        };
        for t in saved.torrents {
            if let Err(e) = core.restore(t.clone()).await {
                tracing::warn!(hash = %t.info_hash, error = %e, "saved torrent not restored");
            }
        }
        core.publish();
        let task = tokio::spawn(core.run(commands_rx, stop_rx));
        Ok(Daemon {
            view,
            commands,
            stop,
            task,
        })
    }

    pub fn view(&self) -> watch::Receiver<Arc<View>> {
        self.view.clone()
    }

    pub fn commands(&self) -> mpsc::Sender<Request> {
        self.commands.clone()
    }

    /// Stops every torrent cleanly (resume data written, `stopped` announced).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One torrent in the daemon.
struct Entry {
    saved: SavedTorrent,
    content: Content,
    handle: TorrentHandle,
    /// Its own caps, shared with its connections (changed without a restart).
    rates: Arc<TorrentRates>,
    /// Restored paused: it runs until its data is checked (so the list shows what is on
    /// disk), then pauses.
    pause_after_check: bool,
    /// Whether it is stalled, fed at every refresh.
    stall: Stall,
}

struct Core {
    cfg: DaemonConfig,
    session: Session,
    state: StateDir,
    torrents: BTreeMap<InfoHash, Entry>,
    categories: BTreeMap<String, Option<PathBuf>>,
    save_path: PathBuf,
    view: watch::Sender<Arc<View>>,
    /// The session's side of each torrent's diagnosis, refreshed every second.
    facts: watch::Receiver<SessionFacts>,
}

impl Core {
    async fn run(mut self, mut commands: mpsc::Receiver<Request>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.cfg.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.refresh().await,
                req = commands.recv() => match req {
                    Some((cmd, reply)) => {
                        let outcome = self.command(cmd).await;
                        self.publish();
                        let _ = reply.send(outcome);
                    }
                    None => break,
                },
                r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            }
        }
        self.save()
            .unwrap_or_else(|e| tracing::warn!(error = %e, "daemon state not saved"));
        self.session.shutdown().await;
    }

    /// Puts a saved torrent back into the session.
    async fn restore(&mut self, t: SavedTorrent) -> Result<(), CommandError> {
        let hash = t.hash().ok_or_else(|| bad("not an info-hash"))?;
        let content = match self.saved_meta(&hash) {
            Some(meta) => Content::Torrent(meta),
            None => {
                let link = t
                    .magnet
                    .as_deref()
                    .ok_or_else(|| bad("neither its .torrent nor its magnet link is saved"))?;
                let link = Magnet::parse(link).map_err(|e| bad(&e.to_string()))?;
                Content::Magnet(Arc::new(MagnetSource::new(link, None)))
            }
        };
        if !inside(&t.save_path, &self.cfg.download_root) {
            return Err(CommandError::Forbidden(format!(
                "{} is outside the download root",
                t.save_path.display()
            )));
        }
        self.insert(hash, t, content, true).await
    }

    /// Adds a torrent to the session (paused if its record says so) and to the list.
    async fn insert(
        &mut self,
        hash: InfoHash,
        saved: SavedTorrent,
        content: Content,
        restoring: bool,
    ) -> Result<(), CommandError> {
        let rates = Arc::new(TorrentRates {
            up: RateLimiter::new(saved.up_limit.unwrap_or(0)),
            down: RateLimiter::new(saved.down_limit.unwrap_or(0)),
        });
        let spec = self.spec(&saved, content.clone(), rates.clone(), false);
        let handle = self
            .session
            .add(spec)
            .await
            .map_err(|e| CommandError::Failed(crate::error::error_chain(&e)))?;
        // One added paused by a request stops at once; one restored paused first checks
        // its data (its resume record spares the re-hash), so its state is known.
        let pause_after_check = saved.paused && restoring;
        if saved.paused && !restoring {
            self.session.pause(hash).await;
        }
        self.torrents.insert(
            hash,
            Entry {
                saved,
                content,
                handle,
                rates,
                pause_after_check,
                stall: Stall::default(),
            },
        );
        Ok(())
    }

    fn spec(
        &self,
        t: &SavedTorrent,
        content: Content,
        rates: Arc<TorrentRates>,
        recheck: bool,
    ) -> TorrentSpec {
        TorrentSpec {
            content,
            dir: t.save_path.clone(),
            mode: Mode::Fetch { seed: true },
            sources: Sources::default(),
            recheck,
            selection: Default::default(),
            priorities: t.file_priorities().map(Arc::from),
            rates,
            cfg: TorrentConfig {
                sequential: t.sequential,
                first_last: t.first_last,
                ..self.cfg.torrent.clone()
            },
        }
    }

    /// The `.torrent` kept in the state directory for `hash`, if valid.
    fn saved_meta(&self, hash: &InfoHash) -> Option<Arc<Metainfo>> {
        let path = self.state.torrent_path(hash);
        let bytes = crate::state::read_capped(&path, crate::metainfo::MAX_TORRENT_FILE)
            .ok()
            .flatten()?;
        let meta = Metainfo::from_bytes(&bytes).ok()?;
        (meta.info_hash == *hash).then(|| Arc::new(meta))
    }

    fn check_path(&self, p: &Path) -> Result<(), CommandError> {
        if inside(p, &self.cfg.download_root) {
            Ok(())
        } else {
            Err(CommandError::Forbidden(format!(
                "{} is not inside the download root {}",
                p.display(),
                self.cfg.download_root.display()
            )))
        }
    }

    fn prefs(&self) -> Prefs {
        Prefs {
            save_path: self.save_path.clone(),
            download_root: self.cfg.download_root.clone(),
            listen_port: self.session.local_addr().port(),
            dl_limit: self.cfg.session.max_download_rate,
            up_limit: self.cfg.session.max_upload_rate,
        }
    }

    fn saved(&self) -> Saved {
        Saved {
            version: saved::VERSION,
            save_path: Some(self.save_path.clone()),
            dl_limit: self.cfg.session.max_download_rate,
            up_limit: self.cfg.session.max_upload_rate,
            categories: self.categories.clone(),
            torrents: self.torrents.values().map(|e| e.saved.clone()).collect(),
        }
    }

    fn save(&self) -> Result<(), saved::SavedError> {
        saved::store(self.state.root(), &self.saved())
    }

    fn save_or_fail(&self) -> Result<CommandReply, CommandError> {
        self.save()
            .map(|()| CommandReply::Done)
            .map_err(|e| CommandError::Failed(crate::error::error_chain(&e)))
    }

    /// Pauses restored torrents whose check is done, notes completions (saved once),
    /// then publishes a new view.
    async fn refresh(&mut self) {
        let mut changed = false;
        let mut to_pause = Vec::new();
        let now = std::time::Instant::now();
        for (h, e) in self.torrents.iter_mut() {
            let running = matches!(*e.handle.status.borrow(), Status::Running);
            if e.saved.paused || !running {
                // Paused, failed or ended: not waiting for anything, so not stalled.
                e.stall = Stall::default();
            } else {
                e.stall.update(now, &e.handle.snapshot.borrow());
            }
            let phase = e.handle.snapshot.borrow().phase;
            if e.pause_after_check && phase != Phase::Checking {
                e.pause_after_check = false;
                to_pause.push(*h);
            }
            if e.saved.completion_on.is_none() && matches!(phase, Phase::Seeding | Phase::Done) {
                e.saved.completion_on = Some(unix_now());
                changed = true;
            }
        }
        for h in to_pause {
            self.session.pause(h).await;
        }
        if changed {
            if let Err(e) = self.save() {
                tracing::warn!(error = %crate::error::error_chain(&e), "daemon state not saved");
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let torrents = self.torrents.iter().map(|(h, e)| view_of(h, e)).collect();
        let facts = self.facts.borrow().clone();
        let view = View {
            torrents,
            categories: self.categories.clone(),
            prefs: self.prefs(),
            listen_port: self.session.local_addr().port(),
            dht_nodes: facts.dht_nodes.unwrap_or(0),
            facts,
        };
        self.view.send_replace(Arc::new(view));
    }
}

fn view_of(hash: &InfoHash, e: &Entry) -> TorrentView {
    let snapshot = e.handle.snapshot.borrow().clone();
    let (error, disk_error) = match &*e.handle.status.borrow() {
        Status::Finished(r) => match r.as_ref() {
            Err(err) => {
                let text = crate::error::error_chain(err);
                let disk = matches!(err, TorrentError::Store(_)).then(|| text.clone());
                (Some(text), disk)
            }
            Ok(_) => (None, None),
        },
        _ => (None, None),
    };
    let meta = e.content.meta();
    let prios = e.saved.file_priorities();
    let files: Arc<[FileView]> = match &meta {
        Some(m) => torrent_paths(m)
            .into_iter()
            .zip(&m.files)
            .enumerate()
            .map(|(i, (path, f))| FileView {
                path,
                size: f.length,
                priority: prios
                    .as_ref()
                    .and_then(|p| p.get(i).copied())
                    .unwrap_or(Priority::Normal),
            })
            .collect(),
        None => Arc::from([]),
    };
    let magnet_uri = match (&meta, &e.content) {
        (_, Content::Magnet(m)) => m.link.to_uri(),
        (Some(m), _) => {
            let mut link = Magnet::new(m.info_hash);
            link.name = Some(m.name.clone());
            link.trackers = m.tracker_tiers().into_iter().flatten().collect();
            link.to_uri()
        }
        (None, Content::Torrent(_)) => String::new(),
    };
    TorrentView {
        info_hash: *hash,
        name: snapshot.name.clone(),
        paused: e.saved.paused,
        error,
        disk_error,
        stalled: e.stall.stalled(),
        save_path: e.saved.save_path.clone(),
        category: e.saved.category.clone(),
        added_on: e.saved.added_on,
        completion_on: e.saved.completion_on,
        up_limit: e.saved.up_limit,
        down_limit: e.saved.down_limit,
        sequential: e.saved.sequential,
        first_last: e.saved.first_last,
        files,
        trackers: e.content.tracker_tiers(),
        magnet_uri,
        private: meta.as_ref().is_some_and(|m| m.private),
        comment: meta.as_ref().and_then(|m| m.comment.clone()),
        created_by: meta.as_ref().and_then(|m| m.created_by.clone()),
        creation_date: meta.as_ref().and_then(|m| m.creation_date),
        snapshot,
    }
}

/// Whether `p` is `root` or below it, judged on the path's words: absolute, and no `..`
/// anywhere (a symlink inside the root is the owner's business).
pub fn inside(p: &Path, root: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && p.starts_with(root)
}

fn bad(why: &str) -> CommandError {
    CommandError::BadRequest(why.to_string())
}

fn error_text(e: &dyn std::error::Error) -> String {
    crate::error::error_chain(e)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_paths_stay_under_the_root() {
        let root = Path::new("/srv/dl");
        assert!(inside(Path::new("/srv/dl"), root));
        assert!(inside(Path::new("/srv/dl/tv/s1"), root));
        // `.` is harmless (and dropped by `components`).
        assert!(inside(Path::new("/srv/dl/./x"), root));
        for p in [
            "/srv/dl/../etc",
            "/srv/dlx",
            "srv/dl",
            "/srv/dl/x/..",
            "/etc",
            "",
        ] {
            assert!(!inside(Path::new(p), root), "{p}");
        }
    }
}
