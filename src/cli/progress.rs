//! Progress bars (on a terminal), the final summary line, and a log writer that never
//! tears the bars. The display only reads [`Snapshot`]s; it never touches the engine.
//!
//! Everything printed here that came from outside (torrent names, tracker URLs and errors,
//! log fields) passes through [`text`](super::text) first: the bars' name and message, the
//! summary, [`print_line`] and every log line [`LogWriter`] writes.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::info::human_bytes;
use super::text::{clean, clean_log, quoted};
use crate::metainfo::Metainfo;
use crate::session::Summary;
use crate::snapshot::{Phase, Snapshot};

/// The one MultiProgress of the process, shared with the log writer.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Whether the logger colours its lines (then the ESC of its colours must pass).
static LOG_ANSI: AtomicBool = AtomicBool::new(false);

/// Writes log lines to stderr around the bars (suspend, print, redraw), with anything
/// unsafe for a terminal escaped ([`clean_log`]): the logger escapes ESC and C1 in fields,
/// but not CR or the other C0 controls a torrent name or tracker URL may carry.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = clean_log(&text, LOG_ANSI.load(Ordering::Relaxed));
        multi().suspend(|| std::io::stderr().write_all(line.as_bytes()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `RUST_LOG` logs (default: warnings; `-v`: swarm's info, e.g. each announce) to stderr
/// through [`LogWriter`].
pub fn init_logging(verbose: bool) {
    let default = if verbose { "warn,swarm=info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    LOG_ANSI.store(ansi, Ordering::Relaxed);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// How progress is shown: bars on a terminal, a summary line otherwise, nothing if quiet.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    bars: bool,
    quiet: bool,
}

/// The running bar task.
pub struct Ui {
    task: Option<(JoinHandle<()>, tokio::sync::oneshot::Sender<()>)>,
}

impl Display {
    pub fn new(quiet: bool) -> Self {
        Display {
            bars: !quiet && std::io::stderr().is_terminal(),
            quiet,
        }
    }

    /// One bar per torrent, and a total line under them when there are several.
    pub fn spawn(&self, mut rxs: Vec<watch::Receiver<Snapshot>>) -> Ui {
        if !self.bars || rxs.is_empty() {
            return Ui { task: None };
        }
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let style = ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {percent:>3}% {msg}",
            )
            .expect("static template")
            .progress_chars("=> ");
            let bars: Vec<ProgressBar> = rxs
                .iter()
                .map(|_| {
                    let bar = multi().add(ProgressBar::new(1));
                    bar.set_style(style.clone());
                    bar
                })
                .collect();
            let total = (rxs.len() > 1).then(|| {
                let bar = multi().add(ProgressBar::new(1));
                bar.set_style(style.clone());
                bar.set_prefix("total");
                bar
            });
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut done = false;
            while !done {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut done_rx => done = true,
                }
                let snaps: Vec<Snapshot> = rxs
                    .iter_mut()
                    .map(|rx| rx.borrow_and_update().clone())
                    .collect();
                for (bar, s) in bars.iter().zip(&snaps) {
                    draw(bar, s);
                }
                if let Some(bar) = &total {
                    draw_total(bar, &snaps);
                }
            }
            for bar in bars.iter().chain(&total) {
                bar.finish();
            }
        });
        Ui {
            task: Some((task, done_tx)),
        }
    }

    /// The one line printed at the end (stderr), unless `--quiet`.
    pub fn summary(&self, meta: &Metainfo, s: &Summary) {
        if self.quiet {
            return;
        }
        eprintln!("{}", summary_line(meta, s));
    }
}

/// Prints a line above the bars (or to stderr when there are none), escaped as one line.
pub fn print_line(line: &str) {
    let _ = LogWriter.write_all(format!("{}\n", clean(line)).as_bytes());
}

/// `swarm: complete "name": …` — what happened, in one line. Uploaded bytes and ratio count
/// earlier runs too (resume data), as the ratio goal does.
pub fn summary_line(meta: &Metainfo, s: &Summary) -> String {
    let st = &s.stats;
    let secs = s.elapsed.as_secs_f64().max(1e-3);
    let state = if s.complete { "complete" } else { "incomplete" };
    let ratio = (s.before.uploaded + st.uploaded) as f64 / meta.total_length().max(1) as f64;
    let seeded = s
        .seeded
        // A fetch that ends on completion "seeds" for a moment: not worth a clause.
        .filter(|d| d.as_secs() >= 1 || st.peers_served > 0)
        .map(|d| {
            format!(
                "; seeded {} to {} peer{}",
                fmt_duration(d.as_secs()),
                st.peers_served,
                if st.peers_served == 1 { "" } else { "s" }
            )
        })
        .unwrap_or_default();
    format!(
        "swarm: {state} {}: {} in {:.2} s ({:.1} MB/s); downloaded {} B, uploaded {} B (ratio {ratio:.2}), resumed {} B, wasted {} B, failed pieces {}, peers {}{seeded}",
        quoted(&meta.name),
        human_bytes(meta.total_length()),
        secs,
        st.downloaded as f64 / secs / 1e6,
        st.downloaded,
        st.uploaded,
        s.resumed_bytes,
        st.wasted,
        st.failed_pieces,
        st.peers_seen,
    )
}

