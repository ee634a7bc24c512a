//! The mainline DHT (BEP 5, with BEP 32's IPv6 and BEP 42's secure ids to come), sans-IO:
//! no sockets, no clock. This first part is the vocabulary: node ids and the XOR metric
//! ([`id`]) and the KRPC messages as typed values ([`krpc`]). The routing table, lookups,
//! tokens and the node that ties them together are built on these; the UDP edge lives in
//! the session.
//!
//! Invariants: every datagram is decoded within [`krpc::MAX_PACKET`] bytes into a value
//! whose lists are capped, so a hostile packet costs bounded work and memory.

pub mod id;
pub mod krpc;

pub use id::{Distance, NodeId};
pub use krpc::{Body, KrpcError, Msg, Query, Response, Want};
