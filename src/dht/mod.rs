//! The mainline DHT (BEP 5, with BEP 32's IPv6 and BEP 42's secure ids to come), sans-IO:
//! no sockets, no clock. The vocabulary: node ids and the XOR metric ([`id`]) and the KRPC
//! messages as typed values ([`krpc`]); the routing table ([`table`]: k-buckets split
//! around our id, node standing, replacements, refresh); iterative lookups ([`lookup`]:
//! bounded parallelism converging on the k closest, peers and tokens collected) and the
//! `announce_peer` token secrets ([`token`]); and the node that ties them together ([`node`]:
//! answers within rate limits, transactions, lookups and announces, stored peers; IPv4 and
//! IPv6 tables, BEP 32), and BEP 42's secure ids ([`secure`]: ours once enough nodes agree
//! on our external address; verified ids preferred in full buckets). The UDP edge lives in
//! the session.
//!
//! Invariants: every datagram is decoded within [`krpc::MAX_PACKET`] bytes into a value
//! whose lists are capped, so a hostile packet costs bounded work and memory.

pub mod id;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod secure;
pub mod table;
pub mod token;

pub use id::{Distance, NodeId};
pub use krpc::{Body, KrpcError, Msg, Query, Response, Want};
pub use table::{Heard, RoutingTable};
