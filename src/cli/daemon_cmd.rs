//! `swarm daemon`: the daemon core, the web edge, and their password.
//!
//! The password, in order: `--web-password-file FILE` (its first line); the hash stored in
//! the state directory by `--set-password`; else a random one, printed once at the first
//! start and stored as a hash (as qBittorrent does). Binding the web interface to an
//! address other than loopback needs a password the user chose (a file, or
//! `--set-password`), never the random one.

use std::io::{BufRead, IsTerminal};

use super::*;
use crate::daemon::core::{Daemon, DaemonConfig};

/// Options of `swarm daemon`.
#[derive(Args, Debug)]
pub(super) struct DaemonArgs {
    /// Where torrents are saved unless a request says otherwise.
    #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The only directory (and below) a request may save into [default: DIR].
    #[arg(long, value_name = "DIR")]
    download_root: Option<PathBuf>,
    /// Address of the web page and API (not loopback only with a password you chose).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    web: SocketAddr,
    /// User name for the web page and API.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    web_user: String,
    /// Read the web password from the first line of FILE (for services and scripts).
    #[arg(long, value_name = "FILE")]
    web_password_file: Option<PathBuf>,
    /// Read a new web password from standard input, store its salted hash in the state
    /// directory, and exit.
    #[arg(long)]
    set_password: bool,
    #[command(flatten)]
    common: CommonArgs,
    /// Cap on download for the whole session, in bytes per second (0 = unlimited).
    #[arg(long, value_name = "RATE", value_parser = parse::parse_rate,
          help_heading = "Limits")]
    max_download_rate: Option<u64>,
}

/// Name of the stored password hash in the state directory.
const PASSWORD_FILE: &str = "web-password";

pub(super) fn daemon_cmd(a: DaemonArgs, quiet: bool) -> Result<()> {
    let state_root = a
        .common
        .state_dir
        .clone()
        .or_else(|| {
            crate::state::default_root(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
        })
        .context("no state directory: set --state-dir (or HOME)")?;
    std::fs::create_dir_all(&state_root)
        .with_context(|| format!("creating {}", state_root.display()))?;
    let c = &a.common;
    if !c.peers.is_empty()
        || !c.trackers.is_empty()
        || c.no_trackers
        || c.recheck
        || c.progress_json
    {
        bail!(
            "--peer, --tracker, --no-trackers, --recheck and --progress-json are for fetch and \
             seed; the daemon takes each torrent's peers from its trackers, magnet link, the \
             DHT and local discovery, and its progress from the web page or API"
        );
    }
    let stored = state_root.join(PASSWORD_FILE);
    if a.set_password {
        let pw = read_password()?;
        let hash = crate::daemon::web::hash_password(&pw);
        crate::state::write_atomic(&stored, hash.as_bytes())
            .with_context(|| format!("writing {}", stored.display()))?;
        if !quiet {
            eprintln!("swarm: web password stored in {}", stored.display());
        }
        return Ok(());
    }
    let (password_hash, chosen) = password_hash(&a, &stored, quiet)?;
    if !a.web.ip().is_loopback() && !chosen {
        bail!(
            "--web {} is reachable from other machines: choose a password first \
             (--web-password-file FILE, or swarm daemon --set-password)",
            a.web
        );
    }
    let dir = absolute(&a.dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let root = match &a.download_root {
        Some(r) => absolute(r)?,
        None => dir.clone(),
    };
    if !crate::daemon::core::inside(&dir, &root) {
        bail!(
            "the download directory {} is outside --download-root {}",
            dir.display(),
            root.display()
        );
    }
    let down = DownloadArgs {
        max_download_rate: a.max_download_rate,
        ..DownloadArgs::default()
    };
    let scfg = torrents::session_config(&a.common, &down, Some(state_root.clone()))?;
    let cfg = DaemonConfig {
        session: scfg,
        torrent: TorrentConfig {
            max_peers: a.common.max_peers.max(1),
            max_peers_per_ip: a.common.max_peers_per_ip.max(1),
            seed_ratio: a.common.seed_ratio,
            seed_time: a.common.seed_time,
            ..TorrentConfig::default()
        },
        download_dir: dir,
        download_root: root,
        refresh: Duration::from_millis(500),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.web)
            .await
            .with_context(|| format!("listening on {} for the web page", a.web))?;
        let web_addr = listener.local_addr().context("the web address")?;
        let daemon = Daemon::start(cfg).await.context("starting the daemon")?;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(stop_on_signal(stop_tx));
        if !quiet {
            eprintln!(
                "swarm: daemon: web page and API on http://{web_addr}/ (user {})",
                a.web_user
            );
        }
        let web = crate::daemon::web::WebConfig::new(a.web_user.clone(), password_hash);
        let served = crate::daemon::web::serve(
            listener,
            web,
            daemon.view(),
            daemon.commands(),
            crate::daemon::qbt::handle,
            crate::daemon::qbt::render,
            stop_rx,
        )
        .await;
        daemon.shutdown().await;
        served.context("serving the web page")
    })
}

/// The password's hash, and whether the user chose the password.
fn password_hash(a: &DaemonArgs, stored: &Path, quiet: bool) -> Result<(String, bool)> {
    if let Some(file) = &a.web_password_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let pw = text.lines().next().unwrap_or("").trim_end();
        if pw.is_empty() {
            bail!("{} holds no password on its first line", file.display());
        }
        return Ok((crate::daemon::web::hash_password(pw), true));
    }
    if let Some(bytes) = crate::state::read_capped(stored, 4096)
        .with_context(|| format!("reading {}", stored.display()))?
    {
        let hash = String::from_utf8(bytes)
            .ok()
            .filter(|h| h.starts_with('$'))
            .with_context(|| format!("{} is not a password hash", stored.display()))?;
        // A hash stored by --set-password, or the one of the random password: which one
        // is recorded beside it.
        let chosen = !stored.with_extension("random").exists();
        return Ok((hash, chosen));
    }
    let pw = crate::daemon::web::random_password();
    let hash = crate::daemon::web::hash_password(&pw);
    crate::state::write_atomic(stored, hash.as_bytes())
        .with_context(|| format!("writing {}", stored.display()))?;
    crate::state::write_atomic(&stored.with_extension("random"), b"")
        .with_context(|| format!("writing {}", stored.display()))?;
    if !quiet {
        eprintln!(
            "swarm: the web password for {} is {pw} (shown once; choose your own with \
             swarm daemon --set-password)",
            a.web_user
        );
    }
    Ok((hash, false))
}

/// A password from standard input, one line. Echo is not turned off: pipe it in
/// (`swarm daemon --set-password < file`), or type it where nobody watches.
fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("new web password: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.len() < 8 {
        bail!("a web password needs at least 8 characters");
    }
    Ok(pw)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .context("the current directory")?
            .join(p)
    };
    // Lexically normal: no `.` or `..` (they would defeat the root check).
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}
