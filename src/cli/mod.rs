//! The command line: parsing, the commands, progress display. `anyhow` lives here only.
//!
//! Whatever is printed that came from outside (a torrent, a tracker, an error chain quoting
//! them) goes through [`text`] first, so no control sequence reaches the terminal.

pub mod info;
mod parse;
mod progress;
mod scrape;
pub mod text;
mod torrents;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::config::{SessionConfig, TorrentConfig};
use crate::create::{create_torrent, CreateOptions};
use crate::metainfo::{Metainfo, MAX_TORRENT_FILE};
use crate::session::{Mode, Session, Sources, TorrentSpec};

#[derive(Parser, Debug)]
#[command(
    name = "swarm",
    version,
    about = "A BitTorrent client: fast, lean, friendly."
)]
pub struct Cli {
    /// Log each announce and peer connection (same as RUST_LOG=swarm=info).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download torrents' content, all in one process on one port (and keep seeding with
    /// --seed).
    Fetch(FetchArgs),
    /// Verify complete data and serve it to peers until Ctrl-C (several torrents at once).
    Seed(SeedArgs),
    /// Make a .torrent from a file or directory.
    Create(CreateArgs),
    /// Show what a .torrent contains.
    Info(InfoArgs),
    /// Run a small HTTP + UDP tracker until Ctrl-C.
    Tracker(TrackerArgs),
}

#[derive(Args, Debug)]
struct NetArgs {
    /// Connect to this peer directly (repeatable); works without any tracker.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// Port to listen on for incoming peers [default: 6881, or a free port if taken].
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on [default: all interfaces].
    #[arg(long, value_name = "IP")]
    bind: Option<IpAddr>,
    /// Seconds without a usable peer before giving up: none reachable, or those reached
    /// keep dropping us (0: wait forever). Only applies when peers come from --peer alone
    /// (no trackers).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    peer_timeout: u64,
    /// Announce to this tracker too (repeatable; each is a tier after the torrent's own).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// Ignore every tracker (the torrent's and --tracker): peers only from --peer.
    #[arg(long)]
    no_trackers: bool,
    /// No progress bars and no summary line.
    #[arg(long, short)]
    quiet: bool,
    /// Cap on upload for the whole session, bytes/s (e.g. 2MiB, 500KiB, 800kB).
    #[arg(long, value_name = "RATE", value_parser = parse::parse_size)]
    max_upload_rate: Option<u64>,
    /// Cap on download for the whole session, bytes/s (e.g. 10MiB).
    #[arg(long, value_name = "RATE", value_parser = parse::parse_size)]
    max_download_rate: Option<u64>,
    /// Stop seeding once uploaded ÷ content size reaches R (with `fetch`, implies --seed).
    #[arg(long, value_name = "R", value_parser = parse::parse_ratio)]
    seed_ratio: Option<f64>,
    /// Stop seeding after this long complete, e.g. 90s, 30m, 2h (with `fetch`, implies
    /// --seed). With --seed-ratio too, whichever comes first.
    #[arg(long, value_name = "DURATION", value_parser = parse::parse_duration)]
    seed_time: Option<std::time::Duration>,
    /// Where resume data is kept [default: $XDG_STATE_HOME/swarm, else
    /// ~/.local/state/swarm].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Ignore resume data: re-hash all data on disk before starting.
    #[arg(long)]
    recheck: bool,
    /// Connected peers per torrent at most.
    #[arg(long, value_name = "N", default_value_t = TorrentConfig::default().max_peers)]
    max_peers: usize,
    /// Write downloaded data through the page cache instead of past it (O_DIRECT, used
    /// where the filesystem allows it).
    #[arg(long)]
    buffered_writes: bool,
    /// Print one JSON object per torrent per second on stdout (name, phase, bytes done and
    /// total, rates, peers, ETA), for scripts and GUIs.
    #[arg(long)]
    progress_json: bool,
    /// Connections from one IP address per torrent at most.
    #[arg(long, value_name = "N", default_value_t = TorrentConfig::default().max_peers_per_ip)]
    max_peers_per_ip: usize,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// The .torrent files to download (each into DIR, as its own name says).
    #[arg(required = true, value_name = "TORRENT")]
    torrents: Vec<PathBuf>,
    /// Download directory.
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C (or --seed-ratio /
    /// --seed-time).
    #[arg(long)]
    seed: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Args, Debug)]
