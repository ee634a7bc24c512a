//! Tunables with their defaults. Every number says where it comes from; `cli` is the only
//! place that reads the environment or flags and turns them into these.
//!
//! Two owners, two configs: [`SessionConfig`] is what the whole process shares (the listen
//! port, rate limits, hashing threads, connection timeouts, the state directory), and
//! [`TorrentConfig`] is what one torrent's engine is tuned by.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// What the whole process shares. Plain data; `Default` gives the shipped values.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Listen port; 6881 is the historical BitTorrent default (BEP 3 era clients use 6881-6889).
    pub listen_port: u16,
    /// When the listen port is taken, fall back to a free port chosen by the OS.
    pub port_fallback: bool,
    /// Address to listen and dial from (all interfaces, as other clients do).
    pub bind: IpAddr,
    /// Upload cap in bytes/s for the whole session, all torrents together (`None`: unlimited).
    pub max_upload_rate: Option<u64>,
    /// Download cap in bytes/s for the whole session (`None`: unlimited).
    pub max_download_rate: Option<u64>,
    /// Threads hashing (recheck and verify), shared by every torrent: both cores on the
    /// reference machine.
    pub hash_threads: usize,
    /// Torrents rechecking their data at once (libtorrent's `active_checking`: 1). Each
    /// recheck already uses every hashing thread; more at once only seeks the disk harder.
    pub max_checking: usize,
    /// TCP connect limit (rqbit: 2 s is too short for real networks; 5 s is a middle).
    pub connect_timeout: Duration,
    /// Handshake must complete within this (libtorrent: 10 s).
    pub handshake_timeout: Duration,
    /// Incoming connections still in their handshake at once, so a flood of half-open
    /// connections costs a bounded amount of memory (a few KiB each). At the cap a newcomer
    /// evicts the oldest silent one (see `net::half_open`), so a flood cannot keep an honest
    /// peer out. 256 is libtorrent's order of magnitude for half-open connections.
    pub max_half_open: usize,
    /// Of those, at most this many from one IP address; more from it are closed at once.
    /// A household behind one NAT runs a few clients; 8 leaves them room while one address
    /// cannot take more than 1/32 of the table.
    pub max_half_open_per_ip: usize,
    /// An incoming connection that has sent nothing at all within this long is closed
    /// (the whole handshake still has `handshake_timeout`). An honest peer sends its
    /// handshake in its first round trip; 5 s covers a very slow link and lets silent
    /// connections go twice as fast as the 10 s handshake limit.
    pub silent_timeout: Duration,
    /// A peer silent this long is dropped (libtorrent: 120 s; BEP 3 keep-alives are ~2 min).
    pub peer_idle_timeout: Duration,
    /// We send a keep-alive after this much silence (under the 120 s timeouts above).
    pub keepalive_interval: Duration,
    /// Verified pieces are written with `O_DIRECT` where the filesystem allows it, past the
    /// page cache: the same cost in every run instead of one that grows several-fold when
    /// the machine's memory is under reclaim (PERFORMANCE.md, "The page cache under our
    /// writes"). Off: every write goes through the page cache.
    pub direct_writes: bool,
    /// Where resume data lives (`None`: nothing is remembered; every start rechecks).
    pub state_dir: Option<PathBuf>,
    /// How often resume data is written while something changed (libtorrent's
    /// `save_resume_data` interval is left to the client; qBittorrent: 60 min, Transmission:
    /// on stop only). 30 s bounds what a crash costs to one recheck of what came since.
    pub resume_interval: Duration,
    /// How long `stopped` announces may take on exit (short: the user is waiting).
    pub stop_announce_timeout: Duration,
    /// Local service discovery (BEP 14): announce public torrents to the local network by
    /// multicast and dial the peers that announce them. Off here, so a library user (and
    /// every in-process test) never multicasts unasked; the command line turns it on
    /// unless `--no-lsd`, as other clients ship it on.
    pub lsd: bool,
    /// The mainline DHT (BEP 5): one node on the listen port's UDP side, looking up and
    /// announcing every public torrent. Off here for the same reason as `lsd` (a library
    /// user or an in-process test never touches the network unasked); the command line
    /// turns it on unless `--no-dht`, as other clients ship it on.
    pub dht: bool,
    /// Nodes to bootstrap the DHT from instead of the default routers
    /// (`dht.transmissionbt.com:6881`, `dht.libtorrent.org:25401`): `--dht-node`.
    pub dht_nodes: Vec<std::net::SocketAddr>,
    /// Ask the home router to forward the listen port, TCP and UDP (UPnP IGD, NAT-PMP,
    /// PCP: `crate::portmap`), and announce the external port it grants. Off here for the
    /// same reason as `lsd` and `dht`; the command line turns it on unless
    /// `--no-port-mapping`, as other clients ship it on.
    pub port_mapping: bool,
    /// Message stream encryption (MSE/PE) policy of every connection. `Off` here, so a
    /// library user and every in-process test (whose fake peers speak plaintext) keep the
    /// plain BitTorrent wire unasked; the command line defaults to `Prefer`
    /// (`--encryption`), as libtorrent (`pe_enabled`) and Transmission ship it.
    pub encryption: Encryption,
}

