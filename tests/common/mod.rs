//! Shared helpers for the loopback tests: content, torrents, in-process sessions, and a
//! scripted fake peer. Everything binds to 127.0.0.x and is bounded in time.
#![allow(dead_code)]

pub mod ports;
pub mod process;
pub mod summary;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rand::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use swarm::config::{SessionConfig, TorrentConfig};
use swarm::create::{create_torrent, CreateOptions};
use swarm::metainfo::Metainfo;
use swarm::session::{Mode, Session, Sources, Summary, TorrentHandle, TorrentSpec};
use swarm::snapshot::Snapshot;
use swarm::types::{Bitfield, PeerId};
use swarm::wire::{self, Decoder, Handshake, Message};

/// Every test's ceiling: nothing here may hang CI.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

pub fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Write `files` (relative path, size) under `root/name`; returns the content root.
pub fn make_content(root: &Path, name: &str, files: &[(&str, usize)], seed: u64) -> PathBuf {
    let base = root.join(name);
    if files.len() == 1 && files[0].0.is_empty() {
        std::fs::write(&base, random_bytes(files[0].1, seed)).unwrap();
        return base;
    }
    for (i, (rel, size)) in files.iter().enumerate() {
        let p = base.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, random_bytes(*size, seed + i as u64)).unwrap();
    }
    base
}

pub fn make_torrent(content: &Path, piece_length: u32) -> Arc<Metainfo> {
    let bytes = create_torrent(&CreateOptions {
        path: content.to_path_buf(),
        trackers: vec![],
        piece_length: Some(piece_length),
        private: false,
        comment: None,
        created_by: Some("swarm tests".into()),
        creation_date: None,
        include_junk: false,
    })
    .unwrap();
    Arc::new(Metainfo::from_bytes(&bytes).unwrap())
}

/// SHA-1 of every file of a torrent under `dir`, in order (missing file = None).
pub fn hash_tree(meta: &Metainfo, dir: &Path) -> Vec<Option<[u8; 20]>> {
    meta.files
        .iter()
        .map(|f| {
            std::fs::read(dir.join(&f.path))
                .ok()
                .map(|d| Sha1::digest(&d).into())
        })
        .collect()
}

/// A session's and a torrent's configuration, as a test sets them.
#[derive(Clone)]
pub struct TestConfig {
    pub session: SessionConfig,
    pub torrent: TorrentConfig,
    /// With `--peer`-style peers and no trackers, give up after this long without one.
    pub peer_timeout: Option<Duration>,
}

pub fn test_config() -> TestConfig {
    TestConfig {
        session: SessionConfig {
            listen_port: 0,
            port_fallback: false,
            hash_threads: 2,
            ..SessionConfig::default()
        },
        torrent: TorrentConfig::default(),
        peer_timeout: Some(Duration::from_secs(30)),
    }
}

/// An in-process session on a loopback address, running one torrent.
pub struct Running {
    pub session: Session,
    pub handle: TorrentHandle,
    pub snapshot: watch::Receiver<Snapshot>,
    pub addr: Option<SocketAddr>,
}

impl Running {
    pub async fn start(
        meta: &Arc<Metainfo>,
        dir: &Path,
        mode: Mode,
        bind: IpAddr,
        peers: Vec<SocketAddr>,
        cfg: TestConfig,
    ) -> Running {
        Running::start_with_trackers(meta, dir, mode, bind, peers, vec![], cfg).await
    }

    pub async fn start_with_trackers(
        meta: &Arc<Metainfo>,
        dir: &Path,
        mode: Mode,
        bind: IpAddr,
        peers: Vec<SocketAddr>,
        trackers: Vec<Vec<String>>,
        cfg: TestConfig,
    ) -> Running {
        let session = Session::start(SessionConfig {
            bind,
            ..cfg.session
        })
        .await
        .expect("session did not start");
        let spec = spec(
            meta,
            dir,
            mode,
            peers,
            trackers,
            &cfg.torrent,
            cfg.peer_timeout,
        );
        let handle = session.add(spec).await.expect("torrent not added");
        Running::wait_listening(session, handle).await
    }

