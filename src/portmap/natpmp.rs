//! NAT-PMP (RFC 6886) and PCP (RFC 6887) MAP messages: pure encoders and strict decoders.
//!
//! Owns the byte layouts only; no sockets, no clock. Invariants: a decoder accepts a reply
//! only if its length, version, opcode, result code and echoed fields (PCP nonce, protocol,
//! internal port) all match the request it answers; anything else is an error, never a panic.
//! Replies are bounded: NAT-PMP replies have a fixed size, PCP replies at most
//! [`PCP_MAX_MESSAGE`] bytes (RFC 6887 §7), so a caller's receive buffer of that size suffices.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Both protocols listen on the gateway's UDP port 5351 (RFC 6886 §3.1, RFC 6887 §19.1).
pub const SERVER_PORT: u16 = 5351;
/// A PCP message is at most 1100 bytes (RFC 6887 §7).
pub const PCP_MAX_MESSAGE: usize = 1100;
/// Size of a PCP MAP request or response without options: 24-byte header + 36-byte body.
const PCP_MAP_LEN: usize = 60;
const PCP_VERSION: u8 = 2;
const PCP_OP_MAP: u8 = 1;
const NATPMP_VERSION: u8 = 0;
/// NAT-PMP result code 1 / PCP result code 1: "unsupported version" (RFC 6886 §3.5,
/// RFC 6887 §7.4); a NAT-PMP-only router answers a PCP request with it (RFC 6887 §9).
pub const RESULT_UNSUPP_VERSION: u16 = 1;

/// Transport protocol of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// NAT-PMP opcodes: 1 maps UDP, 2 maps TCP (RFC 6886 §3.3).
    fn natpmp_opcode(self) -> u8 {
        match self {
            Protocol::Udp => 1,
            Protocol::Tcp => 2,
        }
    }
    /// IANA protocol numbers, as PCP carries them (RFC 6887 §11.1).
    fn iana(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// Why a reply was rejected. Messages name the field, never echo the reply's bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("reply of {0} bytes has the wrong size")]
    BadLength(usize),
    #[error("reply has version {0}")]
    BadVersion(u8),
    #[error("reply has opcode {got}, expected {want}")]
    WrongOpcode { got: u8, want: u8 },
    #[error("router refused: result code {code} ({})", result_name(*.code))]
    Refused { code: u16 },
    #[error("reply answers another request ({0} differs)")]
    Mismatch(&'static str),
}

/// Names of the result codes both RFCs share for 1..=4, then PCP's (RFC 6887 §7.4).
fn result_name(code: u16) -> &'static str {
    match code {
        1 => "unsupported version",
        2 => "not authorized",
        3 => "network failure",
        4 => "out of resources",
        5 => "unsupported opcode",
        8 => "malformed request",
        11 => "cannot provide external",
        12 => "address mismatch",
        _ => "unknown",
    }
}

/// NAT-PMP "external address" request (RFC 6886 §3.2): version 0, opcode 0.
pub fn natpmp_external_request() -> [u8; 2] {
    [NATPMP_VERSION, 0]
}

/// NAT-PMP MAP request (RFC 6886 §3.3); `lifetime` 0 deletes the mapping.
pub fn natpmp_map_request(
    proto: Protocol,
    internal: u16,
    suggested: u16,
    lifetime: u32,
) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = NATPMP_VERSION;
    b[1] = proto.natpmp_opcode();
    b[4..6].copy_from_slice(&internal.to_be_bytes());
    b[6..8].copy_from_slice(&suggested.to_be_bytes());
    b[8..12].copy_from_slice(&lifetime.to_be_bytes());
    b
}

/// Version, opcode (with the response bit) and result code of a NAT-PMP reply.
fn natpmp_header(b: &[u8], len: usize, request_op: u8) -> Result<(), DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::BadLength(b.len()));
    }
    if b[0] != NATPMP_VERSION {
        return Err(DecodeError::BadVersion(b[0]));
    }
    if b[1] != 128 + request_op {
        return Err(DecodeError::WrongOpcode {
            got: b[1],
            want: 128 + request_op,
        });
    }
    let code = u16::from_be_bytes([b[2], b[3]]);
    if code != 0 {
        // An error reply may be shorter than a success (RFC 6886 §3.5 lets a router answer an
        // unsupported version with just the header), so the result code wins over the length.
        return Err(DecodeError::Refused { code });
    }
    if b.len() != len {
        return Err(DecodeError::BadLength(b.len()));
    }
    Ok(())
}

/// Decodes the 12-byte external address reply (RFC 6886 §3.2).
pub fn natpmp_decode_external(b: &[u8]) -> Result<Ipv4Addr, DecodeError> {
    natpmp_header(b, 12, 0)?;
    Ok(Ipv4Addr::new(b[8], b[9], b[10], b[11]))
}

/// A granted mapping: the external port and the lifetime in seconds the router chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub external_port: u16,
    pub lifetime: u32,
}

