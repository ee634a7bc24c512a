//! A table of situations, each with the finding it must produce and its one-sentence cause.

use super::*;

/// A healthy download: one tracker answered, peers connected, nothing missing.
fn healthy() -> Facts {
    Facts {
        complete: false,
        metadata: false,
        private: false,
        trackers: vec![tracker("tracker.example", answer(5))],
        dht_nodes: Some(120),
        dht_peers: 3,
        lsd_peers: 0,
        pex_peers: 2,
        given_peers: 0,
        checking: false,
        banned: 0,
        attempts: Attempts {
            connected: 4,
            refused: 1,
            ..Attempts::default()
        },
        peers_connected: 4,
        peers_choking_us: 1,
        peers_useful: 4,
        metadata_offers: 0,
        missing_everywhere: (0, 100),
        mapping: Mapping::Mapped {
            external: "203.0.113.7:6881".into(),
        },
        incoming_seen: Some(true),
        disk_error: None,
    }
}

/// A tracker at `host` that did `outcome` last.
fn tracker(host: &str, outcome: TrackerOutcome) -> TrackerState {
    TrackerState {
        url: format!("http://{host}/announce"),
        host: host.into(),
        outcome,
    }
}

/// A reply with `peers` addresses and no swarm counts.
fn answer(peers: usize) -> TrackerOutcome {
    TrackerOutcome::Answered {
        peers,
        seeds: None,
        leechers: None,
    }
}

fn failed(host: &str, why: &str) -> TrackerState {
    tracker(host, TrackerOutcome::Failed(why.into()))
}

fn no_peers(mut f: Facts) -> Facts {
    f.peers_connected = 0;
    f.peers_choking_us = 0;
    f.peers_useful = 0;
    f.attempts = Attempts::default();
    f
}