    /// Wait until the torrent is past its check (or has ended, e.g. refusing incomplete
    /// data): then it takes connections.
    async fn wait_listening(session: Session, handle: TorrentHandle) -> Running {
        let mut snapshot = handle.snapshot.clone();
        let mut status = handle.status.clone();
        let ready = tokio::time::timeout(TEST_TIMEOUT, async {
            loop {
                if snapshot.borrow_and_update().phase != swarm::snapshot::Phase::Checking {
                    return true;
                }
                if matches!(
                    *status.borrow_and_update(),
                    swarm::session::Status::Finished(_)
                ) {
                    return false;
                }
                tokio::select! {
                    _ = snapshot.changed() => {}
                    _ = status.changed() => {}
                }
            }
        })
        .await
        .expect("torrent did not start in time");
        let addr = ready.then(|| session.local_addr());
        Running {
            session,
            snapshot: handle.snapshot.clone(),
            handle,
            addr,
        }
    }

    /// A plain `fetch` (no seeding afterwards) with the test configuration.
    pub async fn fetch(
        meta: &Arc<Metainfo>,
        dir: &Path,
        bind: IpAddr,
        peers: Vec<SocketAddr>,
    ) -> Running {
        let mode = Mode::Fetch { seed: false };
        Running::start(meta, dir, mode, bind, peers, test_config()).await
    }

    /// The honest party of the hostile tests: a leecher on `bind` fetches `meta` from
    /// `peers` with `cfg` (into a fresh directory) and must end complete, with exactly the
    /// bytes under `src`.
    pub async fn fetch_exactly(
        meta: &Arc<Metainfo>,
        src: &Path,
        bind: IpAddr,
        peers: Vec<SocketAddr>,
        cfg: TestConfig,
    ) {
        let out = tempfile::tempdir().unwrap();
        let mode = Mode::Fetch { seed: false };
        let leech = Running::start(meta, out.path(), mode, bind, peers, cfg).await;
        let done = leech.finish().await.expect("download failed");
        assert!(done.complete);
        assert_eq!(hash_tree(meta, out.path()), hash_tree(meta, src));
    }

    pub async fn seed(meta: &Arc<Metainfo>, dir: &Path, bind: IpAddr) -> Running {
        let r = Running::start(meta, dir, Mode::Seed, bind, vec![], test_config()).await;
        assert!(r.addr.is_some(), "seed did not start");
        r
    }

    /// Waits for the torrent's run to end, then shuts the session down. The error is the
    /// torrent's, with its causes.
    pub async fn finish(mut self) -> Result<Summary, String> {
        let r = tokio::time::timeout(TEST_TIMEOUT, self.handle.finished())
            .await
            .expect("session did not finish in time")
            .expect("torrent was removed");
        self.session.shutdown().await;
        match &*r {
            Ok(s) => Ok(s.clone()),
            Err(e) => Err(swarm::error::error_chain(e)),
        }
    }

    /// Stops the session cleanly and returns the torrent's summary.
    pub async fn stop(self) -> Summary {
        let Running {
            session,
            mut handle,
            ..
        } = self;
        tokio::time::timeout(TEST_TIMEOUT, session.shutdown())
            .await
            .expect("session did not stop in time");
        let r = handle.finished().await.expect("torrent was removed");
        match &*r {
            Ok(s) => s.clone(),
            Err(e) => panic!("session failed: {e:?}"),
        }
    }

    /// Wait until at least `bytes` are verified.
    pub async fn wait_verified(&mut self, bytes: u64) {
        tokio::time::timeout(TEST_TIMEOUT, async {
            loop {
                if self.snapshot.borrow_and_update().stats.verified_bytes >= bytes {
                    return;
                }
                self.snapshot.changed().await.expect("session ended");
            }
        })
        .await
        .expect("not verified in time");
    }
}

/// A torrent to add, as the tests run them: `trackers` replace the torrent's own.
pub fn spec(
    meta: &Arc<Metainfo>,
    dir: &Path,
    mode: Mode,
    peers: Vec<SocketAddr>,
    trackers: Vec<Vec<String>>,
    cfg: &TorrentConfig,
    peer_timeout: Option<Duration>,
) -> TorrentSpec {
    TorrentSpec {
        content: swarm::session::Content::Torrent(meta.clone()),
        dir: dir.to_path_buf(),
        mode,
        sources: Sources {
            peers,
            extra_trackers: trackers.into_iter().flatten().collect(),
            no_trackers: false,
            peer_timeout,
        },
        recheck: false,
        selection: Default::default(),
        priorities: None,
        rates: Default::default(),
        cfg: cfg.clone(),
    }
}

