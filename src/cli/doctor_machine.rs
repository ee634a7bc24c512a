//! `swarm doctor` without a torrent: the machine and network checks (being written).

use super::doctor_cmd::DoctorArgs;
use super::*;
use crate::doctor::Finding;

pub(super) fn run(_a: &DoctorArgs, _quiet: bool) -> Result<Vec<Finding>> {
    bail!("not written yet")
}

/// The download directory: exists (or can be created), writable, free space.
pub(super) fn check_download_dir(_dir: &Path) -> Finding {
    unimplemented!()
}