struct SeedArgs {
    /// The .torrent files to seed; a torrent whose data is missing or wrong is reported
    /// and skipped.
    #[arg(required = true, value_name = "TORRENT")]
    torrents: Vec<PathBuf>,
    /// Directory that holds the data (each torrent's content under it, as `fetch -o DIR`
    /// leaves it).
    #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Super-seeding (BEP 16), for the first seed of new content: peers are offered one
    /// piece at a time, the next once they have passed the last one on, so the seed sends
    /// little more than one copy. Slower for a lone downloader; not for general use.
    #[arg(long)]
    super_seed: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// File or directory to share.
    path: PathBuf,
    /// Where to write the torrent [default: NAME.torrent].
    #[arg(short = 'o', long = "output", value_name = "OUT.torrent")]
    out: Option<PathBuf>,
    /// Tracker announce URL (repeatable; each becomes its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// Piece length in bytes (a power of two, at least 16384) [default: automatic].
    #[arg(long, value_name = "BYTES")]
    piece_length: Option<u32>,
    /// Mark the torrent private (peers only from its trackers).
    #[arg(long)]
    private: bool,
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
}

#[derive(Args, Debug)]
struct InfoArgs {
    torrent: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Ask each tracker for seeders, leechers and completed downloads.
    #[arg(long)]
    scrape: bool,
}

#[derive(Args, Debug)]
struct TrackerArgs {
    /// HTTP announce/scrape address (other than loopback only if you say so).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6969")]
    http: SocketAddr,
    /// UDP (BEP 15) announce/scrape address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6969")]
    udp: SocketAddr,
    /// Do not serve HTTP.
    #[arg(long)]
    no_http: bool,
    /// Do not serve UDP.
    #[arg(long)]
    no_udp: bool,
    /// Announce interval told to clients, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    interval: u64,
    /// Peers stored in all [default: 1000000].
    #[arg(long, value_name = "N")]
    max_peers: Option<usize>,
    /// Torrents (swarms) kept at once [default: 100000].
    #[arg(long, value_name = "N")]
    max_torrents: Option<usize>,
    /// Peers one source (IPv4 address or IPv6 /64) may have stored; beyond it the source's
    /// oldest is replaced [default: 20000].
    #[arg(long, value_name = "N")]
    max_peers_per_source: Option<usize>,
    /// Torrents one source may have created; beyond it its oldest unshared one is replaced
    /// [default: 10000].
    #[arg(long, value_name = "N")]
    max_torrents_per_source: Option<usize>,
    /// HTTP connections from one source at once [default: 8].
    #[arg(long, value_name = "N")]
    http_connections_per_source: Option<usize>,
}

/// Parse arguments and run; errors come back with their chain for `main` to print.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    progress::init_logging(cli.verbose);
    match cli.command {
        Command::Info(a) => info_cmd(a),
        Command::Create(a) => create_cmd(a),
        Command::Fetch(a) => {
            progress::set_progress_json(a.net.progress_json);
            let seed = a.seed || a.net.seed_ratio.is_some() || a.net.seed_time.is_some();
            let mode = Mode::Fetch { seed };
            torrents::torrent_cmd(&a.torrents, a.dir, mode, a.net, false)
        }
        Command::Seed(a) => {
            progress::set_progress_json(a.net.progress_json);
            torrents::torrent_cmd(&a.torrents, a.dir, Mode::Seed, a.net, a.super_seed)
        }
        Command::Tracker(a) => tracker_cmd(a),
    }
}