/// How a [`FakePeer`] behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    /// Serves correct data for the pieces it claims.
    Honest,
    /// Claims every piece and answers every request with garbage.
    Liar,
    /// Claims its pieces and never unchokes anyone (a slot squatter).
    NeverUnchoke,
}

/// A scripted peer speaking the real wire protocol: accepts connections on its own
/// loopback address until the test drops it.
pub struct FakePeer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

/// One torrent a [`FakePeer`] speaks for.
#[derive(Clone)]
pub struct FakeTorrent {
    pub meta: Arc<Metainfo>,
    /// The torrent's content concatenated.
    pub data: Arc<Vec<u8>>,
    /// Pieces it claims.
    pub has: Bitfield,
    pub behaviour: Behaviour,
}

impl FakePeer {
    /// `data`: the torrent's content concatenated; `has`: pieces it claims.
    pub async fn start(
        meta: &Arc<Metainfo>,
        data: Arc<Vec<u8>>,
        has: Bitfield,
        behaviour: Behaviour,
        bind: IpAddr,
    ) -> FakePeer {
        let t = FakeTorrent {
            meta: meta.clone(),
            data,
            has,
            behaviour,
        };
        FakePeer::start_multi(vec![t], bind).await
    }

    /// A peer for several torrents on one port, each with its own behaviour; a handshake
    /// for any other info-hash is closed.
    pub async fn start_multi(torrents: Vec<FakeTorrent>, bind: IpAddr) -> FakePeer {
        let listener = TcpListener::bind(SocketAddr::new(bind, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let torrents = Arc::new(torrents);
        let task = tokio::spawn(async move {
            while let Ok(Ok((sock, _))) =
                tokio::time::timeout(TEST_TIMEOUT, listener.accept()).await
            {
                let torrents = torrents.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(TEST_TIMEOUT, serve(sock, &torrents)).await;
                });
            }
        });
        FakePeer { addr, task }
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut sock: tokio::net::TcpStream, torrents: &[FakeTorrent]) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    while buf.len() < Handshake::LEN {
        if sock.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let theirs = Handshake::decode(&buf).ok().flatten().expect("handshake");
    let Some(t) = torrents
        .iter()
        .find(|t| t.meta.info_hash == theirs.info_hash)
    else {
        return Ok(());
    };
    let (meta, data, has, behaviour) = (&t.meta, &t.data, &t.has, t.behaviour);
    let _ = buf.split_to(Handshake::LEN);
    let mut ours = Handshake::new(theirs.info_hash, PeerId(*b"-FK0001-fakefakefake"));
    ours.reserved = [0; 8];
    sock.write_all(&ours.to_bytes()).await?;
    let mut out = BytesMut::new();
    wire::encode(&Message::Bitfield(has.clone()), &mut out);
    sock.write_all(&out).await?;
    let mut dec = Decoder::new(meta.num_pieces());
    loop {
        while let Some(msg) = dec.decode(&mut buf).expect("valid messages from swarm") {
            out.clear();
            match msg {
                Message::Interested if behaviour != Behaviour::NeverUnchoke => {
                    wire::encode(&Message::Unchoke, &mut out)
                }
                Message::Request(b) => {
                    let start = meta.layout.piece_start(b.piece) as usize + b.offset as usize;
                    let mut block = data[start..start + b.len as usize].to_vec();
                    if behaviour == Behaviour::Liar {
                        block.iter_mut().for_each(|x| *x ^= 0x5a);
                    }
                    wire::encode(
                        &Message::Piece {
                            piece: b.piece,
                            offset: b.offset,
                            data: block.into(),
                        },
                        &mut out,
                    );
                }
                _ => {}
            }
            sock.write_all(&out).await?;
        }
        if sock.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// The torrent's bytes concatenated in file order.
pub fn concat_content(meta: &Metainfo, dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in &meta.files {
        all.extend(std::fs::read(dir.join(&f.path)).unwrap());
    }
    all
}
