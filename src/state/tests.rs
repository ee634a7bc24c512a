use std::error::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn default_root_prefers_an_absolute_xdg_state_home() {
    let some = |s: &str| Some(OsString::from(s));
    assert_eq!(
        default_root(some("/x/state"), some("/home/u")),
        Some(PathBuf::from("/x/state/swarm"))
    );
    for xdg in [None, some(""), some("relative/state")] {
        assert_eq!(
            default_root(xdg.clone(), some("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/swarm")),
            "{xdg:?}"
        );
    }
    assert_eq!(default_root(None, None), None);
    assert_eq!(default_root(some(""), some("")), None);
    assert_eq!(default_root(None, some("home")), None, "a relative HOME");
}

#[test]
fn state_dir_creates_private_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a/b/swarm");
    let dir = StateDir::open(&root).unwrap();
    assert_eq!(dir.root(), root);
    assert!(root.join("resume").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let ih = crate::types::InfoHash([0xab; 20]);
    assert_eq!(
        dir.resume_path(&ih),
        root.join("resume")
            .join(format!("{}.resume", "ab".repeat(20)))
    );
    // Opening again is fine; a file in the way is an error naming the path.
    StateDir::open(&root).unwrap();
    let blocked = tmp.path().join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let err = StateDir::open(&blocked).unwrap_err();
    assert!(err.to_string().starts_with("creating directory"), "{err}");
}

#[test]
fn write_atomic_replaces_content_and_leaves_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.resume");
    write_atomic(&path, b"first").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    write_atomic(&path, b"").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    assert_eq!(entries(tmp.path()), vec!["x.resume"]);
}

#[test]
fn write_atomic_failure_keeps_the_old_file_and_removes_the_temp() {
    let tmp = tempfile::tempdir().unwrap();
    // Renaming a file over a non-empty directory fails (EISDIR/ENOTEMPTY), even as root.
    let path = tmp.path().join("taken");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), b"keep").unwrap();
    let err = write_atomic(&path, b"new").unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Io {
                op: "renaming over",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(entries(tmp.path()), vec!["taken"]);
    assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"keep");
    // A missing directory fails at create, naming the temp file.
    let err = write_atomic(&tmp.path().join("no/such/file"), b"x").unwrap_err();
    assert!(matches!(err, StateError::Io { op: "creating", .. }));
}

#[test]
fn errors_do_not_repeat_their_source() {
    let tmp = tempfile::tempdir().unwrap();
    let err = write_atomic(&tmp.path().join("no/such/file"), b"x").unwrap_err();
    let source = err.source().expect("io error as source").to_string();
    let msg = err.to_string();
    assert!(!msg.contains(&source), "{msg} repeats {source}");
    assert!(msg.contains("no/such/.file.tmp."), "{msg}");
}

#[test]
fn read_capped_reads_missing_and_refuses_oversized_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r");
    assert_eq!(read_capped(&path, 10).unwrap(), None);
    std::fs::write(&path, b"0123456789").unwrap();
    assert_eq!(read_capped(&path, 10).unwrap().unwrap(), b"0123456789");
    let err = read_capped(&path, 9).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::TooLarge {
                size: 10,
                max: 9,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("more than the 9 allowed"), "{err}");
    // A directory is an I/O error, not "missing".
    assert!(matches!(
        read_capped(tmp.path(), 1 << 20),
        Err(StateError::Io { .. })
    ));
}
