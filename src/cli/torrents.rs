//! `fetch` and `seed`: every torrent given, in one session on one port, with progress
//! bars, per-torrent summaries and the exit status.

use super::*;
use crate::selection::Priority;
use crate::session::{Content, MagnetSource};
use crate::snapshot::Phase;
use crate::types::InfoHash;

/// A magnet link to fetch: its metainfo from the state directory when an earlier run
/// fetched it, else the link as it is. A link that gives no way to find peers (no
/// tracker, no peer, none given on the command line, and the DHT off) is refused at once.
fn magnet_content(
    arg: &str,
    state_root: Option<&std::path::Path>,
    net: &CommonArgs,
    down: &DownloadArgs,
) -> Result<Content> {
    let link = crate::magnet::Magnet::parse(arg).context("invalid magnet link")?;
    let no_trackers = net.no_trackers || (link.trackers.is_empty() && net.trackers.is_empty());
    let no_peers = link.peers.is_empty() && link.peer_hosts.is_empty() && net.peers.is_empty();
    if no_trackers && no_peers && net.no_dht {
        bail!(
            "the magnet link names no tracker (tr=) and no peer (x.pe=), and --no-dht turns \
             off the DHT that would find its peers: drop --no-dht, or add --tracker URL or \
             --peer HOST:PORT"
        );
    }
    let save = down.save_torrent.clone();
    let source = match state_root.and_then(|root| saved_torrent(root, &link.info_hash)) {
        Some((meta, bytes)) => {
            if let Some(path) = &save {
                crate::state::write_atomic(path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            MagnetSource::fetched_before(link, save, Arc::new(meta))
        }
        None => MagnetSource::new(link, save),
    };
    Ok(Content::Magnet(Arc::new(source)))
}

/// The `.torrent` an earlier run fetched for `info_hash`, if the state directory has a
/// valid one (anything else is ignored: it is fetched again).
fn saved_torrent(root: &std::path::Path, info_hash: &InfoHash) -> Option<(Metainfo, Vec<u8>)> {
    let path = root
        .join("torrents")
        .join(format!("{}.torrent", info_hash.to_hex()));
    let bytes = crate::state::read_capped(&path, crate::metainfo::MAX_TORRENT_FILE)
        .ok()
        .flatten()?;
    let meta = Metainfo::from_bytes(&bytes).ok()?;
    (meta.info_hash == *info_hash).then_some((meta, bytes))
}

pub(super) fn resolve_peers(peers: &[String]) -> Result<Vec<SocketAddr>> {
    resolve(peers, "--peer")
}

fn resolve(peers: &[String], flag: &str) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for p in peers {
        let addrs = p
            .to_socket_addrs()
            .with_context(|| format!("bad {flag} {p:?}: expected HOST:PORT"))?;
        out.extend(addrs);
    }
    Ok(out)
}

/// The session's settings from the command line's (shared by `fetch`, `seed` and
/// `daemon`).
pub(super) fn session_config(
    net: &CommonArgs,
    down: &DownloadArgs,
    state_dir: Option<PathBuf>,
) -> Result<SessionConfig> {
    let mut scfg = SessionConfig {
        direct_writes: !down.buffered_writes,
        lsd: !net.no_lsd,
        dht: !net.no_dht,
        port_mapping: !net.no_port_mapping,
        encryption: net.encryption,
        dht_nodes: resolve(&net.dht_nodes, "--dht-node")?,
        // 0 means unlimited, as elsewhere.
        max_upload_rate: net.max_upload_rate.filter(|&r| r > 0),
        max_download_rate: down.max_download_rate.filter(|&r| r > 0),
        state_dir,
        ..SessionConfig::default()
    };
    if let Some(port) = net.port {
        scfg.listen_port = port;
        scfg.port_fallback = false;
    }
    if let Some(bind) = net.bind {
        scfg.bind = bind;
    }
    Ok(scfg)
}

/// How `fetch` or `seed` runs, besides its options.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    pub mode: Mode,
    pub quiet: bool,
    pub super_seed: bool,
}