fn load_torrent(path: &Path) -> Result<Metainfo> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_TORRENT_FILE {
        bail!(
            "{} is {len} bytes; a .torrent file is at most {MAX_TORRENT_FILE}",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Metainfo::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid torrent", path.display()))
}

fn info_cmd(a: InfoArgs) -> Result<()> {
    let meta = load_torrent(&a.torrent)?;
    let scrapes = if a.scrape {
        Some(scrape::scrape_all(&meta)?)
    } else {
        None
    };
    if a.json {
        let mut v = info::render_json(&meta);
        if let Some(sc) = &scrapes {
            let list = sc
                .results
                .iter()
                .map(|(url, r)| match r {
                    Ok(s) => serde_json::json!({"url": url, "seeders": s.complete,
                        "leechers": s.incomplete, "completed": s.downloaded}),
                    Err(e) => serde_json::json!({"url": url, "error": e}),
                })
                .collect();
            v["scrape"] = serde_json::Value::Array(list);
            v["scrape_skipped"] = sc.skipped.into();
        }
        println!("{}", text::json_safe(&serde_json::to_string_pretty(&v)?));
    } else {
        print!("{}", info::render_text(&meta));
        if let Some(sc) = &scrapes {
            if sc.skipped > 0 {
                println!(
                    "Scrape (the first {} trackers; {} more not asked):",
                    sc.results.len(),
                    sc.skipped
                );
            } else {
                println!("Scrape:");
            }
            for (url, r) in &sc.results {
                let url = text::clean(url);
                match r {
                    Ok(s) => println!(
                        "  {url}: {} seeders, {} leechers, {} completed",
                        s.complete, s.incomplete, s.downloaded
                    ),
                    Err(e) => println!("  {url}: {}", text::clean(e)),
                }
            }
        }
    }
    Ok(())
}

fn create_cmd(a: CreateArgs) -> Result<()> {
    let opts = CreateOptions {
        path: a.path.clone(),
        trackers: a.trackers,
        piece_length: a.piece_length,
        private: a.private,
        comment: a.comment,
        created_by: Some(concat!("swarm/", env!("CARGO_PKG_VERSION")).to_string()),
        creation_date: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64),
    };
    let bytes = create_torrent(&opts)
        .with_context(|| format!("creating a torrent of {}", a.path.display()))?;
    let meta = Metainfo::from_bytes(&bytes).context("the created torrent does not parse back")?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", meta.name)));
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}  {}  ({} pieces of {})",
        meta.info_hash,
        text::clean(&out.display().to_string()),
        meta.num_pieces(),
        info::human_bytes(meta.piece_length as u64)
    );
    Ok(())
}

/// The error chain joined with `: `, as `{:#}` prints it, safe for a terminal (a cause may
/// quote a torrent or a tracker).
pub fn error_line(e: &anyhow::Error) -> String {
    text::clean(&format!("{e:#}")).into_owned()
}

fn tracker_cmd(a: TrackerArgs) -> Result<()> {
    use crate::tracker_server::{self, ServerConfig};
    let mut cfg = ServerConfig {
        http: (!a.no_http).then_some(a.http),
        udp: (!a.no_udp).then_some(a.udp),
        interval: std::time::Duration::from_secs(a.interval),
        ..ServerConfig::default()
    };
    let l = &mut cfg.limits;
    for (flag, field) in [
        (a.max_peers, &mut l.max_peers),
        (a.max_torrents, &mut l.max_swarms),
        (a.max_peers_per_source, &mut l.max_peers_per_source),
        (a.max_torrents_per_source, &mut l.max_swarms_per_source),
        (
            a.http_connections_per_source,
            &mut cfg.http_limits.max_per_source,
        ),
    ] {
        if let Some(v) = flag {
            *field = v;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let server = tracker_server::bind(cfg)
            .await
            .context("starting the tracker")?;
        if let Some(addr) = server.http_addr() {
            println!("http tracker on http://{addr}/announce");
        }
        if let Some(addr) = server.udp_addr() {
            println!("udp tracker on udp://{addr}/announce");
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(stop_on_signal(stop_tx));
        server.run(stop_rx).await;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM asks for a clean stop (`stop` turns true); a second one exits at once.
/// The sender lives as long as the process, so `stop` never closes by itself.
pub(super) async fn stop_on_signal(stop: watch::Sender<bool>) {
    async fn signal() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
    signal().await;
    tracing::info!("stopping (signal)");
    let _ = stop.send(true);
    signal().await;
    std::process::exit(130);
}
