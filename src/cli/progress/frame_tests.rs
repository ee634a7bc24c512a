use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cli::progress::fit::width;
use crate::snapshot::{FileSize, Limits, Stats};
use crate::types::Bitfield;

const MIB: u64 = 1024 * 1024;

const NAMES: [&str; 4] = [
    "a.iso",
    "My Album - The Complete Recordings (Remastered 2024) [FLAC 24-96] disc 1 of 3.iso",
    "名前名前名前名前名前名前名前名前名前名前名前名前名前名前名前名前.mkv",
    "x\u{1b}[2Jy",
];

fn downloading(name: &str) -> Snapshot {
    Snapshot {
        name: name.into(),
        phase: Phase::Downloading,
        total_bytes: 52 * MIB,
        stats: Stats {
            verified_bytes: 23 * MIB,
            downloaded: 23 * MIB,
            down_rate: 2.0 * MIB as f64,
            up_rate: 12_000.0,
            peers_connected: 3,
            peers_seen: 3,
            peers_known: 12,
            ..Stats::default()
        },
        trackers_total: 2,
        trackers_ok: 1,
        tracker_status: Some("tracker.invalid: DNS lookup failed".into()),
        limits: Limits {
            max_down_rate: Some(4 * MIB),
            max_up_rate: Some(MIB),
            ..Limits::default()
        },
        ..Snapshot::default()
    }
}

/// Every state the display knows, for one name.
fn all_states(name: &str) -> Vec<Snapshot> {
    let d = downloading(name);
    let mut checking = d.clone();
    checking.phase = Phase::Checking;
    checking.checked_bytes = 20 * MIB;
    let mut no_peers = d.clone();
    no_peers.stats.peers_connected = 0;
    no_peers.stats.down_rate = 3.0;
    let mut never = no_peers.clone();
    never.stats.peers_seen = 0;
    let mut seeding = d.clone();
    seeding.phase = Phase::Seeding;
    seeding.stats.verified_bytes = d.total_bytes;
    seeding.seeded = Some(Duration::from_secs(95));
    seeding.limits.seed_ratio = Some(2.0);
    let mut seeding_time = seeding.clone();
    seeding_time.limits.seed_ratio = None;
    seeding_time.limits.seed_time = Some(Duration::from_secs(3600));
    let mut done = seeding.clone();
    done.phase = Phase::Done;
    let mut files = d.clone();
    files.piece_len = MIB as u32;
    files.files = (0..40)
        .map(|i| FileSize {
            path: format!("track {i:02} - a rather long title for a song.flac"),
            len: 1300 * 1024,
            wanted: true,
        })
        .collect::<Vec<_>>()
        .into();
    let pieces = (40 * 1300 * 1024u64).div_ceil(MIB) as u32;
    files.total_bytes = 40 * 1300 * 1024;
    let mut have = Bitfield::new(pieces);
    for p in (0..pieces).step_by(3) {
        have.set(p);
    }
    files.have = have;
    let mut metadata = d.clone();
    metadata.phase = Phase::Metadata;
    metadata.total_bytes = 0;
    metadata.metadata = Some(crate::snapshot::MetadataStatus {
        peers: 2,
        pieces_have: 3,
        pieces_total: 7,
    });
    vec![
        d,
        checking,
        no_peers,
        never,
        seeding,
        seeding_time,
        done,
        files,
        metadata,
    ]
}

#[test]
fn no_line_is_wider_than_the_terminal_in_any_state() {
    for w in [40, 60, 80, 120, 200] {
        for name in NAMES {
            let snaps = all_states(name);
            let mut mems = vec![Memory::default(); snaps.len()];
            let lines = frame(&snaps, &mut mems, w);
            assert!(lines.len() > snaps.len(), "{lines:?}");
            for line in &lines {
                assert!(width(line) <= w, "{w}: {line:?} ({} cells)", width(line));
                assert!(!line.chars().any(char::is_control), "{line:?}");
            }
        }
    }
}

