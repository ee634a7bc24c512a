//! What the terminal shows of running torrents, as lines: pure (snapshots and a width in,
//! text out), so every state and width is tested without a terminal.
//!
//! Numbers are shown only while they mean something: no ETA without peers or data coming
//! in (a state word says why: `stalled: no peers`, `reconnecting`), `checking 45%` while
//! data on disk is re-hashed, the seeding goal while seeding. Every line goes through
//! [`fit`], so none is wider than the width given.

use super::files::{file_progress, FileLine};
use super::fit::{fit, Seg, KEEP};
use crate::cli::info::human_bytes;
use crate::cli::text::clean;
use crate::snapshot::{Phase, Snapshot};

/// Most file lines shown under a multi-file torrent; the rest are counted on one line.
pub const MAX_FILE_LINES: usize = 8;

/// An ETA past this is not an estimate anyone can use; it is left out.
const ETA_MAX_SECS: u64 = 100 * 3600;

/// Below this rate (bytes/s) nothing is really arriving: no ETA, a state word instead.
const STALL_RATE: f64 = 1024.0;

/// What the display remembers of a torrent between frames.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The torrent lost every peer (or data stopped) after having some: the next peers are
    /// a reconnection, until data flows again.
    pub stalled: bool,
    /// Why it is stalled, while the stall watch says it is (the doctor's cause).
    pub stall: Option<String>,
}

/// The state of a downloading torrent, in words, when the numbers would mislead.
pub fn state_word(s: &Snapshot, mem: &mut Memory) -> Option<String> {
    let st = &s.stats;
    if s.phase != Phase::Downloading {
        return None;
    }
    // No peer, no data, whatever the rate's average still says while it decays.
    if st.peers_connected == 0 {
        if st.peers_seen == 0 {
            return Some("waiting for peers".into());
        }
        mem.stalled = true;
        return Some("stalled: no peers".into());
    }
    if st.down_rate >= STALL_RATE {
        mem.stalled = false;
        return None;
    }
    if mem.stalled {
        return Some("reconnecting".into());
    }
    // Peers, but nothing arriving: after data came once, that is a stall.
    if st.downloaded > 0 {
        return Some("stalled: no data".into());
    }
    Some("connecting".into())
}

fn rate(r: f64) -> String {
    format!("{}/s", human_bytes(r.max(0.0) as u64))
}

/// `45.1%` (never 100.0% before the end: 99.96% shows as 99.9%).
pub fn percent(done: u64, total: u64) -> String {
    if total == 0 || done >= total {
        return "100%".into();
    }
    let p = (done as f64 * 1000.0 / total as f64).floor() / 10.0;
    format!("{p:.1}%")
}

pub fn fmt_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// The ETA, when the rate and peers make it honest.
fn eta(s: &Snapshot) -> Option<u64> {
    if s.stats.peers_connected == 0 || s.stats.down_rate < STALL_RATE {
        return None;
    }
    s.eta_secs().filter(|&t| t > 0 && t <= ETA_MAX_SECS)
}

fn trackers_seg(s: &Snapshot) -> Option<Seg> {
    if s.trackers_total == 0 {
        return None;
    }
    let count = format!("trackers {}/{}", s.trackers_ok, s.trackers_total);
    // Without peers the tracker's trouble is likely why: it outranks the figures then;
    // with peers it is a footnote.
    let prio = if s.stats.peers_connected == 0 { 10 } else { 3 };
    let seg = match &s.tracker_status {
        Some(why) => Seg::new(prio, format!("{count} ({})", clean(why))).or_short(clean(why)),
        None => Seg::new(prio, count),
    };
    Some(seg)
}

/// The download rate worth showing: the average decays for seconds after the last peer
/// left, but nothing arrives without a peer.
fn down_rate(s: &Snapshot) -> f64 {
    if s.stats.peers_connected == 0 {
        0.0
    } else {
        s.stats.down_rate
    }
}

/// The `↓ rate` field, marked when the session's cap is set.
fn down_seg(s: &Snapshot) -> Seg {
    let r = rate(down_rate(s));
    match s.limits.max_down_rate {
        Some(cap) => {
            Seg::new(9, format!("↓ {r} (cap {})", rate(cap as f64))).or_short(format!("↓ {r}*"))
        }
        None => Seg::new(9, format!("↓ {r}")),
    }
}

