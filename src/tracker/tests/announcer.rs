//! The announcer task against fake trackers on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::fake::{u32_at, udp_tracker, FakeHttp, FakeUdp, Reply};
use crate::snapshot::{Phase, Snapshot};
use crate::tracker::announcer::{run, AnnouncerConfig};
use crate::types::{InfoHash, PeerId};

fn config(tiers: Vec<Vec<String>>) -> AnnouncerConfig {
    AnnouncerConfig {
        local_addr: None,
        info_hash: InfoHash([0x11; 20]),
        peer_id: PeerId(*b"-SW0100-announcer000"),
        port: std::sync::Arc::new(std::sync::atomic::AtomicU16::new(40000)),
        tiers,
        numwant: 50,
        key: 7,
        udp_retry_base: Duration::from_millis(200),
        udp_max_tries: 3,
        stop_timeout: Duration::from_secs(5),
    }
}

fn downloading(total: u64) -> Snapshot {
    let mut s = Snapshot {
        phase: Phase::Downloading,
        total_bytes: total,
        ..Snapshot::default()
    };
    s.stats.downloaded = 0;
    s
}

/// Poll `cond` until it holds (10 s at most; only a hang, not speed, fails a test).
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event_of(target: &str) -> &str {
    target
        .split('&')
        .find_map(|kv| kv.strip_prefix("event="))
        .unwrap_or("")
}

