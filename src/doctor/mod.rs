//! Why a torrent is stuck or slow, in words a person can act on (issue 19, pure core).
//!
//! [`diagnose`] is a function from what the session already counts about one torrent
//! ([`Facts`]: trackers' answers, discovery, connection outcomes, choking, availability,
//! port mapping, the disk) to [`Finding`]s, one per topic, and the one most likely cause
//! in a sentence. No I/O: `swarm doctor`, the stalled line under a bar and the daemon all
//! read the same words from here.
//!
//! Invariants: every finding names what to do when it is not `ok`; the cause is exactly one
//! sentence, chosen by a fixed order of precedence (the disk, then having no peer at all
//! and why, then what connected peers cannot give us, then reachability), so two runs on
//! the same facts say the same thing.

use std::fmt::Write as _;

pub mod machine;
pub mod stall;

pub use crate::snapshot::{Attempts, TrackerOutcome, TrackerState};
use crate::snapshot::{Phase, Snapshot};

/// How bad one finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

/// One line of the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// What it is about: `trackers`, `dht`, `peers`, `encryption`, `pieces`, `choking`,
    /// `port`, `disk`, `metadata`.
    pub topic: &'static str,
    pub text: String,
}

impl Finding {
    /// `{"severity": "ok", "topic": "trackers", "text": "…"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": self.severity.word(),
            "topic": self.topic,
            "text": self.text,
        })
    }
}

/// Port mapping, as the session's mapper reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Mapping {
    #[default]
    /// Turned off by the user (or never tried).
    Off,
    Mapped {
        external: String,
    },
    Failed(String),
}

/// Everything the diagnosis reads about one torrent.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Every wanted piece verified.
    pub complete: bool,
    /// Fetching a magnet's metadata.
    pub metadata: bool,
    pub private: bool,
    pub trackers: Vec<TrackerState>,
    /// The DHT's routing table size; `None` when the DHT is off (or private).
    pub dht_nodes: Option<usize>,
    /// Peers found by the DHT, local discovery and peer exchange.
    pub dht_peers: usize,
    pub lsd_peers: usize,
    pub pex_peers: usize,
    /// Addresses given by hand (`--peer`, a magnet's `x.pe`).
    pub given_peers: usize,
    /// Re-hashing data already on disk: nothing else has started.
    pub checking: bool,
    /// Peers banned for sending data that failed its hash.
    pub banned: usize,
    pub attempts: Attempts,
    pub peers_connected: usize,
    /// Connected peers that have us choked.
    pub peers_choking_us: usize,
    /// Connected peers that have pieces we lack and want.
    pub peers_useful: usize,
    /// A magnet: connected peers that offered the metadata.
    pub metadata_offers: usize,
    /// Wanted pieces we lack that no connected peer has, of all wanted pieces we lack.
    pub missing_everywhere: (u32, u32),
    pub mapping: Mapping,
    /// Whether an incoming connection (or an unsolicited DHT query) has been seen: the
    /// only evidence the port is reachable from outside. `None`: not known.
    pub incoming_seen: Option<bool>,
    /// Why the data cannot be written, and what to do (the download directory's check, or
    /// the disk error a run stopped on, through [`disk_advice`]).
    pub disk_error: Option<String>,
}

/// What the session knows beyond one torrent's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// The DHT's routing table size; `None` when the DHT is off.
    pub dht_nodes: Option<usize>,
    pub mapping: Mapping,
    /// Incoming connections from addresses that are not local, and DHT queries answered,
    /// session-wide; `None` when nothing could have come (nothing listened long enough).
    pub incoming: Option<u64>,
    /// Incoming connections our `--encryption` setting refused, session-wide.
    pub encryption_refused: u64,
}

impl Mapping {
    /// From the port mapper's status (`None`: port mapping is off). Still trying: off
    /// until it has an answer.
    pub fn from_status(status: Option<&crate::portmap::MappingStatus>) -> Mapping {
        use crate::portmap::ProtoStatus;
        match status.map(|s| &s.tcp) {
            Some(ProtoStatus::Mapped { external, via, .. }) => Mapping::Mapped {
                external: format!("{external} via {via}"),
            },
            Some(ProtoStatus::Failed { why, .. }) => Mapping::Failed(why.clone()),
            Some(ProtoStatus::Pending) | None => Mapping::Off,
        }
    }
}

/// The facts about one torrent, from its snapshot and the session's; `disk_error` is why
/// its run ended, when the disk ended it.
pub fn facts(s: &Snapshot, session: &SessionFacts, disk_error: Option<String>) -> Facts {
    let mut attempts = s.health.attempts;
    attempts.refused_by_our_encryption += session.encryption_refused as usize;
    let found = s.stats.found;
    Facts {
        complete: matches!(s.phase, Phase::Seeding | Phase::Done),
        metadata: s.phase == Phase::Metadata,
        private: s.private,
        trackers: s.health.trackers.to_vec(),
        dht_nodes: session.dht_nodes.filter(|_| !s.private),
        dht_peers: found.dht,
        lsd_peers: found.lsd,
        pex_peers: found.pex,
        given_peers: found.given,
        checking: s.phase == Phase::Checking,
        banned: s.stats.peers_banned,
        attempts,
        peers_connected: s.stats.peers_connected,
        peers_choking_us: s.stats.peers_choking_us,
        peers_useful: s.stats.peers_useful,
        metadata_offers: s.metadata.map_or(0, |m| m.peers),
        missing_everywhere: (s.stats.missing_everywhere, s.stats.lacking),
        mapping: session.mapping.clone(),
        incoming_seen: session.incoming.map(|n| n > 0),
        disk_error,
    }
}

