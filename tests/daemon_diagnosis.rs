//! The daemon's per-torrent diagnosis over HTTP (issue 19, item 3): `swarm daemon` with a
//! `.torrent` whose only tracker is dead (an http URL on a loopback port nobody listens
//! on) answers `GET /api/v2/swarm/diagnosis?hash=H` with the doctor's cause naming the
//! failed tracker and a `fail` trackers finding; an unknown hash is 404, no session 403
//! (as the rest of the API); once stalled, `swarm/stalled` (the page's marker) lists it. Loopback only, own state directory, no DHT, LSD or port
//! mapping; every wait is bounded.

mod interop;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use interop::*;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";
/// Far more than one announce to a refused port needs.
const WAIT: Duration = Duration::from_secs(60);
/// The daemon's stall delay (`doctor::stall::DEFAULT_AFTER`, 30 s) and then some.
const STALL_WAIT: Duration = Duration::from_secs(120);

/// A port on 127.0.0.1 nobody listens on (bound, then released).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn multipart(name: &str, file: &str, content: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"--BOUNDARY19\r\n");
    b.extend_from_slice(
        format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
             Content-Type: application/x-bittorrent\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(content);
    b.extend_from_slice(b"\r\n--BOUNDARY19--\r\n");
    b
}

struct Api {
    base: String,
    http: reqwest::Client,
    cookie: String,
}

impl Api {
    async fn login(web: std::net::SocketAddr) -> Api {
        let base = format!("http://{web}/api/v2/");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("username", "admin"), ("password", PASSWORD)])
            .finish();
        let r = http
            .post(format!("{base}auth/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert_eq!(r.text().await.unwrap(), "Ok.");
        let cookie = cookie.split(';').next().unwrap().to_string();
        Api { base, http, cookie }
    }

    async fn get(&self, path: &str, cookie: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

async fn scenario(tmp: &Path) {
    let content = Content::single(&tmp.join("src"), "lonely.bin", 100_003, 23);
    let host = format!("127.0.0.1:{}", dead_port());
    let torrent = tmp.join("lonely.torrent");
    let hash = swarm_create(
        &content.path(),
        &torrent,
        None,
        &[&format!("http://{host}/announce")],
    );
    let pw = tmp.join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let web = addr(1);
    let mut daemon = swarm_daemon(&tmp.join("downloads"), &tmp.join("state"), web, &pw);
    let api = Api::login(web).await;

    let r = api
        .http
        .post(format!("{}torrents/add", api.base))
        .header("cookie", &api.cookie)
        .header("content-type", "multipart/form-data; boundary=BOUNDARY19")
        .body(multipart(
            "torrents",
            "lonely.torrent",
            &std::fs::read(&torrent).unwrap(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "Ok.", "{}", daemon.logs());

    // The tracker's refusal reaches the diagnosis once announced.
    let path = format!("swarm/diagnosis?hash={hash}");
    let deadline = Instant::now() + WAIT;
    let v = loop {
        let (status, body) = api.get(&path, &api.cookie).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["cause"].as_str().is_some_and(|c| c.contains(&host)) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no cause naming {host} within {WAIT:?}: {v}\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(v["hash"], hash);
    let cause = v["cause"].as_str().unwrap();
    assert!(cause.starts_with("No peer was found"), "{cause}");
    assert!(cause.contains("tracker failed"), "{cause}");
    assert!(v["stalled"].is_boolean(), "{v}");
    let findings = v["findings"].as_array().unwrap();
    let trackers = findings
        .iter()
        .find(|f| f["topic"] == "trackers")
        .unwrap_or_else(|| panic!("no trackers finding: {v}"));
    assert_eq!(trackers["severity"], "fail", "{v}");
    assert!(
        trackers["text"].as_str().unwrap().contains(&host),
        "{trackers}"
    );
    for f in findings {
        assert!(
            ["ok", "warn", "fail"].contains(&f["severity"].as_str().unwrap()),
            "{f}"
        );
    }

    // Unknown hash: 404; no session: 403, as every other endpoint.
    let unknown = format!("swarm/diagnosis?hash={}", "ab".repeat(20));
    assert_eq!(api.get(&unknown, &api.cookie).await.0, 404);
    assert_eq!(api.get(&path, "").await.0, 403);
    assert_eq!(api.get("swarm/stalled", "").await.0, 403);

    // After the daemon's stall delay (30 s) without a byte, it is stalled: listed by
    // swarm/stalled (the page's marker) with the same cause, and said so by the diagnosis.
    let deadline = Instant::now() + STALL_WAIT;
    let listed = loop {
        let (status, body) = api.get("swarm/stalled", &api.cookie).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(c) = v.get(&hash) {
            break c.clone();
        }
        assert!(v.is_object(), "{body}");
        assert!(
            Instant::now() < deadline,
            "not stalled within {STALL_WAIT:?}: {body}\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        listed.as_str().is_some_and(|c| c.contains(&host)),
        "{listed}"
    );
    let (_, body) = api.get(&path, &api.cookie).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stalled"], true, "{v}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_names_a_dead_tracker_in_the_torrents_diagnosis() {
    let tmp = tempfile::tempdir().unwrap();
    tokio::time::timeout(Duration::from_secs(300), scenario(tmp.path()))
        .await
        .expect("test timed out");
}
