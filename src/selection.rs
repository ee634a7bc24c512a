//! File selection (issue 17, pure core): which files of a torrent are wanted, and what that
//! makes each piece worth. No I/O; the command line, the engine and the store build on it.
//!
//! - `--files 1,3-5`: indexes as `swarm info` numbers files, from 1 (aria2's
//!   `--select-file` counts the same way);
//! - `--only GLOB` (repeatable): a file must match one of them;
//! - `--exclude GLOB` (repeatable): a file matching one is skipped, whatever else says.
//!
//! Globs match the path inside the torrent with `/` between components: `*` and `?` never
//! cross a `/`, `**` crosses any number of them; a pattern without a `/` is matched against
//! the file's name alone (as `.gitignore` does), one with a `/` against the whole path as
//! `swarm info` lists it (`Show/subs/*.srt`) or the path below the torrent's folder
//! (`subs/*.srt`).
//!
//! Invariants: a selection that leaves no file wanted is an error naming what was asked;
//! an index outside `1..=files` is an error; a piece is [`Priority::Skip`] only when every
//! non-empty file it touches is skipped, and otherwise takes the highest priority among
//! them (a piece straddling a wanted and an unwanted file must be fetched).

use std::ops::RangeInclusive;

use crate::layout::Layout;
use crate::metainfo::Metainfo;

/// How much a file (or a piece) is wanted. Ordered: `Skip < Normal < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Skip,
    Normal,
    High,
}

/// Why a selection cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("{0:?} is not a file index or range (e.g. 1,3-5)")]
    BadIndex(String),
    #[error("file index {index} is out of range: the torrent has {files} files")]
    IndexOutOfRange { index: usize, files: usize },
    #[error("{0:?} is not a valid pattern")]
    BadPattern(String),
    #[error("the selection matches no file ({0})")]
    Empty(String),
}

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `--files`, from 1; `None`: every file.
    pub indexes: Option<Vec<RangeInclusive<usize>>>,
    /// `--only` patterns; empty: no restriction.
    pub only: Vec<String>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

impl Selector {
    /// Whether this selects every file (nothing was asked).
    pub fn is_all(&self) -> bool {
        self.indexes.is_none() && self.only.is_empty() && self.exclude.is_empty()
    }

    /// One priority per file (`paths` are the torrent's paths with `/` separators):
    /// `Normal` for the selected files, `Skip` for the others.
    pub fn apply(&self, paths: &[String]) -> Result<Vec<Priority>, SelectionError> {
        for p in self.only.iter().chain(&self.exclude) {
            check_pattern(p)?;
        }
        let mut out = vec![Priority::Normal; paths.len()];
        if let Some(ranges) = &self.indexes {
            for r in ranges {
                for index in [*r.start(), *r.end()] {
                    if index == 0 || index > paths.len() {
                        return Err(SelectionError::IndexOutOfRange {
                            index,
                            files: paths.len(),
                        });
                    }
                }
            }
            for (i, p) in out.iter_mut().enumerate() {
                if !ranges.iter().any(|r| r.contains(&(i + 1))) {
                    *p = Priority::Skip;
                }
            }
        }
        for (path, p) in paths.iter().zip(out.iter_mut()) {
            let only = self.only.is_empty() || self.only.iter().any(|g| glob_path(g, path));
            if !only || self.exclude.iter().any(|g| glob_path(g, path)) {
                *p = Priority::Skip;
            }
        }
        if out.iter().all(|p| *p == Priority::Skip) {
            return Err(SelectionError::Empty(self.describe()));
        }
        Ok(out)
    }

    /// What was asked, as the user typed it (for the "matches no file" error).
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.indexes {
            let list: Vec<String> = r
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect();
            parts.push(format!("--files {}", list.join(",")));
        }
        parts.extend(self.only.iter().map(|g| format!("--only {g:?}")));
        parts.extend(self.exclude.iter().map(|g| format!("--exclude {g:?}")));
        parts.join(", ")
    }
}

/// `1,3-5` → `[1..=1, 3..=5]` (indexes from 1; spaces around items allowed).
pub fn parse_indexes(s: &str) -> Result<Vec<RangeInclusive<usize>>, SelectionError> {
    let bad = || SelectionError::BadIndex(s.to_string());
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim) {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a == 0 || b < a {
            return Err(bad());
        }
        out.push(a..=b);
    }
    Ok(out)
}

