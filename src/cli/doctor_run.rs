//! `swarm doctor TORRENT`: the torrent runs for `--for` in a session of its own, with its
//! data and state in a scratch directory (deleted afterwards), so nothing reaches the
//! user's download directory or resume data. Then what its trackers, discovery,
//! connections and peers did is judged by [`crate::doctor::diagnose`], with the download
//! directory's own check, and printed with the one most likely cause and how long the
//! diagnosis took to settle on it (the last time it changed).

use std::time::Instant;

use serde_json::json;

use super::doctor_cmd::{finding_line, DoctorArgs};
use super::*;
use crate::doctor::{self, Diagnosis, Facts, Finding, SessionFacts, Severity, TrackerOutcome};
use crate::session::{Content, MagnetSource, TorrentError};
use crate::snapshot::Snapshot;

/// How often the diagnosis is taken while watching (to know when it settled).
const LOOK_EVERY: Duration = Duration::from_millis(250);

pub(super) fn run(a: &DoctorArgs, arg: &str, quiet: bool) -> Result<Vec<Finding>> {
    let content = if crate::magnet::is_magnet(arg) {
        let link = crate::magnet::Magnet::parse(arg).context("invalid magnet link")?;
        Content::Magnet(Arc::new(MagnetSource::new(link, None)))
    } else {
        Content::Torrent(Arc::new(load_torrent(arg)?))
    };
    let dir_check = super::doctor_machine::check_download_dir(&a.dir);
    let scratch = Scratch::create()?;
    let scfg = super::torrents::session_config(
        &a.common,
        &DownloadArgs::default(),
        Some(scratch.0.join("state")),
    )?;
    let spec = TorrentSpec {
        content: content.clone(),
        dir: scratch.0.join("data"),
        mode: Mode::Fetch { seed: false },
        sources: Sources {
            peers: super::torrents::resolve_peers(&a.common.peers)?,
            extra_trackers: a.common.trackers.clone(),
            no_trackers: a.common.no_trackers,
            // Watched for `--for`, never given up on.
            peer_timeout: None,
        },
        recheck: false,
        selection: Default::default(),
        priorities: None,
        rates: Default::default(),
        cfg: TorrentConfig::default(),
    };
    if !quiet && !a.json {
        progress::print_line(&format!(
            "swarm: watching {} for {} s…",
            text::quoted(&content.name()),
            a.duration.as_secs_f64()
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let dht = !a.common.no_dht;
    let w = rt.block_on(watch(scfg, spec, a.duration, dht))?;
    drop(scratch);

    let mut disk_error = w.disk_error.clone();
    if dir_check.severity == Severity::Fail {
        disk_error = Some(dir_check.text.clone());
    }
    let facts = doctor::facts(&w.snapshot, &w.session, disk_error);
    let mut d = doctor::diagnose(&facts);
    if dir_check.severity != Severity::Fail {
        d.findings.push(dir_check);
    }
    if let Some(e) = &w.other_error {
        d.findings.push(Finding {
            severity: Severity::Fail,
            topic: "run",
            text: e.clone(),
        });
    }
    let name = w.snapshot.name.clone();
    if a.json {
        println!(
            "{}",
            text::json_safe(&report_json(&name, &content, &w, &facts, &d).to_string())
        );
    } else {
        println!(
            "{}",
            text::clean(&format!(
                "{} (info-hash {}), watched for {:.1} s",
                text::quoted(&name),
                content.info_hash(),
                w.watched.as_secs_f64()
            ))
        );
        for f in &d.findings {
            println!("{}", finding_line(f));
        }
        println!(
            "{}",
            text::clean(&format!(
                "cause: {} (concluded after {:.1} s)",
                d.cause,
                w.settled.as_secs_f64()
            ))
        );
    }
    Ok(d.findings)
}

/// What watching the torrent saw.
struct Watched {
    snapshot: Snapshot,
    session: SessionFacts,
    /// The run ended on a disk error (with what to do), or another error.
    disk_error: Option<String>,
    other_error: Option<String>,
    watched: Duration,
    /// When the diagnosis last changed.
    settled: Duration,
}

/// Runs the torrent until `duration` is up, it ends (complete, or an error), or Ctrl-C.
async fn watch(
    scfg: SessionConfig,
    spec: TorrentSpec,
    duration: Duration,
    dht: bool,
) -> Result<Watched> {
    let session = Session::start(scfg).await.context("starting the session")?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop_tx));
    let facts_rx = session.watch_facts(dht);
    let mut handle = session.add(spec).await?;
    let snap = handle.snapshot.clone();
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let (mut cause, mut settled) = (String::new(), Duration::ZERO);
    let mut look = tokio::time::interval(LOOK_EVERY);
    let finished = handle.finished();
    tokio::pin!(finished);
    let ended = loop {
        tokio::select! {
            r = &mut finished => break r,
            _ = tokio::time::sleep_until(deadline) => break None,
            _ = stop_rx.changed() => break None,
            _ = look.tick() => {
                let now = doctor::diagnose(&doctor::facts(&snap.borrow(), &facts_rx.borrow(), None)).cause;
                if now != cause {
                    (cause, settled) = (now, start.elapsed());
                }
            }
        }
    };
    let watched = start.elapsed();
    let snapshot = snap.borrow().clone();
    let session_facts = facts_rx.borrow().clone();
    session.shutdown().await;
    let (mut disk_error, mut other_error) = (None, None);
    match ended.as_deref() {
        Some(Err(TorrentError::Store(e))) => {
            disk_error = Some(doctor::disk_advice(&crate::error::error_chain(e)))
        }
        Some(Err(e)) => other_error = Some(crate::error::error_chain(e)),
        _ => {}
    }
    // A run that ended (complete, or an error) changed the diagnosis then.
    if ended.is_some() {
        settled = watched;
    }
    Ok(Watched {
        snapshot,
        session: session_facts,
        disk_error,
        other_error,
        watched,
        settled,
    })
}

/// The whole report as one JSON object.
fn report_json(
    name: &str,
    content: &Content,
    w: &Watched,
    f: &Facts,
    d: &Diagnosis,
) -> serde_json::Value {
    let trackers: Vec<_> = f
        .trackers
        .iter()
        .map(|t| match &t.outcome {
            TrackerOutcome::Pending => json!({"host": t.host, "outcome": "pending"}),
            TrackerOutcome::Answered { peers, .. } => {
                json!({"host": t.host, "outcome": "answered", "peers": peers})
            }
            TrackerOutcome::Failed(e) => json!({"host": t.host, "outcome": "failed", "error": e}),
        })
        .collect();
    let a = &f.attempts;
    json!({
        "torrent": name,
        "info_hash": content.info_hash().to_hex(),
        "watched_secs": w.watched.as_secs_f64(),
        "concluded_after_secs": w.settled.as_secs_f64(),
        "cause": d.cause,
        "ok": !d.fails(),
        "findings": d.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        "trackers": trackers,
        "found": {
            "dht": f.dht_peers, "lsd": f.lsd_peers, "pex": f.pex_peers, "given": f.given_peers,
        },
        "dht_nodes": f.dht_nodes,
        "attempts": {
            "connected": a.connected,
            "refused": a.refused,
            "timed_out": a.timed_out,
            "peer_requires_encryption": a.peer_requires_encryption,
            "refused_by_our_encryption": a.refused_by_our_encryption,
            "wrong_info_hash": a.wrong_info_hash,
            "ourselves": a.ourselves,
            "other": a.other_failures,
        },
        "peers_connected": f.peers_connected,
        "peers_choking_us": f.peers_choking_us,
        "pieces_missing_everywhere": f.missing_everywhere.0,
        "pieces_lacking": f.missing_everywhere.1,
        "metadata_offers": f.metadata_offers,
    })
}

/// A directory of our own under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Scratch> {
        let path =
            std::env::temp_dir().join(format!("swarm-doctor-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&path)
            .with_context(|| format!("creating the scratch directory {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
