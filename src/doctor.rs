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

/// What one tracker did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerOutcome {
    /// Not asked yet (or no answer yet).
    Pending,
    Answered {
        peers: usize,
    },
    /// An error: the tracker's failure reason, or why it could not be reached.
    Failed(String),
}

/// One tracker and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerFact {
    /// The host, as the display shows it (never the query with our peer id).
    pub host: String,
    pub outcome: TrackerOutcome,
}

/// Connection attempts by outcome, since the torrent started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub connected: usize,
    pub refused: usize,
    pub timed_out: usize,
    /// The peer closed the connection at our plaintext handshake: it requires encryption.
    pub peer_requires_encryption: usize,
    /// We refused a peer's plaintext (or its encrypted) handshake: our policy.
    pub refused_by_our_encryption: usize,
    pub wrong_info_hash: usize,
    pub other_failures: usize,
}

impl Attempts {
    fn failed(&self) -> usize {
        self.refused
            + self.timed_out
            + self.peer_requires_encryption
            + self.refused_by_our_encryption
            + self.wrong_info_hash
            + self.other_failures
    }
}

/// Port mapping, as the session's mapper reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
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
    pub trackers: Vec<TrackerFact>,
    /// The DHT's routing table size; `None` when the DHT is off (or private).
    pub dht_nodes: Option<usize>,
    /// Peers found by the DHT, local discovery and peer exchange.
    pub dht_peers: usize,
    pub lsd_peers: usize,
    pub pex_peers: usize,
    pub attempts: Attempts,
    pub peers_connected: usize,
    /// Connected peers that have us choked.
    pub peers_choking_us: usize,
    /// A magnet: connected peers that offered the metadata.
    pub metadata_offers: usize,
    /// Wanted pieces we lack that no connected peer has, of all wanted pieces we lack.
    pub missing_everywhere: (u32, u32),
    pub mapping: Mapping,
    /// Whether an incoming connection (or an unsolicited DHT query) has been seen: the
    /// only evidence the port is reachable from outside. `None`: not known.
    pub incoming_seen: Option<bool>,
    /// The last disk error, if the torrent stopped for one.
    pub disk_error: Option<String>,
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
            TrackerOutcome::Answered { peers } => peers,
            _ => 0,
        })
        .sum();
    let all_trackers_failed = !f.trackers.is_empty()
        && f.trackers
            .iter()
            .all(|t| matches!(t.outcome, TrackerOutcome::Failed(_)));
    let found = tracker_peers + f.dht_peers + f.lsd_peers + f.pex_peers;
    let a = &f.attempts;

    // Findings, one per topic.
    if let Some(e) = &f.disk_error {
        add(
            Severity::Fail,
            "disk",
            format!("{e}: free space or fix the permissions, then start it again"),
        );
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
            "off: a torrent without trackers needs it".into(),
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
                "{} peer(s) require encryption (use --encryption prefer)",
                a.peer_requires_encryption
            );
        }
        if a.refused_by_our_encryption > 0 {
            if !text.is_empty() {
                text.push_str("; ");
            }
            let _ = write!(
                text,
                "{} peer(s) refused by our --encryption setting",
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
    let peers_text = format!(
        "{} connected; {found} found (trackers {tracker_peers}, DHT {}, LSD {}, PEX {}); \
         attempts: {} connected, {} refused, {} timed out, {} other failures",
        f.peers_connected,
        f.dht_peers,
        f.lsd_peers,
        f.pex_peers,
        a.connected,
        a.refused,
        a.timed_out,
        a.wrong_info_hash + a.other_failures
    );
    let peers_severity = match (f.peers_connected, f.complete) {
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
    let all_choking = f.peers_connected > 0 && f.peers_choking_us == f.peers_connected;
    if all_choking && !f.complete {
        add(
            Severity::Warn,
            "choking",
            format!(
                "all {} connected peers are choking us: they serve others first; wait, or \
                 upload to earn a slot",
                f.peers_connected
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
        format!("The download stopped on a disk error: {e}.")
    } else if f.complete {
        "Nothing is wrong: every wanted piece is here.".to_string()
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
            why.push_str(": the trackers know no other peer for this torrent");
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
        "Every connected peer is choking us: they are busy serving others.".to_string()
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
fn tracker_summary(trackers: &[TrackerFact]) -> String {
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
            TrackerOutcome::Answered { peers } => Some(peers),
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
        let count = if failed.len() == n {
            format!("all {n}")
        } else {
            format!("{} of {n}", failed.len())
        };
        return format!("{count} trackers failed ({first})");
    }
    let peers: usize = answered.iter().sum();
    format!(
        "{} of {n} trackers answered with {peers} peers",
        answered.len()
    )
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