/// Each piece's priority: the highest among the non-empty files it touches.
pub fn piece_priorities(layout: &Layout, files: &[Priority]) -> Vec<Priority> {
    let mut out = vec![Priority::Skip; layout.num_pieces() as usize];
    for (f, prio) in files.iter().enumerate().take(layout.num_files()) {
        let len = layout.file_len(f);
        if len == 0 || *prio == Priority::Skip {
            continue;
        }
        let start = layout.file_start(f);
        let piece_len = u64::from(layout.piece_len());
        let first = (start / piece_len) as usize;
        let last = ((start + len - 1) / piece_len) as usize;
        let end = last.min(out.len() - 1);
        for p in &mut out[first..=end] {
            *p = (*p).max(*prio);
        }
    }
    out
}

/// Each piece's priority with `--first-last`: as [`piece_priorities`], and the first and
/// last piece of every wanted file [`Priority::High`] (media players read a file's index
/// from its end before they play from its start).
pub fn first_last_priorities(layout: &Layout, files: &[Priority]) -> Vec<Priority> {
    let mut out = piece_priorities(layout, files);
    for (f, prio) in files.iter().enumerate().take(layout.num_files()) {
        if *prio == Priority::Skip {
            continue;
        }
        if let Some(r) = layout.file_pieces(f) {
            for p in [*r.start(), *r.end()] {
                if let Some(slot) = out.get_mut(p as usize) {
                    *slot = Priority::High;
                }
            }
        }
    }
    out
}

/// The paths selection patterns match: each file's path inside the torrent with `/`
/// separators, as `swarm info` lists them.
pub fn torrent_paths(meta: &Metainfo) -> Vec<String> {
    meta.files
        .iter()
        .map(|f| {
            let parts: Vec<String> = f
                .path
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            parts.join("/")
        })
        .collect()
}

/// How much of a torrent a selection wants, for the display and the summary
/// ("3 of 12 files, 1.2 GiB").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wanted {
    pub files: usize,
    pub of_files: usize,
    /// Bytes of the wanted files.
    pub bytes: u64,
}

impl Wanted {
    pub fn of(layout: &Layout, files: &[Priority]) -> Wanted {
        Wanted {
            files: files.iter().filter(|p| **p != Priority::Skip).count(),
            of_files: files.len(),
            bytes: wanted_bytes(layout, files),
        }
    }
}

/// Bytes of the wanted files (what "complete" means, and the tracker's `left`).
pub fn wanted_bytes(layout: &Layout, files: &[Priority]) -> u64 {
    files
        .iter()
        .enumerate()
        .take(layout.num_files())
        .filter(|(_, p)| **p != Priority::Skip)
        .map(|(f, _)| layout.file_len(f))
        .sum()
}

fn check_pattern(g: &str) -> Result<(), SelectionError> {
    if g.is_empty() || g.split('/').any(|c| c.contains("**") && c != "**") {
        return Err(SelectionError::BadPattern(g.to_string()));
    }
    Ok(())
}

/// Whether `path` matches glob `g` (see the module docs).
fn glob_path(g: &str, path: &str) -> bool {
    if !g.contains('/') {
        let name = path.rsplit('/').next().unwrap_or(path);
        return glob_component(&chars(g), &chars(name));
    }
    let pat: Vec<&str> = g.trim_start_matches('/').split('/').collect();
    let comps: Vec<&str> = path.split('/').collect();
    glob_components(&pat, &comps) || (comps.len() > 1 && glob_components(&pat, &comps[1..]))
}

fn glob_components(pat: &[&str], comps: &[&str]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((&"**", rest)) => (0..=comps.len()).any(|k| glob_components(rest, &comps[k..])),
        Some((p, rest)) => match comps.split_first() {
            Some((c, more)) => glob_component(&chars(p), &chars(c)) && glob_components(rest, more),
            None => false,
        },
    }
}

/// `*` and `?` within one path component (iterative, with one backtrack point: linear
/// enough for any pattern a person types).
fn glob_component(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

#[cfg(test)]
#[path = "selection_tests.rs"]
mod tests;
