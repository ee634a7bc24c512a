//! KRPC (BEP 5) as typed values: queries (`ping`, `find_node`, `get_peers`,
//! `announce_peer`, and any other method as [`Query::Other`]), responses and errors, with
//! BEP 32's `nodes6` and `want`, BEP 42's `ip` and BEP 43's `ro`.
//!
//! Decoding is the strict bencode pass first ([`crate::bencode`]: depth, lengths,
//! duplicate keys, trailing bytes) over a datagram of at most [`MAX_PACKET`] bytes, then
//! `serde_bencode` fills the typed fields from those vetted bytes. Every field is checked
//! before it is kept: ids exactly 20 bytes, compact node lists a multiple of their entry
//! size (at most [`MAX_NODES`] kept), peer values exactly 6 or 18 bytes (at most
//! [`MAX_VALUES`] kept), transaction ids and tokens short. So one datagram, however
//! hostile, costs a bounded decode and yields a bounded value.
//!
//! Encoding writes canonical bencode (keys sorted) with the crate's encoder.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::id::NodeId;
use crate::bencode::{self, BencodeError, Value};

/// Largest datagram decoded. A `get_peers` reply with 100 IPv6 peers is about 2.2 KB;
/// libtorrent keeps its replies under 1.5 KB.
pub const MAX_PACKET: usize = 4096;

/// Longest transaction id accepted (ours are 2 bytes; clients in the wild use up to 8).
pub const MAX_TID: usize = 16;

/// Longest token accepted (libtorrent's are 4 bytes, Transmission's 8, ours 8).
pub const MAX_TOKEN: usize = 64;

/// Nodes kept from one `nodes` or `nodes6` list (a reply carries 8).
pub const MAX_NODES: usize = 16;

/// Peers kept from one `values` list (libtorrent sends at most 100 per reply).
pub const MAX_VALUES: usize = 100;

/// Longest error message kept, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 200;

/// BEP 5's error codes.
pub mod code {
    pub const GENERIC: i64 = 201;
    pub const SERVER: i64 = 202;
    pub const PROTOCOL: i64 = 203;
    pub const METHOD_UNKNOWN: i64 = 204;
}

/// Why a datagram was not a KRPC message we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    #[error("datagram of {0} bytes is larger than {MAX_PACKET}")]
    TooLarge(usize),
    #[error("not bencode")]
    Bencode(#[from] BencodeError),
    #[error("not a dictionary")]
    NotADict,
    #[error("fields of the wrong type: {0}")]
    Schema(String),
    #[error("no {0}")]
    Missing(&'static str),
    #[error("{0} is malformed")]
    Bad(&'static str),
}

/// Which address families a querier wants nodes of (BEP 32); neither given = its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    pub v4: bool,
    pub v6: bool,
}

/// A query's method and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Ping,
    FindNode {
        target: NodeId,
        want: Want,
    },
    GetPeers {
        info_hash: NodeId,
        want: Want,
    },
    AnnouncePeer {
        info_hash: NodeId,
        port: u16,
        /// BEP 5: use the packet's source port, not `port` (peers behind NAT).
        implied_port: bool,
        token: Vec<u8>,
    },
    /// A method we do not implement (answered with error 204).
    Other {
        method: String,
    },
}

/// A response's fields (which of them a response carries depends on the query).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub nodes: Vec<(NodeId, SocketAddrV4)>,
    pub nodes6: Vec<(NodeId, SocketAddrV6)>,
    pub values: Vec<SocketAddr>,
    pub token: Option<Vec<u8>>,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query from node `id`.
    Query {
        id: NodeId,
        query: Query,
    },
    /// A response from node `id`.
    Response {
        id: NodeId,
        response: Response,
    },
    Error {
        code: i64,
        message: String,
    },
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Transaction id: a response carries its query's.
    pub tid: Vec<u8>,
    pub body: Body,
    /// BEP 42: the requester's address as the responder sees it (in responses).
    pub ip: Option<SocketAddr>,
    /// BEP 43: the querier is read-only (do not add it to routing tables).
    pub read_only: bool,
}