fn up_seg(s: &Snapshot, prio: u8) -> Seg {
    let r = rate(s.stats.up_rate);
    match s.limits.max_up_rate {
        Some(cap) => {
            Seg::new(prio, format!("↑ {r} (cap {})", rate(cap as f64))).or_short(format!("↑ {r}*"))
        }
        None => Seg::new(prio, format!("↑ {r}")),
    }
}

fn peers_seg(s: &Snapshot) -> Seg {
    let st = &s.stats;
    Seg::new(
        7,
        format!(
            "peers {}/{}",
            st.peers_connected,
            st.peers_known.max(st.peers_connected)
        ),
    )
    .or_short(format!("p{}", st.peers_connected))
}

/// The seeding state: how long, and toward which goal.
fn seeding_word(s: &Snapshot) -> String {
    let seeded = fmt_duration(s.totals().seeded.as_secs());
    match (s.limits.seed_ratio, s.limits.seed_time) {
        (Some(goal), _) => format!("seeding until ratio {goal:.1} ({:.2})", s.ratio()),
        (None, Some(t)) => format!("seeding until {} ({seeded})", fmt_duration(t.as_secs())),
        (None, None) => format!("seeding {seeded}"),
    }
}

/// What a magnet's fetch is doing, in words: from how many peers, or what it waits for.
pub fn metadata_word(s: &Snapshot) -> String {
    let serving = s.metadata.map_or(0, |m| m.peers);
    match (serving, s.stats.peers_connected) {
        (0, 0) => "fetching metadata: waiting for peers".into(),
        (0, n) => format!(
            "fetching metadata: {n} peer{} connected, none offers it yet",
            if n == 1 { "" } else { "s" }
        ),
        (1, _) => "fetching metadata from 1 peer".into(),
        (n, _) => format!("fetching metadata from {n} peers"),
    }
}

/// The line of one torrent.
pub fn torrent_line(s: &Snapshot, mem: &mut Memory, width: usize) -> String {
    let name = clean(&s.name);
    let st = &s.stats;
    let total = s.total_bytes;
    let mut segs = Vec::new();
    let fraction;
    match s.phase {
        Phase::Checking => {
            fraction = s.checked_bytes as f64 / total.max(1) as f64;
            segs.push(Seg::new(
                KEEP,
                format!("checking {}", percent(s.checked_bytes, total)),
            ));
            segs.push(Seg::new(
                4,
                format!("{}/{}", human_bytes(s.checked_bytes), human_bytes(total)),
            ));
        }
        Phase::Metadata => {
            fraction = 0.0;
            segs.push(Seg::new(KEEP, metadata_word(s)).or_short("metadata"));
            if let Some(m) = s.metadata.filter(|m| m.pieces_total > 1) {
                segs.push(Seg::new(
                    3,
                    format!("{}/{} pieces", m.pieces_have, m.pieces_total),
                ));
            }
            segs.push(peers_seg(s));
            segs.extend(trackers_seg(s));
        }
        Phase::Downloading => {
            fraction = s.progress();
            let (target, done) = s.target();
            segs.push(Seg::new(KEEP, percent(done, target)));
            segs.push(
                Seg::new(4, format!("{}/{}", human_bytes(done), human_bytes(target)))
                    .or_short(human_bytes(target)),
            );
            if let Some(w) = s.selection {
                segs.push(Seg::new(5, format!("{} of {} files", w.files, w.of_files)));
            }
            segs.push(down_seg(s));
            segs.push(up_seg(s, 3));
            segs.push(peers_seg(s));
            match state_word(s, mem) {
                Some(word) => segs.push(Seg::new(KEEP, word)),
                None => {
                    if let Some(t) = eta(s) {
                        segs.push(Seg::new(8, format!("ETA {}", fmt_duration(t))));
                    }
                }
            }
            segs.push(Seg::new(1, format!("ratio {:.2}", s.ratio())));
            segs.extend(trackers_seg(s));
        }
        Phase::Seeding => {
            fraction = 1.0;
            segs.push(Seg::new(KEEP, seeding_word(s)).or_short("seeding"));
            segs.push(up_seg(s, 9));
            segs.push(
                Seg::new(
                    6,
                    format!(
                        "serving {} of {} peers",
                        st.peers_unchoked, st.peers_connected
                    ),
                )
                .or_short(format!("peers {}", st.peers_connected)),
            );
            segs.push(Seg::new(
                5,
                format!("up {}", human_bytes(s.totals().uploaded)),
            ));
            if s.limits.seed_ratio.is_none() {
                segs.push(Seg::new(4, format!("ratio {:.2}", s.ratio())));
            }
            segs.extend(trackers_seg(s));
        }
        Phase::Done => {
            fraction = 1.0;
            segs.push(Seg::new(KEEP, "done"));
            segs.push(Seg::new(5, human_bytes(total)));
        }
    }
    fit(width, &name, Some(fraction), &segs)
}

