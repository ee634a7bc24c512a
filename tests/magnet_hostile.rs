//! A magnet fetch next to peers that misbehave in the metadata exchange (BEP 9), each a
//! small fake peer written here: a liar that answers every `ut_metadata` request with
//! garbage of the right length (the leecher must drop it and take the metadata from the
//! honest swarm seed beside it), and a peer advertising a 40 MiB `metadata_size` (above
//! the cap: it must never be asked for a piece). No real client is needed, so these run
//! in every `cargo test`; everything is on loopback and every wait is bounded.

mod interop;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use interop::*;

/// How long a fake peer serves at most: a guard, far above what a test takes.
const FAKE_LIFETIME: Duration = Duration::from_secs(90);
/// The extension id our fake peers give `ut_metadata` in their handshake.
const FAKE_UT_METADATA: u8 = 3;
/// Largest message a fake peer reads; the leecher sends nothing near it.
const MAX_MSG: usize = 1 << 20;

/// What a fake peer saw, over every connection it accepted.
#[derive(Debug, Default)]
struct Seen {
    connections: usize,
    /// `ut_metadata` messages the leecher sent us (payloads, bencoded).
    ut_metadata: Vec<Vec<u8>>,
    /// Pieces we answered with garbage.
    lied: Vec<u32>,
    /// Other message ids received (a summary for the report).
    other: Vec<u8>,
    /// Connections the leecher closed (EOF or reset) rather than our deadline.
    closed_by_leecher: usize,
}

enum Mode {
    /// Advertise `size` and answer every request with garbage of the right length.
    Liar { size: u32 },
    /// Advertise this size and answer nothing.
    Oversize { size: u32 },
}

struct FakePeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Seen>>,
}

