//! Shared helpers for the loopback tests: content, torrents, in-process sessions, and a
//! scripted fake peer. Everything binds to 127.0.0.x and is bounded in time.
#![allow(dead_code)]

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

use swarm::config::Config;
use swarm::create::{create_torrent, CreateOptions};
use swarm::metainfo::Metainfo;
use swarm::session::{self, Job, Mode, SessionError, Summary};
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

pub fn test_config() -> Config {
    Config {
        listen_port: 0,
        port_fallback: false,
        give_up_after: Some(Duration::from_secs(30)),
        hash_threads: 2,
        ..Config::default()
    }
}

/// An in-process session on a loopback address.
pub struct Running {
    pub task: JoinHandle<Result<Summary, SessionError>>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub stop: watch::Sender<bool>,
    pub addr: Option<SocketAddr>,
}

impl Running {
    pub async fn start(
        meta: &Arc<Metainfo>,
        dir: &Path,
        mode: Mode,
        bind: IpAddr,
        peers: Vec<SocketAddr>,
        cfg: Config,
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
        cfg: Config,
    ) -> Running {
        let job = Job {
            meta: meta.clone(),
            dir: dir.to_path_buf(),
            peers,
            trackers,
            mode,
            bind,
            cfg,
        };
        let (snap_tx, mut snapshot) = watch::channel(Snapshot::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(session::run(job, snap_tx, stop_rx));
        // Wait until it listens (or ends, e.g. refusing incomplete data).
        let port = tokio::time::timeout(TEST_TIMEOUT, async {
            loop {
                if let Some(p) = snapshot.borrow_and_update().listen_port {
                    return Some(p);
                }
                if snapshot.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .expect("session did not start listening in time");
        Running {
            task,
            snapshot,
            stop,
            addr: port.map(|p| SocketAddr::new(bind, p)),
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

    pub async fn seed(meta: &Arc<Metainfo>, dir: &Path, bind: IpAddr) -> Running {
        let r = Running::start(meta, dir, Mode::Seed, bind, vec![], test_config()).await;
        assert!(r.addr.is_some(), "seed did not start");
        r
    }

    pub async fn finish(self) -> Result<Summary, SessionError> {
        tokio::time::timeout(TEST_TIMEOUT, self.task)
            .await
            .expect("session did not finish in time")
            .expect("session panicked")
    }

    pub async fn stop(self) -> Summary {
        let _ = self.stop.send(true);
        self.finish().await.expect("session failed")
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

/// How a [`FakePeer`] behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    /// Serves correct data for the pieces it claims.
    Honest,
    /// Claims every piece and answers every request with garbage.
    Liar,
}

/// A scripted peer speaking the real wire protocol: accepts connections on its own
/// loopback address until the test drops it.
pub struct FakePeer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
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
        let listener = TcpListener::bind(SocketAddr::new(bind, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let meta = meta.clone();
        let task = tokio::spawn(async move {
            while let Ok(Ok((sock, _))) =
                tokio::time::timeout(TEST_TIMEOUT, listener.accept()).await
            {
                let (meta, data, has) = (meta.clone(), data.clone(), has.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        TEST_TIMEOUT,
                        serve(sock, &meta, &data, &has, behaviour),
                    )
                    .await;
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

async fn serve(
    mut sock: tokio::net::TcpStream,
    meta: &Metainfo,
    data: &[u8],
    has: &Bitfield,
    behaviour: Behaviour,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    while buf.len() < Handshake::LEN {
        if sock.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let theirs = Handshake::decode(&buf).ok().flatten().expect("handshake");
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
                Message::Interested => wire::encode(&Message::Unchoke, &mut out),
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