/// Decodes the 16-byte MAP reply (RFC 6886 §3.3) to a request for `proto` on `internal`.
pub fn natpmp_decode_map(b: &[u8], proto: Protocol, internal: u16) -> Result<Granted, DecodeError> {
    natpmp_header(b, 16, proto.natpmp_opcode())?;
    if u16::from_be_bytes([b[8], b[9]]) != internal {
        return Err(DecodeError::Mismatch("internal port"));
    }
    Ok(Granted {
        external_port: u16::from_be_bytes([b[10], b[11]]),
        lifetime: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
    })
}

/// A PCP MAP request (RFC 6887 §11.1). `client` is our address as the router sees it;
/// `suggested_ip` unspecified asks for no particular external address.
pub struct PcpMap {
    pub nonce: [u8; 12],
    pub proto: Protocol,
    pub internal: u16,
    pub suggested_port: u16,
    pub lifetime: u32,
    pub client: Ipv4Addr,
}

impl PcpMap {
    pub fn encode(&self) -> [u8; PCP_MAP_LEN] {
        let mut b = [0u8; PCP_MAP_LEN];
        b[0] = PCP_VERSION;
        b[1] = PCP_OP_MAP; // R bit 0: a request
        b[4..8].copy_from_slice(&self.lifetime.to_be_bytes());
        b[8..24].copy_from_slice(&self.client.to_ipv6_mapped().octets());
        b[24..36].copy_from_slice(&self.nonce);
        b[36] = self.proto.iana();
        b[40..42].copy_from_slice(&self.internal.to_be_bytes());
        b[42..44].copy_from_slice(&self.suggested_port.to_be_bytes());
        // "No preference" for IPv4 is the IPv4-mapped all-zeros address (RFC 6887 §11.1).
        b[44..60].copy_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
        b
    }