#[test]
fn a_normal_download_shows_rates_peers_and_an_eta() {
    let line = torrent_line(&downloading("a.iso"), &mut Memory::default(), 200);
    for part in [
        "44.2%",
        "↓ 2.00 MiB/s (cap 4.00 MiB/s)",
        "peers 3/12",
        "ETA 15s",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(
        line.contains("trackers 1/2 (tracker.invalid: DNS lookup failed)"),
        "{line}"
    );
    // At 80 columns the essentials stay.
    let line = torrent_line(&downloading("a.iso"), &mut Memory::default(), 80);
    for part in ["44.2%", "↓ 2.00 MiB/s", "ETA 15s"] {
        assert!(line.contains(part), "{part}: {line}");
    }
}

#[test]
fn a_stall_says_so_and_gives_no_eta_then_reconnecting() {
    let mut mem = Memory::default();
    let mut s = downloading("a.iso");
    s.stats.peers_connected = 0;
    s.stats.down_rate = 40.0;
    let line = torrent_line(&s, &mut mem, 80);
    assert!(line.contains("stalled: no peers"), "{line}");
    assert!(!line.contains("ETA"), "{line}");
    // A peer is back, nothing flows yet: reconnecting.
    s.stats.peers_connected = 1;
    let line = torrent_line(&s, &mut mem, 80);
    assert!(
        line.contains("reconnecting") && !line.contains("ETA"),
        "{line}"
    );
    // Data flows: the ETA is back.
    s.stats.down_rate = MIB as f64;
    let line = torrent_line(&s, &mut mem, 80);
    assert!(
        line.contains("ETA") && !line.contains("reconnecting"),
        "{line}"
    );
    // Never had a peer: waiting, not stalled.
    let mut s = downloading("a.iso");
    s.stats.peers_connected = 0;
    s.stats.peers_seen = 0;
    s.stats.down_rate = 0.0;
    let line = torrent_line(&s, &mut Memory::default(), 80);
    assert!(line.contains("waiting for peers"), "{line}");
}

#[test]
fn an_absurd_eta_is_not_shown() {
    let mut s = downloading("a.iso");
    s.total_bytes = 1 << 30;
    s.stats.down_rate = 1100.0; // 1 GiB at 1.1 kB/s: 11 days
    let line = torrent_line(&s, &mut Memory::default(), 200);
    assert!(!line.contains("ETA"), "{line}");
}

#[test]
fn checking_and_seeding_use_words() {
    let states = all_states("a.iso");
    let line = torrent_line(&states[1], &mut Memory::default(), 80);
    assert!(line.contains("checking 38.4%"), "{line}");
    let line = torrent_line(&states[4], &mut Memory::default(), 80);
    assert!(line.contains("seeding until ratio 2.0 (0.00)"), "{line}");
    let line = torrent_line(&states[5], &mut Memory::default(), 80);
    assert!(line.contains("seeding until 1h00m (1m35s)"), "{line}");
}

#[test]
fn percent_never_rounds_up_to_done() {
    assert_eq!(percent(9999, 10000), "99.9%");
    assert_eq!(percent(0, 10), "0.0%");
    assert_eq!(percent(10, 10), "100%");
    assert_eq!(percent(0, 0), "100%");
}

#[test]
fn files_in_progress_get_lines_and_the_rest_a_count() {
    let s = all_states("album")[7].clone();
    let lines = file_lines(&s, 120);
    // 40 files of 1.27 MiB over 1 MiB pieces, every third piece verified.
    assert!(lines.len() <= MAX_FILE_LINES + 1, "{lines:?}");
    let last = lines.last().unwrap();
    assert!(last.contains("more in progress"), "{lines:?}");
    assert!(lines[0].starts_with("  track 00"), "{lines:?}");
    // A finished torrent has no file lines.
    let mut done = s.clone();
    done.phase = Phase::Seeding;
    assert!(file_lines(&done, 120).is_empty());
    // Finished files collapse into a count.
    let mut all = s.clone();
    let mut have = Bitfield::new(all.have.len());
    for p in 0..all.have.len() - 1 {
        have.set(p);
    }
    all.have = have;
    let lines = file_lines(&all, 120);
    assert!(lines.last().unwrap().contains("39 files done"), "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let _ = Arc::strong_count(&all.files);
}

#[test]
fn a_selection_shows_only_wanted_files_and_its_own_progress() {
    let mut s = all_states("album")[7].clone();
    // Only tracks 10 to 13 are wanted.
    let files: Vec<FileSize> = s
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| FileSize {
            wanted: (10..14).contains(&i),
            ..f.clone()
        })
        .collect();
    s.files = files.into();
    s.selection = Some(crate::snapshot::Wanted {
        files: 4,
        of_files: 40,
        bytes: 4 * 1300 * 1024,
    });
    s.stats.wanted_bytes = 6 * MIB;
    s.stats.wanted_verified_bytes = 3 * MIB;
    let lines = file_lines(&s, 120);
    assert!(!lines.is_empty());
    for l in &lines {
        let skipped = ["track 00", "track 09", "track 14", "track 39"];
        assert!(!skipped.iter().any(|t| l.contains(t)), "{lines:?}");
    }
    let line = torrent_line(&s, &mut Memory::default(), 200);
    for part in ["50.0%", "3.00 MiB/6.00 MiB", "4 of 40 files"] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert_eq!(s.left(), 3 * MIB);
}

#[test]
fn several_torrents_get_a_total_line_and_nothing_before_data() {
    let a = downloading("a.iso");
    let b = Snapshot {
        name: "b.iso".into(),
        ..Snapshot::default()
    };
    let lines = frame(
        &[a.clone(), b],
        &mut [Memory::default(), Memory::default()],
        80,
    );
    // b has nothing true to show yet (no `0 B/1 B 0%`); the total counts both.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with("total "), "{lines:?}");
    assert!(lines[1].contains("0/2 complete"), "{lines:?}");
}

#[test]
fn a_long_name_keeps_a_bar_and_the_essentials_at_80_columns() {
    for w in [80, 120, 200] {
        let mut s = downloading(NAMES[1]);
        s.limits = Limits::default();
        let line = torrent_line(&s, &mut Memory::default(), w);
        assert!(line.contains("[==="), "{w}: {line}");
        for part in ["44.2%", "↓ 2.00 MiB/s", "peers 3/12", "ETA 15s"] {
            assert!(line.contains(part), "{w}: {part}: {line}");
        }
        assert!(line.starts_with("My Album"), "{line}");
    }
    // Without peers the tracker's trouble outranks the figures.
    let mut s = downloading(NAMES[1]);
    s.stats.peers_connected = 0;
    let line = torrent_line(&s, &mut Memory::default(), 80);
    assert!(
        line.contains("tracker.invalid: DNS lookup failed"),
        "{line}"
    );
}

#[test]
fn a_magnet_says_from_how_many_peers_it_fetches_the_metadata() {
    let mut s = downloading("ubuntu.iso");
    s.phase = Phase::Metadata;
    s.total_bytes = 0;
    s.stats.peers_connected = 0;
    s.metadata = Some(crate::snapshot::MetadataStatus::default());
    let line = |s: &Snapshot| torrent_line(s, &mut Memory::default(), 200);
    assert!(
        line(&s).contains("fetching metadata: waiting for peers"),
        "{}",
        line(&s)
    );
    s.stats.peers_connected = 3;
    assert!(
        line(&s).contains("fetching metadata: 3 peers connected, none offers it yet"),
        "{}",
        line(&s)
    );
    s.metadata = Some(crate::snapshot::MetadataStatus {
        peers: 2,
        pieces_have: 1,
        pieces_total: 4,
    });
    let l = line(&s);
    assert!(l.contains("fetching metadata from 2 peers"), "{l}");
    assert!(l.contains("1/4 pieces"), "{l}");
    // Narrow: the words shrink, never past the width.
    assert!(width(&torrent_line(&s, &mut Memory::default(), 40)) <= 40);
}

#[test]
fn a_stalled_torrent_says_why_under_its_bar() {
    let cause = "No peer was found: the tracker failed (t\u{1b}[2J: refused), and the DHT is off.";
    let mut mems = [Memory {
        stall: Some(cause.into()),
        ..Memory::default()
    }];
    for w in [20, 80, 200] {
        let lines = frame(&[downloading("a.iso")], &mut mems, w);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].trim_start().starts_with("stalled: No peer"),
            "{lines:?}"
        );
        assert!(width(&lines[1]) <= w, "{lines:?}");
        assert!(!lines[1].chars().any(char::is_control), "{lines:?}");
    }
    // Not stalled: no line.
    let lines = frame(&[downloading("a.iso")], &mut [Memory::default()], 80);
    assert_eq!(lines.len(), 1);
}
