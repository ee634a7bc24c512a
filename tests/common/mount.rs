//! Filesystems a test mounts itself (as root: a tmpfs, an ext4 image on a loop device),
//! unmounted when dropped: a leaf, included by path where `common` is not.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A mounted filesystem; dropping it unmounts it, lazily, so a failed test cannot leave it
/// busy.
pub struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS... DIR` (DIR created first); `None` when that fails (not root, no loop
    /// devices): the caller skips, saying so.
    pub fn new(args: &[&str], dir: &Path) -> Option<Mount> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(args)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }

    /// A tmpfs with these `-o` options (e.g. `size=5m`, `ro,size=1m`).
    pub fn tmpfs(options: &str, dir: &Path) -> Option<Mount> {
        Mount::new(&["-t", "tmpfs", "-o", options, "tmpfs"], dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
