//! One iterative lookup (BEP 5): ask the closest nodes we know about `target`, learn closer
//! ones from their answers, and go on until the [`K`] closest nodes seen have all answered
//! (or failed). `find_node` lookups fill routing tables; `get_peers` lookups also collect
//! peers and the tokens to announce with.
//!
//! Sans-IO: the owner asks [`Lookup::next_queries`] whom to query, sends them, and reports
//! each answer ([`Lookup::answered`]) or failure ([`Lookup::failed`]); time only comes in
//! as `now`, for the per-query timeout.
//!
//! Invariants: at most [`ALPHA`] queries in flight that are still on time (a slow one
//! past [`SLOW_AFTER`] frees its slot, so one dead node never stalls the lookup); at most
//! [`MAX_CANDIDATES`] candidates (the farthest are dropped) and [`MAX_PEERS`] peers kept, so
//! lying nodes cannot grow a lookup; a node is queried at most once per lookup.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::id::{Distance, NodeId};
use super::table::{Rules, K};

/// Queries in flight at once (BEP 5's alpha; libtorrent: 3).
pub const ALPHA: usize = 3;

/// A query unanswered this long stops counting against [`ALPHA`] (it may still answer).
pub const SLOW_AFTER: Duration = Duration::from_secs(2);

/// A query unanswered this long has failed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(8);

/// Candidates remembered per lookup.
pub const MAX_CANDIDATES: usize = 128;

/// Peers remembered per `get_peers` lookup.
pub const MAX_PEERS: usize = 400;

/// A query to `c` is out and not yet slow.
fn on_time(c: &Candidate, now: Instant) -> bool {
    matches!(c.state, State::Asked(t) if now.saturating_duration_since(t) < SLOW_AFTER)
}

/// `c` counts among the closest: not failed, and not a query gone slow (a slow node that
/// answers after all is `Answered` and counts again).
fn in_window(c: &Candidate, now: Instant) -> bool {
    match c.state {
        State::Failed => false,
        State::Asked(_) => on_time(c, now),
        State::Fresh | State::Answered { .. } => true,
    }
}

/// What a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FindNode,
    GetPeers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Fresh,
    Asked(Instant),
    Answered { token: Option<Vec<u8>> },
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: NodeId,
    addr: SocketAddr,
    state: State,
}

/// One lookup in progress.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: NodeId,
    kind: Kind,
    /// Ourselves: never a candidate (other nodes list us too).
    me: Option<NodeId>,
    rules: Rules,
    candidates: BTreeMap<Distance, Candidate>,
    /// Addresses ever queried or queued, so a node listed by many is asked once.
    seen: BTreeSet<SocketAddr>,
    peers: Vec<SocketAddr>,
    peer_set: BTreeSet<SocketAddr>,
    /// Queries sent, for the figures.
    queries: u32,
}

impl Lookup {
    /// A lookup seeded with the nodes we know closest to `target`; `me` (our own id) is
    /// never queried, and candidates and peers follow `rules`.
    pub fn new(
        target: NodeId,
        kind: Kind,
        me: Option<NodeId>,
        rules: Rules,
        seeds: Vec<(NodeId, SocketAddr)>,
    ) -> Lookup {
        let mut l = Lookup {
            target,
            kind,
            me,
            rules,
            candidates: BTreeMap::new(),
            seen: BTreeSet::new(),
            peers: Vec::new(),
            peer_set: BTreeSet::new(),
            queries: 0,
        };
        for (id, addr) in seeds {
            l.add_candidate(id, addr);
        }
        l
    }

