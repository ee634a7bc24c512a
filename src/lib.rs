//! swarm — a BitTorrent client. See DESIGN.md for the module map and data flow.
#![forbid(unsafe_code)]

pub mod bencode;
pub mod cli;
pub mod config;
pub mod create;
pub mod engine;
pub mod error;
pub mod layout;
pub mod metainfo;
pub mod net;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tracker;
pub mod tracker_server;
pub mod types;
pub mod wire;
