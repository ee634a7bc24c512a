//! The node's own lookups, driven: queries sent as each lookup asks, lookups finished
//! (with `announce_peer` to the closest nodes that gave tokens), peers reported.

use std::time::Instant;

use super::{Event, Node, Purpose, Running};
use crate::dht::krpc::{Query, Want};
use crate::dht::lookup::Kind;

impl Node {
    /// Sends what each lookup wants sent, and finishes those that are done.
    pub(super) fn drive(&mut self, now: Instant) {
        let ids: Vec<u64> = self.lookups.keys().copied().collect();
        for n in ids {
            let Some(run) = self.lookups.get_mut(&n) else {
                continue;
            };
            for node in run.lookup.expire(now) {
                self.node_failed(now, &node);
            }
            let run = self.lookups.get_mut(&n).expect("present");
            let new = &run.lookup.peers()[run.reported..];
            if !new.is_empty() {
                self.events.push_back(Event::Peers {
                    info_hash: run.lookup.target(),
                    peers: new.to_vec(),
                });
                run.reported = run.lookup.peers().len();
            }
            if run.lookup.is_done(now) {
                let run = self.lookups.remove(&n).expect("present");
                self.finish(now, run);
                continue;
            }
            let (target, kind) = (run.lookup.target(), run.lookup.kind());
            let ask = run.lookup.next_queries(now);
            for (id, addr) in ask {
                let q = match kind {
                    Kind::FindNode => Query::FindNode {
                        target,
                        want: Want::default(),
                    },
                    Kind::GetPeers => Query::GetPeers {
                        info_hash: target,
                        want: Want::default(),
                    },
                };
                if !self.query(now, addr, Some(id), q, Purpose::Lookup(n)) {
                    if let Some(run) = self.lookups.get_mut(&n) {
                        run.lookup.failed(id);
                    }
                }
            }
        }
    }

    fn finish(&mut self, now: Instant, run: Running) {
        let target = run.lookup.target();
        if target == self.id && run.lookup.kind() == Kind::FindNode && !self.joined {
            // Bootstrap found our neighbourhood: now every bucket, at the next tick.
            self.joined = true;
            self.table.refresh_all_soon();
            self.table6.refresh_all_soon();
        }
        let mut announced = 0;
        if let (Some(port), Kind::GetPeers) = (run.announce, run.lookup.kind()) {
            for (id, addr, token) in run.lookup.closest_answered() {
                let Some(token) = token else { continue };
                let q = Query::AnnouncePeer {
                    info_hash: target,
                    port,
                    implied_port: false,
                    token,
                };
                if self.query(now, addr, Some(id), q, Purpose::Announce) {
                    announced += 1;
                }
            }
        }
        if run.lookup.kind() == Kind::GetPeers {
            self.events.push_back(Event::LookupDone {
                info_hash: target,
                queries: run.lookup.queries_sent(),
                announced,
            });
        }
    }
}
