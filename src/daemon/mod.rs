//! `swarm daemon`: a long-running session with the qBittorrent Web API v2 subset that
//! media tools speak, and a web page that is a client of that API.
//!
//! Layers:
//! - [`model`]: the plain data between the front ends and the core (a [`model::View`] to
//!   read, [`model::Command`]s to ask for changes).
//! - `qbt`: the API's semantics, pure: parameters in, JSON and status codes out.
//! - `web`: HTTP, authentication and the page: the edge.
//! - the core: the session, the torrent list and its state on disk.

pub mod api;
pub mod core;
pub mod model;
pub mod page;
pub mod qbt;
pub mod saved;
pub mod web;
