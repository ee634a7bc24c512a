//! `swarm doctor TORRENT`: one torrent tried for a while (being written).

use super::doctor_cmd::DoctorArgs;
use super::*;
use crate::doctor::Finding;

pub(super) fn run(_a: &DoctorArgs, _torrent: &str, _quiet: bool) -> Result<Vec<Finding>> {
    bail!("not written yet")
}