/// The lines under a multi-file torrent: files in progress (at most [`MAX_FILE_LINES`]),
/// then one line counting the rest.
pub fn file_lines(s: &Snapshot, width: usize) -> Vec<String> {
    if s.files.len() < 2 || !matches!(s.phase, Phase::Downloading) {
        return Vec::new();
    }
    let Some(files) = file_progress(&s.have, s.piece_len, &s.files) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut done, mut waiting, mut more) = (0usize, 0usize, 0usize);
    for FileLine {
        index,
        done: have,
        len,
    } in files
    {
        // Files not selected are not downloaded: they have no line and count nowhere.
        if !s.files[index].wanted {
            continue;
        }
        if have >= len {
            done += 1;
        } else if have == 0 {
            waiting += 1;
        } else if out.len() < MAX_FILE_LINES {
            let name = format!("  {}", clean(&s.files[index].path));
            let segs = [
                Seg::new(KEEP, percent(have, len)),
                Seg::new(3, human_bytes(len)),
            ];
            out.push(fit(width, &name, Some(have as f64 / len as f64), &segs));
        } else {
            more += 1;
        }
    }
    let mut counts = Vec::new();
    if more > 0 {
        counts.push(format!("{more} more in progress"));
    }
    if done > 0 {
        counts.push(format!("{done} file{} done", plural(done)));
    }
    if waiting > 0 {
        counts.push(format!("{waiting} to go"));
    }
    if !counts.is_empty() {
        out.push(fit(width, " ", None, &[Seg::new(KEEP, counts.join(", "))]));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The total line under several torrents.
pub fn total_line(snaps: &[Snapshot], width: usize) -> String {
    let total: u64 = snaps.iter().map(|s| s.total_bytes).sum();
    let verified: u64 = snaps.iter().map(|s| s.stats.verified_bytes).sum();
    let down: f64 = snaps.iter().map(down_rate).sum();
    let up: f64 = snaps.iter().map(|s| s.stats.up_rate).sum();
    let done = snaps
        .iter()
        .filter(|s| matches!(s.phase, Phase::Seeding | Phase::Done))
        .count();
    let segs = [
        Seg::new(KEEP, percent(verified, total)),
        Seg::new(
            5,
            format!("{}/{}", human_bytes(verified), human_bytes(total)),
        ),
        Seg::new(9, format!("↓ {}", rate(down))),
        Seg::new(4, format!("↑ {}", rate(up))),
        Seg::new(8, format!("{done}/{} complete", snaps.len())),
    ];
    fit(
        width,
        "total",
        Some(verified as f64 / total.max(1) as f64),
        &segs,
    )
}

/// `  stalled: <cause>` under a stalled torrent's bar, cut at the end to the width.
pub fn stall_line(cause: &str, width: usize) -> String {
    let text = format!("stalled: {}", clean(cause));
    fit(width, " ", None, &[Seg::new(KEEP, text)])
}

/// Whether a snapshot has anything true to draw yet (no `0 B/1 B 0%` first frame).
pub fn drawable(s: &Snapshot) -> bool {
    s.total_bytes > 0 || s.phase != Phase::Checking
}

/// The whole frame: each torrent's line and file lines, and a total line for several.
pub fn frame(snaps: &[Snapshot], mems: &mut [Memory], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (s, mem) in snaps.iter().zip(mems.iter_mut()) {
        if !drawable(s) {
            continue;
        }
        lines.push(torrent_line(s, mem, width));
        lines.extend(file_lines(s, width));
        if let Some(cause) = &mem.stall {
            lines.push(stall_line(cause, width));
        }
    }
    if snaps.len() > 1 {
        lines.push(total_line(snaps, width));
    }
    lines
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
