//! `swarm info`: a torrent's metadata as human text or as JSON.
//!
//! Owns only presentation: everything shown comes from an already validated [`Metainfo`]
//! or, for a `magnet:` link, from a parsed [`Magnet`] (what the link says, nothing more).
//! Torrent-supplied strings are printed through [`clean`], so a hostile
//! name or comment cannot drive the terminal (JSON goes through
//! [`json_safe`](super::text::json_safe) where it is printed).

use std::fmt::Write as _;

use serde_json::json;

use anyhow::{bail, Context, Result};

use super::text::{self, clean};
use super::{load_torrent, scrape, InfoArgs};

use crate::magnet::{self, Magnet};
use crate::metainfo::Metainfo;

/// What `info` says under a magnet link: it has no file list until metadata exchange.
pub const MAGNET_NOTE: &str = "a magnet link carries no file list or sizes: `swarm fetch` \
                               gets them from peers by metadata exchange (BEP 9) before the \
                               download starts";

pub use crate::units::human_bytes;

/// Multi-line, human-readable summary.
pub fn render_text(m: &Metainfo) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "Name:         {}", clean(&m.name));
    let _ = writeln!(s, "Info hash:    {}", m.info_hash);
    let _ = writeln!(
        s,
        "Total size:   {} ({} bytes)",
        human_bytes(m.total_length()),
        m.total_length()
    );
    let _ = writeln!(
        s,
        "Pieces:       {} x {} ({} bytes)",
        m.num_pieces(),
        human_bytes(u64::from(m.piece_length)),
        m.piece_length
    );
    let _ = writeln!(s, "Private:      {}", if m.private { "yes" } else { "no" });
    if let Some(c) = &m.comment {
        let _ = writeln!(s, "Comment:      {}", clean(c));
    }
    if let Some(c) = &m.created_by {
        let _ = writeln!(s, "Created by:   {}", clean(c));
    }
    if let Some(d) = m.creation_date {
        let _ = writeln!(s, "Created:      {}", format_unix_utc(d));
    }
    let tiers = m.tracker_tiers();
    if tiers.is_empty() {
        let _ = writeln!(s, "Trackers:     none (trackerless)");
    } else {
        let _ = writeln!(s, "Trackers:");
        for (i, tier) in tiers.iter().enumerate() {
            let _ = writeln!(s, "  tier {}: {}", i + 1, clean(&tier.join(" ")));
        }
    }
    if !m.url_list.is_empty() {
        let _ = writeln!(s, "Web seeds:");
        for u in &m.url_list {
            let _ = writeln!(s, "  {}", clean(u));
        }
    }
    // Numbered from 1, as `fetch --files` takes them.
    let _ = writeln!(s, "Files ({}):", m.files.len());
    let width = m.files.len().to_string().len();
    for (i, f) in m.files.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>width$}  {:>10}  {}",
            i + 1,
            human_bytes(f.length),
            clean(&f.path.to_string_lossy())
        );
    }
    s
}

/// The same fields as [`render_text`], machine-readable.
pub fn render_json(m: &Metainfo) -> serde_json::Value {
    let files: Vec<_> = m
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| json!({ "index": i + 1, "path": f.path.to_string_lossy(), "length": f.length }))
        .collect();
    json!({
        "name": m.name,
        "info_hash": m.info_hash.to_hex(),
        "total_length": m.total_length(),
        "piece_length": m.piece_length,
        "num_pieces": m.num_pieces(),
        "private": m.private,
        "multi_file": m.multi_file,
        "trackers": m.tracker_tiers(),
        "url_list": m.url_list,
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "files": files,
    })
}

