//! `fetch`'s selection options: which files to download and in what order. Parsing only;
//! the rules are [`crate::selection`]'s.

use clap::Args;

use crate::selection::{parse_indexes, Selector};

/// What to download of each torrent, and in what order.
#[derive(Args, Debug, Default, Clone)]
pub(super) struct SelectArgs {
    /// Download only these files, by the numbers `swarm info` lists (from 1): e.g. 1,3-5.
    #[arg(long, value_name = "LIST", value_parser = parse_list, help_heading = "Selection")]
    files: Option<FileList>,
    /// Download only files whose path matches GLOB (repeatable; `*` and `?` stay within a
    /// path component, `**` spans any; a GLOB without `/` matches the file name).
    #[arg(long, value_name = "GLOB", help_heading = "Selection")]
    only: Vec<String>,
    /// Skip files whose path matches GLOB (repeatable; wins over --files and --only).
    #[arg(long, value_name = "GLOB", help_heading = "Selection")]
    exclude: Vec<String>,
    /// Download pieces in file order, for playing while downloading (a few pieces ahead
    /// are still picked rarest first, so the swarm keeps trading).
    #[arg(long, help_heading = "Selection")]
    pub sequential: bool,
    /// Fetch each wanted file's first and last pieces first (media players read both
    /// before they play).
    #[arg(long, help_heading = "Selection")]
    pub first_last: bool,
}

impl SelectArgs {
    pub fn selector(&self) -> Selector {
        Selector {
            indexes: self.files.clone().map(|l| l.0),
            only: self.only.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

/// `--files 1,3-5`, parsed (one value: clap would take a bare `Vec` for many).
#[derive(Debug, Clone)]
struct FileList(Vec<std::ops::RangeInclusive<usize>>);

fn parse_list(s: &str) -> Result<FileList, String> {
    parse_indexes(s).map(FileList).map_err(|e| e.to_string())
}
