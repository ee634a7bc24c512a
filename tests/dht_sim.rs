//! A simulated DHT of 1,000 of our own nodes on a virtual clock (model in
//! `dht_sim/net.rs`): links of 10–100 ms, 1% loss, and churn — while the lookups run, 200
//! nodes leave for good and 200 new ones join. Lookups of random targets must reach the
//! true 8 closest live nodes, and an announced info-hash must be found by another node.
//! Queries and virtual time per lookup are printed (`--nocapture`), not asserted.
//!
//! The network settles for 1,000 virtual seconds first, past the 15-minute bucket refresh
//! (`table::REFRESH_AFTER`): until every node has refreshed its buckets once, tables hold
//! only the nodes that contacted them and lookups from different corners disagree.
//!
//! What is asserted, and why it is not "all 8, always": with churn a lookup cannot know a
//! node that joined a moment ago, and 1% loss can drop one of the closest nodes' answers.
//! But this network forms fast (100 joins a second) and nodes hold only ~80% of their own 8
//! nearest neighbours (seed 1: 78.5% reached, 80.7% known), so the nodes a lookup ends at
//! often do not know the closer ones (see the printed miss analysis; PERFORMANCE.md, "The
//! DHT", for how formation speed decides this). The bars below (70% reached on average; 9 of
//! 10 announces found, 10 today) sit under what the current node does, so they catch a
//! regression. Debug-build wall time: ~5 s.

#[path = "dht_sim/net.rs"]
mod net;

use net::{Scenario, SimConfig};

#[test]
fn a_thousand_nodes_with_churn_converge_and_find_announces() {
    let s = Scenario {
        sim: SimConfig::default(),
        nodes: 1000,
        join_gap_ms: 10,
        settle_s: 1000,
        lookups: 200,
        churn: 1,
        pairs: 10,
    };
    let r = s.run();
    r.print("1000 nodes");
    assert_eq!(r.unfinished, 0, "every lookup finishes");
    assert_eq!(r.hits.len(), 200);
    assert!(r.hit_fraction() >= 0.7, "{:.3}", r.hit_fraction());
    assert!(
        r.found >= 9,
        "announces found by another node: {} of 10",
        r.found
    );
}
