//! The routing table (BEP 5): buckets of at most [`K`] nodes, split around our own id.
//!
//! Bucket `i` holds nodes whose ids share exactly `i` leading bits with ours; the last
//! bucket holds everything sharing at least as many. When the last bucket is full and a
//! node for it arrives, it splits (up to 160 buckets): buckets far from us never split,
//! so the table knows many nodes near our id and a few in every distant part of the space.
//!
//! Node states (BEP 5): *good* — it answered one of our queries within [`GOOD_FOR`], or it
//! answered once and has queried us within [`GOOD_FOR`]; *questionable* — nothing for
//! [`GOOD_FOR`]; *bad* — it failed [`BAD_AFTER`] queries in a row. A full bucket takes a
//! newcomer only in place of a bad node; otherwise its most stale questionable node is
//! handed out to be pinged (and the newcomer waits in a small replacement cache, first in
//! line when a node goes bad).
//!
//! Invariants: at most [`K`] nodes per bucket and [`K`] replacements per bucket, at most
//! 160 buckets (memory bounded whatever nodes tell us); never our own id; never an address
//! that cannot be a node (port 0, unspecified, multicast, broadcast); an address appears
//! at most once (a node that restarts with a new id replaces its old entry); with
//! `one_per_ip`, an IP address at most once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::id::NodeId;

/// Nodes per bucket (BEP 5's k).
pub const K: usize = 8;

/// How long an answer keeps a node good (BEP 5: 15 minutes).
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);

/// Unanswered queries in a row that make a node bad (BEP 5: "multiple"; libtorrent: 2
/// before it is replaced when a candidate waits).
pub const BAD_AFTER: u32 = 2;

/// A bucket untouched this long is refreshed with a lookup of a random id in it (BEP 5).
pub const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);

/// One node as the table keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub addr: SocketAddr,
    /// When it last answered one of our queries.
    pub answered: Option<Instant>,
    /// When it last queried us.
    pub queried_us: Option<Instant>,
    /// Our queries it failed to answer since its last answer.
    pub failures: u32,
}

/// A node's standing (BEP 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    Good,
    Questionable,
    Bad,
}

impl Node {
    pub fn standing(&self, now: Instant) -> Standing {
        if self.failures >= BAD_AFTER {
            return Standing::Bad;
        }
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR);
        if recent(self.answered) || (self.answered.is_some() && recent(self.queried_us)) {
            Standing::Good
        } else {
            Standing::Questionable
        }
    }

    /// The last sign of life, for picking the most stale node.
    fn last_seen(&self) -> Option<Instant> {
        self.answered.max(self.queried_us)
    }
}

/// How we heard from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// It answered our query: proof it is reachable.
    Answered,
    /// It queried us: alive, but not proof we can reach it.
    Queried,
}

/// What [`RoutingTable::heard`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In the table now (added, or updated).
    Kept,
    /// Its bucket is full of nodes that are not bad: it waits as a replacement, and this
    /// questionable node (if any) should be pinged to see whether it is still there.
    Waiting { ping: Option<(NodeId, SocketAddr)> },
    /// Not a node we keep (our id, an unusable address, its IP already present).
    Refused,
}

#[derive(Debug, Default, Clone)]
struct Bucket {
    nodes: Vec<Node>,
    /// Newest last; at most [`K`].
    replacements: Vec<Node>,
    /// When a node in it was last added, or answered (for refresh).
    changed: Option<Instant>,
}

/// Which nodes a node may know: the same rules for its routing table and its lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Keep at most one node per IP address (libtorrent's `dht_restrict_routing_ips`).
    pub one_per_ip: bool,
    /// Accept nodes (and peers) at loopback, private and link-local addresses. Off on the
    /// internet, where such an address names some stranger's LAN and querying it would
    /// make us a scanner of other people's networks (libtorrent's
    /// `dht_ignore_dark_internet`); on for a DHT of loopback or LAN nodes.
    pub allow_local: bool,
    /// In a full bucket, a newcomer whose id is valid for its address (BEP 42) takes the
    /// place of a member whose id is not and that is no longer good.
    pub prefer_secure: bool,
}

impl Rules {
    /// The internet's rules.
    pub const PUBLIC: Rules = Rules {
        one_per_ip: true,
        allow_local: false,
        prefer_secure: true,
    };
    /// A DHT on loopback or one LAN (tests, `--dht-node` on a private address).
    pub const LOCAL: Rules = Rules {
        one_per_ip: false,
        allow_local: true,
        prefer_secure: false,
    };

