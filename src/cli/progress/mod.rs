//! Progress bars (on a terminal), the final summary line, `--progress-json`, and a log
//! writer that never tears the bars. The display only reads [`Snapshot`]s; it never
//! touches the engine.
//!
//! Files: `fit.rs` (one line fitted to a width), `frame.rs` (snapshots → lines, state
//! words), `files.rs` (per-file progress from the bitfield), `summary.rs` (summary, resume
//! line, JSON objects), `stalled.rs` (why a stalled torrent is stalled) — unit-tested; this file is the terminal edge: it asks
//! the terminal's width before every frame, redraws only what changed at most
//! [`REDRAW_HZ`] times a second, and leaves the last true frame on screen when stopped.
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

use super::text::{clean, clean_log, json_safe};
use crate::metainfo::Metainfo;
use crate::session::Summary;
use crate::snapshot::Snapshot;

mod files;
pub mod fit;
pub mod frame;
mod stalled;
mod summary;

pub use stalled::StallWatch;
pub use summary::summary_line;

use frame::Memory;

/// Frames drawn per second at most: enough to look alive, few enough that a slow terminal
/// (or a recording of one) is not flooded; aria2 and rqbit redraw about this often.
const REDRAW_HZ: u8 = 4;

/// Cells left free at the right edge: the terminal echoes `^C` after the last line, and a
/// line that then wraps would tear the next redraw.
const RIGHT_MARGIN: usize = 3;

/// Width assumed when the terminal does not say (the classic terminal's).
const DEFAULT_COLUMNS: usize = 80;

/// The one MultiProgress of the process, shared with the log writer.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(REDRAW_HZ))
    })
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

/// Whether `--progress-json` was given (set once by the command line, before any display).
static PROGRESS_JSON: AtomicBool = AtomicBool::new(false);

/// `--progress-json`: one JSON object per torrent per second on stdout.
pub fn set_progress_json(on: bool) {
    PROGRESS_JSON.store(on, Ordering::Relaxed);
}

/// How progress is shown: bars on a terminal, a summary line otherwise, nothing if quiet;
/// JSON on stdout with `--progress-json` in any case.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    bars: bool,
    quiet: bool,
    json: bool,
}

/// Each torrent's stall cause as last seen (`None`: not stalled).
type Causes = Vec<Option<String>>;

/// The running display task; it ends with the stall causes it saw last.
pub struct Ui {
    task: Option<(JoinHandle<Causes>, tokio::sync::oneshot::Sender<()>)>,
}

/// The terminal's width now (it may change between frames), less the margin.
fn columns() -> usize {
    let cols = console::Term::stderr()
        .size_checked()
        .map_or(DEFAULT_COLUMNS, |(_, c)| c as usize);
    cols.saturating_sub(RIGHT_MARGIN).max(1)
}

impl Display {
    pub fn new(quiet: bool) -> Self {
        Display {
            bars: !quiet && std::io::stderr().is_terminal(),
            quiet,
            json: PROGRESS_JSON.load(Ordering::Relaxed),
        }
    }

    /// Whether anything would show why a torrent is stalled (not quiet, or JSON).
    pub fn shows_stalls(&self) -> bool {
        !self.quiet || self.json
    }