    pub fn target(&self) -> NodeId {
        self.target
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn queries_sent(&self) -> u32 {
        self.queries
    }

    /// A node someone told us about (asked in its turn if it is among the closest).
    pub fn add_candidate(&mut self, id: NodeId, addr: SocketAddr) {
        if Some(id) == self.me || !self.rules.admits(&addr) || !self.seen.insert(addr) {
            return;
        }
        let d = id.distance(&self.target);
        if self.candidates.contains_key(&d) {
            return;
        }
        if self.candidates.len() >= MAX_CANDIDATES {
            // Farther than everything kept: not worth remembering.
            match self.candidates.last_key_value() {
                Some((far, _)) if *far > d => {
                    let far = *far;
                    self.candidates.remove(&far);
                }
                _ => return,
            }
        }
        self.candidates.insert(
            d,
            Candidate {
                id,
                addr,
                state: State::Fresh,
            },
        );
    }

    /// Whom to query now: the closest fresh candidates among the [`K`] closest that have
    /// not failed, while fewer than [`ALPHA`] queries are in flight and on time. Each
    /// returned node counts as asked from `now`.
    pub fn next_queries(&mut self, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        self.expire(now);
        let mut in_flight = self.candidates.values().filter(|c| on_time(c, now)).count();
        let mut out = Vec::new();
        // The K closest that may still answer in time: a slow node gives its place in the
        // window to the next one (it may still answer, and then counts again).
        for c in self
            .candidates
            .values_mut()
            .filter(|c| in_window(c, now))
            .take(K)
        {
            if in_flight >= ALPHA {
                break;
            }
            if c.state == State::Fresh {
                c.state = State::Asked(now);
                in_flight += 1;
                out.push((c.id, c.addr));
            }
        }
        self.queries += out.len() as u32;
        out
    }

    /// Queries older than [`QUERY_TIMEOUT`] have failed; returns their nodes (for the
    /// routing table).
    pub fn expire(&mut self, now: Instant) -> Vec<NodeId> {
        let mut failed = Vec::new();
        for c in self.candidates.values_mut() {
            if let State::Asked(t) = c.state {
                if now.saturating_duration_since(t) >= QUERY_TIMEOUT {
                    c.state = State::Failed;
                    failed.push(c.id);
                }
            }
        }
        failed
    }

    /// When the lookup next needs the clock: the earliest moment a query in flight turns
    /// slow or fails.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.candidates
            .values()
            .filter_map(|c| match c.state {
                State::Asked(t) => Some(t + SLOW_AFTER),
                _ => None,
            })
            .min()
    }

    /// Node `from` at `addr` answered: the closer nodes it names join the candidates, its
    /// peers (for `get_peers`) are kept, its token remembered.
    pub fn answered(
        &mut self,
        from: NodeId,
        addr: SocketAddr,
        nodes: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        values: impl IntoIterator<Item = SocketAddr>,
        token: Option<Vec<u8>>,
    ) {
        let d = from.distance(&self.target);
        match self.candidates.get_mut(&d) {
            Some(c) if c.addr == addr && matches!(c.state, State::Asked(_) | State::Failed) => {
                c.state = State::Answered { token };
            }
            // An answer we did not ask for (or from another address): ignored.
            _ => return,
        }
        for (id, a) in nodes {
            self.add_candidate(id, a);
        }
        if self.kind == Kind::GetPeers {
            for p in values {
                if self.peers.len() >= MAX_PEERS {
                    break;
                }
                if self.rules.admits(&p) && self.peer_set.insert(p) {
                    self.peers.push(p);
                }
            }
        }
    }

    /// A query failed (an error reply, or the edge gave up on it).
    pub fn failed(&mut self, from: NodeId) {
        let d = from.distance(&self.target);
        if let Some(c) = self.candidates.get_mut(&d) {
            if matches!(c.state, State::Asked(_)) {
                c.state = State::Failed;
            }
        }
    }

    /// Done when none of the [`K`] closest candidates that failed neither outright nor by
    /// going slow is fresh or in flight on time (as libtorrent: one slow node does not
    /// hold a lookup for the whole [`QUERY_TIMEOUT`]).
    pub fn is_done(&self, now: Instant) -> bool {
        !self
            .candidates
            .values()
            .filter(|c| in_window(c, now))
            .take(K)
            .any(|c| c.state == State::Fresh || on_time(c, now))
    }

    /// Peers found so far, in the order they came.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// The [`K`] closest nodes that answered, nearest first, with the token each gave
    /// (what `announce_peer` goes to).
    pub fn closest_answered(&self) -> Vec<(NodeId, SocketAddr, Option<Vec<u8>>)> {
        self.candidates
            .values()
            .filter_map(|c| match &c.state {
                State::Answered { token } => Some((c.id, c.addr, token.clone())),
                _ => None,
            })
            .take(K)
            .collect()
    }
}

#[cfg(test)]
#[path = "lookup_tests.rs"]
mod tests;