/// A disk error a run stopped on, with what to do about it.
pub fn disk_advice(error: &str) -> String {
    format!("{error}: free space or fix the permissions, then start it again")
}

/// The findings and the one most likely cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
    pub cause: String,
}

impl Diagnosis {
    /// Whether something fails.
    pub fn fails(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Fail)
    }
}

/// Reads the facts; see the module doc for the order the cause is chosen in.
pub fn diagnose(f: &Facts) -> Diagnosis {
    let mut out = Vec::new();
    let mut add = |severity, topic, text: String| {
        out.push(Finding {
            severity,
            topic,
            text,
        })
    };
    let trackers = tracker_summary(&f.trackers);
    let tracker_peers: usize = f
        .trackers
        .iter()
        .map(|t| match t.outcome {
            TrackerOutcome::Answered { peers, .. } => peers,
            _ => 0,
        })
        .sum();
    let all_trackers_failed = !f.trackers.is_empty()
        && f.trackers
            .iter()
            .all(|t| matches!(t.outcome, TrackerOutcome::Failed(_)));
    let found = tracker_peers + f.dht_peers + f.lsd_peers + f.pex_peers + f.given_peers;
    let a = &f.attempts;

    // Findings, one per topic.
    if let Some(e) = &f.disk_error {
        add(Severity::Fail, "disk", e.clone());
    }
    match (&f.trackers.is_empty(), all_trackers_failed) {
        (true, _) => add(
            Severity::Warn,
            "trackers",
            "the torrent has no tracker".into(),
        ),
        (false, true) => add(
            Severity::Fail,
            "trackers",
            format!("{trackers}: check the address, or add another with --tracker"),
        ),
        (false, false) => add(Severity::Ok, "trackers", trackers.clone()),
    }
    match f.dht_nodes {
        None if f.private => add(Severity::Ok, "dht", "off (private torrent)".into()),
        None => add(
            Severity::Warn,
            "dht",
            "off (--no-dht): only trackers, local discovery and peer exchange find peers".into(),
        ),
        Some(0) => add(
            Severity::Warn,
            "dht",
            "0 nodes: UDP on the listen port may be blocked".into(),
        ),
        Some(n) => add(
            Severity::Ok,
            "dht",
            format!("{n} nodes, {} peers found", f.dht_peers),
        ),
    }
    let encryption_refusals = a.peer_requires_encryption + a.refused_by_our_encryption;
    if encryption_refusals > 0 {
        let mut text = String::new();
        if a.peer_requires_encryption > 0 {
            let _ = write!(
                text,
                "{} connection(s) closed at our plaintext handshake: the peer requires \
                 encryption (use --encryption prefer)",
                a.peer_requires_encryption
            );
        }
        if a.refused_by_our_encryption > 0 {
            if !text.is_empty() {
                text.push_str("; ");
            }
            let _ = write!(
                text,
                "{} connection(s) refused by our --encryption setting (use --encryption \
                 prefer)",
                a.refused_by_our_encryption
            );
        }
        let severity = if a.connected == 0 {
            Severity::Fail
        } else {
            Severity::Warn
        };
        add(severity, "encryption", text);
    }
    let mut peers_text = format!(
        "{} connected; {found} found (trackers {tracker_peers}, DHT {}, LSD {}, PEX {}",
        f.peers_connected, f.dht_peers, f.lsd_peers, f.pex_peers,
    );
    if f.given_peers > 0 {
        let _ = write!(peers_text, ", given {}", f.given_peers);
    }
    let _ = write!(
        peers_text,
        "); attempts: {} connected, {} refused, {} timed out",
        a.connected, a.refused, a.timed_out
    );
    for (n, what) in [
        (a.wrong_info_hash, "serving another torrent"),
        (a.ourselves, "ourselves"),
        (a.other_failures, "other failures"),
    ] {
        if n > 0 {
            let _ = write!(peers_text, ", {n} {what}");
        }
    }
    if f.banned > 0 {
        let _ = write!(peers_text, "; {} banned for bad data", f.banned);
    }
    let peers_severity = match (f.peers_connected, f.complete || f.checking) {
        (0, false) => Severity::Fail,
        _ => Severity::Ok,
    };
    add(peers_severity, "peers", peers_text);
    let (missing, lacking) = f.missing_everywhere;
    if f.peers_connected > 0 && !f.complete && missing > 0 {
        add(
            Severity::Fail,
            "pieces",
            format!(
                "no connected peer has {missing} of the {lacking} pieces we lack: the swarm \
                 has no complete copy — wait for a seed"
            ),
        );
    }
    let all_choking = f.peers_useful > 0 && f.peers_choking_us == f.peers_useful;
    if all_choking && !f.complete {
        add(
            Severity::Warn,
            "choking",
            format!(
                "all {} connected peers with pieces we lack are choking us: they serve others \
                 first; wait, or upload to earn a slot",
                f.peers_useful
            ),
        );
    }
    match &f.mapping {
        Mapping::Off => {}
        Mapping::Mapped { external } => add(
            Severity::Ok,
            "port",
            format!("mapped at the router as {external}"),
        ),
        Mapping::Failed(e) => add(
            Severity::Warn,
            "port",
            format!("port mapping failed ({e}): forward the listen port by hand"),
        ),
    }
    match f.incoming_seen {
        Some(true) => add(Severity::Ok, "port", "incoming connections seen".into()),
        Some(false) => add(
            Severity::Warn,
            "port",
            "no incoming connection seen yet: peers may not reach us (unknown until one does)"
                .into(),
        ),
        None => {}
    }
    if f.metadata && f.peers_connected > 0 && f.metadata_offers == 0 {
        add(
            Severity::Fail,
            "metadata",
            "no connected peer offers the metadata (BEP 9)".into(),
        );
    }

    // The one most likely cause, by precedence.
    let cause = if let Some(e) = &f.disk_error {
        format!("The data cannot be written: {e}.")
    } else if f.complete {
        "Nothing is wrong: every wanted piece is here.".to_string()
    } else if f.checking {
        "Checking the data already on disk; peers come after.".to_string()
    } else if f.peers_connected == 0 && encryption_refusals > 0 && encryption_refusals >= a.failed()
    {
        if a.peer_requires_encryption >= a.refused_by_our_encryption {
            "Every peer that answered requires encryption, which --encryption off refuses: \
             use --encryption prefer."
                .to_string()
        } else {
            "Every peer that answered was refused by our --encryption setting: use \
             --encryption prefer."
                .to_string()
        }
    } else if f.peers_connected == 0 && found == 0 {
        let mut why = String::from("No peer was found");
        if all_trackers_failed {
            let _ = write!(why, ": {trackers}");
        } else if tracker_peers == 0 && !f.trackers.is_empty() {
            let answered = f
                .trackers
                .iter()
                .any(|t| matches!(t.outcome, TrackerOutcome::Answered { .. }));
            why.push_str(if answered {
                ": the trackers know no other peer for this torrent"
            } else {
                ": no tracker has answered yet"
            });
        }
        match f.dht_nodes {
            Some(0) => why.push_str(", and the DHT has 0 nodes"),
            None if !f.private => why.push_str(", and the DHT is off"),
            _ => {}
        }
        why.push('.');
        why
    } else if f.peers_connected == 0 && a.failed() > 0 {
        format!(
            "Every peer found failed to connect ({} refused, {} timed out): they may be \
             offline or behind firewalls.",
            a.refused, a.timed_out
        )
    } else if f.peers_connected == 0 {
        "Peers were found but none is connected yet.".to_string()
    } else if f.metadata && f.metadata_offers == 0 {
        "Connected peers do not offer the metadata: wait for a peer that has it.".to_string()
    } else if missing > 0 {
        format!(
            "No connected peer has {missing} of the {lacking} pieces we lack: the swarm has no \
             complete copy; wait for a seed."
        )
    } else if all_choking {
        "Every connected peer with pieces we lack is choking us: they are busy serving \
         others."
            .to_string()
    } else {
        "Nothing wrong found: peers are connected and have what we lack.".to_string()
    };
    Diagnosis {
        findings: out,
        cause,
    }
}

