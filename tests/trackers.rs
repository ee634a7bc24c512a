//! Trackers on real loopback sockets: peers found only through `swarm tracker` (HTTP and
//! UDP) and through opentracker, a dead first tier, a silent tracker beside `--peer`, and
//! `stopped` on exit.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarm::metainfo::Metainfo;
use swarm::session::Mode;
use swarm::tracker::client::{ClientConfig, Tracker};
use swarm::tracker::ScrapeStats;
use swarm::tracker_server::{self, ServerConfig};
use tokio::sync::watch;

/// An in-process `swarm tracker` on 127.0.0.1 (HTTP and UDP), stopped on drop.
struct OurTracker {
    http: String,
    udp: String,
    _stop: watch::Sender<bool>,
}

async fn our_tracker() -> OurTracker {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = tracker_server::bind(ServerConfig {
        http: Some(any),
        udp: Some(any),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let http = format!("http://{}/announce", server.http_addr().unwrap());
    let udp = format!("udp://{}/announce", server.udp_addr().unwrap());
    let (stop, rx) = watch::channel(false);
    tokio::spawn(server.run(rx));
    OurTracker {
        http,
        udp,
        _stop: stop,
    }
}

async fn scrape(url: &str, meta: &Metainfo) -> ScrapeStats {
    let mut t = Tracker::new(url, &ClientConfig::default()).unwrap();
    tokio::time::timeout(TEST_TIMEOUT, t.scrape(&meta.info_hash))
        .await
        .expect("scrape timed out")
        .expect("scrape failed")
}

/// Wait until a session has had an answer from at least one tracker.
async fn wait_announced(r: &mut Running) {
    tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            if r.snapshot.borrow_and_update().trackers_ok > 0 {
                return;
            }
            r.snapshot.changed().await.expect("session ended");
        }
    })
    .await
    .expect("no tracker answered in time");
}

fn content(name: &str, seed: u64) -> (tempfile::TempDir, Arc<Metainfo>) {
    let src = tempfile::tempdir().unwrap();
    let path = make_content(src.path(), name, &[("", 3 * 1024 * 1024 + 99)], seed);
    let meta = make_torrent(&path, 32 * 1024);
    (src, meta)
}

