//! The commands the core carries out: each changes the session and the saved list, and
//! the list is written before the command is answered (see the parent's invariants).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{bad, error_text, unix_now, Core, Entry};
use crate::daemon::model::{AddRequest, AddSource, Command, CommandError, CommandReply, Hashes};
use crate::daemon::saved::{self, SavedTorrent};
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::selection::Priority;
use crate::session::{Content, MagnetSource};
use crate::types::InfoHash;

impl Core {
    pub(super) async fn command(&mut self, cmd: Command) -> Result<CommandReply, CommandError> {
        match cmd {
            Command::Add(req) => self.add(req).await,
            Command::Delete {
                hashes,
                delete_files,
            } => {
                for h in self.select(&hashes) {
                    self.delete(h, delete_files).await;
                }
                self.save_or_fail()
            }
            Command::Pause(hashes) => {
                for h in self.select(&hashes) {
                    self.session.pause(h).await;
                    self.entry(&h)?.saved.paused = true;
                }
                self.save_or_fail()
            }
            Command::Resume(hashes) => {
                for h in self.select(&hashes) {
                    self.session.resume(h).await;
                    let e = self.entry(&h)?;
                    e.saved.paused = false;
                    e.pause_after_check = false;
                }
                self.save_or_fail()
            }
            Command::Recheck(hashes) => {
                for h in self.select(&hashes) {
                    let e = &self.torrents[&h];
                    let spec = self.spec(&e.saved, e.content.clone(), e.rates.clone(), true);
                    self.session.respec(h, spec).await;
                    if e.saved.paused {
                        // qBittorrent checks a stopped torrent too, and it stays stopped.
                        self.session.resume(h).await;
                    }
                }
                Ok(CommandReply::Done)
            }
            Command::FilePrio {
                hash,
                files,
                priority,
            } => self.file_prio(hash, &files, priority).await,
            Command::SetCategory { hashes, category } => {
                if !category.is_empty() && !self.categories.contains_key(&category) {
                    return Err(bad("no such category"));
                }
                for h in self.select(&hashes) {
                    self.entry(&h)?.saved.category = category.clone();
                }
                self.save_or_fail()
            }
            Command::CreateCategory { name, save_path } => {
                if name.trim().is_empty() || name.contains(['\\', '\n']) {
                    return Err(bad("invalid category name"));
                }
                if self.categories.contains_key(&name) {
                    return Err(bad("the category exists"));
                }
                if let Some(p) = &save_path {
                    self.check_path(p)?;
                }
                self.categories.insert(name, save_path);
                self.save_or_fail()
            }
            Command::SetUploadLimit { hashes, limit } => {
                for h in self.select(&hashes) {
                    let e = self.entry(&h)?;
                    e.saved.up_limit = limit;
                    e.rates.up.set_rate(limit.unwrap_or(0)).await;
                }
                self.save_or_fail()
            }
            Command::SetDownloadLimit { hashes, limit } => {
                for h in self.select(&hashes) {
                    let e = self.entry(&h)?;
                    e.saved.down_limit = limit;
                    e.rates.down.set_rate(limit.unwrap_or(0)).await;
                }
                self.save_or_fail()
            }
            Command::SetPreferences(patch) => {
                let now = self.prefs();
                let changes_limits = patch.dl_limit.is_some_and(|l| l != now.dl_limit)
                    || patch.up_limit.is_some_and(|l| l != now.up_limit)
                    || patch.listen_port.is_some_and(|p| p != now.listen_port);
                if changes_limits {
                    return Err(CommandError::Failed(
                        "the listen port and rate limits are set when the daemon starts \
                         (--port, --max-upload-rate, --max-download-rate)"
                            .into(),
                    ));
                }
                if let Some(p) = patch.save_path {
                    self.check_path(&p)?;
                    self.save_path = p;
                }
                self.save_or_fail()
            }
        }
    }

    async fn add(&mut self, req: AddRequest) -> Result<CommandReply, CommandError> {
        let category = req.category.clone().unwrap_or_default();
        // qBittorrent makes a category named by an add on the fly.
        if !category.is_empty() && !self.categories.contains_key(&category) {
            self.categories.insert(category.clone(), None);
        }
        let save_path = match (&req.save_path, self.categories.get(&category)) {
            (Some(p), _) => p.clone(),
            (None, Some(Some(p))) => p.clone(),
            _ => self.save_path.clone(),
        };
        self.check_path(&save_path)?;
        let mut added = Vec::new();
        let mut errors = Vec::new();
        for source in &req.sources {
            let (hash, content, magnet) = match self.content_of(source) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if self.torrents.contains_key(&hash) {
                continue;
            }
            let t = SavedTorrent {
                info_hash: hash.to_hex(),
                magnet,
                save_path: save_path.clone(),
                category: category.clone(),
                paused: req.paused,
                added_on: unix_now(),
                completion_on: None,
                priorities: None,
                up_limit: req.up_limit,
                down_limit: req.down_limit,
                sequential: req.sequential,
                first_last: req.first_last,
            };
            match self.insert(hash, t, content, false).await {
                Ok(()) => added.push(hash),
                Err(e) => errors.push(e),
            }
        }
        self.save()
            .map_err(|e| CommandError::Failed(crate::error::error_chain(&e)))?;
        match (added.is_empty(), errors.pop()) {
            (true, Some(e)) => Err(e),
            _ => Ok(CommandReply::Added(added)),
        }
    }