impl FakePeer {
    fn start(last: u8, info_hash: [u8; 20], mode: Mode) -> FakePeer {
        let listener = TcpListener::bind(SocketAddr::new(ip(last), 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::default();
            let deadline = Instant::now() + FAKE_LIFETIME;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        seen.connections += 1;
                        serve(s, &info_hash, &mode, &flag, deadline, &mut seen);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            seen
        });
        FakePeer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("fake peer thread")
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn bencoded_ext_handshake(size: u32) -> Vec<u8> {
    format!("d1:md11:ut_metadatai{FAKE_UT_METADATA}ee13:metadata_sizei{size}ee").into_bytes()
}

fn send(s: &mut TcpStream, id: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut m = Vec::with_capacity(5 + payload.len());
    m.extend_from_slice(&(1 + payload.len() as u32).to_be_bytes());
    m.push(id);
    m.extend_from_slice(payload);
    s.write_all(&m)
}

/// The integer after `key` (`…<key>i<N>e…`) in a bencoded payload.
fn bencode_int(payload: &[u8], key: &str) -> Option<i64> {
    let pat = format!("{}:{key}i", key.len());
    let at = payload
        .windows(pat.len())
        .position(|w| w == pat.as_bytes())?
        + pat.len();
    let end = at + payload[at..].iter().position(|&b| b == b'e')?;
    std::str::from_utf8(&payload[at..end]).ok()?.parse().ok()
}

/// Reads exactly `buf.len()` bytes, giving up at `deadline` or when told to stop. Err:
/// the leecher closed the connection.
fn read_full(
    s: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<bool, ()> {
    let mut got = 0;
    while got < buf.len() {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Ok(false);
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(()),
            Ok(n) => got += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Err(()),
        }
    }
    Ok(true)
}

/// One connection: BEP 3 handshake with the extension bit, BEP 10 handshake, then
/// whatever `mode` says to `ut_metadata` requests.
fn serve(
    mut s: TcpStream,
    info_hash: &[u8; 20],
    mode: &Mode,
    stop: &AtomicBool,
    deadline: Instant,
    seen: &mut Seen,
) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut hs = [0u8; 68];
    match read_full(&mut s, &mut hs, stop, deadline) {
        Ok(true) => {}
        Ok(false) => return,
        Err(()) => {
            seen.closed_by_leecher += 1;
            return;
        }
    }
    if &hs[1..20] != b"BitTorrent protocol" || &hs[28..48] != info_hash {
        return;
    }
    let mut ours = Vec::with_capacity(68);
    ours.push(19);
    ours.extend_from_slice(b"BitTorrent protocol");
    let mut reserved = [0u8; 8];
    reserved[5] |= 0x10; // BEP 10
    ours.extend_from_slice(&reserved);
    ours.extend_from_slice(info_hash);
    ours.extend_from_slice(b"-FK0001-magnethostil");
    let size = match mode {
        Mode::Liar { size } | Mode::Oversize { size } => *size,
    };
    if s.write_all(&ours).is_err()
        || send(
            &mut s,
            20,
            &[&[0u8][..], &bencoded_ext_handshake(size)].concat(),
        )
        .is_err()
    {
        return;
    }
    let mut their_ut_metadata = None;
    loop {
        let mut len = [0u8; 4];
        match read_full(&mut s, &mut len, stop, deadline) {
            Ok(true) => {}
            Ok(false) => return,
            Err(()) => {
                seen.closed_by_leecher += 1;
                return;
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        if len > MAX_MSG {
            return;
        }
        let mut msg = vec![0u8; len];
        match read_full(&mut s, &mut msg, stop, deadline) {
            Ok(true) => {}
            Ok(false) => return,
            Err(()) => {
                seen.closed_by_leecher += 1;
                return;
            }
        }
        if msg[0] != 20 || msg.len() < 2 {
            seen.other.push(msg[0]);
            continue;
        }
        let payload = &msg[2..];
        if msg[1] == 0 {
            their_ut_metadata =
                bencode_int(payload, "ut_metadata").and_then(|i| u8::try_from(i).ok());
            continue;
        }
        if msg[1] != FAKE_UT_METADATA {
            seen.other.push(20);
            continue;
        }
        seen.ut_metadata.push(payload.to_vec());
        let (Mode::Liar { size }, Some(id), Some(0), Some(piece)) = (
            mode,
            their_ut_metadata,
            bencode_int(payload, "msg_type"),
            bencode_int(payload, "piece"),
        ) else {
            continue;
        };
        let piece = piece as u32;
        let len = (*size as usize)
            .saturating_sub(piece as usize * 16384)
            .min(16384);
        let mut reply = vec![id];
        reply.extend_from_slice(
            format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{size}ee").as_bytes(),
        );
        reply.extend((0..len).map(|i| (i as u8).wrapping_mul(31) ^ 0x5a));
        seen.lied.push(piece);
        if send(&mut s, 20, &reply).is_err() {
            seen.closed_by_leecher += 1;
            return;
        }
    }
}

fn hash_bytes(hex: &str) -> [u8; 20] {
    let mut raw = [0u8; 20];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    raw
}

/// Content with an info dictionary of several metadata pieces (long file names), its
/// torrent, info-hash and info dictionary length.
fn several_pieces(tmp: &Path) -> (Content, std::path::PathBuf, String, u32) {
    let files: Vec<(String, usize)> = (0..300)
        .map(|i| {
            let name = format!("f{i:04}-{}.bin", "a-rather-long-name-".repeat(9));
            (name, 500 + i * 7)
        })
        .collect();
    let files: Vec<(&str, usize)> = files.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let content = Content::tree(&tmp.join("src"), "tree", &files, 21);
    let torrent = tmp.join("tree.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16 * 1024), &[]);
    let bytes = std::fs::read(&torrent).unwrap();
    let info = swarm::metainfo::Metainfo::from_bytes(&bytes)
        .unwrap()
        .info_bytes
        .len();
    assert!(info > 3 * 16384, "info dict only {info} B");
    (content, torrent, hash, info as u32)
}

/// An honest swarm seed on 127.0.0.2, capped so the fake peer beside it is surely asked
/// (the fake answers at once).
fn honest_seed(torrent: &Path, content: &Content) -> (Proc, SocketAddr) {
    let at = addr(2);
    let p = swarm_seed(
        torrent,
        &content.dir,
        at,
        &[
            "--no-trackers".into(),
            "--max-upload-rate".into(),
            "32KiB".into(),
        ],
    );
    (p, at)
}

fn leech(link: &str, out: &Path) -> Proc {
    swarm_fetch(
        Path::new(link),
        out,
        free_port(ip(1)),
        &["--no-trackers".into()],
    )
}

#[test]
fn a_peer_lying_about_the_metadata_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent, hash, size) = several_pieces(tmp.path());
    let liar = FakePeer::start(3, hash_bytes(&hash), Mode::Liar { size });
    // The liar alone first, so it is asked whatever the machine's load; the honest seed
    // comes once the liar has been dropped, dialling the leecher.
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={}", liar.addr);
    let out = tmp.path().join("out");
    let port = free_port(ip(1));
    let mut fetch = swarm_fetch(Path::new(&link), &out, port, &["--no-trackers".into()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !fetch
        .stderr()
        .contains("dropping a peer that sent bad metadata")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the liar was not dropped within 60 s\n{}",
            fetch.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let leecher = format!("{}:{port}", ip(1));
    let mut seed = swarm_seed(
        &torrent,
        &content.dir,
        addr(2),
        &["--no-trackers".into(), "--peer".into(), leecher],
    );
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm");
    // Give the leecher's close a moment to reach the fake peer's reader.
    std::thread::sleep(Duration::from_millis(300));
    let seen = liar.finish();
    say(&format!("magnet_hostile liar saw: connections={} ut_metadata={} lied={:?} other={:?} closed_by_leecher={}",
        seen.connections, seen.ut_metadata.len(), seen.lied, seen.other, seen.closed_by_leecher));
    assert!(!seen.lied.is_empty(), "the liar was never asked: {seen:?}");
    assert!(
        seen.closed_by_leecher >= 1,
        "the leecher never closed the liar's connection: {seen:?}"
    );
    seed.stop();
}

#[test]
fn an_oversize_metadata_size_is_never_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let (content, torrent, hash, _) = several_pieces(tmp.path());
    let big = FakePeer::start(
        3,
        hash_bytes(&hash),
        Mode::Oversize {
            size: 40 * MIB as u32,
        },
    );
    let (mut seed, seed_at) = honest_seed(&torrent, &content);
    let link = format!(
        "magnet:?xt=urn:btih:{hash}&x.pe={}&x.pe={seed_at}",
        big.addr
    );
    let out = tmp.path().join("out");
    let mut fetch = leech(&link, &out);
    swarm_finish(&mut fetch);
    content.assert_same_in(&out, "swarm");
    std::thread::sleep(Duration::from_millis(300));
    let seen = big.finish();
    say(&format!(
        "magnet_hostile oversize peer saw: connections={} ut_metadata={} other={:?} closed_by_leecher={}",
        seen.connections, seen.ut_metadata.len(), seen.other, seen.closed_by_leecher
    ));
    assert!(
        seen.connections >= 1,
        "the leecher never dialled the fake peer"
    );
    assert!(
        seen.ut_metadata.is_empty(),
        "a peer advertising 40 MiB of metadata was sent ut_metadata messages: {:?}",
        seen.ut_metadata
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    );
    seed.stop();
}

/// An honest transfer of a large info dictionary (256 metadata pieces, more than the burst
/// of other extension messages `wire::guard` allows) between two swarm processes: neither
/// side may take it for a flood. (`ut_metadata` has its own budget in the guard, and the
/// seed's own rule of a few copies per connection; before that the seed dropped the
/// leecher after 200 requests and a 4 MiB dict took seconds instead of milliseconds.)
#[test]
fn a_large_info_dict_is_not_taken_for_a_flood() {
    let tmp = tempfile::tempdir().unwrap();
    // 256 metadata pieces: a 3.2 GiB sparse file in 16 KiB pieces (20 B of hash each).
    let pieces: u64 = 256 * 16384 / 20 + 1;
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("sparse.bin");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(pieces * 16384)
        .unwrap();
    let torrent = tmp.path().join("sparse.torrent");
    let hash = swarm_create(&file, &torrent, Some(16 * 1024), &[]);
    let at = addr(2);
    let mut seed = swarm_seed(&torrent, &src, at, &["--no-trackers".into()]);
    let out = tmp.path().join("out");
    let mut fetch = leech(&format!("magnet:?xt=urn:btih:{hash}&x.pe={at}"), &out);
    wait_until("metadata verified", Duration::from_secs(60), || {
        fetch.stderr().contains("metadata verified")
    });
    fetch.stop();
    seed.stop();
    for (who, log) in [("leecher", fetch.stderr()), ("seed", seed.stderr())] {
        assert!(
            !log.contains("extension messages a second"),
            "the {who} took an honest metadata transfer for a flood\n{}\n{}",
            fetch.logs(),
            seed.logs()
        );
    }
}