/// Runs `fetch` or `seed` for every torrent given, in one session on one port.
pub(super) fn torrent_cmd(
    args: &[String],
    dir: PathBuf,
    run: Run,
    net: CommonArgs,
    down: DownloadArgs,
    select: super::select::SelectArgs,
) -> Result<()> {
    let selector = select.selector();
    let Run {
        mode,
        quiet,
        super_seed,
    } = run;
    let fetch = matches!(mode, Mode::Fetch { .. });
    let state_root = net.state_dir.clone().or_else(|| {
        crate::state::default_root(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
    });
    let mut contents = Vec::with_capacity(args.len());
    let mut seen = HashSet::new();
    let magnets = args.iter().filter(|a| crate::magnet::is_magnet(a)).count();
    if down.save_torrent.is_some() && (magnets != 1 || args.len() != 1) {
        bail!("--save-torrent takes exactly one magnet link");
    }
    for arg in args {
        let content = if crate::magnet::is_magnet(arg) {
            if !fetch {
                bail!(
                    "a magnet link cannot be seeded (seeding needs the data and its .torrent): \
                     fetch it first, or give the .torrent"
                );
            }
            magnet_content(arg, state_root.as_deref(), &net, &down)?
        } else {
            Content::Torrent(Arc::new(load_torrent(arg)?))
        };
        if !seen.insert(content.info_hash()) {
            bail!(
                "{} is given twice (info-hash {})",
                text::clean(arg),
                content.info_hash()
            );
        }
        contents.push(content);
    }
    // What is known before the session starts: a magnet's metainfo only once fetched.
    let metas: Vec<Option<Arc<Metainfo>>> = contents.iter().map(Content::meta).collect();
    let sources = Sources {
        peers: resolve_peers(&net.peers)?,
        extra_trackers: net.trackers.clone(),
        no_trackers: net.no_trackers,
        peer_timeout: (down.peer_timeout > 0).then(|| Duration::from_secs(down.peer_timeout)),
    };
    let scfg = session_config(&net, &down, state_root.clone())?;
    if scfg.state_dir.is_none() {
        tracing::warn!("no state directory (set --state-dir or HOME): every start rechecks");
    }
    // Before anything is created: the directory, each torrent's files, the disk space, and
    // that no other swarm downloads the same torrent into the same place.
    let mut notes = Vec::new();
    let mut befores = Vec::with_capacity(metas.len());
    let mut locks = Vec::new();
    if fetch {
        preflight::check_output_dir(&dir)?;
        if let Some(state) = &scfg.state_dir {
            for c in &contents {
                let lock = lock::acquire(state, &c.info_hash(), &dir)
                    .with_context(|| text::quoted(&c.name()))?;
                locks.push(lock);
            }
        }
    }
    let mut needed = 0u64;
    // A magnet still to fetch is checked by the session once its files are known.
    for meta in metas.iter().flatten() {
        let label = || text::quoted(&meta.name);
        if !fetch {
            preflight::check_seed_dir(meta, &dir).with_context(label)?;
        }
        befores.push(preflight::Before::record(meta, &dir));
        let repaired = preflight::repair(meta, &dir, fetch).with_context(label)?;
        notes.extend(
            repaired
                .into_iter()
                .map(|n| format!("swarm: {}: {n}", label())),
        );
        if fetch {
            // A selection that matches nothing is an error now, not after the session
            // started (a magnet's is judged once its metadata arrives).
            let wanted = selector
                .apply(&crate::selection::torrent_paths(meta))
                .with_context(label)?;
            let wanted: Vec<bool> = wanted.iter().map(|p| *p != Priority::Skip).collect();
            needed += preflight::bytes_to_write(meta, &dir, &wanted);
        }
    }
    if fetch {
        preflight::check_space(&dir, needed)?;
    }
    let tcfg = TorrentConfig {
        super_seed,
        max_peers: net.max_peers.max(1),
        max_peers_per_ip: net.max_peers_per_ip.max(1),
        seed_ratio: net.seed_ratio,
        seed_time: net.seed_time,
        sequential: select.sequential,
        first_last: select.first_last,
        ..TorrentConfig::default()
    };
    let display = progress::Display::new(quiet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let wanted_port = (scfg.port_fallback && scfg.listen_port != 0).then_some(scfg.listen_port);
    let waiting = waiting_note(&metas, &sources, !net.no_lsd || !net.no_dht);
    let names: Vec<String> = contents.iter().map(Content::name).collect();
    let (dht_on, stall_after) = (!net.no_dht, down.stall_after);
    let (interrupted, outcome, stalls) = rt.block_on(async move {
        let session = Session::start(scfg).await.context("starting the session")?;
        // Ctrl-C is handled from before the first line a user (or a test) may act on.
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(stop_on_signal(stop_tx));
        if !quiet {
            for n in &notes {
                progress::print_line(n);
            }
            let addr = session.local_addr();
            match wanted_port {
                Some(p) if p != addr.port() => {
                    progress::print_line(&format!("swarm: port {p} is taken; listening on {addr}"))
                }
                _ => progress::print_line(&format!("swarm: listening on {addr}")),
            }
            if let Some(status) = session.port_mapping() {
                tokio::spawn(tell_port_mapping(status));
            }
        }
        let mut handles = Vec::with_capacity(contents.len());
        for content in &contents {
            let spec = TorrentSpec {
                content: content.clone(),
                dir: dir.clone(),
                mode,
                sources: sources.clone(),
                recheck: net.recheck,
                selection: selector.clone(),
                priorities: None,
                rates: Default::default(),
                cfg: tcfg.clone(),
            };
            handles.push(session.add(spec).await?);
        }
        // Said once a torrent is past its check (a seed whose data is missing fails first
        // and has nothing to wait for).
        let mut notes_tasks = tokio::task::JoinSet::new();
        if let (Some((why, lone)), false) = (&waiting, quiet) {
            for (h, name) in handles.iter().zip(&names) {
                if !lone.contains(&h.info_hash) {
                    continue;
                }
                let (mut snap, why) = (h.snapshot.clone(), why.clone());
                let name = text::quoted(name);
                notes_tasks.spawn(async move {
                    loop {
                        let phase = snap.borrow_and_update().phase;
                        if matches!(phase, Phase::Downloading | Phase::Seeding) {
                            progress::print_line(&format!("swarm: {name}: {why}"));
                            return;
                        }
                        if snap.changed().await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        // Why a download is stalled: said by fetch only (a seed has nothing to wait for),
        // and the session's facts asked for only when something will show them.
        let stall = (fetch && display.shows_stalls()).then(|| progress::StallWatch {
            after: stall_after,
            facts: session.watch_facts(dht_on),
        });
        let ui = display.spawn(handles.iter().map(|h| h.snapshot.clone()).collect(), stall);
        let mut waits = tokio::task::JoinSet::new();
        // With several torrents, one that fails is reported at once (the others go on); a
        // lone torrent's failure is the command's error.
        let tell = !quiet && contents.len() > 1;
        for (i, h) in handles.into_iter().enumerate() {
            let (mut h, name) = (h, names[i].clone());
            waits.spawn(async move {
                let r = h.finished().await;
                if let (Some(Err(e)), true) = (r.as_deref(), tell) {
                    let seeding = h.snapshot.borrow().phase == Phase::Seeding;
                    progress::print_line(&failure_line(mode, seeding, &name, e));
                }
                (i, r)
            });
        }
        let mut results = vec![None; contents.len()];
        let mut interrupted = false;
        loop {
            tokio::select! {
                done = waits.join_next() => match done {
                    Some(Ok((i, r))) => results[i] = r,
                    Some(Err(_)) => {}
                    None => break,
                },
                // Ctrl-C: every torrent stops cleanly (below); their waits then end.
                _ = stop_rx.changed() => {
                    interrupted = true;
                    break;
                }
            }
        }
        session.shutdown().await;
        while let Some(done) = waits.join_next().await {
            if let Ok((i, r)) = done {
                results[i] = r;
            }
        }
        notes_tasks.abort_all();
        let stalls = ui.finish().await;
        anyhow::Ok((interrupted, (contents, results), stalls))
    })?;
    if fetch {
        // A download that failed and wrote nothing leaves nothing behind.
        // `befores` has one entry per torrent whose metainfo was known at start (a magnet
        // fetched during this run has none: what it created is kept).
        let known = metas.iter().zip(&outcome.1).filter(|(m, _)| m.is_some());
        for (before, (_, r)) in befores.iter().zip(known) {
            if matches!(r.as_deref(), Some(Err(_))) {
                before.remove_created();
            }
        }
    }
    drop(locks);
    match report(mode, &display, outcome, &stalls) {
        Err(e) if interrupted => Err(Interrupted(super::error_line(&e)).into()),
        r => r,
    }
}

/// Why a torrent will wait for peers with nothing to find them: no tracker (none in the
/// torrent, or --no-trackers) and no --peer; only peers that dial us can come. The reason,
/// and which torrents it concerns. `lsd`: local discovery or the DHT is on.
fn waiting_note(
    metas: &[Option<Arc<Metainfo>>],
    sources: &Sources,
    lsd: bool,
) -> Option<(String, Vec<InfoHash>)> {
    if !sources.peers.is_empty() {
        return None;
    }
    let no_tracker =
        |m: &Metainfo| m.tracker_tiers().is_empty() && sources.extra_trackers.is_empty();
    let lone: Vec<InfoHash> = metas
        .iter()
        .flatten()
        .filter(|m| sources.no_trackers || no_tracker(m))
        // Local discovery and the DHT find peers, unless the torrent is private.
        .filter(|m| !lsd || m.private)
        .map(|m| m.info_hash)
        .collect();
    if lone.is_empty() {
        return None;
    }
    let why = if sources.no_trackers {
        "--no-trackers and no --peer"
    } else {
        "the torrent names no tracker, and no --peer was given"
    };
    let lsd = if lsd {
        "; local discovery and the DHT are off for private torrents"
    } else {
        ""
    };
    Some((
        format!("waiting for peers to connect to us ({why}{lsd})"),
        lone,
    ))
}

/// The line said at once when one of several torrents fails: what stopped, and why. A
/// download stopped by its disk keeps what it verified (the resume record says so), which
/// is worth saying, since the fix is the user's.
fn failure_line(mode: Mode, seeding: bool, name: &str, e: &crate::session::TorrentError) -> String {
    let what = match (mode, seeding) {
        (_, true) => "stopped seeding",
        (Mode::Seed, false) => "cannot seed",
        (Mode::Fetch { .. }, false) => "stopped",
    };
    let hint = if seeding { "" } else { disk_hint(mode, e) };
    let why = crate::error::error_chain(e);
    format!("swarm: {what} {}: {why}{hint}", text::quoted(name))
}

/// What to do about a download stopped by its disk: its verified pieces are in its resume
/// record, so the fix is the user's and the same command goes on from there.
fn disk_hint(mode: Mode, e: &crate::session::TorrentError) -> &'static str {
    match (mode, e) {
        (Mode::Fetch { .. }, crate::session::TorrentError::Store(_)) => {
            "; its verified pieces are kept: free space or fix the permissions, then run the \
             same command again"
        }
        _ => "",
    }
}

/// Prints each torrent's summary and turns the results into the exit status. `stalls`:
/// each torrent's stall cause when the display stopped (`None`, or missing: not stalled).
fn report(
    mode: Mode,
    display: &progress::Display,
    (contents, results): (Vec<Content>, Vec<Option<Arc<TorrentResult>>>),
    stalls: &[Option<String>],
) -> Result<()> {
    // (name, why) of each torrent that did not do its job.
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut seeded = 0;
    let metas = &contents;
    for (i, (content, r)) in contents.iter().zip(&results).enumerate() {
        let name = text::quoted(&content.name());
        let stalled = stalls.get(i).and_then(Option::as_deref);
        match r.as_deref() {
            Some(Ok(summary)) => {
                // A magnet stopped before its metadata arrived has no summary to show.
                if let Some(meta) = summary.meta.as_deref().or(content.meta().as_deref()) {
                    display.summary(meta, summary, stalled);
                }
                if mode == Mode::Seed || summary.complete {
                    seeded += 1;
                }
                if !summary.complete && matches!(mode, Mode::Fetch { .. }) {
                    let why = "stopped before the download completed (verified pieces are kept; run again to resume)";
                    failed.push((name, why.to_string()));
                }
            }
            Some(Err(e)) => {
                let mut why = crate::error::error_chain(e) + disk_hint(mode, e);
                if let Some(cause) = stalled {
                    why = format!("{why}; stalled: {}", text::clean(cause));
                }
                failed.push((name, why))
            }
            None => failed.push((name, "removed".to_string())),
        }
    }
    let all = || {
        failed
            .iter()
            .map(|(n, why)| format!("{n}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match mode {
        // Seeding goes on with what can be seeded; only seeding nothing is a failure.
        Mode::Seed if seeded > 0 => Ok(()),
        Mode::Fetch { .. } if failed.is_empty() => Ok(()),
        // One torrent: its reason is the error.
        _ if metas.len() == 1 => bail!("{}", failed[0].1),
        Mode::Seed => bail!(
            "none of the {} torrents could be seeded: {}",
            metas.len(),
            all()
        ),
        Mode::Fetch { .. } => bail!(
            "{} of {} torrents did not complete: {}",
            failed.len(),
            metas.len(),
            all()
        ),
    }
}

type TorrentResult = std::result::Result<crate::session::Summary, crate::session::TorrentError>;

/// Says what the router did with our port, each time that changes: the external address
/// once mapped, or why mapping failed (it is retried in the background).
async fn tell_port_mapping(mut status: watch::Receiver<crate::portmap::MappingStatus>) {
    use crate::portmap::ProtoStatus;
    let mut said = String::new();
    loop {
        let line = {
            let s = status.borrow_and_update();
            let settled =
                !matches!(s.tcp, ProtoStatus::Pending) || !matches!(s.udp, ProtoStatus::Pending);
            settled.then(|| s.to_string())
        };
        if let Some(line) = line.filter(|l| *l != said) {
            progress::print_line(&format!("swarm: {line}"));
            said = line;
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}