/// MSE/PE policy. `Prefer`: dial encrypted (offering RC4 or plaintext) and fall back to a
/// plaintext dial once if the peer drops the encrypted handshake; accept both kinds.
/// `Require`: dial encrypted offering RC4 only; refuse plaintext incoming handshakes.
/// `Off`: dial plaintext; refuse encrypted incoming handshakes too (libtorrent's
/// `pe_disabled`): no MSE code runs at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    Prefer,
    Require,
    Off,
}

impl std::str::FromStr for Encryption {
    type Err = String;
    fn from_str(s: &str) -> Result<Encryption, String> {
        match s {
            "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            "off" => Ok(Encryption::Off),
            _ => Err(format!("{s:?} is not one of prefer, require, off")),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            listen_port: 6881,
            port_fallback: true,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_upload_rate: None,
            max_download_rate: None,
            hash_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_checking: 1,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_half_open: 256,
            max_half_open_per_ip: 8,
            silent_timeout: Duration::from_secs(5),
            peer_idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(90),
            direct_writes: true,
            state_dir: None,
            resume_interval: Duration::from_secs(30),
            stop_announce_timeout: Duration::from_secs(5),
            lsd: false,
            dht: false,
            dht_nodes: Vec::new(),
            port_mapping: false,
            encryption: Encryption::Off,
        }
    }
}

