//! The command line: parsing, the commands, progress display. `anyhow` lives here only.
//!
//! Whatever is printed that came from outside (a torrent, a tracker, an error chain quoting
//! them) goes through [`text`] first, so no control sequence reaches the terminal.

mod create_cmd;
mod daemon_cmd;
mod doctor_cmd;
mod doctor_machine;
mod doctor_run;
pub mod info;
mod lock;
mod parse;
mod preflight;
mod progress;
mod scrape;
mod select;
mod source;
pub mod text;
mod torrents;
mod tracker_cmd;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use tokio::sync::watch;

use crate::config::{SessionConfig, TorrentConfig};
use crate::metainfo::Metainfo;
use crate::session::{Mode, Session, Sources, TorrentSpec};

/// `--version`: the crate's version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SWARM_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "swarm",
    version = VERSION,
    about = "A BitTorrent client: fast, lean, friendly."
)]
pub struct Cli {
    /// Log each announce and peer connection (same as RUST_LOG=swarm=info).
    #[arg(short, long, global = true, help_heading = "Output")]
    verbose: bool,
    /// No progress bars, no summary line, no notes: only errors.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Output"
    )]
    quiet: bool,
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
    /// Show what a .torrent (or a magnet link) contains.
    Info(InfoArgs),
    /// Run a small HTTP + UDP tracker until Ctrl-C.
    Tracker(tracker_cmd::TrackerArgs),
    /// Run until stopped, with a web page and the qBittorrent Web API (v2 subset) that
    /// media tools speak; torrents and their settings survive restarts.
    Daemon(daemon_cmd::DaemonArgs),
    /// Say why downloads are stuck: check this machine and network (no argument), or try
    /// one torrent for a while and name the most likely cause.
    Doctor(doctor_cmd::DoctorArgs),
    /// Print a shell completion script (e.g. `source <(swarm completions bash)`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `swarm man | man -l -`.
    Man {
        /// The command whose page to print [default: swarm's own].
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

/// Rates take sizes per second: binary units are powers of 1024, decimal ones of 1000.
const RATE_HELP: &str = "bytes per second: 2MiB (or 2M) = 2×1024² B/s, 800kB = 800,000 B/s, \
                         a plain number is bytes; 0 = unlimited";

/// Options `fetch` and `seed` share.
#[derive(Args, Debug)]
struct CommonArgs {
    /// Connect to this peer directly (repeatable); works without any tracker.
    #[arg(long = "peer", value_name = "HOST:PORT", help_heading = "Network")]
    peers: Vec<String>,
    /// Port to listen on for incoming peers [default: 6881, or a free port if taken].
    #[arg(long, help_heading = "Network")]
    port: Option<u16>,
    /// Address to listen on, and the interface local peer discovery uses [default: all
    /// interfaces].
    #[arg(long, value_name = "IP", help_heading = "Network")]
    bind: Option<IpAddr>,
    /// Announce to this tracker too (repeatable; each is a tier after the torrent's own).
    #[arg(
        long = "tracker",
        value_name = "URL",
        value_parser = parse::parse_tracker_url,
        help_heading = "Network"
    )]
    trackers: Vec<String>,
    /// Ignore every tracker (the torrent's own): peers only from --peer, local discovery
    /// and those that dial us.
    #[arg(long, conflicts_with = "trackers", help_heading = "Network")]
    no_trackers: bool,
    /// Don't look for peers on the local network (local service discovery, BEP 14:
    /// multicast announces on port 6771; never used for private torrents).
    #[arg(long, help_heading = "Network")]
    no_lsd: bool,
    /// Don't use the DHT (BEP 5: one node on the listen port's UDP side finds peers by
    /// info-hash alone; never used for private torrents).
    #[arg(long, help_heading = "Network")]
    no_dht: bool,
    /// Don't ask the router to forward the listen port (UPnP IGD, NAT-PMP, PCP; on by
    /// default, so peers behind other routers can reach us).
    #[arg(long, help_heading = "Network")]
    no_port_mapping: bool,
    /// Message stream encryption (MSE/PE, RC4) with peers: `prefer` dials encrypted and
    /// retries plaintext once if the peer drops it, and accepts both; `require` dials and
    /// accepts encrypted connections only; `off` dials plaintext and refuses encrypted ones.
    #[arg(
        long,
        value_name = "MODE",
        default_value = "prefer",
        help_heading = "Network"
    )]
    encryption: crate::config::Encryption,
    /// Bootstrap the DHT from this node instead of the default routers (repeatable).
    #[arg(
        long = "dht-node",
        value_name = "HOST:PORT",
        conflicts_with = "no_dht",
        help_heading = "Network"
    )]
    dht_nodes: Vec<String>,
    /// Connected peers per torrent at most.
    #[arg(long, value_name = "N", default_value_t = TorrentConfig::default().max_peers,
          help_heading = "Network")]
    max_peers: usize,
    /// Connections from one IP address per torrent at most.
    #[arg(long, value_name = "N", default_value_t = TorrentConfig::default().max_peers_per_ip,
          help_heading = "Network")]
    max_peers_per_ip: usize,
    /// Cap on upload for the whole session, in bytes per second (e.g. 2MiB, 500KiB,
    /// 800kB; 0 = unlimited).
    #[arg(long, value_name = "RATE", value_parser = parse::parse_rate,
          long_help = format!("Cap on upload for the whole session, in {RATE_HELP}."),
          help_heading = "Limits")]
    max_upload_rate: Option<u64>,
    /// Stop seeding once uploaded ÷ content size reaches R (with `fetch`, implies --seed).
    #[arg(long, value_name = "R", value_parser = parse::parse_ratio, help_heading = "Seeding")]
    seed_ratio: Option<f64>,
    /// Stop seeding after this long complete, e.g. 90s, 30m, 2h (with `fetch`, implies
    /// --seed). With --seed-ratio too, whichever comes first.
    #[arg(long, value_name = "DURATION", value_parser = parse::parse_duration,
          help_heading = "Seeding")]
    seed_time: Option<std::time::Duration>,
    /// Where resume data and locks are kept [default: $XDG_STATE_HOME/swarm, else
    /// ~/.local/state/swarm].
    #[arg(long, value_name = "DIR", help_heading = "Storage")]
    state_dir: Option<PathBuf>,
    /// Ignore resume data: re-hash all data on disk before starting.
    #[arg(long, help_heading = "Storage")]
    recheck: bool,
    /// Print one JSON object per torrent per second on stdout (name, phase, bytes done and
    /// total, rates, peers, ETA), for scripts and GUIs.
    #[arg(long, help_heading = "Output")]
    progress_json: bool,
}