#[tokio::test]
async fn http_lifecycle_started_peers_completed_once_stopped() {
    let body = b"d8:intervali1800e5:peers6:\x0a\x00\x00\x07\x1a\xe1e".to_vec();
    let fake = FakeHttp::start(move |_, _| Reply::ok(body.clone())).await;
    let url = format!("http://{}/announce", fake.addr);
    let (snap_tx, snap_rx) = watch::channel(downloading(1000));
    let (peers_tx, mut peers_rx) = mpsc::channel::<Vec<SocketAddr>>(8);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(
        config(vec![vec![url.clone()]]),
        snap_tx.clone(),
        peers_tx,
        stop_rx,
    ));

    let got = tokio::time::timeout(Duration::from_secs(10), peers_rx.recv())
        .await
        .expect("peers delivered")
        .unwrap();
    assert_eq!(got, vec!["10.0.0.7:6881".parse::<SocketAddr>().unwrap()]);
    let first = fake.requests()[0].clone();
    assert_eq!(event_of(&first), "started", "{first}");
    assert!(first.contains("&left=1000&") && first.contains("&port=40000&"));
    wait_for("trackers_ok", || snap_rx.borrow().trackers_ok == 1).await;
    assert_eq!(snap_rx.borrow().trackers_total, 1);
    assert_eq!(snap_rx.borrow().tracker_error, None);

    // The download finishes: `completed` goes out once.
    snap_tx.send_modify(|s| {
        s.stats.verified_bytes = 1000;
        s.stats.downloaded = 1000;
        s.phase = Phase::Done;
    });
    wait_for("completed", || {
        fake.requests().iter().any(|r| event_of(r) == "completed")
    })
    .await;
    // More snapshot updates must not repeat it.
    for _ in 0..5 {
        snap_tx.send_modify(|s| s.stats.uploaded += 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("announcer returns after stop")
        .unwrap();
    let reqs = fake.requests();
    let events: Vec<&str> = reqs.iter().map(|r| event_of(r)).collect();
    assert_eq!(events, ["started", "completed", "stopped"], "{reqs:?}");
    let last = reqs.last().unwrap();
    assert!(
        last.contains("&left=0&") && last.contains("&numwant=0&"),
        "{last}"
    );
}

#[tokio::test]
async fn failing_tier_costs_only_itself_and_stopped_goes_to_answering_trackers() {
    let refuse =
        FakeHttp::start(|_, _| Reply::ok(&b"d14:failure reason22:torrent not registerede"[..]))
            .await;
    let udp = FakeUdp::start(udp_tracker(99, vec![10, 1, 2, 3, 0x1f, 0x90])).await;
    let silent = FakeUdp::start(|_| vec![]).await;
    let bad_url = format!("http://{}/announce", refuse.addr);
    let tiers = vec![
        vec![bad_url.clone()],
        vec![format!("udp://{}", silent.addr)],
        vec![format!("udp://{}/announce", udp.addr)],
        vec!["gopher://nowhere/announce".to_string()],
    ];
    let (snap_tx, snap_rx) = watch::channel(downloading(5000));
    let (peers_tx, mut peers_rx) = mpsc::channel(8);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut cfg = config(tiers);
    // Long enough that the silent tracker is still being retried when we stop.
    cfg.udp_retry_base = Duration::from_secs(5);
    let task = tokio::spawn(run(cfg, snap_tx, peers_tx, stop_rx));

    let got = tokio::time::timeout(Duration::from_secs(10), peers_rx.recv())
        .await
        .expect("peers from the working tier")
        .unwrap();
    assert_eq!(got, vec!["10.1.2.3:8080".parse::<SocketAddr>().unwrap()]);
    wait_for("refusal recorded", || {
        snap_rx.borrow().tracker_error.as_deref()
            == Some(&*format!(
                "{bad_url}: failure reason: torrent not registered"
            ))
    })
    .await;
    assert_eq!(snap_rx.borrow().trackers_total, 4);
    assert_eq!(snap_rx.borrow().trackers_ok, 1);

    // Stop while the silent tracker is still being retried: nothing waits for it.
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("announcer returns after stop")
        .unwrap();
    let events: Vec<u32> = udp
        .received()
        .iter()
        .filter(|d| d.len() == 98)
        .map(|d| u32_at(d, 80))
        .collect();
    assert_eq!(events.first(), Some(&2), "started first");
    assert_eq!(events.last(), Some(&3), "stopped last");
    let refused = refuse.requests();
    assert!(
        refused.iter().all(|r| event_of(r) == "started"),
        "no stopped to a tracker that never answered: {refused:?}"
    );
}

#[tokio::test]
async fn waits_for_checking_and_stops_cleanly_without_trackers() {
    let fake = FakeHttp::start(|_, _| Reply::ok(&b"d8:intervali1800e5:peers0:e"[..])).await;
    let mut checking = downloading(100);
    checking.phase = Phase::Checking;
    let (snap_tx, _snap_rx) = watch::channel(checking);
    let (peers_tx, _peers_rx) = mpsc::channel(8);
    let (stop_tx, stop_rx) = watch::channel(false);
    let url = format!("http://{}/announce", fake.addr);
    let task = tokio::spawn(run(
        config(vec![vec![url]]),
        snap_tx.clone(),
        peers_tx.clone(),
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fake.requests().is_empty(), "no announce while checking");
    snap_tx.send_modify(|s| {
        s.phase = Phase::Downloading;
        s.stats.verified_bytes = 40;
    });
    wait_for("started", || !fake.requests().is_empty()).await;
    assert!(fake.requests()[0].contains("&left=60&"));
    stop_tx.send(true).unwrap();
    task.await.unwrap();

    // No trackers at all: returns at once.
    let (_stop_tx, stop_rx) = watch::channel(false);
    tokio::time::timeout(
        Duration::from_secs(5),
        run(config(vec![]), snap_tx, peers_tx, stop_rx),
    )
    .await
    .unwrap();
}

/// Stopped while the `started` announce is still unanswered: the tracker may have
/// registered us, so it is told `stopped` (a fresh connection: the first is abandoned).
#[tokio::test]
async fn stopped_goes_to_a_tracker_whose_started_is_still_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<String>();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let target = head.split(' ').nth(1).unwrap_or("").to_string();
            if event_of(&target) == "started" {
                // Never answered: the announce stays in flight.
                held.push(sock);
            } else {
                let body = "d8:intervali1800e5:peers0:e";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            }
            let _ = seen_tx.send(target);
        }
    });
    let (snap_tx, _snap_rx) = watch::channel(downloading(1000));
    let (peers_tx, _peers_rx) = mpsc::channel::<Vec<SocketAddr>>(8);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(config(vec![vec![url]]), snap_tx, peers_tx, stop_rx));
    let first = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the started announce arrives")
        .unwrap();
    assert_eq!(event_of(&first), "started", "{first}");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("announcer returns after stop")
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("a stopped announce arrives")
        .unwrap();
    assert_eq!(event_of(&next), "stopped", "{next}");
    server.abort();
}
