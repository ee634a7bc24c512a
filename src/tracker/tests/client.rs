//! The HTTP and UDP clients against fake trackers on 127.0.0.1.

use std::time::Duration;

use super::fake::{u32_at, u64_at, udp_tracker, FakeHttp, FakeUdp, Reply};
use crate::tracker::client::{ClientConfig, Tracker};
use crate::tracker::{AnnounceParams, Event, ScrapeStats, TrackerError};
use crate::types::{InfoHash, PeerId};

fn params() -> AnnounceParams {
    let mut hash = [0u8; 20];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(0x7b);
    }
    AnnounceParams {
        info_hash: InfoHash(hash),
        peer_id: PeerId(*b"-SW0100-abcdefghijkl"),
        port: 51413,
        uploaded: 1,
        downloaded: 2,
        left: 12345,
        event: Event::Started,
        numwant: 80,
        key: 0x0102_0a0b,
    }
}

fn fast() -> ClientConfig {
    ClientConfig {
        local_addr: None,
        http_timeout: Duration::from_secs(5),
        udp_retry_base: Duration::from_millis(200),
        udp_max_tries: 3,
    }
}

const COMPACT: &[u8] =
    b"d8:intervali900e5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe2e";

#[tokio::test]
async fn http_announce_sends_the_query_and_parses_compact_peers() {
    let fake = FakeHttp::start(|_, _| Reply::ok(COMPACT)).await;
    let url = format!("http://{}/announce?passkey=s3cr%20t", fake.addr);
    let mut t = Tracker::new(&url, &fast()).unwrap();
    let r = t.announce(&params()).await.unwrap();
    assert_eq!(r.interval, Duration::from_secs(900));
    assert_eq!(
        r.peers,
        vec![
            "127.0.0.1:6881".parse().unwrap(),
            "10.0.0.2:6882".parse().unwrap()
        ]
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    let mut encoded = String::new();
    crate::tracker::http::percent_encode(&params().info_hash.0, &mut encoded);
    assert!(
        q.starts_with(&format!("/announce?passkey=s3cr%20t&info_hash={encoded}&")),
        "{q}"
    );
    // The raw bytes went out exactly as encoded (0x7b is `{`, which must be %7B).
    assert!(q.contains("info_hash=%7B"), "{q}");
    for part in [
        "&peer_id=-SW0100-abcdefghijkl&",
        "&port=51413&",
        "&uploaded=1&",
        "&downloaded=2&",
        "&left=12345&",
        "&compact=1&",
        "&numwant=80&",
        "&key=01020a0b",
        "&event=started",
    ] {
        assert!(q.contains(part), "{part} missing from {q}");
    }
}

#[tokio::test]
async fn http_tracker_id_is_echoed_and_failure_shown_even_with_error_status() {
    let fake = FakeHttp::start(|target, _| {
        if target.contains("trackerid=") {
            Reply {
                status: "400 Bad Request",
                headers: vec![],
                body: b"d14:failure reason8:go away!e".to_vec(),
            }
        } else {
            Reply::ok(&b"d8:intervali60e5:peers0:10:tracker id3:T%1e"[..])
        }
    })
    .await;
    let mut t = Tracker::new(&format!("http://{}/announce", fake.addr), &fast()).unwrap();
    t.announce(&params()).await.unwrap();
    match t.announce(&params()).await {
        Err(TrackerError::Failure(m)) => assert_eq!(m, "go away!"),
        other => panic!("{other:?}"),
    }
    assert!(fake.requests()[1].contains("&trackerid=T%251"));
}

#[tokio::test]
async fn http_redirect_loop_is_stopped() {
    let fake = FakeHttp::start(|_, _| Reply {
        status: "302 Found",
        headers: vec!["Location: /announce?again=1".into()],
        body: vec![],
    })
    .await;
    let mut t = Tracker::new(&format!("http://{}/announce", fake.addr), &fast()).unwrap();
    let err = t.announce(&params()).await.unwrap_err();
    assert!(matches!(err, TrackerError::Http(_)), "{err:?}");
    assert_no_query(&err);
    let n = fake.requests().len();
    assert!((2..=6).contains(&n), "{n} requests");
}

/// What a user or a log sees of `err` carries none of our announce query.
fn assert_no_query(err: &TrackerError) {
    let shown = format!("{} | {err:?}", crate::error::error_chain(err));
    for secret in ["peer_id", "abcdefghijkl", "info_hash", "key=", "01020a0b"] {
        assert!(!shown.contains(secret), "{secret:?} in {shown}");
    }
}

#[tokio::test]
async fn http_errors_never_show_our_query() {
    // Nothing listens on this port (bound, read, released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut t = Tracker::new(&format!("http://127.0.0.1:{port}/announce"), &fast()).unwrap();
    let err = t.announce(&params()).await.unwrap_err();
    assert!(matches!(err, TrackerError::Http(_)), "{err:?}");
    assert_no_query(&err);
    // The tracker's own URL is what identifies it, cut before any query.
    assert_eq!(
        crate::tracker::client::without_query("http://t.example/a/announce?info_hash=x&key=y"),
        "http://t.example/a/announce"
    );
    assert_eq!(
        crate::tracker::client::without_query("udp://t:1"),
        "udp://t:1"
    );
}

#[tokio::test]
async fn http_oversized_body_and_bad_status_cost_only_the_announce() {
    let fake = FakeHttp::start(|target, _| {
        if target.contains("big") {
            Reply::ok(vec![b'x'; crate::tracker::MAX_BODY + 1])
        } else {
            Reply {
                status: "503 Service Unavailable",
                headers: vec![],
                body: b"<html>busy</html>".to_vec(),
            }
        }
    })
    .await;
    let mut t = Tracker::new(&format!("http://{}/big", fake.addr), &fast()).unwrap();
    assert!(matches!(
        t.announce(&params()).await,
        Err(TrackerError::BodyTooLarge)
    ));
    let mut t = Tracker::new(&format!("http://{}/announce", fake.addr), &fast()).unwrap();
    assert!(matches!(
        t.announce(&params()).await,
        Err(TrackerError::HttpStatus(503))
    ));
}

#[tokio::test]
async fn http_scrape_uses_the_scrape_url() {
    let hash = params().info_hash;
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&hash.0);
    body.extend_from_slice(b"d8:completei4e10:downloadedi9e10:incompletei1eeee");
    let fake = FakeHttp::start(move |_, _| Reply::ok(body.clone())).await;
    let mut t = Tracker::new(&format!("http://{}/announce", fake.addr), &fast()).unwrap();
    let s = t.scrape(&hash).await.unwrap();
    assert_eq!(
        s,
        ScrapeStats {
            complete: 4,
            downloaded: 9,
            incomplete: 1
        }
    );
    assert!(fake.requests()[0].starts_with("/scrape?info_hash="));
    let mut t = Tracker::new(&format!("http://{}/a", fake.addr), &fast()).unwrap();
    assert!(matches!(t.scrape(&hash).await, Err(TrackerError::NoScrape)));
}