    /// Whether `addr` may be a node (or a peer) under these rules.
    pub fn admits(&self, addr: &SocketAddr) -> bool {
        usable(addr) && (self.allow_local || !crate::pex::is_local(addr.ip()))
    }
}

/// Our node's routing table (see the module docs).
#[derive(Debug, Clone)]
pub struct RoutingTable {
    me: NodeId,
    buckets: Vec<Bucket>,
    rules: Rules,
}

impl RoutingTable {
    pub fn new(me: NodeId, rules: Rules) -> Self {
        RoutingTable {
            me,
            buckets: vec![Bucket::default()],
            rules,
        }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Nodes in the table (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Every node, for saving the table between runs.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    fn index(&self, id: &NodeId) -> usize {
        (self.me.common_prefix(id) as usize).min(self.buckets.len() - 1)
    }

    /// We heard from `id` at `addr`.
    pub fn heard(&mut self, now: Instant, id: NodeId, addr: SocketAddr, how: Heard) -> Outcome {
        if id == self.me || !self.rules.admits(&addr) {
            return Outcome::Refused;
        }
        // Same address, new id: the node restarted; its old entry goes.
        if let Some(old) = self.find_addr(&addr).filter(|old| *old != id) {
            self.remove(&old);
        }
        if self.rules.one_per_ip && self.nodes().any(|n| n.addr.ip() == addr.ip() && n.id != id) {
            return Outcome::Refused;
        }
        loop {
            let i = self.index(&id);
            let count = self.buckets.len();
            let last = i == count - 1;
            let bucket = &mut self.buckets[i];
            if let Some(n) = bucket.nodes.iter_mut().find(|n| n.id == id) {
                n.addr = addr;
                touch(n, now, how);
                if how == Heard::Answered {
                    bucket.changed = Some(now);
                }
                return Outcome::Kept;
            }
            let mut node = Node {
                id,
                addr,
                answered: None,
                queried_us: None,
                failures: 0,
            };
            touch(&mut node, now, how);
            if bucket.nodes.len() < K {
                bucket.nodes.push(node);
                bucket.changed = Some(now);
                return Outcome::Kept;
            }
            if let Some(bad) = bucket
                .nodes
                .iter()
                .position(|n| n.standing(now) == Standing::Bad)
            {
                bucket.nodes[bad] = node;
                bucket.changed = Some(now);
                return Outcome::Kept;
            }
            if last && count < 160 {
                self.split();
                continue;
            }
            let bucket = &mut self.buckets[i];
            if self.rules.prefer_secure && super::secure::is_secure(&id, addr.ip()) {
                let unverified = bucket
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| {
                        n.standing(now) != Standing::Good
                            && !super::secure::is_secure(&n.id, n.addr.ip())
                    })
                    .min_by_key(|(_, n)| n.last_seen())
                    .map(|(i, _)| i);
                if let Some(pos) = unverified {
                    bucket.nodes[pos] = node;
                    bucket.changed = Some(now);
                    return Outcome::Kept;
                }
            }
            let ping = bucket
                .nodes
                .iter()
                .filter(|n| n.standing(now) == Standing::Questionable)
                .min_by_key(|n| n.last_seen())
                .map(|n| (n.id, n.addr));
            bucket.replacements.retain(|r| r.id != id && r.addr != addr);
            if bucket.replacements.len() >= K {
                bucket.replacements.remove(0);
            }
            bucket.replacements.push(node);
            return Outcome::Waiting { ping };
        }
    }

    /// A query to `id` went unanswered. A node that is now bad gives its place to the
    /// newest replacement of its bucket, if there is one.
    pub fn failed(&mut self, now: Instant, id: &NodeId) {
        let i = self.index(id);
        let bucket = &mut self.buckets[i];
        let Some(pos) = bucket.nodes.iter().position(|n| n.id == *id) else {
            bucket.replacements.retain(|r| r.id != *id);
            return;
        };
        bucket.nodes[pos].failures += 1;
        if bucket.nodes[pos].standing(now) == Standing::Bad {
            if let Some(r) = bucket.replacements.pop() {
                bucket.nodes[pos] = r;
                bucket.changed = Some(now);
            }
        }
    }

    /// Up to `n` nodes closest to `target`, nearest first, bad ones left out.
    pub fn closest(&self, now: Instant, target: &NodeId, n: usize) -> Vec<(NodeId, SocketAddr)> {
        let mut all: Vec<(super::id::Distance, &Node)> = self
            .nodes()
            .filter(|x| x.standing(now) != Standing::Bad)
            .map(|x| (x.id.distance(target), x))
            .collect();
        // Only the `n` nearest need sorting (an answer's cost, paid per query we answer).
        if all.len() > n && n > 0 {
            all.select_nth_unstable_by_key(n - 1, |(d, _)| *d);
            all.truncate(n);
        }
        all.sort_unstable_by_key(|(d, _)| *d);
        all.into_iter()
            .take(n)
            .map(|(_, x)| (x.id, x.addr))
            .collect()
    }

    /// Targets to look up now: one random id (from `fill`) inside each bucket that has not
    /// changed for [`REFRESH_AFTER`]. Each returned bucket counts as refreshed.
    pub fn due_refresh(&mut self, now: Instant, fill: &NodeId) -> Vec<NodeId> {
        let me = self.me;
        let count = self.buckets.len();
        let mut out = Vec::new();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            let stale = b
                .changed
                .is_none_or(|t| now.saturating_duration_since(t) >= REFRESH_AFTER);
            if stale {
                b.changed = Some(now);
                // An id sharing exactly `i` bits with ours falls in bucket `i`; the last
                // bucket holds every nearer one too, and its refresh looks right next to
                // us, where our closest neighbours are (nothing else looks there).
                let target = if i + 1 == count {
                    me.with_prefix_of(159, fill)
                } else {
                    me.with_prefix_of(i as u32, fill)
                };
                out.push(target);
            }
        }
        out
    }