#[derive(Deserialize)]
struct Raw {
    t: ByteBuf,
    y: ByteBuf,
    #[serde(default)]
    q: Option<ByteBuf>,
    #[serde(default)]
    a: Option<RawArgs>,
    #[serde(default)]
    r: Option<RawArgs>,
    #[serde(default)]
    e: Option<Vec<serde_bencode::value::Value>>,
    #[serde(default)]
    ip: Option<ByteBuf>,
    #[serde(default)]
    ro: Option<i64>,
}

/// The union of query arguments and response fields (both are flat dictionaries).
#[derive(Deserialize, Default)]
struct RawArgs {
    #[serde(default)]
    id: Option<ByteBuf>,
    #[serde(default)]
    target: Option<ByteBuf>,
    #[serde(default)]
    info_hash: Option<ByteBuf>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    implied_port: Option<i64>,
    #[serde(default)]
    token: Option<ByteBuf>,
    #[serde(default)]
    nodes: Option<ByteBuf>,
    #[serde(default)]
    nodes6: Option<ByteBuf>,
    #[serde(default)]
    values: Option<Vec<ByteBuf>>,
    #[serde(default)]
    want: Option<Vec<ByteBuf>>,
}

impl Msg {
    pub fn decode(datagram: &[u8]) -> Result<Msg, KrpcError> {
        if datagram.len() > MAX_PACKET {
            return Err(KrpcError::TooLarge(datagram.len()));
        }
        if !matches!(bencode::decode(datagram)?, Value::Dict(_)) {
            return Err(KrpcError::NotADict);
        }
        // Vetted above: serde_bencode only sees a small, well-formed, shallow dictionary.
        let raw: Raw =
            serde_bencode::from_bytes(datagram).map_err(|e| KrpcError::Schema(e.to_string()))?;
        if raw.t.len() > MAX_TID {
            return Err(KrpcError::Bad("transaction id"));
        }
        let body = match raw.y.as_slice() {
            b"q" => {
                let method = raw.q.ok_or(KrpcError::Missing("method"))?;
                let a = raw.a.ok_or(KrpcError::Missing("arguments"))?;
                Body::Query {
                    id: id_of(&a.id, "id")?,
                    query: query(&method, &a)?,
                }
            }
            b"r" => {
                let r = raw.r.ok_or(KrpcError::Missing("response"))?;
                Body::Response {
                    id: id_of(&r.id, "id")?,
                    response: response(&r)?,
                }
            }
            b"e" => error(raw.e.as_deref())?,
            _ => return Err(KrpcError::Bad("message type")),
        };
        Ok(Msg {
            tid: raw.t.into_vec(),
            body,
            ip: raw.ip.as_ref().and_then(|b| compact_addr(b)),
            read_only: raw.ro == Some(1),
        })
    }