/// What one torrent's engine is tuned by. Plain data; `Default` gives the shipped values.
#[derive(Debug, Clone)]
pub struct TorrentConfig {
    /// Connected peers per torrent (Transmission: 50 per torrent).
    pub max_peers: usize,
    /// Outbound connection attempts in flight at once (keeps SYN bursts small).
    pub max_connecting: usize,
    /// Connections from one IP address (libtorrent allows 1 unless told otherwise; a few
    /// let peers behind one NAT share a torrent, and one host can never hold many slots).
    pub max_peers_per_ip: usize,
    /// Slots inbound connections may never take, so we can always dial (libtorrent keeps
    /// a share of its connection limit for outgoing attempts too).
    pub outbound_reserve: usize,
    /// A peer useless for this long (and connected this long) may be evicted for a
    /// newcomer or by turnover: long enough for a new peer to send its bitfield, be
    /// unchoked and deliver (a rechoke interval and then some).
    pub eviction_grace: Duration,
    /// How often a downloading torrent with every slot taken drops useless peers to try
    /// others. libtorrent's `peer_turnover_interval` is 300 s with 4 % of 200 peers; that
    /// gentle pace left a leecher whose slots were held by fake seeds waiting minutes
    /// (benches/hostile/peers.py, never-unchoke), so we turn over faster: only peers
    /// useless for `eviction_grace` go, so useful ones are never churned.
    pub turnover_interval: Duration,
    /// Peers dropped per turnover at most: one round of dials (`max_connecting`).
    pub turnover_count: usize,
    /// Addresses remembered to dial, per torrent (libtorrent's `max_peerlist_size`: 3,000;
    /// a tracker reply carries 50-200, so 2,000 is many replies' worth).
    pub max_known_peers: usize,
    /// Failed attempts in a row after which an address from a tracker is forgotten
    /// (libtorrent's `max_failcount`: 3); addresses given with `--peer` are kept.
    pub forget_after_failures: u32,
    /// Regular upload slots; one optimistic slot comes on top (libtorrent and
    /// Transmission: 8 in all; BEP 3's mainline client: 4 + 1). We keep 8: on fast links
    /// fewer slots leave upload capacity idle while a slot's peer is slow to ask, and with
    /// round-robin seeding more slots spread a seed's pieces wider.
    pub upload_slots: usize,
    /// Seeding: a turn in which the peer took nothing for this long is over at once (a peer
    /// that is unchoked and never asks holds a slot for nothing); a peer that wants data
    /// asks within a round trip, so 5 s is ample.
    pub idle_turn: Duration,
    /// Rechokes an optimistic unchoke lasts: 3 × 10 s = 30 s (BEP 3, libtorrent: 30 s).
    pub optimistic_rechokes: u32,
    /// Peers connected for less than this are newcomers for the optimistic pick (mainline
    /// BitTorrent: 1 minute)...
    pub newcomer_age: Duration,
    /// ...and are this many times likelier to get it (mainline: 3×).
    pub newcomer_weight: u32,
    /// A peer that has us unchoked, has what we want and sent no block for this long is
    /// snubbed and loses its regular slot (mainline and libtorrent: 60 s).
    pub snub_time: Duration,
    /// Seeding: one turn of a slot ends after this many of our pieces' worth of bytes
    /// (libtorrent's `seeding_piece_quota`: 20)...
    pub seed_quota_pieces: u32,
    /// ...or after this long, however little the peer took (libtorrent's round robin:
    /// 1 minute; we use 30 s = 3 rechokes so a seed with many leechers rotates sooner).
    pub seed_turn: Duration,
    /// Blocks handed to a connection's writer at once, per peer: about one second of the
    /// rate we send it at, within these bounds. Requests beyond it wait in the engine,
    /// where a choke can still reject them (BEP 6) instead of sending them anyway. 16 blocks
    /// (256 KiB) keep a new peer's pipe busy; 128 (2 MiB) are two of the writer's batches,
    /// so the writer never waits for the driver at full loopback speed.
    pub serve_window: (usize, usize),
    /// Stop seeding once uploaded ÷ content size reaches this.
    pub seed_ratio: Option<f64>,
    /// Stop seeding after this long complete.
    pub seed_time: Option<Duration>,
    /// Bytes of received-but-unwritten block data; it also caps the data in flight (pieces
    /// in progress × piece length). Zero-copy blocks keep their socket read buffers alive,
    /// so RSS grows by about 1.5× this. The floor is the smallest buffer that still keeps
    /// a loopback download at full speed, so memory stays small (PERFORMANCE.md, "What was
    /// found, and changed", items 5 and 12). When it holds back a download from far peers (4 MiB in
    /// flight carries only 40 MB/s at a 100 ms round trip) the engine grows it, up to
    /// `max_buffer_cap`.
    pub max_buffer: usize,
    /// How far the buffer may grow when the links need more data in flight (download rate
    /// × round trip, twice over; see `Engine::buffer`). Loopback and LAN transfers stay at
    /// `max_buffer`.
    pub max_buffer_cap: usize,
    /// First requests in flight per peer, before its rate is known (libtorrent: 4).
    pub initial_queue_depth: usize,
    /// Fewest requests kept in flight (libtorrent clamps at 2).
    pub min_queue_depth: usize,
    /// Most requests in flight per peer; the peer's `reqq` caps it further (Transmission
    /// advertises 500). libtorrent clamps its own queue at 500, but its seeds advertise
    /// `reqq` 2000 and answer with latency, so we allow up to that and let the
    /// 3-seconds-of-data rule set the actual depth (PERFORMANCE.md, "What was found, and
    /// changed", items 7 and 8).
    pub max_queue_depth: usize,
    /// Seconds of a peer's data kept requested (libtorrent: 3 s).
    pub queue_seconds: f64,
    /// Requests we queue for a peer at most; advertised as `reqq` (Transmission: 500).
    pub our_reqq: usize,
    /// A peer that sent nothing for this long while we wait on requests loses them to
    /// others (libtorrent: piece timeout 20 s).
    pub request_timeout: Duration,
    /// How often the choker re-ranks peers (Transmission: 10 s; libtorrent: 15 s).
    pub rechoke_interval: Duration,
    /// Hash-failure strikes before a peer's IP is banned (a sole contributor of a bad
    /// piece earns 2, a shared one 1: a liar alone is banned at its second bad piece; a
    /// peer never the sole contributor of a bad piece is never banned).
    pub ban_strikes: u32,
    /// Give up when no peer connected within this time (only when peers came from
    /// `--peer`; trackers keep trying).
    pub give_up_after: Option<Duration>,
    /// Retry delay after a failed connection to a known peer, doubled per failure.
    pub reconnect_base: Duration,
    /// Super-seeding (BEP 16) when the torrent is complete from the start: offer peers
    /// one piece at a time, the next only once the last was seen at another peer.
    pub super_seed: bool,
    /// Seed of the engine's random choices; fixed seeds make simulations reproducible.
    pub rng_seed: u64,
    /// A private torrent (BEP 27): no peer exchange (and no other discovery than its
    /// trackers).
    pub private: bool,
    /// The port we listen on, told to peers in the extension handshake (`p`), so those
    /// we dialled can pass it on (PEX) and dial us back.
    pub listen_port: Option<u16>,
    /// Our DHT node's UDP port when the session runs one and the torrent is not private
    /// (BEP 5): sent in a `Port` message to peers that set the DHT bit, and the `Port`s
    /// peers send become candidate nodes. `None`: neither.
    pub dht_port: Option<u16>,
    /// Pick wanted pieces in file order, a few rarest-first inside a read-ahead window
    /// (`--sequential`, for playing while downloading).
    pub sequential: bool,
    /// Each wanted file's first and last pieces come first (`--first-last`).
    pub first_last: bool,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            max_peers: 50,
            max_connecting: 10,
            max_peers_per_ip: 4,
            outbound_reserve: 5,
            eviction_grace: Duration::from_secs(30),
            turnover_interval: Duration::from_secs(15),
            turnover_count: 10,
            max_known_peers: 2000,
            forget_after_failures: 3,
            upload_slots: 8,
            idle_turn: Duration::from_secs(5),
            optimistic_rechokes: 3,
            newcomer_age: Duration::from_secs(60),
            newcomer_weight: 3,
            snub_time: Duration::from_secs(60),
            seed_quota_pieces: 20,
            seed_turn: Duration::from_secs(30),
            serve_window: (16, 128),
            seed_ratio: None,
            seed_time: None,
            max_buffer: 4 << 20,
            max_buffer_cap: 32 << 20,
            initial_queue_depth: 4,
            min_queue_depth: 2,
            max_queue_depth: 2000,
            queue_seconds: 3.0,
            our_reqq: 500,
            request_timeout: Duration::from_secs(20),
            rechoke_interval: Duration::from_secs(10),
            ban_strikes: 3,
            give_up_after: Some(Duration::from_secs(30)),
            reconnect_base: Duration::from_secs(1),
            super_seed: false,
            rng_seed: rand::random(),
            private: false,
            listen_port: None,
            dht_port: None,
            sequential: false,
            first_last: false,
        }
    }
}
