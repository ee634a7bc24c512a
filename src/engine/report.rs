//! What the engine tells the outside about its peers (the peer list of the daemon's page
//! and API): plain data from [`Peer`](super::peer::Peer)s, bounded by the peer cap.

use super::Engine;
use crate::snapshot::PeerInfo;
use crate::types::PeerId;

impl Engine {
    /// One entry per connected peer.
    pub fn peer_infos(&self) -> Vec<PeerInfo> {
        let pieces = self.layout.num_pieces().max(1) as f64;
        self.peers
            .values()
            .map(|p| {
                let mut flags = String::new();
                if p.choke.am_interested {
                    flags.push(if p.choke.peer_choking { 'd' } else { 'D' });
                }
                if p.choke.peer_interested {
                    flags.push(if p.choke.am_choking { 'u' } else { 'U' });
                }
                if !p.outbound {
                    flags.push('I');
                }
                PeerInfo {
                    addr: p.addr,
                    client: client_name(&p.peer_id),
                    progress: if p.seed {
                        1.0
                    } else {
                        f64::from(p.has.count_ones()) / pieces
                    },
                    down_rate: p.down.get(),
                    up_rate: p.up.get(),
                    downloaded: p.down.total(),
                    uploaded: p.up.total(),
                    flags,
                }
            })
            .collect()
    }
}

/// A client's name from its peer id: the Azureus style `-XXabcd-` as `XX a.b.c.d`,
/// else the id's printable ASCII start (at most 8 characters).
pub fn client_name(id: &PeerId) -> String {
    let b = &id.0;
    let azureus = b[0] == b'-'
        && b[7] == b'-'
        && b[1..3].iter().all(u8::is_ascii_alphanumeric)
        && b[3..7].iter().all(u8::is_ascii_alphanumeric);
    if azureus {
        let code = String::from_utf8_lossy(&b[1..3]);
        let v: Vec<String> = b[3..7].iter().map(|c| (*c as char).to_string()).collect();
        return format!("{code} {}", v.join("."));
    }
    b.iter()
        .take(8)
        .take_while(|c| c.is_ascii_graphic())
        .map(|c| *c as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_from_peer_ids() {
        let mut id = *b"-qB4520-xxxxxxxxxxxx";
        assert_eq!(client_name(&PeerId(id)), "qB 4.5.2.0");
        id[0] = b'M';
        assert_eq!(client_name(&PeerId(id)), "MqB4520-");
        assert_eq!(client_name(&PeerId([0xff; 20])), "");
    }
}
