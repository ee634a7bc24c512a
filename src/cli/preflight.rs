//! Checks of the download or seeding directory before a session starts, so that a wrong
//! input gets a message naming its cause (not a low-level error from deep in the store),
//! and the small repairs that are safe to make on the user's behalf.
//!
//! Owns: "is the directory a directory", the hint that `seed -d` names the content folder
//! instead of its parent, recreating a missing empty file, what to do with a file longer
//! than the torrent says (truncated for `fetch`, reported for `seed`: seeding never
//! destroys data), the free-space check, and removing what a failed download created.
//!
//! Everything here reads the filesystem as it is before the run; none of it is a guarantee
//! (another process may change it meanwhile): the store still reports every I/O error.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::info::human_bytes;
use super::text::quoted;
use crate::metainfo::Metainfo;

/// What existed before a download, for [`Before::remove_created`].
#[derive(Debug, Default)]
pub struct Before {
    /// The torrent's files that did not exist.
    missing_files: Vec<PathBuf>,
    /// Directories that did not exist (the download directory, folders inside it),
    /// shallowest first.
    missing_dirs: Vec<PathBuf>,
}

/// The nearest existing ancestor of `path` (itself included).
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_ok())
        .or_else(|| path.is_relative().then_some(Path::new(".")))
}

/// `fetch -o DIR`: DIR, or what would become its first missing ancestor, must not be a
/// file.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    if let Some(base) = existing_ancestor(dir) {
        if !base.is_dir() {
            if base == dir {
                bail!(
                    "output directory {} is a file, not a directory",
                    dir.display()
                );
            }
            bail!(
                "cannot create output directory {}: {} is a file",
                dir.display(),
                base.display()
            );
        }
    }
    Ok(())
}

/// `seed -d DIR`: DIR must be the directory that holds the torrent's content. When it is
/// the content itself (the folder of a multi-file torrent, or the file of a single-file
/// one), say that `-d` is its parent.
pub fn check_seed_dir(meta: &Metainfo, dir: &Path) -> Result<()> {
    let name = quoted(&meta.name);
    let parent = || {
        let p = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        p.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "..".into())
    };
    match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("seed directory {} does not exist", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(m) if m.is_file() => {
            if !meta.multi_file && dir.file_name().is_some_and(|n| *n == *meta.name) {
                bail!(
                    "{} is the torrent's file itself; -d is the directory that contains it \
                     (try -d {})",
                    dir.display(),
                    parent()
                );
            }
            bail!(
                "seed directory {} is a file, not a directory",
                dir.display()
            );
        }
        Ok(_) => {}
    }
    let root = dir.join(&meta.name);
    if meta.multi_file && !root.exists() {
        // Does DIR hold the content's own files (so DIR is the content folder)?
        let inside = meta
            .files
            .iter()
            .filter_map(|f| f.path.strip_prefix(&meta.name).ok())
            .any(|rel| !rel.as_os_str().is_empty() && dir.join(rel).exists());
        if inside {
            bail!(
                "{} holds the files of {name} itself; -d is the directory that contains the \
                 folder {name} (try -d {})",
                dir.display(),
                parent()
            );
        }
    }
    Ok(())
}

/// Prepares the torrent's files in `dir` and returns notes for the user: empty files
/// recreated (seed), files longer than the torrent truncated (fetch) or reported (seed).
pub fn repair(meta: &Metainfo, dir: &Path, fetch: bool) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let root_exists = dir.join(&meta.name).exists();
    for f in &meta.files {
        let path = dir.join(&f.path);
        let shown = quoted(&f.path.to_string_lossy());
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() > f.length && fetch => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(f.length))
                    .with_context(|| format!("truncating {}", path.display()))?;
                notes.push(format!(
                    "{shown} was {} bytes, longer than the torrent's {}: truncated",
                    m.len(),
                    f.length
                ));
            }
            Ok(m) if m.is_file() && m.len() > f.length => notes.push(format!(
                "{shown} is {} bytes, {} more than the torrent says: seeding its first {} \
                 (the file is left as it is)",
                m.len(),
                m.len() - f.length,
                f.length
            )),
            // An empty file holds nothing to verify: recreate it rather than refuse to
            // seed (only inside content that is there, so a wrong -d creates nothing).
            Err(e) if e.kind() == io::ErrorKind::NotFound && f.length == 0 && root_exists => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                if !fetch {
                    notes.push(format!("{shown} (empty) was missing: recreated"));
                }
            }
            _ => {}
        }
    }
    Ok(notes)
}