/// What a magnet link says, as text: name, info-hash, trackers as tiers, peers, a note.
pub fn render_magnet_text(m: &Magnet) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let name = m.name.as_deref().map_or("(not given)".into(), clean);
    let _ = writeln!(s, "Name:         {name}");
    let _ = writeln!(s, "Info hash:    {}", m.info_hash);
    if m.trackers.is_empty() {
        let _ = writeln!(s, "Trackers:     none");
    } else {
        let _ = writeln!(s, "Trackers:");
        for (i, t) in m.trackers.iter().enumerate() {
            let _ = writeln!(s, "  tier {}: {}", i + 1, clean(t));
        }
    }
    let peers = magnet_peers(m);
    if peers.is_empty() {
        let _ = writeln!(s, "Peers:        none");
    } else {
        let _ = writeln!(s, "Peers:");
        for p in &peers {
            let _ = writeln!(s, "  {}", clean(p));
        }
    }
    let _ = writeln!(s, "Note:         {MAGNET_NOTE}");
    s
}

/// The same fields as [`render_magnet_text`], machine-readable.
pub fn render_magnet_json(m: &Magnet) -> serde_json::Value {
    let tiers: Vec<[&String; 1]> = m.trackers.iter().map(|t| [t]).collect();
    json!({
        "magnet": true,
        "name": m.name,
        "info_hash": m.info_hash.to_hex(),
        "trackers": tiers,
        "peers": magnet_peers(m),
        "note": MAGNET_NOTE,
    })
}

/// `x.pe` addresses, then host names, as text.
fn magnet_peers(m: &Magnet) -> Vec<String> {
    let addrs = m.peers.iter().map(ToString::to_string);
    addrs.chain(m.peer_hosts.iter().cloned()).collect()
}

/// `swarm info 'magnet:?…'`: what the link says.
fn magnet_info(a: &InfoArgs) -> Result<()> {
    let m = Magnet::parse(&a.torrent).context("invalid magnet link")?;
    if a.scrape {
        bail!("--scrape needs a .torrent for now, not a magnet link");
    }
    if a.json {
        let v = render_magnet_json(&m);
        println!("{}", text::json_safe(&serde_json::to_string_pretty(&v)?));
    } else {
        print!("{}", render_magnet_text(&m));
    }
    Ok(())
}

/// `"2023-11-14 22:13:20 UTC (1700000000)"`; just the number when out of calendar range.
fn format_unix_utc(secs: i64) -> String {
    crate::units::utc(secs).map_or(secs.to_string(), |t| format!("{t} ({secs})"))
}

