//! Build script: puts the commit the binary is built from into `SWARM_GIT_COMMIT`, for
//! `swarm --version`, and its time (Unix seconds) into `SWARM_COMMIT_TIME`, for `swarm
//! doctor`'s clock check (a clock earlier than the commit is wrong). Without git or a
//! repository (a source tarball) the first says so and the second is left unset, instead
//! of failing the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    println!(
        "cargo:rustc-env=SWARM_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("commit unknown")
    );
    if let Some(time) = git(&["log", "-1", "--format=%ct"]).filter(|t| t.parse::<u64>().is_ok()) {
        println!("cargo:rustc-env=SWARM_COMMIT_TIME={time}");
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit),
    // wherever this checkout keeps them (a worktree's .git is a file pointing elsewhere).
    // Only paths that exist: cargo reruns a script on every build for a missing one.
    println!("cargo:rerun-if-changed=build.rs");
    let mut names = vec!["HEAD".to_string(), "packed-refs".to_string()];
    names.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in names {
        if let Some(p) = git(&["rev-parse", "--git-path", &name]) {
            if Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
}