/// Options only a download has (`seed` writes nothing and always waits for peers).
#[derive(Args, Debug, Default)]
struct DownloadArgs {
    /// Cap on download for the whole session, in bytes per second (e.g. 10MiB; 0 =
    /// unlimited).
    #[arg(long, value_name = "RATE", value_parser = parse::parse_rate,
          long_help = format!("Cap on download for the whole session, in {RATE_HELP}."),
          help_heading = "Limits")]
    max_download_rate: Option<u64>,
    /// Seconds without a usable peer before giving up: none reachable, or those reached
    /// keep dropping us (0: wait forever). Only applies when peers come from --peer alone
    /// (no trackers).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        help_heading = "Network"
    )]
    peer_timeout: u64,
    /// Write downloaded data through the page cache instead of past it (O_DIRECT, used
    /// where the filesystem allows it).
    #[arg(long, help_heading = "Storage")]
    buffered_writes: bool,
    /// With a magnet link: also write the .torrent fetched from peers to FILE (it is kept
    /// in the state directory either way).
    #[arg(long, value_name = "FILE", help_heading = "Storage")]
    save_torrent: Option<PathBuf>,
    /// How long without progress before the line under the bar says why the download is
    /// stalled, e.g. 30s, 2m (a rate below 1 % of its recent best that long counts too).
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = parse::parse_duration, help_heading = "Output")]
    stall_after: std::time::Duration,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// What to download: .torrent files (paths, http(s):// URLs, or - for standard input)
    /// or magnet: links (each downloads into DIR, as its own name says).
    #[arg(required = true, value_name = "TORRENT")]
    torrents: Vec<String>,
    /// Download directory.
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    // The shared options first: their headings (Network, Limits, Seeding, ...) then come
    // in that order in --help.
    #[command(flatten)]
    common: CommonArgs,
    /// Keep seeding after the download completes, until Ctrl-C (or --seed-ratio /
    /// --seed-time).
    #[arg(long, help_heading = "Seeding")]
    seed: bool,
    #[command(flatten)]
    download: DownloadArgs,
    #[command(flatten)]
    select: select::SelectArgs,
}

