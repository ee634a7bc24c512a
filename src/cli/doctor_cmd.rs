//! `swarm doctor`: the machine and network as swarm sees them (no argument,
//! `doctor_machine.rs`), or one torrent tried for a while (`doctor_run.rs`); one line per
//! check or finding, `ok`, `warn` or `fail` with what to do, and `--json` for scripts.
//! Exit status 0 when nothing fails.

use super::*;
use crate::doctor::{Finding, Severity};

/// Options of `swarm doctor`.
#[derive(Args, Debug)]
pub(super) struct DoctorArgs {
    /// A .torrent (path, http(s):// URL, - for standard input) or a magnet: link to try:
    /// its trackers, discovery, connections and pieces are reported, and the most likely
    /// reason it is stuck. Without it: the machine and network checks.
    #[arg(value_name = "TORRENT")]
    pub torrent: Option<String>,
    /// How long to watch, e.g. 10s, 2m (a torrent ends sooner once it is complete).
    #[arg(long = "for", value_name = "DURATION", default_value = "30s",
          value_parser = parse::parse_duration)]
    pub duration: Duration,
    /// Print everything as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The download directory to check (where `fetch` would write); a torrent's data is
    /// never written there: it goes to a scratch directory, deleted afterwards.
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub(super) fn doctor_cmd(a: DoctorArgs, quiet: bool) -> Result<()> {
    let findings = match &a.torrent {
        None => super::doctor_machine::run(&a, quiet)?,
        Some(t) => super::doctor_run::run(&a, t, quiet)?,
    };
    let failed = findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// One finding as a line: `fail  trackers   the tracker failed (…)`, escaped for the
/// terminal.
pub(super) fn finding_line(f: &Finding) -> String {
    text::clean(&format!(
        "{:<4}  {:<10} {}",
        f.severity.word(),
        f.topic,
        f.text
    ))
    .into_owned()
}