#[test]
fn each_situation_has_its_finding_and_its_cause() {
    type Case = (&'static str, Facts, &'static str, Severity, &'static str);
    let cases: Vec<Case> = vec![
        (
            "nothing wrong",
            healthy(),
            "peers",
            Severity::Ok,
            "Nothing wrong found: peers are connected and have what we lack.",
        ),
        (
            "no tracker answered",
            Facts {
                trackers: vec![
                    failed("a.example", "DNS error"),
                    failed("b.example", "connection refused"),
                ],
                dht_nodes: Some(0),
                dht_peers: 0,
                pex_peers: 0,
                ..no_peers(healthy())
            },
            "trackers",
            Severity::Fail,
            "No peer was found: all 2 trackers failed (a.example: DNS error; b.example: \
             connection refused), and the DHT has 0 nodes.",
        ),
        (
            "trackers answered with no peers",
            Facts {
                trackers: vec![tracker("t.example", answer(0))],
                dht_peers: 0,
                pex_peers: 0,
                ..no_peers(healthy())
            },
            "peers",
            Severity::Fail,
            "No peer was found: the trackers know no other peer for this torrent.",
        ),
        (
            "every handshake refused for encryption",
            Facts {
                attempts: Attempts {
                    peer_requires_encryption: 3,
                    ..Attempts::default()
                },
                ..no_peers(healthy())
            },
            "encryption",
            Severity::Fail,
            "Every peer that answered requires encryption, which --encryption off refuses: \
             use --encryption prefer.",
        ),
        (
            "all peers choking",
            Facts {
                peers_choking_us: 4,
                ..healthy()
            },
            "choking",
            Severity::Warn,
            "Every connected peer with pieces we lack is choking us: they are busy serving \
             others.",
        ),
        (
            "pieces missing from every peer",
            Facts {
                missing_everywhere: (12, 4096),
                ..healthy()
            },
            "pieces",
            Severity::Fail,
            "No connected peer has 12 of the 4096 pieces we lack: the swarm has no complete \
             copy; wait for a seed.",
        ),
        (
            "port mapping failed",
            Facts {
                mapping: Mapping::Failed("no router answered".into()),
                incoming_seen: Some(false),
                ..healthy()
            },
            "port",
            Severity::Warn,
            "Nothing wrong found: peers are connected and have what we lack.",
        ),
        (
            "disk full",
            Facts {
                disk_error: Some(disk_advice("writing /dl/a.bin: No space left on device")),
                ..healthy()
            },
            "disk",
            Severity::Fail,
            "The data cannot be written: writing /dl/a.bin: No space left on device: free \
             space or fix the permissions, then start it again.",
        ),
        (
            "peers refuse or time out",
            Facts {
                attempts: Attempts {
                    refused: 4,
                    timed_out: 2,
                    ..Attempts::default()
                },
                ..no_peers(healthy())
            },
            "peers",
            Severity::Fail,
            "Every peer found failed to connect (4 refused, 2 timed out): they may be offline \
             or behind firewalls.",
        ),
        (
            "a magnet whose peers lack the metadata",
            Facts {
                metadata: true,
                metadata_offers: 0,
                ..healthy()
            },
            "metadata",
            Severity::Fail,
            "Connected peers do not offer the metadata: wait for a peer that has it.",
        ),
        (
            "complete",
            Facts {
                complete: true,
                peers_choking_us: 4,
                ..healthy()
            },
            "peers",
            Severity::Ok,
            "Nothing is wrong: every wanted piece is here.",
        ),
    ];
    for (name, facts, topic, severity, cause) in cases {
        let d = diagnose(&facts);
        let f = d
            .findings
            .iter()
            .filter(|f| f.topic == topic)
            .max_by_key(|f| f.severity)
            .unwrap_or_else(|| panic!("{name}: no {topic} finding in {:?}", d.findings));
        assert_eq!(f.severity, severity, "{name}: {f:?}");
        assert_eq!(d.cause, cause, "{name}");
        assert_eq!(d.cause.matches(". ").count(), 0, "{name}: one sentence");
        for f in &d.findings {
            assert!(!f.text.is_empty(), "{name}: empty {} finding", f.topic);
        }
    }
}

#[test]
fn trackers_not_yet_answered_are_not_said_to_know_no_peer() {
    let waiting = Facts {
        trackers: vec![tracker("t", TrackerOutcome::Pending)],
        dht_peers: 0,
        pex_peers: 0,
        ..no_peers(healthy())
    };
    assert_eq!(
        diagnose(&waiting).cause,
        "No peer was found: no tracker has answered yet."
    );
}

#[test]
fn a_failed_finding_fails_the_diagnosis() {
    assert!(!diagnose(&healthy()).fails());
    let stuck = Facts {
        disk_error: Some("x".into()),
        ..healthy()
    };
    assert!(diagnose(&stuck).fails());
}

#[test]
fn tracker_summaries() {
    let answered = |peers| tracker("t", answer(peers));
    assert_eq!(
        tracker_summary(&[answered(3), answered(4), failed("x", "timed out")]),
        "2 of 3 trackers answered with 7 peers"
    );
    assert_eq!(
        tracker_summary(&[
            failed("x", "timed out"),
            failed("y", "refused"),
            failed("z", "?")
        ]),
        "all 3 trackers failed (x: timed out; y: refused)"
    );
    let pending = tracker("p", TrackerOutcome::Pending);
    assert_eq!(
        tracker_summary(&[failed("x", "timed out"), pending]),
        "1 of 2 trackers failed (x: timed out)"
    );
    assert_eq!(
        tracker_summary(&[failed("x", "refused")]),
        "the tracker failed (x: refused)"
    );
    let answered = |peers| tracker("a", answer(peers));
    assert_eq!(
        tracker_summary(&[answered(1)]),
        "the tracker answered with 1 peer"
    );
    assert_eq!(
        tracker_summary(&[answered(0), answered(3)]),
        "2 of 2 trackers answered with 3 peers"
    );
}