/// Bytes a download of `meta` into `dir` still has to write: each wanted file's length
/// less what is already allocated to it (a sparse file left by an earlier run counts only
/// its data). `wanted`: one entry per file (`false`: skipped, writes nothing here; its
/// share of a boundary piece is at most a piece, in the state directory).
pub fn bytes_to_write(meta: &Metainfo, dir: &Path, wanted: &[bool]) -> u64 {
    meta.files
        .iter()
        .zip(wanted)
        .filter(|(_, w)| **w)
        .map(|(f, _)| match fs::metadata(dir.join(&f.path)) {
            Ok(m) => f.length.saturating_sub(m.blocks().saturating_mul(512)),
            Err(_) => f.length,
        })
        .sum()
}

/// Bytes an unprivileged user may still write on the filesystem that holds `dir` (or its
/// nearest existing ancestor); `None` when it cannot be told.
pub fn available_bytes(dir: &Path) -> Option<u64> {
    let base = existing_ancestor(dir)?;
    let st = rustix::fs::statvfs(base).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuses to start downloads that cannot fit: `needed` bytes against what `dir`'s
/// filesystem has free.
pub fn check_space(dir: &Path, needed: u64) -> Result<()> {
    let Some(free) = available_bytes(dir) else {
        return Ok(());
    };
    if needed > free {
        bail!(
            "not enough disk space in {}: {} still to download, {} available",
            dir.display(),
            human_bytes(needed),
            human_bytes(free)
        );
    }
    Ok(())
}

impl Before {
    /// What of `meta`'s files and folders under `dir` does not exist yet.
    pub fn record(meta: &Metainfo, dir: &Path) -> Before {
        let mut b = Before::default();
        for f in &meta.files {
            let path = dir.join(&f.path);
            if fs::symlink_metadata(&path).is_err() {
                b.missing_files.push(path.clone());
            }
            for d in path.ancestors().skip(1) {
                if d.as_os_str().is_empty() || fs::symlink_metadata(d).is_ok() {
                    break;
                }
                if !b.missing_dirs.iter().any(|x| x == d) {
                    b.missing_dirs.push(d.to_path_buf());
                }
            }
        }
        b.missing_dirs.sort_by_key(|d| d.components().count());
        b
    }

    /// After a failed download: removes the files this run created, and then the folders,
    /// but only if none of those files holds any data (a run that wrote nothing created
    /// only sparse files). Returns how many files it removed.
    pub fn remove_created(&self) -> usize {
        let created: Vec<(&PathBuf, fs::Metadata)> = self
            .missing_files
            .iter()
            .filter_map(|p| fs::symlink_metadata(p).ok().map(|m| (p, m)))
            .collect();
        if created.iter().any(|(_, m)| !m.is_file() || m.blocks() > 0) {
            return 0;
        }
        let removed = created
            .iter()
            .filter(|(p, _)| fs::remove_file(p).is_ok())
            .count();
        // Deepest first; a folder that holds anything else stays.
        for d in self.missing_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{create_torrent, CreateOptions};

    fn multi(tmp: &Path) -> (Metainfo, PathBuf) {
        let src = tmp.join("src").join("My Album");
        fs::create_dir_all(src.join("cd1")).unwrap();
        fs::write(src.join("cd1/01.flac"), vec![1u8; 40_000]).unwrap();
        fs::write(src.join("empty.txt"), b"").unwrap();
        let bytes = create_torrent(&CreateOptions {
            path: src.clone(),
            ..Default::default()
        })
        .unwrap();
        (Metainfo::from_bytes(&bytes).unwrap(), tmp.join("src"))
    }

    #[test]
    fn a_file_as_output_directory_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("afile");
        fs::write(&f, b"x").unwrap();
        let e = check_output_dir(&f).unwrap_err().to_string();
        assert!(e.contains("is a file"), "{e}");
        let e = check_output_dir(&f.join("sub")).unwrap_err().to_string();
        assert!(e.contains("afile is a file"), "{e}");
        check_output_dir(&tmp.path().join("new/deeper")).unwrap();
    }

    #[test]
    fn seed_dir_pointing_at_the_content_gets_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let (meta, parent) = multi(tmp.path());
        check_seed_dir(&meta, &parent).unwrap();
        let e = check_seed_dir(&meta, &parent.join("My Album"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("-d is the directory that contains"), "{e}");
        assert!(e.contains(&parent.display().to_string()), "{e}");
    }

    #[test]
    fn empty_files_are_recreated_and_long_files_handled() {
        let tmp = tempfile::tempdir().unwrap();
        let (meta, parent) = multi(tmp.path());
        let album = parent.join("My Album");
        fs::remove_file(album.join("empty.txt")).unwrap();
        let flac = album.join("cd1/01.flac");
        let mut long = fs::read(&flac).unwrap();
        long.extend_from_slice(b"extra");
        fs::write(&flac, &long).unwrap();

        let notes = repair(&meta, &parent, false).unwrap();
        assert!(album.join("empty.txt").exists());
        assert!(notes.iter().any(|n| n.contains("recreated")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("5 more")), "{notes:?}");
        assert_eq!(fs::metadata(&flac).unwrap().len(), 40_005, "seed leaves it");

        let notes = repair(&meta, &parent, true).unwrap();
        assert!(notes.iter().any(|n| n.contains("truncated")), "{notes:?}");
        assert_eq!(fs::metadata(&flac).unwrap().len(), 40_000);
    }

    #[test]
    fn space_needed_counts_only_missing_data() {
        let tmp = tempfile::tempdir().unwrap();
        let (meta, parent) = multi(tmp.path());
        let all = vec![true; meta.files.len()];
        assert_eq!(bytes_to_write(&meta, &parent, &all), 0);
        assert_eq!(
            bytes_to_write(&meta, &tmp.path().join("none"), &all),
            40_000
        );
        let none = vec![false; meta.files.len()];
        assert_eq!(bytes_to_write(&meta, &tmp.path().join("none"), &none), 0);
        assert!(check_space(tmp.path(), u64::MAX).is_err());
        check_space(tmp.path(), 1).unwrap();
    }

    #[test]
    fn a_failed_run_removes_only_what_it_created_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let (meta, _) = multi(tmp.path());
        let out = tmp.path().join("out");
        let before = Before::record(&meta, &out);
        // The store would create sparse files.
        fs::create_dir_all(out.join("My Album/cd1")).unwrap();
        let f = fs::File::create(out.join("My Album/cd1/01.flac")).unwrap();
        f.set_len(40_000).unwrap();
        fs::File::create(out.join("My Album/empty.txt")).unwrap();
        assert_eq!(before.remove_created(), 2);
        assert!(!out.exists(), "the folders it made are gone too");

        // Data written: nothing removed.
        let before = Before::record(&meta, &out);
        fs::create_dir_all(out.join("My Album/cd1")).unwrap();
        fs::write(out.join("My Album/cd1/01.flac"), vec![1u8; 4096]).unwrap();
        assert_eq!(before.remove_created(), 0);
        assert!(out.join("My Album/cd1/01.flac").exists());
    }
}