    /// Decodes a reply to this request: external address, port and lifetime.
    /// A NAT-PMP-only router answers with version 0 and "unsupported version" (RFC 6887 §9),
    /// reported as `Refused { code: 1 }` so the caller falls back to NAT-PMP.
    pub fn decode(&self, b: &[u8]) -> Result<(Ipv4Addr, Granted), DecodeError> {
        if b.len() >= 4 && b[0] == NATPMP_VERSION {
            let code = u16::from_be_bytes([b[2], b[3]]);
            return Err(if code != 0 {
                DecodeError::Refused { code }
            } else {
                DecodeError::BadVersion(0)
            });
        }
        if b.len() < 4 || b.len() > PCP_MAX_MESSAGE || !b.len().is_multiple_of(4) {
            return Err(DecodeError::BadLength(b.len()));
        }
        if b[0] != PCP_VERSION {
            return Err(DecodeError::BadVersion(b[0]));
        }
        if b[1] != 0x80 | PCP_OP_MAP {
            return Err(DecodeError::WrongOpcode {
                got: b[1],
                want: 0x80 | PCP_OP_MAP,
            });
        }
        if b[3] != 0 {
            return Err(DecodeError::Refused {
                code: u16::from(b[3]),
            });
        }
        if b.len() < PCP_MAP_LEN {
            return Err(DecodeError::BadLength(b.len()));
        }
        // Options after byte 60 are ignored: MAP's options (FILTER, PREFER_FAILURE,
        // THIRD_PARTY) are ones we never send, and the length is already capped.
        if b[24..36] != self.nonce {
            return Err(DecodeError::Mismatch("nonce"));
        }
        if b[36] != self.proto.iana() {
            return Err(DecodeError::Mismatch("protocol"));
        }
        if u16::from_be_bytes([b[40], b[41]]) != self.internal {
            return Err(DecodeError::Mismatch("internal port"));
        }
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[44..60]);
        let external = Ipv6Addr::from(ip)
            .to_ipv4_mapped()
            .ok_or(DecodeError::Mismatch("address family"))?;
        Ok((
            external,
            Granted {
                external_port: u16::from_be_bytes([b[42], b[43]]),
                lifetime: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_reply(op: u8, code: u16, internal: u16, external: u16, life: u32) -> Vec<u8> {
        let mut b = vec![0, op, 0, 0, 0, 0, 0, 7];
        b[2..4].copy_from_slice(&code.to_be_bytes());
        b.extend_from_slice(&internal.to_be_bytes());
        b.extend_from_slice(&external.to_be_bytes());
        b.extend_from_slice(&life.to_be_bytes());
        b
    }

    #[test]
    fn natpmp_map_request_layout() {
        let b = natpmp_map_request(Protocol::Tcp, 6881, 6882, 7200);
        assert_eq!(b, [0, 2, 0, 0, 0x1a, 0xe1, 0x1a, 0xe2, 0, 0, 0x1c, 0x20]);
        assert_eq!(natpmp_map_request(Protocol::Udp, 1, 1, 0)[1], 1);
    }

    #[test]
    fn natpmp_map_reply_accepted_and_checked() {
        let ok = map_reply(130, 0, 6881, 7000, 3600);
        let g = natpmp_decode_map(&ok, Protocol::Tcp, 6881).unwrap();
        assert_eq!(
            g,
            Granted {
                external_port: 7000,
                lifetime: 3600
            }
        );
        // Wrong opcode (UDP reply to a TCP request), wrong port, result code, sizes.
        assert!(matches!(
            natpmp_decode_map(&ok, Protocol::Udp, 6881),
            Err(DecodeError::WrongOpcode { .. })
        ));
        assert_eq!(
            natpmp_decode_map(&ok, Protocol::Tcp, 1),
            Err(DecodeError::Mismatch("internal port"))
        );
        let refused = map_reply(130, 2, 6881, 0, 0);
        assert_eq!(
            natpmp_decode_map(&refused, Protocol::Tcp, 6881),
            Err(DecodeError::Refused { code: 2 })
        );
        assert_eq!(
            natpmp_decode_map(&ok[..15], Protocol::Tcp, 6881),
            Err(DecodeError::BadLength(15))
        );
        let mut long = ok.clone();
        long.push(0);
        assert_eq!(
            natpmp_decode_map(&long, Protocol::Tcp, 6881),
            Err(DecodeError::BadLength(17))
        );
        assert_eq!(
            natpmp_decode_map(&[], Protocol::Tcp, 6881),
            Err(DecodeError::BadLength(0))
        );
        let mut v = ok;
        v[0] = 2;
        assert_eq!(
            natpmp_decode_map(&v, Protocol::Tcp, 6881),
            Err(DecodeError::BadVersion(2))
        );
    }

    #[test]
    fn natpmp_external_reply() {
        let b = [0, 128, 0, 0, 0, 0, 0, 1, 203, 0, 113, 5];
        assert_eq!(
            natpmp_decode_external(&b),
            Ok(Ipv4Addr::new(203, 0, 113, 5))
        );
        assert_eq!(
            natpmp_decode_external(&b[..11]),
            Err(DecodeError::BadLength(11))
        );
        assert_eq!(
            natpmp_decode_external(&[0, 128, 0, 3]),
            Err(DecodeError::Refused { code: 3 })
        );
    }

    fn pcp() -> PcpMap {
        PcpMap {
            nonce: [9; 12],
            proto: Protocol::Udp,
            internal: 6881,
            suggested_port: 6881,
            lifetime: 7200,
            client: Ipv4Addr::new(192, 168, 1, 10),
        }
    }

    fn pcp_reply(req: &PcpMap, code: u8, port: u16, ip: Ipv4Addr) -> Vec<u8> {
        let mut b = req.encode().to_vec();
        b[1] = 0x81;
        b[3] = code;
        b[8..24].fill(0);
        b[42..44].copy_from_slice(&port.to_be_bytes());
        b[44..60].copy_from_slice(&ip.to_ipv6_mapped().octets());
        b
    }

    #[test]
    fn pcp_request_layout() {
        let b = pcp().encode();
        assert_eq!(&b[..4], &[2, 1, 0, 0]);
        assert_eq!(
            &b[8..24],
            &Ipv4Addr::new(192, 168, 1, 10).to_ipv6_mapped().octets()
        );
        assert_eq!(b[36], 17);
        assert_eq!(&b[40..44], &[0x1a, 0xe1, 0x1a, 0xe1]);
        assert_eq!(&b[54..56], &[0xff, 0xff]);
    }

    #[test]
    fn pcp_reply_accepted_and_checked() {
        let req = pcp();
        let ip = Ipv4Addr::new(203, 0, 113, 5);
        let ok = pcp_reply(&req, 0, 7001, ip);
        let (got_ip, g) = req.decode(&ok).unwrap();
        assert_eq!((got_ip, g.external_port, g.lifetime), (ip, 7001, 7200));
        let mut with_option = ok.clone();
        with_option.extend_from_slice(&[0; 8]);
        assert!(req.decode(&with_option).is_ok());
        assert_eq!(
            req.decode(&pcp_reply(&req, 2, 0, ip)),
            Err(DecodeError::Refused { code: 2 })
        );
        let mut bad = ok.clone();
        bad[24] ^= 1;
        assert_eq!(req.decode(&bad), Err(DecodeError::Mismatch("nonce")));
        let mut bad = ok.clone();
        bad[36] = 6;
        assert_eq!(req.decode(&bad), Err(DecodeError::Mismatch("protocol")));
        let mut bad = ok.clone();
        bad[1] = 0x82;
        assert!(matches!(
            req.decode(&bad),
            Err(DecodeError::WrongOpcode { .. })
        ));
        assert_eq!(req.decode(&ok[..56]), Err(DecodeError::BadLength(56)));
        assert_eq!(
            req.decode(&vec![2; 1104]),
            Err(DecodeError::BadLength(1104))
        );
        // A NAT-PMP-only router's answer to PCP (RFC 6887 §9).
        assert_eq!(
            req.decode(&[0, 0x81, 0, 1]),
            Err(DecodeError::Refused { code: 1 })
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let req = pcp();
        let mut x: u32 = 1;
        for len in 0..200usize {
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = req.decode(&b);
            let _ = natpmp_decode_map(&b, Protocol::Tcp, 1);
            let _ = natpmp_decode_external(&b);
        }
    }
}