impl Ui {
    pub async fn finish(self) {
        if let Some((task, done)) = self.task {
            let _ = done.send(());
            let _ = task.await;
        }
    }
}

/// The total line: bytes verified of all torrents, rates summed, torrents done.
fn draw_total(bar: &ProgressBar, snaps: &[Snapshot]) {
    let total: u64 = snaps.iter().map(|s| s.total_bytes).sum();
    let verified: u64 = snaps.iter().map(|s| s.stats.verified_bytes).sum();
    let down: f64 = snaps.iter().map(|s| s.stats.down_rate).sum();
    let up: f64 = snaps.iter().map(|s| s.stats.up_rate).sum();
    let done = snaps
        .iter()
        .filter(|s| matches!(s.phase, Phase::Seeding | Phase::Done))
        .count();
    bar.set_length(total.max(1));
    bar.set_position(verified);
    bar.set_message(format!(
        "↓ {}/s ↑ {}/s {done}/{} torrents complete",
        human_bytes(down as u64),
        human_bytes(up as u64),
        snaps.len()
    ));
}

fn draw(bar: &ProgressBar, s: &Snapshot) {
    bar.set_prefix(clean(&s.name).into_owned());
    bar.set_length(s.total_bytes.max(1));
    let st = &s.stats;
    match s.phase {
        Phase::Checking => {
            bar.set_position(s.checked_bytes);
            bar.set_message("checking existing data");
        }
        Phase::Seeding => {
            bar.set_position(st.verified_bytes);
            bar.set_message(seeding_line(s));
        }
        Phase::Downloading | Phase::Done => {
            bar.set_position(st.verified_bytes);
            let eta = match s.eta_secs() {
                Some(0) => String::new(),
                Some(t) => format!(" ETA {}", fmt_duration(t)),
                None => " ETA -".to_string(),
            };
            bar.set_message(format!(
                "↓ {}/s ↑ {}/s up {} ratio {:.2} peers {}/{}{eta}{}",
                human_bytes(st.down_rate as u64),
                human_bytes(st.up_rate as u64),
                human_bytes(s.totals().uploaded),
                s.ratio(),
                st.peers_connected,
                st.peers_known.max(st.peers_connected),
                trackers_note(s),
            ));
        }
    }
}

/// The bar's text while seeding: whom we serve, how fast, how much so far, for how long.
fn seeding_line(s: &Snapshot) -> String {
    let st = &s.stats;
    format!(
        "seeding {}: serving {} of {} peers ({} served) ↑ {}/s up {} ratio {:.2}{}",
        fmt_duration(s.totals().seeded.as_secs()),
        st.peers_unchoked,
        st.peers_connected,
        st.peers_served,
        human_bytes(st.up_rate as u64),
        human_bytes(s.totals().uploaded),
        s.ratio(),
        trackers_note(s),
    )
}

fn trackers_note(s: &Snapshot) -> String {
    if s.trackers_total == 0 {
        return String::new();
    }
    let err = s
        .tracker_error
        .as_deref()
        .map(|e| format!(" ({})", clean(e)))
        .unwrap_or_default();
    format!(" trackers {}/{}{err}", s.trackers_ok, s.trackers_total)
}

fn fmt_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_hostile_names_and_tracker_errors_escaped() {
        let hostile = "x\x1b]0;pwned\x07\x1b[2J\u{9b}31m\ry";
        for phase in [Phase::Downloading, Phase::Seeding] {
            let snap = Snapshot {
                name: hostile.into(),
                phase,
                trackers_total: 1,
                tracker_error: Some(format!("http://t/{hostile}: failure reason: {hostile}")),
                ..Snapshot::default()
            };
            let bar = ProgressBar::hidden();
            draw(&bar, &snap);
            for text in [bar.prefix(), bar.message()] {
                assert!(!text.chars().any(char::is_control), "{text:?}");
            }
            assert!(bar.prefix().starts_with("x\\u{1b}]0;pwned"));
            assert!(bar.message().contains("trackers 0/1 (http://t/x\\u{1b}"));
        }
    }
}
