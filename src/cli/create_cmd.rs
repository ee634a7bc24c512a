//! `swarm create`: writes the torrent (never over an existing file without `--force`) and
//! names what was left out of it.

use super::*;
use crate::create::{create_torrent_reporting, CreateOptions};

pub(super) fn create_cmd(a: CreateArgs, quiet: bool) -> Result<()> {
    let opts = CreateOptions {
        path: a.path.clone(),
        trackers: a.trackers,
        piece_length: a.piece_length,
        private: a.private,
        comment: a.comment,
        created_by: Some(concat!("swarm/", env!("CARGO_PKG_VERSION")).to_string()),
        creation_date: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64),
        include_junk: a.include_junk,
    };
    let (bytes, skipped) = create_torrent_reporting(&opts)
        .with_context(|| format!("creating a torrent of {}", a.path.display()))?;
    let meta = Metainfo::from_bytes(&bytes).context("the created torrent does not parse back")?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", meta.name)));
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if a.force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut file = match open.open(&out) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists (use --force to replace it)",
            out.display()
        ),
        r => r.with_context(|| format!("writing {}", out.display()))?,
    };
    use std::io::Write as _;
    file.write_all(&bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    if !quiet {
        let shown = |p: &Path| text::clean(&p.display().to_string()).into_owned();
        if !skipped.junk.is_empty() {
            // The first few by name: a tree may hold thousands of .DS_Store files.
            let mut names: Vec<_> = skipped.junk.iter().take(5).map(|p| shown(p)).collect();
            if skipped.junk.len() > 5 {
                names.push(format!("and {} more", skipped.junk.len() - 5));
            }
            eprintln!(
                "swarm: left out {} (version control / OS clutter; --include-junk adds it)",
                names.join(", ")
            );
        }
        for (path, why) in &skipped.unreadable {
            eprintln!("swarm: skipped {}: {why}", shown(path));
        }
    }
    println!(
        "{}  {}  ({} pieces of {})",
        meta.info_hash,
        text::clean(&out.display().to_string()),
        meta.num_pieces(),
        info::human_bytes(meta.piece_length as u64)
    );
    Ok(())
}
