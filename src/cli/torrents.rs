//! `fetch` and `seed`: every torrent given, in one session on one port, with progress
//! bars, per-torrent summaries and the exit status.

use super::*;

fn resolve_peers(peers: &[String]) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for p in peers {
        let addrs = p
            .to_socket_addrs()
            .with_context(|| format!("bad --peer {p:?}: expected HOST:PORT"))?;
        out.extend(addrs);
    }
    Ok(out)
}

/// Runs `fetch` or `seed` for every torrent given, in one session on one port.
pub(super) fn torrent_cmd(
    paths: &[PathBuf],
    dir: PathBuf,
    mode: Mode,
    net: NetArgs,
    super_seed: bool,
) -> Result<()> {
    let mut metas = Vec::with_capacity(paths.len());
    let mut seen = HashSet::new();
    for path in paths {
        let meta = load_torrent(path)?;
        if !seen.insert(meta.info_hash) {
            bail!(
                "{} is given twice (info-hash {})",
                path.display(),
                meta.info_hash
            );
        }
        metas.push(Arc::new(meta));
    }
    let sources = Sources {
        peers: resolve_peers(&net.peers)?,
        extra_trackers: net.trackers.clone(),
        no_trackers: net.no_trackers,
        peer_timeout: (net.peer_timeout > 0).then(|| Duration::from_secs(net.peer_timeout)),
    };
    let mut scfg = SessionConfig {
        direct_writes: !net.buffered_writes,
        max_upload_rate: net.max_upload_rate,
        max_download_rate: net.max_download_rate,
        state_dir: net.state_dir.clone().or_else(|| {
            crate::state::default_root(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
        }),
        ..SessionConfig::default()
    };
    if let Some(port) = net.port {
        scfg.listen_port = port;
        scfg.port_fallback = false;
    }
    if let Some(bind) = net.bind {
        scfg.bind = bind;
    }
    if scfg.state_dir.is_none() {
        tracing::warn!("no state directory (set --state-dir or HOME): every start rechecks");
    }
    let tcfg = TorrentConfig {
        super_seed,
        max_peers: net.max_peers.max(1),
        max_peers_per_ip: net.max_peers_per_ip.max(1),
        seed_ratio: net.seed_ratio,
        seed_time: net.seed_time,
        ..TorrentConfig::default()
    };
    let display = progress::Display::new(net.quiet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let results = rt.block_on(async move {
        let session = Session::start(scfg).await.context("starting the session")?;
        let mut handles = Vec::with_capacity(metas.len());
        for meta in &metas {
            let spec = TorrentSpec {
                meta: meta.clone(),
                dir: dir.clone(),
                mode,
                sources: sources.clone(),
                recheck: net.recheck,
                cfg: tcfg.clone(),
            };
            handles.push(session.add(spec).await?);
        }
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(stop_on_signal(stop_tx));
        let ui = display.spawn(handles.iter().map(|h| h.snapshot.clone()).collect());
        let mut waits = tokio::task::JoinSet::new();
        // With several torrents, one that cannot be seeded is reported at once (the others
        // go on); a lone torrent's failure is the command's error.
        let tell = !net.quiet && metas.len() > 1;
        for (i, h) in handles.into_iter().enumerate() {
            let (mut h, meta) = (h, metas[i].clone());
            waits.spawn(async move {
                let r = h.finished().await;
                if let (Some(Err(e)), Mode::Seed, true) = (r.as_deref(), mode, tell) {
                    progress::print_line(&format!(
                        "swarm: cannot seed {}: {}",
                        text::quoted(&meta.name),
                        crate::error::error_chain(e)
                    ));
                }
                (i, r)
            });
        }
        let mut results = vec![None; metas.len()];
        loop {
            tokio::select! {
                done = waits.join_next() => match done {
                    Some(Ok((i, r))) => results[i] = r,
                    Some(Err(_)) => {}
                    None => break,
                },
                // Ctrl-C: every torrent stops cleanly (below); their waits then end.
                _ = stop_rx.changed() => break,
            }
        }
        session.shutdown().await;
        while let Some(done) = waits.join_next().await {
            if let Ok((i, r)) = done {
                results[i] = r;
            }
        }
        ui.finish().await;
        anyhow::Ok((metas, results))
    })?;
    report(mode, &display, results)
}

/// Prints each torrent's summary and turns the results into the exit status.
fn report(
    mode: Mode,
    display: &progress::Display,
    (metas, results): (Vec<Arc<Metainfo>>, Vec<Option<Arc<TorrentResult>>>),
) -> Result<()> {
    // (name, why) of each torrent that did not do its job.
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut seeded = 0;
    for (meta, r) in metas.iter().zip(&results) {
        let name = text::quoted(&meta.name);
        match r.as_deref() {
            Some(Ok(summary)) => {
                display.summary(meta, summary);
                if mode == Mode::Seed || summary.complete {
                    seeded += 1;
                }
                if !summary.complete && matches!(mode, Mode::Fetch { .. }) {
                    let why = "stopped before the download completed (verified pieces are kept; run again to resume)";
                    failed.push((name, why.to_string()));
                }
            }
            Some(Err(e)) => failed.push((name, crate::error::error_chain(e))),
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
