//! Free ports for test processes: a leaf, included by path where `common` is not.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, TcpListener};

/// A TCP port that was free on `ip` a moment ago (bind port 0, read it, release it).
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