/// One seed and two leechers that know nothing but the tracker.
async fn swarm_through(tracker: &str, meta: &Arc<Metainfo>, src: &std::path::Path) {
    let tiers = vec![vec![tracker.to_string()]];
    let mut seed = Running::start_with_trackers(
        meta,
        src,
        Mode::Seed,
        ip(2),
        vec![],
        tiers.clone(),
        test_config(),
    )
    .await;
    wait_announced(&mut seed).await;
    let (out1, out2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leechers = Vec::new();
    for (dir, last) in [(out1.path(), 3), (out2.path(), 4)] {
        leechers.push(
            Running::start_with_trackers(
                meta,
                dir,
                Mode::Fetch { seed: false },
                ip(last),
                vec![],
                tiers.clone(),
                test_config(),
            )
            .await,
        );
    }
    for l in leechers {
        let s = l.finish().await.expect("leecher failed");
        assert!(s.complete);
    }
    for out in [&out1, &out2] {
        assert_eq!(hash_tree(meta, out.path()), hash_tree(meta, src));
    }
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_found_only_through_swarm_tracker_http() {
    let t = our_tracker().await;
    let (src, meta) = content("http.bin", 11);
    swarm_through(&t.http, &meta, src.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_found_only_through_swarm_tracker_udp() {
    let t = our_tracker().await;
    let (src, meta) = content("udp.bin", 12);
    swarm_through(&t.udp, &meta, src.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_first_tier_does_not_stop_the_second() {
    let t = our_tracker().await;
    let (src, meta) = content("tiers.bin", 13);
    // Port 1 on loopback: connection refused at once.
    let tiers = vec![
        vec!["http://127.0.0.1:1/announce".to_string()],
        vec![t.http.clone()],
    ];
    let mut seed = Running::start_with_trackers(
        &meta,
        src.path(),
        Mode::Seed,
        ip(2),
        vec![],
        tiers.clone(),
        test_config(),
    )
    .await;
    wait_announced(&mut seed).await;
    let out = tempfile::tempdir().unwrap();
    let leech = Running::start_with_trackers(
        &meta,
        out.path(),
        Mode::Fetch { seed: false },
        ip(3),
        vec![],
        tiers,
        test_config(),
    )
    .await;
    assert!(leech.finish().await.unwrap().complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tracker_does_not_hold_up_a_direct_peer() {
    let (src, meta) = content("silent.bin", 14);
    // A UDP socket that reads nothing and answers nothing, and a TCP listener that
    // accepts but never replies.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tiers = vec![
        vec![format!("udp://{}", udp.local_addr().unwrap())],
        vec![format!("http://{}/announce", tcp.local_addr().unwrap())],
    ];
    let seed = Running::seed(&meta, src.path(), ip(2)).await;
    let out = tempfile::tempdir().unwrap();
    let leech = Running::start_with_trackers(
        &meta,
        out.path(),
        Mode::Fetch { seed: false },
        ip(1),
        vec![seed.addr.unwrap()],
        tiers,
        test_config(),
    )
    .await;
    let summary = leech.finish().await.expect("download failed");
    assert!(summary.complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_sends_stopped_and_the_tracker_forgets_us() {
    let t = our_tracker().await;
    let (src, meta) = content("stopped.bin", 15);
    let mut seed = Running::start_with_trackers(
        &meta,
        src.path(),
        Mode::Seed,
        ip(2),
        vec![],
        vec![vec![t.http.clone()]],
        test_config(),
    )
    .await;
    wait_announced(&mut seed).await;
    assert_eq!(scrape(&t.http, &meta).await.complete, 1);
    seed.stop().await;
    assert_eq!(scrape(&t.http, &meta).await.complete, 0, "stopped was sent");
}

/// opentracker from Debian, bound to 127.0.0.1, serving only `meta` (it is built with a
/// whitelist). Killed on drop.
struct OpenTracker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `None` (a visible skip) unless `SWARM_INTEROP=1`, as for the other real-client tests:
/// `.ci/run` installs opentracker and sets it; then a missing binary fails the test.
fn opentracker(meta: &Metainfo) -> Option<OpenTracker> {
    if std::env::var("SWARM_INTEROP").as_deref() != Ok("1") {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: opentracker test (set SWARM_INTEROP=1; .ci/run does)"
        );
        return None;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v opentracker"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "opentracker is missing: install the Debian package `opentracker` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let whitelist = dir.path().join("whitelist");
    std::fs::write(&whitelist, format!("{}\n", meta.info_hash.to_hex())).unwrap();
    // A port free for both TCP and UDP on 127.0.0.1.
    let port = loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let child = Command::new("opentracker")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
        ])
        // opentracker chroots into `-d` first, so the whitelist path is inside it.
        .args(["-w", "/whitelist", "-d", dir.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting opentracker");
    // Wait until it accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "opentracker did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(OpenTracker {
        child,
        port,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_found_through_opentracker_http() {
    let (src, meta) = content("ot-http.bin", 16);
    let Some(ot) = opentracker(&meta) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/announce", ot.port);
    swarm_through(&url, &meta, src.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_found_through_opentracker_udp() {
    let (src, meta) = content("ot-udp.bin", 17);
    let Some(ot) = opentracker(&meta) else {
        return;
    };
    let url = format!("udp://127.0.0.1:{}/announce", ot.port);
    swarm_through(&url, &meta, src.path()).await;
}

/// Figures, not a test: announce round trips from our client to `swarm tracker` and to
/// opentracker, over HTTP and UDP. Run with
/// `cargo test --release --test trackers -- --ignored --nocapture announce_round_trips`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures"]
async fn announce_round_trips() {
    use swarm::tracker::{AnnounceParams, Event};
    use swarm::types::PeerId;
    let (_src, meta) = content("rtt.bin", 18);
    let ours = our_tracker().await;
    let ot = opentracker(&meta).expect("run with SWARM_INTEROP=1 and opentracker installed");
    let urls = [
        ("swarm tracker HTTP", ours.http.clone()),
        ("swarm tracker UDP", ours.udp.clone()),
        (
            "opentracker HTTP",
            format!("http://127.0.0.1:{}/announce", ot.port),
        ),
        (
            "opentracker UDP",
            format!("udp://127.0.0.1:{}/announce", ot.port),
        ),
    ];
    for (name, url) in urls {
        let mut t = Tracker::new(&url, &ClientConfig::default()).unwrap();
        let mut times = Vec::new();
        for i in 0..500u32 {
            let mut id = *b"-SW0100-rtt000000000";
            id[12..16].copy_from_slice(&i.to_be_bytes());
            let p = AnnounceParams {
                info_hash: meta.info_hash,
                peer_id: PeerId(id),
                port: 10_000 + (i % 1000) as u16,
                uploaded: 0,
                downloaded: 0,
                left: 1,
                event: Event::Started,
                numwant: 50,
                key: i,
            };
            let start = std::time::Instant::now();
            t.announce(&p).await.expect("announce");
            times.push(start.elapsed());
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        eprintln!(
            "{name:20} median {:>6.1} µs  mean {:>6.1} µs  p99 {:>6.1} µs  (500 announces)",
            times[250].as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            times[495].as_secs_f64() * 1e6
        );
    }
}