#[test]
fn unsupported_and_invalid_urls() {
    for url in ["wss://t/announce", "magnet:?xt=1", "file:///etc/passwd"] {
        assert!(
            matches!(
                Tracker::new(url, &fast()),
                Err(TrackerError::UnsupportedScheme(_))
            ),
            "{url}"
        );
    }
    for url in ["udp://t.example/announce", "not a url", "udp://:80"] {
        assert!(Tracker::new(url, &fast()).is_err(), "{url}");
    }
    assert!(Tracker::new("udp://[::1]:6969/announce", &fast()).is_ok());
    assert!(Tracker::new("udp://t.example:6969", &fast()).is_ok());
}

#[tokio::test]
async fn udp_announce_connects_once_and_reuses_the_connection_id() {
    let peers = vec![127, 0, 0, 1, 0x1a, 0xe1];
    let fake = FakeUdp::start(udp_tracker(0xfeed_f00d, peers)).await;
    let mut t = Tracker::new(&format!("udp://{}/announce", fake.addr), &fast()).unwrap();
    let r = t.announce(&params()).await.unwrap();
    assert_eq!(r.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(0)));
    let mut p = params();
    p.event = Event::None;
    t.announce(&p).await.unwrap();
    let s = t.scrape(&p.info_hash).await.unwrap();
    assert_eq!((s.complete, s.downloaded, s.incomplete), (4, 9, 1));

    let got = fake.received();
    let actions: Vec<u32> = got.iter().map(|d| u32_at(d, 8)).collect();
    assert_eq!(actions, [0, 1, 1, 2], "one connect, then reuse");
    for d in &got[1..] {
        assert_eq!(u64_at(d, 0), 0xfeed_f00d);
    }
    assert_eq!(u32_at(&got[1], 80), 2, "event started");
    assert_eq!(u32_at(&got[2], 80), 0, "periodic");
}

#[tokio::test]
async fn udp_ignores_wrong_transaction_ids_and_garbage() {
    let mut good = udp_tracker(42, vec![10, 0, 0, 9, 0, 80]);
    let fake = FakeUdp::start(move |req| {
        let mut replies = good(req);
        let Some(real) = replies.pop() else {
            return vec![];
        };
        let mut wrong_tx = real.clone();
        wrong_tx[7] ^= 0xff;
        // A lying answer for another transaction, then garbage, then the real one.
        vec![wrong_tx, b"\xff\xfe garbage".to_vec(), vec![], real]
    })
    .await;
    let mut t = Tracker::new(&format!("udp://{}", fake.addr), &fast()).unwrap();
    let r = t.announce(&params()).await.unwrap();
    assert_eq!(r.peers, vec!["10.0.0.9:80".parse().unwrap()]);
}

#[tokio::test]
async fn udp_error_action_is_shown() {
    let fake = FakeUdp::start(|req| {
        let mut out = 3u32.to_be_bytes().to_vec();
        out.extend_from_slice(&req[12..16]);
        out.extend_from_slice(b"banned client");
        vec![out]
    })
    .await;
    let mut t = Tracker::new(&format!("udp://{}", fake.addr), &fast()).unwrap();
    match t.announce(&params()).await {
        Err(e @ TrackerError::Failure(_)) => {
            assert_eq!(e.to_string(), "failure reason: banned client")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn udp_silent_tracker_times_out_after_the_configured_tries() {
    let fake = FakeUdp::start(|_| vec![]).await;
    let mut t = Tracker::new(&format!("udp://{}", fake.addr), &fast()).unwrap();
    assert!(matches!(
        t.announce(&params()).await,
        Err(TrackerError::Timeout)
    ));
    let got = fake.received();
    assert_eq!(got.len(), 3, "one connect per try");
    assert!(got.iter().all(|d| u32_at(d, 8) == 0));
}