/// `all 3 trackers failed (a.example: DNS error; …)`, or `2 of 3 trackers answered with
/// 12 peers` (the first two errors are named).
fn tracker_summary(trackers: &[TrackerState]) -> String {
    let failed: Vec<String> = trackers
        .iter()
        .filter_map(|t| match &t.outcome {
            TrackerOutcome::Failed(e) => Some(format!("{}: {e}", t.host)),
            _ => None,
        })
        .collect();
    let answered: Vec<usize> = trackers
        .iter()
        .filter_map(|t| match t.outcome {
            TrackerOutcome::Answered { peers, .. } => Some(peers),
            _ => None,
        })
        .collect();
    let n = trackers.len();
    if !failed.is_empty() && answered.is_empty() {
        let first = failed
            .iter()
            .take(2)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        return match (failed.len(), n) {
            (1, 1) => format!("the tracker failed ({first})"),
            (f, n) if f == n => format!("all {n} trackers failed ({first})"),
            (f, n) => format!("{f} of {n} trackers failed ({first})"),
        };
    }
    let peers = plural(answered.iter().sum(), "peer");
    match (answered.len(), n) {
        (1, 1) => format!("the tracker answered with {peers}"),
        (a, n) => format!("{a} of {n} trackers answered with {peers}"),
    }
}

/// `1 peer`, `3 peers`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests;