    /// Every bucket is due for refresh at the next [`RoutingTable::due_refresh`] (once the
    /// first lookup of our own id has found our neighbourhood, one lookup into each bucket
    /// fills the rest of the table and makes us known there, instead of 15 minutes later).
    pub fn refresh_all_soon(&mut self) {
        for b in &mut self.buckets {
            b.changed = None;
        }
    }

    /// Takes the nodes of `old` (a table around another id: ours changed) with their
    /// standing; those that do not fit a full bucket are dropped.
    pub fn absorb(&mut self, old: &RoutingTable) {
        for n in old.nodes() {
            if n.id == self.me {
                continue;
            }
            loop {
                let i = self.index(&n.id);
                let count = self.buckets.len();
                if self.buckets[i].nodes.len() < K {
                    self.buckets[i].nodes.push(n.clone());
                    self.buckets[i].changed = self.buckets[i].changed.max(n.last_seen());
                    break;
                }
                if i + 1 == count && count < 160 {
                    self.split();
                    continue;
                }
                break;
            }
        }
    }

    fn split(&mut self) {
        let depth = self.buckets.len() - 1;
        let last = self.buckets.last_mut().expect("at least one bucket");
        let (stay, go): (Vec<Node>, Vec<Node>) = std::mem::take(&mut last.nodes)
            .into_iter()
            .partition(|n| self.me.common_prefix(&n.id) as usize == depth);
        let (rstay, rgo): (Vec<Node>, Vec<Node>) = std::mem::take(&mut last.replacements)
            .into_iter()
            .partition(|n| self.me.common_prefix(&n.id) as usize == depth);
        last.nodes = stay;
        last.replacements = rstay;
        let changed = last.changed;
        self.buckets.push(Bucket {
            nodes: go,
            replacements: rgo,
            changed,
        });
    }

    fn find_addr(&self, addr: &SocketAddr) -> Option<NodeId> {
        self.nodes().find(|n| n.addr == *addr).map(|n| n.id)
    }

    fn remove(&mut self, id: &NodeId) {
        let i = self.index(id);
        self.buckets[i].nodes.retain(|n| n.id != *id);
    }
}

fn touch(n: &mut Node, now: Instant, how: Heard) {
    match how {
        Heard::Answered => {
            n.answered = Some(now);
            n.failures = 0;
        }
        Heard::Queried => n.queried_us = Some(now),
    }
}

/// Whether `addr` can be a DHT node at all: a port and a unicast address outside the
/// reserved ranges (the engine's own rule for addresses to dial).
pub fn usable(addr: &SocketAddr) -> bool {
    crate::engine::is_dialable(addr)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