    /// One line per torrent (and its files in progress), and a total line under them
    /// when there are several. With `stall`, a stalled torrent's cause goes under its bar,
    /// into its JSON, or (without a terminal, unless quiet) on a line of its own.
    pub fn spawn(&self, mut rxs: Vec<watch::Receiver<Snapshot>>, stall: Option<StallWatch>) -> Ui {
        let say_stalls = stall.is_some() && !self.quiet;
        if !(self.bars || self.json || say_stalls) || rxs.is_empty() {
            return Ui { task: None };
        }
        let (bars, json) = (self.bars, self.json);
        let print_stalls = !bars && !self.quiet;
        let mut stalls = stall.map(|w| stalled::Stalls::new(w, rxs.len(), print_stalls));
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let bar = bars.then(|| {
                let bar = multi().add(ProgressBar::new(1));
                bar.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
                bar
            });
            let mut mems = vec![Memory::default(); rxs.len()];
            let mut json_mems = mems.clone();
            let mut started = vec![false; rxs.len()];
            let mut last = String::new();
            let period = Duration::from_millis(1000 / REDRAW_HZ as u64);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let (mut done, mut drawn) = (false, false);
            while !done {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut done_rx => done = true,
                }
                let snaps: Vec<Snapshot> = rxs
                    .iter_mut()
                    .map(|rx| rx.borrow_and_update().clone())
                    .collect();
                // The last tick comes after the session stopped: the causes stay as the
                // download left them.
                if let (Some(stalls), false) = (&mut stalls, done) {
                    let causes = stalls.tick(std::time::Instant::now(), &snaps);
                    for (mem, cause) in mems.iter_mut().zip(json_mems.iter_mut()).zip(causes) {
                        mem.0.stall.clone_from(&cause);
                        mem.1.stall = cause;
                    }
                }
                if let Some(bar) = &bar {
                    for (s, started) in snaps.iter().zip(started.iter_mut()) {
                        if !*started && s.phase != crate::snapshot::Phase::Checking {
                            *started = true;
                            if let Some(line) = summary::resume_line(s) {
                                print_line(&line);
                            }
                        }
                    }
                    let text = frame::frame(&snaps, &mut mems, columns()).join("\n");
                    if text != last && !text.is_empty() {
                        bar.set_message(text.clone());
                        last = text;
                    }
                    drawn |= !last.is_empty();
                }
                if json && (n.is_multiple_of(REDRAW_HZ as u64) || done) {
                    print_json(&snaps, &mut json_mems);
                }
                n += 1;
            }
            // Abandon, not finish: the last frame stays as it was drawn, true to the bytes
            // verified (finishing would draw an interrupted download at 100 %).
            if let Some(bar) = bar {
                bar.abandon();
                // The cursor stays at the end of the last line drawn: what is printed next
                // (the summary) starts on a line of its own.
                if drawn {
                    let _ = std::io::stderr().write_all(b"\n");
                }
            }
            mems.into_iter().map(|m| m.stall).collect()
        });
        Ui {
            task: Some((task, done_tx)),
        }
    }

    /// The one line printed at the end (stderr), unless `--quiet`; `stalled`: why, when
    /// it ended incomplete while stalled.
    pub fn summary(&self, meta: &Metainfo, s: &Summary, stalled: Option<&str>) {
        if self.quiet {
            return;
        }
        let line = stalled::with_cause(summary_line(meta, s), s.complete, stalled);
        eprintln!("{line}");
    }
}

/// One JSON object per torrent, a line each, on stdout.
fn print_json(snaps: &[Snapshot], mems: &mut [Memory]) {
    let tasks = alive_tasks();
    let mut out = String::new();
    for (s, mem) in snaps.iter().zip(mems.iter_mut()) {
        let mut v = summary::json_object(s, mem);
        if let (Some(n), Some(obj)) = (tasks, v.as_object_mut()) {
            obj.insert("tasks".into(), n.into());
        }
        if let Ok(text) = serde_json::to_string(&v) {
            out.push_str(&json_safe(&text));
            out.push('\n');
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// The process's live tokio tasks (the whole runtime, not one torrent's): a soak watches
/// it return to its baseline as peers come and go (a leaked task per connection shows as
/// growth). `None` outside a runtime.
fn alive_tasks() -> Option<usize> {
    tokio::runtime::Handle::try_current()
        .ok()
        .map(|h| h.metrics().num_alive_tasks())
}

/// Prints a line above the bars (or to stderr when there are none), escaped as one line.
pub fn print_line(line: &str) {
    let _ = LogWriter.write_all(format!("{}\n", clean(line)).as_bytes());
}

impl Ui {
    /// Stops the display; each torrent's stall cause as last seen (empty when there was
    /// no display).
    pub async fn finish(self) -> Causes {
        match self.task {
            Some((task, done)) => {
                let _ = done.send(());
                task.await.unwrap_or_default()
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Phase;

    #[test]
    fn the_bar_shows_hostile_names_and_tracker_errors_escaped() {
        let hostile = "x\x1b]0;pwned\x07\x1b[2J\u{9b}31m\ry";
        for phase in [Phase::Downloading, Phase::Seeding] {
            let snap = Snapshot {
                name: hostile.into(),
                phase,
                total_bytes: 10,
                trackers_total: 1,
                tracker_status: Some(format!("t: failure reason: {hostile}")),
                ..Snapshot::default()
            };
            let lines = frame::frame(&[snap], &mut [Memory::default()], 400);
            for text in &lines {
                assert!(!text.chars().any(char::is_control), "{text:?}");
            }
            assert!(lines[0].starts_with("x\\u{1b}]0;pwned"), "{lines:?}");
            assert!(
                lines[0].contains("trackers 0/1 (t: failure reason: x\\u{1b}"),
                "{lines:?}"
            );
        }
    }
    #[test]
    fn alive_tasks_counts_the_runtime_s_tasks() {
        assert_eq!(alive_tasks(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let base = alive_tasks().expect("inside a runtime");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let _ = rx.await;
            });
            assert_eq!(alive_tasks(), Some(base + 1));
            drop(tx);
            task.await.expect("task ends");
            assert_eq!(alive_tasks(), Some(base));
        });
    }
}