    /// The datagram, canonical bencode.
    pub fn encode(&self) -> Vec<u8> {
        let mut root: Vec<(&[u8], Value<'_>)> = vec![(b"t", Value::Bytes(&self.tid))];
        let ip = self.ip.map(encode_addr);
        if let Some(ip) = &ip {
            root.push((b"ip", Value::Bytes(ip)));
        }
        if self.read_only {
            root.push((b"ro", Value::Int(1)));
        }
        // Buffers the values borrow from, kept alive until encoded.
        let compact;
        match &self.body {
            Body::Query { id, query } => {
                root.push((b"y", Value::Bytes(b"q")));
                let mut a: Vec<(&[u8], Value<'_>)> = vec![(b"id", Value::Bytes(&id.0))];
                let method: &[u8] = match query {
                    Query::Ping => b"ping",
                    Query::FindNode { target, want } => {
                        a.push((b"target", Value::Bytes(&target.0)));
                        push_want(&mut a, *want);
                        b"find_node"
                    }
                    Query::GetPeers { info_hash, want } => {
                        a.push((b"info_hash", Value::Bytes(&info_hash.0)));
                        push_want(&mut a, *want);
                        b"get_peers"
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => {
                        a.push((b"info_hash", Value::Bytes(&info_hash.0)));
                        a.push((b"port", Value::Int(i64::from(*port))));
                        if *implied_port {
                            a.push((b"implied_port", Value::Int(1)));
                        }
                        a.push((b"token", Value::Bytes(token)));
                        b"announce_peer"
                    }
                    Query::Other { method } => method.as_bytes(),
                };
                root.push((b"q", Value::Bytes(method)));
                root.push((b"a", Value::Dict(a)));
            }
            Body::Response { id, response } => {
                root.push((b"y", Value::Bytes(b"r")));
                compact = Compact::of(response);
                let mut r: Vec<(&[u8], Value<'_>)> = vec![(b"id", Value::Bytes(&id.0))];
                if !response.nodes.is_empty() {
                    r.push((b"nodes", Value::Bytes(&compact.nodes)));
                }
                if !response.nodes6.is_empty() {
                    r.push((b"nodes6", Value::Bytes(&compact.nodes6)));
                }
                if !response.values.is_empty() {
                    let values = compact.values.iter().map(|v| Value::Bytes(v)).collect();
                    r.push((b"values", Value::List(values)));
                }
                if let Some(token) = &response.token {
                    r.push((b"token", Value::Bytes(token)));
                }
                root.push((b"r", Value::Dict(r)));
            }
            Body::Error { code, message } => {
                root.push((b"y", Value::Bytes(b"e")));
                let e = vec![Value::Int(*code), Value::Bytes(message.as_bytes())];
                root.push((b"e", Value::List(e)));
            }
        }
        bencode::to_vec(&Value::Dict(root))
    }
}

/// A response's compact lists, encoded.
struct Compact {
    nodes: Vec<u8>,
    nodes6: Vec<u8>,
    values: Vec<Vec<u8>>,
}

impl Compact {
    fn of(r: &Response) -> Compact {
        let mut nodes = Vec::with_capacity(26 * r.nodes.len());
        for (id, addr) in &r.nodes {
            nodes.extend_from_slice(&id.0);
            nodes.extend_from_slice(&encode_addr(SocketAddr::V4(*addr)));
        }
        let mut nodes6 = Vec::with_capacity(38 * r.nodes6.len());
        for (id, addr) in &r.nodes6 {
            nodes6.extend_from_slice(&id.0);
            nodes6.extend_from_slice(&encode_addr(SocketAddr::V6(*addr)));
        }
        let values = r.values.iter().map(|a| encode_addr(*a)).collect();
        Compact {
            nodes,
            nodes6,
            values,
        }
    }
}

fn push_want(a: &mut Vec<(&[u8], Value<'_>)>, want: Want) {
    let mut list = Vec::new();
    if want.v4 {
        list.push(Value::Bytes(b"n4"));
    }
    if want.v6 {
        list.push(Value::Bytes(b"n6"));
    }
    if !list.is_empty() {
        a.push((b"want", Value::List(list)));
    }
}

fn id_of(b: &Option<ByteBuf>, what: &'static str) -> Result<NodeId, KrpcError> {
    let b = b.as_ref().ok_or(KrpcError::Missing(what))?;
    NodeId::from_slice(b).ok_or(KrpcError::Bad(what))
}

fn want(a: &RawArgs) -> Want {
    let mut w = Want::default();
    for item in a.want.iter().flatten().take(4) {
        match item.as_slice() {
            b"n4" => w.v4 = true,
            b"n6" => w.v6 = true,
            _ => {}
        }
    }
    w
}

fn query(method: &[u8], a: &RawArgs) -> Result<Query, KrpcError> {
    Ok(match method {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: id_of(&a.target, "target")?,
            want: want(a),
        },
        b"get_peers" => Query::GetPeers {
            info_hash: id_of(&a.info_hash, "info_hash")?,
            want: want(a),
        },
        b"announce_peer" => {
            let implied_port = a.implied_port.is_some_and(|p| p != 0);
            let port = match a.port.map(u16::try_from) {
                Some(Ok(p)) if p > 0 => p,
                // With implied_port the port field is ignored (some clients send 0).
                _ if implied_port => 0,
                _ => return Err(KrpcError::Bad("port")),
            };
            let token = a.token.as_ref().ok_or(KrpcError::Missing("token"))?;
            if token.len() > MAX_TOKEN {
                return Err(KrpcError::Bad("token"));
            }
            Query::AnnouncePeer {
                info_hash: id_of(&a.info_hash, "info_hash")?,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        other => Query::Other {
            method: String::from_utf8_lossy(&other[..other.len().min(32)]).into_owned(),
        },
    })
}

fn response(r: &RawArgs) -> Result<Response, KrpcError> {
    let token = match &r.token {
        Some(t) if t.len() > MAX_TOKEN => return Err(KrpcError::Bad("token")),
        t => t.as_ref().map(|t| t.to_vec()),
    };
    let nodes = compact_nodes(r.nodes.as_ref().map(|b| b.as_slice()), 26, "nodes")?
        .filter_map(|(id, a)| match a {
            SocketAddr::V4(a) => Some((id, a)),
            SocketAddr::V6(_) => None,
        })
        .collect();
    let nodes6 = compact_nodes(r.nodes6.as_ref().map(|b| b.as_slice()), 38, "nodes6")?
        .filter_map(|(id, a)| match a {
            SocketAddr::V6(a) => Some((id, a)),
            SocketAddr::V4(_) => None,
        })
        .collect();
    let values = r
        .values
        .iter()
        .flatten()
        .filter_map(|v| compact_addr(v))
        .take(MAX_VALUES)
        .collect();
    Ok(Response {
        nodes,
        nodes6,
        values,
        token,
    })
}

/// A compact node list: `entry`-byte records (20-byte id + address), at most
/// [`MAX_NODES`] taken; a length that is not a multiple of `entry` is malformed.
fn compact_nodes<'a>(
    b: Option<&'a [u8]>,
    entry: usize,
    what: &'static str,
) -> Result<impl Iterator<Item = (NodeId, SocketAddr)> + 'a, KrpcError> {
    let b = b.unwrap_or(&[]);
    if !b.len().is_multiple_of(entry) {
        return Err(KrpcError::Bad(what));
    }
    Ok(b.chunks_exact(entry).take(MAX_NODES).filter_map(|c| {
        let id = NodeId::from_slice(&c[..20])?;
        Some((id, compact_addr(&c[20..])?))
    }))
}

fn error(e: Option<&[serde_bencode::value::Value]>) -> Result<Body, KrpcError> {
    use serde_bencode::value::Value as V;
    let e = e.ok_or(KrpcError::Missing("error"))?;
    let code = match e.first() {
        Some(V::Int(c)) => *c,
        _ => return Err(KrpcError::Bad("error")),
    };
    let message = match e.get(1) {
        Some(V::Bytes(m)) => {
            String::from_utf8_lossy(&m[..m.len().min(MAX_ERROR_MESSAGE)]).into_owned()
        }
        _ => String::new(),
    };
    Ok(Body::Error { code, message })
}

/// A compact address: 4 + 2 or 16 + 2 bytes, big-endian.
pub fn compact_addr(b: &[u8]) -> Option<SocketAddr> {
    let port = |p: &[u8]| u16::from_be_bytes([p[0], p[1]]);
    match b.len() {
        6 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port(&b[4..]))))
        }
        18 => {
            let octets: [u8; 16] = b[..16].try_into().ok()?;
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port(&b[16..]), 0, 0)))
        }
        _ => None,
    }
}

/// The compact form of an address (6 or 18 bytes).
pub fn encode_addr(a: SocketAddr) -> Vec<u8> {
    let mut out = match a.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend_from_slice(&a.port().to_be_bytes());
    out
}

#[cfg(test)]
#[path = "krpc_tests.rs"]
mod tests;
