//! The node's answers to others: one reply per query accepted within the rate limits,
//! tokens checked per address, announced peers stored within their caps.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Bucket, Node, MAX_SOURCES};
use crate::dht::id::NodeId;
use crate::dht::krpc::{code, Body, Msg, Query, Response, Want};
use crate::dht::table::K;

impl Node {
    pub(super) fn answer(&mut self, now: Instant, from: SocketAddr, tid: Vec<u8>, query: Query) {
        let mut response = Response::default();
        match query {
            Query::Ping => {}
            Query::FindNode { target, want } => {
                self.nodes_for(now, &target, want, from, &mut response)
            }
            Query::GetPeers { info_hash, want } => {
                response.token = Some(self.tokens.issue(from.ip()).to_vec());
                match self.stored.get(&info_hash) {
                    Some(peers) if !peers.is_empty() => {
                        response.values = peers
                            .keys()
                            .copied()
                            .take(crate::dht::krpc::MAX_VALUES)
                            .collect();
                    }
                    _ => self.nodes_for(now, &info_hash, want, from, &mut response),
                }
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.check(from.ip(), &token) {
                    return self.error(from, tid, code::PROTOCOL, "bad token");
                }
                let port = if implied_port { from.port() } else { port };
                self.store(now, info_hash, SocketAddr::new(from.ip(), port));
            }
            Query::Other { .. } => {
                return self.error(from, tid, code::METHOD_UNKNOWN, "Method Unknown");
            }
        }
        self.answered += 1;
        let msg = Msg {
            tid,
            body: Body::Response {
                id: self.id,
                response,
            },
            ip: Some(from),
            read_only: false,
        };
        self.send(from, msg.encode());
    }

    fn error(&mut self, to: SocketAddr, tid: Vec<u8>, code: i64, message: &str) {
        let msg = Msg {
            tid,
            body: Body::Error {
                code,
                message: message.to_owned(),
            },
            ip: None,
            read_only: false,
        };
        self.send(to, msg.encode());
    }

    /// The nodes nearest `target` into `r`: `nodes` from our IPv4 table, `nodes6` from our
    /// IPv6 table, as `want` asks (BEP 32); without `want`, the querier's own family.
    fn nodes_for(
        &self,
        now: Instant,
        target: &NodeId,
        want: Want,
        from: SocketAddr,
        r: &mut Response,
    ) {
        let asked = want.v4 || want.v6;
        // Never the querier itself (it has just joined our table).
        if want.v4 || (!asked && from.is_ipv4()) {
            r.nodes = self
                .table
                .closest(now, target, K + 1)
                .into_iter()
                .filter(|(_, a)| *a != from)
                .take(K)
                .filter_map(|(id, a)| match a {
                    SocketAddr::V4(v4) => Some((id, v4)),
                    SocketAddr::V6(_) => None,
                })
                .collect();
        }
        if want.v6 || (!asked && from.is_ipv6()) {
            r.nodes6 = self
                .table6
                .closest(now, target, K + 1)
                .into_iter()
                .filter(|(_, a)| *a != from)
                .take(K)
                .filter_map(|(id, a)| match a {
                    SocketAddr::V6(v6) => Some((id, v6)),
                    SocketAddr::V4(_) => None,
                })
                .collect();
        }
    }

    fn store(&mut self, now: Instant, info_hash: NodeId, peer: SocketAddr) {
        if !self.rules.admits(&peer) {
            return;
        }
        if !self.stored.contains_key(&info_hash) && self.stored.len() >= self.cfg.max_stored_hashes
        {
            return;
        }
        let peers = self.stored.entry(info_hash).or_default();
        if !peers.contains_key(&peer) && peers.len() >= self.cfg.max_peers_per_hash {
            // Full: the stalest announce gives way.
            if let Some(old) = peers.iter().min_by_key(|(_, at)| **at).map(|(a, _)| *a) {
                peers.remove(&old);
            }
        }
        peers.insert(peer, now);
    }

    /// Whether a query from `from` may be answered now (per source, then in total).
    pub(super) fn allow(&mut self, now: Instant, from: SocketAddr) -> bool {
        let (rate, burst) = (self.cfg.per_source_rate, self.cfg.per_source_burst);
        if !self.sources.contains_key(&from.ip()) && self.sources.len() >= MAX_SOURCES {
            // Forget the source idle longest.
            if let Some(old) = self
                .sources
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(ip, _)| *ip)
            {
                self.sources.remove(&old);
            }
        }
        let b = self.sources.entry(from.ip()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        if !take(b, now, rate, burst) {
            return false;
        }
        let total = self.cfg.total_rate;
        take(&mut self.total, now, total, total)
    }
}

/// Takes one token from a bucket refilled at `rate` a second up to `burst`.
fn take(b: &mut Bucket, now: Instant, rate: f64, burst: f64) -> bool {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(burst);
    b.at = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}
