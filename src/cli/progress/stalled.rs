//! Why a download is stalled, live: each torrent's [`Stall`] watch is fed every frame, and
//! while one is stalled the doctor's one-sentence cause is what the display shows (the
//! line under its bar, `"stalled"` in `--progress-json`, the summary if it ends so) and,
//! without a terminal, what is printed once per change of cause.
//!
//! The causes come from [`crate::doctor::diagnose`], so the words are the same as `swarm
//! doctor`'s; nothing here decides a cause.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cli::text::{clean, quoted};
use crate::doctor::stall::Stall;
use crate::doctor::{self, SessionFacts};
use crate::snapshot::Snapshot;

/// What the display needs to say why a torrent is stalled.
pub struct StallWatch {
    /// How long without progress before a torrent is stalled (`--stall-after`).
    pub after: Duration,
    /// The session's side of the facts (DHT, port mapping, incoming connections).
    pub facts: watch::Receiver<SessionFacts>,
}

/// Every torrent's watch, and the cause last printed for each.
pub(super) struct Stalls {
    watches: Vec<Stall>,
    said: Vec<Option<String>>,
    facts: watch::Receiver<SessionFacts>,
    /// Print a line per change (no terminal, not quiet).
    print: bool,
}

impl Stalls {
    pub(super) fn new(w: StallWatch, torrents: usize, print: bool) -> Self {
        Stalls {
            watches: vec![Stall::new(w.after); torrents],
            said: vec![None; torrents],
            facts: w.facts,
            print,
        }
    }

    /// Each torrent's cause while it is stalled (`None` when not), printing the changes.
    pub(super) fn tick(&mut self, now: Instant, snaps: &[Snapshot]) -> Vec<Option<String>> {
        let session = self.facts.borrow().clone();
        let mut causes = Vec::with_capacity(snaps.len());
        for ((s, watch), said) in snaps.iter().zip(&mut self.watches).zip(&mut self.said) {
            let cause = watch
                .update(now, s)
                .then(|| doctor::diagnose(&doctor::facts(s, &session, None)).cause);
            if let Some(line) = to_say(said, &s.name, cause.as_deref()) {
                if self.print {
                    super::print_line(&line);
                }
            }
            causes.push(cause);
        }
        causes
    }
}

/// The line to print for a torrent's cause now, if it is news: a stalled torrent whose
/// cause differs from the one last printed. Un-stalling forgets it, so a second stall
/// is said again.
fn to_say(said: &mut Option<String>, name: &str, cause: Option<&str>) -> Option<String> {
    let Some(cause) = cause else {
        *said = None;
        return None;
    };
    if said.as_deref() == Some(cause) {
        return None;
    }
    *said = Some(cause.to_string());
    Some(format!("swarm: {}: stalled: {cause}", quoted(name)))
}

/// The summary line of a download that ended incomplete while stalled, with the cause.
pub(super) fn with_cause(line: String, complete: bool, cause: Option<&str>) -> String {
    match cause {
        Some(c) if !complete => format!("{line}; stalled: {}", clean(c)),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_once_per_change() {
        let mut said = None;
        let first = to_say(&mut said, "a", Some("No peer was found."));
        assert_eq!(
            first.as_deref(),
            Some("swarm: \"a\": stalled: No peer was found.")
        );
        assert_eq!(to_say(&mut said, "a", Some("No peer was found.")), None);
        assert!(to_say(&mut said, "a", Some("Every peer is choking us.")).is_some());
        assert_eq!(to_say(&mut said, "a", None), None);
        assert!(to_say(&mut said, "a", Some("Every peer is choking us.")).is_some());
    }

    #[test]
    fn only_an_incomplete_download_carries_its_cause_in_the_summary() {
        let line = || "swarm: incomplete \"a\": 0 B".to_string();
        assert_eq!(
            with_cause(line(), false, Some("No peer was found.")),
            "swarm: incomplete \"a\": 0 B; stalled: No peer was found."
        );
        assert_eq!(with_cause(line(), true, Some("x")), line());
        assert_eq!(with_cause(line(), false, None), line());
    }

    #[tokio::test]
    async fn a_torrent_without_peers_is_stalled_with_the_doctors_cause() {
        let (_tx, facts) = watch::channel(SessionFacts::default());
        let w = StallWatch {
            after: Duration::from_secs(2),
            facts,
        };
        let mut stalls = Stalls::new(w, 1, false);
        let snap = Snapshot {
            phase: crate::snapshot::Phase::Downloading,
            ..Snapshot::default()
        };
        let t0 = Instant::now();
        assert_eq!(stalls.tick(t0, std::slice::from_ref(&snap)), vec![None]);
        let causes = stalls.tick(t0 + Duration::from_secs(3), &[snap]);
        let cause = causes[0].as_deref().unwrap_or_default();
        assert!(cause.starts_with("No peer was found"), "{cause}");
    }
}
