//! swarm — a BitTorrent client. See DESIGN.md for the module map and data flow.
// `deny`, not `forbid`: one module (`sha1_pair`, SHA-NI for two pieces at once) allows it,
// for a measured win; see its docs.
#![deny(unsafe_code)]

pub mod bencode;
pub mod cli;
pub mod config;
pub mod create;
pub mod daemon;
pub mod dht;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod fuzz_targets;
pub mod layout;
pub mod lsd;
pub mod magnet;
pub mod metadata;
pub mod metainfo;
pub mod net;
pub mod pex;
pub mod portmap;
pub mod selection;
pub mod session;
pub mod sha1_pair;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tracker;
pub mod tracker_server;
pub mod types;
pub mod units;
pub mod wire;