/// `swarm info`: the torrent as text or JSON, and with `--scrape` what its trackers say.
pub(super) fn info_cmd(a: InfoArgs) -> Result<()> {
    if magnet::is_magnet(&a.torrent) {
        return magnet_info(&a);
    }
    let meta = load_torrent(&a.torrent)?;
    let scrapes = if a.scrape {
        Some(scrape::scrape_all(&meta)?)
    } else {
        None
    };
    if a.json {
        let mut v = render_json(&meta);
        if let Some(sc) = &scrapes {
            let list = sc
                .results
                .iter()
                .map(|(url, r)| match r {
                    Ok(s) => serde_json::json!({"url": url, "seeders": s.complete,
                        "leechers": s.incomplete, "completed": s.downloaded}),
                    Err(e) => serde_json::json!({"url": url, "error": e}),
                })
                .collect();
            v["scrape"] = serde_json::Value::Array(list);
            v["scrape_skipped"] = sc.skipped.into();
        }
        println!("{}", text::json_safe(&serde_json::to_string_pretty(&v)?));
    } else {
        print!("{}", render_text(&meta));
        if let Some(sc) = &scrapes {
            if sc.skipped > 0 {
                println!(
                    "Scrape (the first {} trackers; {} more not asked):",
                    sc.results.len(),
                    sc.skipped
                );
            } else {
                println!("Scrape:");
            }
            for (url, r) in &sc.results {
                let url = text::clean(url);
                match r {
                    Ok(s) => println!(
                        "  {url}: {} seeders, {} leechers, {} completed",
                        s.complete, s.incomplete, s.downloaded
                    ),
                    Err(e) => println!("  {url}: {}", text::clean(e)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{create_torrent, CreateOptions};

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.00 KiB");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 << 19), "1.50 MiB");
        assert_eq!(human_bytes(5 << 30), "5.00 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.00 EiB");
    }

    #[test]
    fn dates() {
        assert_eq!(format_unix_utc(0), "1970-01-01 00:00:00 UTC (0)");
        assert_eq!(
            format_unix_utc(1_700_000_000),
            "2023-11-14 22:13:20 UTC (1700000000)"
        );
        assert_eq!(
            format_unix_utc(951_782_400),
            "2000-02-29 00:00:00 UTC (951782400)"
        );
        assert_eq!(format_unix_utc(-1), "1969-12-31 23:59:59 UTC (-1)");
        assert_eq!(format_unix_utc(i64::MAX), i64::MAX.to_string());
        assert_eq!(format_unix_utc(i64::MIN), i64::MIN.to_string());
    }

    #[test]
    fn renders_text_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pack");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.bin"), vec![1u8; 3 << 19]).unwrap();
        std::fs::write(root.join("b.txt"), b"hello").unwrap();
        let bytes = create_torrent(&CreateOptions {
            path: root,
            trackers: vec!["http://t1/a".into(), "http://t2/a".into()],
            comment: Some("a comment".into()),
            creation_date: Some(0),
            include_junk: false,
            ..Default::default()
        })
        .unwrap();
        let m = Metainfo::from_bytes(&bytes).unwrap();

        let text = render_text(&m);
        for needle in [
            "Name:         pack",
            &format!("Info hash:    {}", m.info_hash.to_hex()),
            &format!("1.50 MiB ({} bytes)", (3 << 19) + 5),
            "Private:      no",
            "tier 1: http://t1/a",
            "tier 2: http://t2/a",
            "Comment:      a comment",
            "Created:      1970-01-01 00:00:00 UTC",
            "Files (2):",
            "2    1.50 MiB  pack/sub/a.bin",
            "1         5 B  pack/b.txt",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(!text.contains("Created by"));

        let j = render_json(&m);
        assert_eq!(j["name"], "pack");
        assert_eq!(j["info_hash"], m.info_hash.to_hex());
        assert_eq!(j["total_length"], (3 << 19) + 5);
        assert_eq!(j["num_pieces"], m.num_pieces());
        assert_eq!(j["trackers"], json!([["http://t1/a"], ["http://t2/a"]]));
        assert_eq!(
            j["files"][0],
            json!({"index": 1, "path": "pack/b.txt", "length": 5})
        );
        assert_eq!(j["files"][1]["path"], "pack/sub/a.bin");
        assert_eq!(j["created_by"], serde_json::Value::Null);
        assert_eq!(j["private"], false);
    }

    #[test]
    fn renders_a_magnet() {
        let m = Magnet::parse(
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=Big+Buck%1B[2J\
             &tr=udp://a:1&tr=http://b/announce&x.pe=1.2.3.4:5&x.pe=[::1]:6&x.pe=h.example:7",
        )
        .unwrap();
        let text = render_magnet_text(&m);
        for needle in [
            "Info hash:    dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c",
            "tier 1: udp://a:1\n",
            "tier 2: http://b/announce\n",
            "Peers:\n  1.2.3.4:5\n  [::1]:6\n  h.example:7\n",
            "metadata exchange",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        // The name's escape sequence does not reach the terminal.
        assert!(text.starts_with("Name:         Big Buck"), "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");

        let j = render_magnet_json(&m);
        assert_eq!(j["info_hash"], "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c");
        assert_eq!(j["trackers"], json!([["udp://a:1"], ["http://b/announce"]]));
        assert_eq!(j["peers"], json!(["1.2.3.4:5", "[::1]:6", "h.example:7"]));

        let bare = render_magnet_text(&Magnet::new(m.info_hash));
        assert!(bare.contains("Name:         (not given)"), "{bare}");
        assert!(bare.contains("Trackers:     none"), "{bare}");
        assert!(bare.contains("Peers:        none"), "{bare}");
    }
}