    /// What a source is: its info-hash, content, and the link to remember for a magnet.
    fn content_of(
        &self,
        source: &AddSource,
    ) -> Result<(InfoHash, Content, Option<String>), CommandError> {
        match source {
            AddSource::Torrent(bytes) => {
                let meta = Metainfo::from_bytes(bytes)
                    .map_err(|e| bad(&format!("not a valid torrent: {}", error_text(&e))))?;
                let hash = meta.info_hash;
                if !self.torrents.contains_key(&hash) {
                    self.state
                        .save_torrent(&hash, bytes)
                        .map_err(|e| CommandError::Failed(crate::error::error_chain(&e)))?;
                }
                Ok((hash, Content::Torrent(Arc::new(meta)), None))
            }
            AddSource::Magnet(link) => {
                let parsed = Magnet::parse(link)
                    .map_err(|e| bad(&format!("not a valid magnet link: {}", error_text(&e))))?;
                let hash = parsed.info_hash;
                let content = match self.saved_meta(&hash) {
                    Some(meta) => Content::Torrent(meta),
                    None => Content::Magnet(Arc::new(MagnetSource::new(parsed, None))),
                };
                Ok((hash, content, Some(link.clone())))
            }
        }
    }

    async fn file_prio(
        &mut self,
        hash: InfoHash,
        files: &[usize],
        priority: Priority,
    ) -> Result<CommandReply, CommandError> {
        let e = self.torrents.get(&hash).ok_or(CommandError::NotFound)?;
        let meta = e
            .content
            .meta()
            .ok_or_else(|| bad("the torrent's metadata is not known yet"))?;
        let n = meta.files.len();
        if let Some(&i) = files.iter().find(|&&i| i >= n) {
            return Err(bad(&format!(
                "file {i} does not exist (the torrent has {n})"
            )));
        }
        let mut prios = e
            .saved
            .file_priorities()
            .filter(|p| p.len() == n)
            .unwrap_or_else(|| vec![Priority::Normal; n]);
        for &i in files {
            prios[i] = priority;
        }
        let entry = self.entry(&hash)?;
        entry.saved.priorities = Some(prios.iter().map(|&p| saved::number_of(p)).collect());
        let (saved, content, rates) = (
            entry.saved.clone(),
            entry.content.clone(),
            entry.rates.clone(),
        );
        let spec = self.spec(&saved, content, rates, false);
        self.session.respec(hash, spec).await;
        self.save_or_fail()
    }

    /// Takes a torrent out of the session, and its data off the disk if asked.
    async fn delete(&mut self, hash: InfoHash, delete_files: bool) {
        let Some(e) = self.torrents.remove(&hash) else {
            return;
        };
        let mut handle = e.handle.clone();
        self.session.remove(hash).await;
        // Its run has ended (files closed, resume data gone) before anything is deleted.
        let _ = tokio::time::timeout(Duration::from_secs(30), handle.finished()).await;
        let _ = std::fs::remove_file(self.state.torrent_path(&hash));
        if delete_files {
            if let Some(meta) = e.content.meta() {
                remove_content(&e.saved.save_path, &meta);
            }
        }
    }

    fn entry(&mut self, hash: &InfoHash) -> Result<&mut Entry, CommandError> {
        self.torrents.get_mut(hash).ok_or(CommandError::NotFound)
    }

    /// The torrents a command names that the daemon has (unknown hashes are ignored, as
    /// qBittorrent does).
    fn select(&self, hashes: &Hashes) -> Vec<InfoHash> {
        match hashes {
            Hashes::All => self.torrents.keys().copied().collect(),
            Hashes::Some(h) => h
                .iter()
                .filter(|h| self.torrents.contains_key(h))
                .copied()
                .collect(),
        }
    }
}

/// Removes a torrent's files under `dir`, then the directories they leave empty (up to
/// the torrent's own folder); never a whole tree.
fn remove_content(dir: &Path, meta: &Metainfo) {
    for f in &meta.files {
        let path = dir.join(&f.path);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not delete");
            }
        }
        let mut parent = path.parent();
        while let Some(p) = parent {
            if p == dir || !p.starts_with(dir) || std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
}
