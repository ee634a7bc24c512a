//! The lines that outlive the bars: the summary printed when a torrent's run ends, the
//! start line of a resumed download, and `--progress-json`'s objects. Pure; one unit
//! family throughout (binary sizes, `MiB` and `MiB/s`, as the bars show them).

use super::frame::{fmt_duration, percent, state_word, Memory};
use crate::cli::info::human_bytes;
use crate::cli::text::{clean, quoted};
use crate::metainfo::Metainfo;
use crate::session::Summary;
use crate::snapshot::{Phase, Snapshot};

/// `12.3 s` under a minute, `4m05s` above.
fn fmt_elapsed(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        fmt_duration(secs as u64)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `swarm: complete "name": …` — what happened, in one line. Uploaded bytes and the ratio
/// count earlier runs too (resume data), as the ratio goal does. Download time leaves out
/// the time spent seeding afterwards.
pub fn summary_line(meta: &Metainfo, s: &Summary) -> String {
    line_of(&meta.name, meta.total_length(), s)
}

fn line_of(name: &str, total: u64, s: &Summary) -> String {
    let st = &s.stats;
    let name = quoted(name);
    let path = clean(&s.path.display().to_string()).into_owned();
    let uploaded = s.before.uploaded + st.uploaded;
    let ratio = uploaded as f64 / total.max(1) as f64;
    let seeded = s.seeded.unwrap_or_default();
    // A fetch that ends on completion "seeds" for a moment: not worth a clause.
    let did_seed = seeded.as_secs() >= 1 || st.peers_served > 0;
    let seeded_to = format!(
        "seeded {} to {} peer{}",
        fmt_duration(seeded.as_secs()),
        st.peers_served,
        plural(st.peers_served),
    );
    if s.complete && st.downloaded == 0 && s.resumed_bytes >= total && s.selection.is_none() {
        // Nothing to download: it was all on disk.
        return if did_seed {
            format!(
                "swarm: complete {name}: {} at {path}; {seeded_to}, uploaded {} (ratio {ratio:.2})",
                human_bytes(total),
                human_bytes(uploaded),
            )
        } else {
            format!(
                "swarm: complete {name}: {} already at {path}; downloaded 0 B, resumed {}",
                human_bytes(total),
                human_bytes(s.resumed_bytes)
            )
        };
    }
    let secs = s.elapsed.saturating_sub(seeded).as_secs_f64().max(1e-3);
    let head = match (s.complete, s.selection) {
        (true, None) => format!("swarm: complete {name}: {} at {path}", human_bytes(total)),
        (true, Some(w)) => format!(
            "swarm: complete {name}: {} of {} files ({} of {}) at {path}",
            w.files,
            w.of_files,
            human_bytes(w.bytes),
            human_bytes(total)
        ),
        (false, None) => format!(
            "swarm: incomplete {name}: {} of {} ({}) at {path}",
            human_bytes(st.verified_bytes),
            human_bytes(total),
            percent(st.verified_bytes, total)
        ),
        (false, Some(w)) => format!(
            "swarm: incomplete {name}: {} of {} ({}) wanted, {} of {} files, at {path}",
            human_bytes(st.wanted_verified_bytes),
            human_bytes(st.wanted_bytes),
            percent(st.wanted_verified_bytes, st.wanted_bytes),
            w.files,
            w.of_files
        ),
    };
    let mut line = format!(
        "{head}; downloaded {} in {} ({}/s), resumed {}, uploaded {} (ratio {ratio:.2}), peers {}",
        human_bytes(st.downloaded),
        fmt_elapsed(secs),
        human_bytes((st.downloaded as f64 / secs) as u64),
        human_bytes(s.resumed_bytes),
        human_bytes(uploaded),
        st.peers_seen,
    );
    if st.wasted > 0 {
        line.push_str(&format!(", wasted {}", human_bytes(st.wasted)));
    }
    if st.failed_pieces > 0 {
        line.push_str(&format!(", failed pieces {}", st.failed_pieces));
    }
    if did_seed {
        line.push_str(&format!("; {seeded_to}"));
    }
    line
}

/// `resuming: 23.69 MiB (45.0%) already verified`, when a download starts with data.
pub fn resume_line(s: &Snapshot) -> Option<String> {
    (s.phase == Phase::Downloading && s.resumed_bytes > 0 && s.resumed_bytes < s.total_bytes).then(
        || {
            format!(
                "swarm: resuming {}: {} ({}) already verified",
                quoted(&s.name),
                human_bytes(s.resumed_bytes),
                percent(s.resumed_bytes, s.total_bytes)
            )
        },
    )
}

/// One `--progress-json` object: what a script or GUI needs of a torrent, once a second.
pub fn json_object(s: &Snapshot, mem: &mut Memory) -> serde_json::Value {
    let st = &s.stats;
    let phase = match s.phase {
        Phase::Checking => "checking",
        Phase::Metadata => "metadata",
        Phase::Downloading => "downloading",
        Phase::Seeding => "seeding",
        Phase::Done => "done",
    };
    // Checking counts the whole torrent; after that, what is wanted of it.
    let (done, total) = if s.phase == Phase::Checking {
        (s.checked_bytes, s.total_bytes)
    } else {
        let (target, done) = s.target();
        (done, target)
    };
    let wanted = s.selection.map(
        |w| serde_json::json!({"files": w.files, "files_total": w.of_files, "bytes": w.bytes}),
    );
    let eta = (s.phase == Phase::Downloading && st.peers_connected > 0)
        .then(|| s.eta_secs())
        .flatten();
    serde_json::json!({
        "name": s.name,
        "phase": phase,
        "state": if s.phase == Phase::Metadata {
            Some(super::frame::metadata_word(s))
        } else {
            state_word(s, mem)
        },
        "bytes_done": done,
        "bytes_total": total,
        "torrent_bytes": s.total_bytes,
        "selection": wanted,
        "downloaded": st.downloaded,
        "uploaded": s.totals().uploaded,
        "down_rate": st.down_rate.round() as u64,
        "up_rate": st.up_rate.round() as u64,
        "peers": st.peers_connected,
        "peers_known": st.peers_known,
        "eta_secs": eta,
        "ratio": (s.ratio() * 1000.0).round() / 1000.0,
        "trackers_ok": s.trackers_ok,
        "trackers_total": s.trackers_total,
        "tracker_error": s.tracker_status,
        "stalled": mem.stall,
        // For soaks and scripts: how the torrent fared against corrupt data (a peer is
        // banned by IP after repeated bad pieces; `wasted` counts bytes we threw away).
        "peers_banned": st.peers_banned,
        "failed_pieces": st.failed_pieces,
        "wasted": st.wasted,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::snapshot::{Stats, Totals};

    const MIB: u64 = 1 << 20;

    fn summary(downloaded: u64, resumed: u64, elapsed: u64, seeded: u64) -> Summary {
        Summary {
            stats: Stats {
                downloaded,
                verified_bytes: downloaded + resumed,
                uploaded: 3 * MIB,
                peers_seen: 2,
                peers_served: 1,
                ..Stats::default()
            },
            before: Totals::default(),
            meta: None,
            resumed_bytes: resumed,
            elapsed: Duration::from_secs(elapsed),
            complete: true,
            stopped: false,
            seeded: Some(Duration::from_secs(seeded)),
            path: "out/movie.bin".into(),
            selection: None,
        }
    }

    #[test]
    fn a_selection_says_how_much_of_the_torrent_it_was() {
        let w = crate::selection::Wanted {
            files: 1,
            of_files: 12,
            bytes: 3 * MIB,
        };
        let mut s = summary(4 * MIB, 0, 2, 0);
        s.selection = Some(w);
        let line = line_of("season", 100 * MIB, &s);
        assert!(
            line.starts_with(
                "swarm: complete \"season\": 1 of 12 files (3.00 MiB of 100.00 MiB) at"
            ),
            "{line}"
        );
        s.complete = false;
        s.stats.wanted_bytes = 4 * MIB;
        s.stats.wanted_verified_bytes = MIB;
        let line = line_of("season", 100 * MIB, &s);
        assert!(
            line.contains("1.00 MiB of 4.00 MiB (25.0%) wanted, 1 of 12 files"),
            "{line}"
        );
        // --progress-json counts what is wanted, and says so.
        let snap = Snapshot {
            phase: Phase::Downloading,
            total_bytes: 100 * MIB,
            selection: Some(w),
            stats: Stats {
                wanted_bytes: 4 * MIB,
                wanted_verified_bytes: MIB,
                verified_bytes: 2 * MIB,
                ..Stats::default()
            },
            ..Snapshot::default()
        };
        let j = json_object(&snap, &mut Memory::default());
        assert_eq!(j["bytes_done"], MIB);
        assert_eq!(j["bytes_total"], 4 * MIB);
        assert_eq!(j["torrent_bytes"], 100 * MIB);
        assert_eq!(j["selection"]["files"], 1);
        assert_eq!(j["selection"]["files_total"], 12);
    }

    #[test]
    fn a_download_that_seeded_counts_only_download_time() {
        // 30 MiB in 40 s, 25 of them seeding: 15 s at 2 MiB/s.
        let line = line_of("movie.bin", 30 * MIB, &summary(30 * MIB, 0, 40, 25));
        assert!(
            line.starts_with("swarm: complete \"movie.bin\": 30.00 MiB at out/movie.bin;"),
            "{line}"
        );
        assert!(
            line.contains("downloaded 30.00 MiB in 15.0 s (2.00 MiB/s)"),
            "{line}"
        );
        assert!(line.contains("uploaded 3.00 MiB (ratio 0.10)"), "{line}");
        assert!(line.ends_with("; seeded 25s to 1 peer"), "{line}");
        assert!(!line.contains("MB/s") && !line.contains("0 B/"), "{line}");
    }

    #[test]
    fn a_seed_says_how_long_to_whom_how_much_and_the_ratio() {
        let line = line_of("movie.bin", 30 * MIB, &summary(0, 30 * MIB, 125, 125));
        assert_eq!(
            line,
            "swarm: complete \"movie.bin\": 30.00 MiB at out/movie.bin; seeded 2m05s to 1 peer, uploaded 3.00 MiB (ratio 0.10)"
        );
    }

    #[test]
    fn an_interrupted_download_says_how_far_it_got() {
        let mut s = summary(10 * MIB, 0, 5, 0);
        s.complete = false;
        s.stopped = true;
        s.seeded = None;
        let line = line_of("movie.bin", 40 * MIB, &s);
        assert!(
            line.starts_with(
                "swarm: incomplete \"movie.bin\": 10.00 MiB of 40.00 MiB (25.0%) at out/movie.bin;"
            ),
            "{line}"
        );
    }

    #[test]
    fn the_resume_line_says_what_was_verified() {
        let s = Snapshot {
            name: "movie.bin".into(),
            phase: Phase::Downloading,
            total_bytes: 100 * MIB,
            resumed_bytes: 45 * MIB,
            ..Snapshot::default()
        };
        assert_eq!(
            resume_line(&s).unwrap(),
            "swarm: resuming \"movie.bin\": 45.00 MiB (45.0%) already verified"
        );
        assert!(resume_line(&Snapshot {
            resumed_bytes: 0,
            ..s.clone()
        })
        .is_none());
    }

    #[test]
    fn json_has_an_eta_only_when_there_is_one() {
        let mut s = Snapshot {
            name: "m".into(),
            phase: Phase::Downloading,
            total_bytes: 100 * MIB,
            ..Snapshot::default()
        };
        let v = json_object(&s, &mut Memory::default());
        assert!(v["eta_secs"].is_null(), "{v}");
        assert_eq!(v["state"], "waiting for peers");
        s.stats.peers_connected = 1;
        s.stats.down_rate = MIB as f64;
        let v = json_object(&s, &mut Memory::default());
        assert_eq!(v["eta_secs"], 100, "{v}");
        assert_eq!(v["bytes_total"], 100 * MIB, "{v}");
    }

    #[test]
    fn json_says_how_a_torrent_fared_against_corrupt_data() {
        let s = Snapshot {
            phase: Phase::Downloading,
            stats: Stats {
                peers_banned: 1,
                failed_pieces: 2,
                wasted: 3 * MIB,
                ..Stats::default()
            },
            ..Snapshot::default()
        };
        let v = json_object(&s, &mut Memory::default());
        assert_eq!(v["peers_banned"], 1, "{v}");
        assert_eq!(v["failed_pieces"], 2, "{v}");
        assert_eq!(v["wasted"], 3 * MIB, "{v}");
    }
}