#[derive(Args, Debug)]
struct SeedArgs {
    /// The .torrent files to seed (paths, http(s):// URLs, or - for standard input); a
    /// torrent whose data is missing or wrong is reported and skipped.
    #[arg(required = true, value_name = "TORRENT")]
    torrents: Vec<String>,
    /// Directory that holds the data: the parent of each torrent's content (as `fetch -o
    /// DIR` leaves it), not the content folder itself.
    #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
    /// Super-seeding (BEP 16), for the first seed of new content: peers are offered one
    /// piece at a time, the next once they have passed the last one on, so the seed sends
    /// little more than one copy. Slower for a lone downloader; not for general use.
    #[arg(long, help_heading = "Seeding")]
    super_seed: bool,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// File or directory to share.
    path: PathBuf,
    /// Where to write the torrent [default: NAME.torrent].
    #[arg(short = 'o', long = "output", value_name = "OUT.torrent")]
    out: Option<PathBuf>,
    /// Replace OUT.torrent if it exists.
    #[arg(short, long)]
    force: bool,
    /// Tracker announce URL, http://, https:// or udp:// (repeatable; each becomes its
    /// own tier).
    #[arg(long = "tracker", value_name = "URL", value_parser = parse::parse_tracker_url)]
    trackers: Vec<String>,
    /// Piece length: a power of two of at least 16KiB, e.g. 256KiB, 1MiB, 4M
    /// [default: automatic, ~1000-2000 pieces].
    #[arg(long, value_name = "SIZE", value_parser = parse::parse_piece_length)]
    piece_length: Option<u32>,
    /// Mark the torrent private (peers only from its trackers).
    #[arg(long)]
    private: bool,
    /// Free text stored in the torrent's `comment` field.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Also add version-control and OS clutter, left out by default: .git/, .svn/, .hg/,
    /// .DS_Store, Thumbs.db.
    #[arg(long)]
    include_junk: bool,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// The .torrent to show: a path, an http(s):// URL, - for standard input, or a
    /// magnet: link (what the link says).
    #[arg(value_name = "TORRENT")]
    torrent: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Ask each tracker for seeders, leechers and completed downloads.
    #[arg(long)]
    scrape: bool,
}

/// A run stopped by Ctrl-C or SIGTERM before it did its job: `main` exits 130, as a shell
/// does for a process ended by SIGINT.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The process's exit status for an error `run` returned.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.is::<Interrupted>() {
        130
    } else {
        1
    }
}

/// Parse arguments and run; errors come back with their chain for `main` to print.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    progress::init_logging(cli.verbose);
    match cli.command {
        Command::Info(a) => info::info_cmd(a),
        Command::Create(a) => create_cmd::create_cmd(a, cli.quiet),
        Command::Fetch(a) => {
            let c = &a.common;
            progress::set_progress_json(c.progress_json);
            let seed = a.seed || c.seed_ratio.is_some() || c.seed_time.is_some();
            let mode = Mode::Fetch { seed };
            let run = torrents::Run {
                mode,
                quiet: cli.quiet,
                super_seed: false,
            };
            torrents::torrent_cmd(&a.torrents, a.dir, run, a.common, a.download, a.select)
        }
        Command::Seed(a) => {
            progress::set_progress_json(a.common.progress_json);
            let run = torrents::Run {
                mode: Mode::Seed,
                quiet: cli.quiet,
                super_seed: a.super_seed,
            };
            let (down, select) = (DownloadArgs::default(), select::SelectArgs::default());
            torrents::torrent_cmd(&a.torrents, a.dir, run, a.common, down, select)
        }
        Command::Tracker(a) => tracker_cmd::tracker_cmd(a),
        Command::Daemon(a) => daemon_cmd::daemon_cmd(a, cli.quiet),
        Command::Doctor(a) => doctor_cmd::doctor_cmd(a, cli.quiet),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "swarm", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { command } => man_cmd(command.as_deref()),
    }
}

/// The roff manual page of swarm, or of one of its commands.
fn man_cmd(command: Option<&str>) -> Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match command {
        None => cmd,
        Some(name) => {
            let Some(sub) = cmd.find_subcommand(name) else {
                let names: Vec<_> = cmd.get_subcommands().map(|c| c.get_name()).collect();
                bail!("no command {name:?} (one of: {})", names.join(", "));
            };
            // After `build`, a subcommand is titled `swarm-NAME` and used as `swarm NAME`.
            sub.clone()
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("rendering the manual page")?;
    use std::io::Write as _;
    std::io::stdout()
        .write_all(&out)
        .context("writing the manual page")
}

fn load_torrent(arg: &str) -> Result<Metainfo> {
    source::load(arg)
}

/// The error chain joined with `: `, as `{:#}` prints it, safe for a terminal (a cause may
/// quote a torrent or a tracker).
pub fn error_line(e: &anyhow::Error) -> String {
    text::clean(&format!("{e:#}")).into_owned()
}

/// Ctrl-C or SIGTERM asks for a clean stop (`stop` turns true); a second one exits at once.
/// The sender lives as long as the process, so `stop` never closes by itself.
///
/// The handlers are installed when this is called (inside the runtime), not when the
/// future is first polled: a signal that arrives right after a line the caller prints
/// next (`listening on …`) is already ours, not the default action's.
pub(super) fn stop_on_signal(stop: watch::Sender<bool>) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => None,
        }
    };
    async move {
        #[cfg(unix)]
        async fn next(
            signals: &mut Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
        ) {
            match signals {
                Some((int, term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(unix)]
        next(&mut signals).await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping (signal)");
        let _ = stop.send(true);
        #[cfg(unix)]
        next(&mut signals).await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    }
}

#[cfg(test)]
#[path = "help_tests.rs"]
mod tests;
