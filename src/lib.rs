//! swarm — a BitTorrent client. See DESIGN.md for the module map.
#![forbid(unsafe_code)]

pub mod layout;
pub mod types;
