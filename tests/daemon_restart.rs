//! `swarm daemon` killed with kill -9 and started again: five torrents (two paused, one
//! with a file deselected) come back as they were, with no re-hash of valid data and no
//! verified piece lost. Driven through the qBittorrent API on loopback (reqwest); every
//! process has its own state directory, no DHT, LSD or port mapping.

mod interop;

use std::path::Path;
use std::time::Duration;

use interop::*;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// A logged-in API client (blocking calls on a small runtime of its own).
struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    sid: String,
}

impl Api {
    fn login(web: std::net::SocketAddr) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Built inside the runtime: its timeouts need the runtime's timer.
        let http = rt.block_on(async {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .no_proxy()
                .build()
                .unwrap()
        });
        let base = format!("http://{web}/api/v2/");
        let r = rt
            .block_on(async {
                http.post(format!("{base}auth/login"))
                    .form(&[("username", "admin"), ("password", PASSWORD)])
                    .send()
                    .await
            })
            .unwrap();
        let sid = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string();
        Api {
            rt,
            http,
            base,
            sid,
        }
    }

    fn get(&self, path: &str) -> Value {
        let r = self
            .rt
            .block_on(async {
                self.http
                    .get(format!("{}{path}", self.base))
                    .header("cookie", &self.sid)
                    .send()
                    .await
            })
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let text = self.rt.block_on(r.text()).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> String {
        let r = self
            .rt
            .block_on(async {
                self.http
                    .post(format!("{}{path}", self.base))
                    .header("cookie", &self.sid)
                    .form(form)
                    .send()
                    .await
            })
            .unwrap();
        let status = r.status();
        let body = self.rt.block_on(r.text()).unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// hash → (state, progress, file priorities).
    fn states(&self) -> Vec<(String, String, f64)> {
        let v = self.get("torrents/info?sort=name");
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["hash"].as_str().unwrap().to_string(),
                    t["state"].as_str().unwrap().to_string(),
                    t["progress"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    fn priorities(&self, hash: &str) -> Vec<i64> {
        let v = self.get(&format!("torrents/files?hash={hash}"));
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f["priority"].as_i64().unwrap())
            .collect()
    }
}

#[test]
fn five_torrents_survive_kill_9_as_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut torrents = Vec::new();
    let mut hashes = Vec::new();
    for i in 0..5u64 {
        let content = if i == 4 {
            Content::tree(&src, "five", &[("a.bin", 150_001), ("b.bin", 90_007)], 50)
        } else {
            Content::single(&src, &format!("t{i}.bin"), 120_000 + i as usize * 7_919, i)
        };
        let t = tmp.path().join(format!("t{i}.torrent"));
        hashes.push(swarm_create(&content.path(), &t, Some(16 * 1024), &[]));
        torrents.push(t);
    }
    let refs: Vec<&Path> = torrents.iter().map(|t| t.as_path()).collect();
    let seed_at = addr(2);
    let mut seed = swarm_seed_many(&refs, &src, seed_at, &[]);

    let dir = tmp.path().join("downloads");
    let state = tmp.path().join("state");
    let pw = tmp.path().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let web = addr(1);
    let mut d = swarm_daemon(&dir, &state, web, &pw);
    let api = Api::login(web);
    let links: Vec<String> = hashes
        .iter()
        .map(|h| format!("magnet:?xt=urn:btih:{h}&x.pe={seed_at}"))
        .collect();
    assert_eq!(
        api.post("torrents/add", &[("urls", &links.join("\n"))]),
        "Ok."
    );
    wait_until("five complete", TRANSFER_TIMEOUT, || {
        let s = api.states();
        s.len() == 5
            && s.iter()
                .all(|(_, st, p)| *p >= 1.0 && (st.ends_with("UP") || st == "uploading"))
    });
    let paused = format!("{}|{}", hashes[0], hashes[1]);
    api.post("torrents/pause", &[("hashes", &paused)]);
    api.post(
        "torrents/filePrio",
        &[("hash", &hashes[4]), ("id", "1"), ("priority", "0")],
    );
    wait_until("paused and deselected", Duration::from_secs(60), || {
        let s = api.states();
        let paused = s.iter().filter(|(_, st, _)| st == "pausedUP").count();
        // The deselection ran the torrent again: wait until it is seeding, not checking.
        let seeding = s.iter().filter(|(_, st, _)| st == "stalledUP").count();
        paused == 2 && seeding == 3 && api.priorities(&hashes[4]) == [1, 0]
    });
    // Every torrent's resume record is on disk (written at completion and at the pause).
    wait_until("resume records", Duration::from_secs(60), || {
        hashes
            .iter()
            .all(|h| state.join("resume").join(format!("{h}.resume")).exists())
    });
    let before = api.states();
    drop(api);

    d.signal("KILL");
    d.wait_exit(Duration::from_secs(20));
    let log_before = d.stderr();
    drop(d);
    seed.stop();

    // Back, with no peer to fetch anything from: what it has, it had.
    let mut d = swarm_daemon(&dir, &state, web, &pw);
    let api = Api::login(web);
    wait_until(
        "the same five, in the same states",
        Duration::from_secs(60),
        || api.states() == before,
    );
    assert_eq!(api.priorities(&hashes[4]), [1, 0]);
    let log = d.stderr();
    assert!(
        log.matches("resume data trusted").count() >= 5,
        "every torrent starts from its resume record\n{log}"
    );
    assert!(
        !log.contains("checking all data"),
        "a torrent was re-hashed after the restart\n{log}\n--- before:\n{log_before}"
    );
    d.stop();
}
