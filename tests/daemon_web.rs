//! The daemon's HTTP edge on loopback, with a fake API handler and a fake core: login,
//! sessions, the login limiter, Host and Origin/Referer checks, body caps, commands and
//! reads. Every test runs under a timeout; nothing leaves 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use swarm::daemon::api::{ApiRequest, ApiResponse, Method, Outcome, ReplyKind, Step, SyncState};
use swarm::daemon::model::{Command, CommandReply, Hashes, Request, View};
use swarm::daemon::web::{self, WebConfig};
use tokio::sync::{mpsc, watch};

const PASSWORD: &str = "correct horse";
const LIMIT: Duration = Duration::from_secs(120);

fn reply(status: u16, body: String) -> Step {
    Step::Reply(ApiResponse {
        status,
        content_type: "text/plain",
        body: body.into_bytes(),
    })
}

/// The fake `qbt::handle`: echoes what the edge parsed, reads the view, asks the core.
fn handler(req: &ApiRequest, view: &View, sync: &mut SyncState) -> Step {
    match req.path.as_str() {
        "app/version" => reply(200, "v9.9.9".into()),
        "app/preferences" => reply(200, format!("port={}", view.prefs.listen_port)),
        "sync/maindata" => {
            sync.rid += 1;
            reply(200, format!("rid={}", sync.rid))
        }
        "echo" => {
            let mut s = format!("{:?}", req.method);
            for (k, v) in &req.params {
                s += &format!(" {k}={v}");
            }
            for u in &req.uploads {
                s += &format!(" {}:{}:{}", u.field, u.filename, u.bytes.len());
            }
            reply(200, s)
        }
        "torrents/pause" if req.method == Method::Post => {
            Step::Ask(Command::Pause(Hashes::All), ReplyKind::Empty)
        }
        _ => reply(404, "Not Found".into()),
    }
}

/// The fake `qbt::render`.
fn render(_: ReplyKind, outcome: Outcome) -> ApiResponse {
    ApiResponse {
        status: if outcome.is_ok() { 200 } else { 409 },
        content_type: "text/plain",
        body: format!("rendered {outcome:?}").into_bytes(),
    }
}

struct Daemon {
    addr: SocketAddr,
    base: String,
    http: reqwest::Client,
    /// Commands the fake core received.
    commands: Arc<AtomicUsize>,
    /// The fake core answers only while this is true.
    gate: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _view: watch::Sender<Arc<View>>,
}

async fn daemon() -> Daemon {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut view = View::default();
    view.prefs.listen_port = 6881;
    let (view_tx, view_rx) = watch::channel(Arc::new(view));
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Request>(8);
    let (gate, mut gate_rx) = watch::channel(true);
    let commands = Arc::new(AtomicUsize::new(0));
    let seen = commands.clone();
    tokio::spawn(async move {
        while let Some((cmd, reply)) = cmd_rx.recv().await {
            seen.fetch_add(1, Ordering::SeqCst);
            assert_eq!(cmd, Command::Pause(Hashes::All));
            if gate_rx.wait_for(|open| *open).await.is_err() {
                return;
            }
            let _ = reply.send(Ok(CommandReply::Done));
        }
    });
    let (stop, stop_rx) = watch::channel(false);
    let cfg = WebConfig::new("admin", web::hash_password(PASSWORD));
    let server = tokio::spawn(web::serve(
        listener, cfg, view_rx, cmd_tx, handler, render, stop_rx,
    ));
    Daemon {
        addr,
        base: format!("http://{addr}/api/v2/"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        commands,
        gate,
        stop,
        server,
        _view: view_tx,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Daemon {
    async fn login_raw(&self, user: &str, pw: &str) -> reqwest::Response {
        self.http
            .post(format!("{}auth/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("username", user), ("password", pw)]))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the `Cookie` header value.
    async fn login(&self) -> String {
        let r = self.login_raw("admin", PASSWORD).await;
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert_eq!(r.text().await.unwrap(), "Ok.");
        cookie.split(';').next().unwrap().to_string()
    }

    fn get(&self, path: &str, cookie: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
    }

    fn post(&self, path: &str, cookie: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
    }

    async fn shutdown(self) {
        self.stop.send_replace(true);
        let r = tokio::time::timeout(Duration::from_secs(30), self.server)
            .await
            .expect("serve returns after stop");
        r.unwrap().unwrap();
    }
}

async fn status_body(rb: reqwest::RequestBuilder) -> (u16, String) {
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_ok_and_fails_and_cookie_flags() {
    bounded(async {
        let d = daemon().await;
        let r = d.login_raw("admin", "wrong").await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("set-cookie").is_none());
        assert_eq!(r.text().await.unwrap(), "Fails.");
        let r = d.login_raw("root", PASSWORD).await;
        assert_eq!(r.text().await.unwrap(), "Fails.");

        let r = d.login_raw("admin", PASSWORD).await;
        assert_eq!(r.status(), 200);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        let mut attrs = set.split("; ");
        let sid = attrs.next().unwrap().strip_prefix("SID=").unwrap();
        assert_eq!(sid.len(), 32);
        assert!(sid.chars().all(|c| c.is_ascii_hexdigit()));
        let attrs: Vec<&str> = attrs.collect();
        for flag in ["HttpOnly", "SameSite=Strict", "path=/"] {
            assert!(attrs.contains(&flag), "{set}");
        }
        let cookie = format!("SID={sid}");
        assert_eq!(
            status_body(d.get("app/version", &cookie)).await,
            (200, "v9.9.9".into())
        );
        // Login answers POST only.
        let r = d
            .http
            .get(format!("{}auth/login", d.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_is_forbidden_everywhere_and_logout_ends_it() {
    bounded(async {
        let d = daemon().await;
        let endpoints = [
            "app/version",
            "app/preferences",
            "sync/maindata",
            "torrents/pause",
            "auth/logout",
            "echo",
            "no/such/endpoint",
        ];
        for cookie in ["", "SID=", "SID=00000000000000000000000000000000"] {
            for e in endpoints {
                for rb in [d.get(e, cookie), d.post(e, cookie)] {
                    assert_eq!(status_body(rb).await, (403, "Forbidden".into()), "{e}");
                }
            }
        }
        assert_eq!(d.commands.load(Ordering::SeqCst), 0);

        let cookie = d.login().await;
        assert_eq!(status_body(d.get("app/version", &cookie)).await.0, 200);
        assert_eq!(
            status_body(d.get("no/such/endpoint", &cookie)).await.0,
            404,
            "unknown endpoints are the handler's 404"
        );
        // Each session has its own sync position.
        assert_eq!(
            status_body(d.get("sync/maindata", &cookie)).await.1,
            "rid=1"
        );
        assert_eq!(
            status_body(d.get("sync/maindata", &cookie)).await.1,
            "rid=2"
        );
        let other = d.login().await;
        assert_eq!(status_body(d.get("sync/maindata", &other)).await.1, "rid=1");

        assert_eq!(status_body(d.post("auth/logout", &cookie)).await.0, 200);
        assert_eq!(status_body(d.get("app/version", &cookie)).await.0, 403);
        assert_eq!(status_body(d.get("app/version", &other)).await.0, 200);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_gets_the_address_banned() {
    bounded(async {
        let d = daemon().await;
        for i in 0..web::auth::MAX_FAILURES {
            let r = d.login_raw("admin", &format!("guess{i}")).await;
            assert_eq!(r.text().await.unwrap(), "Fails.", "try {i}");
        }
        for _ in 0..3 {
            let r = d.login_raw("admin", "guess").await;
            assert_eq!(r.status(), 403);
        }
        // The right password too, for the ban's duration.
        let r = d.login_raw("admin", PASSWORD).await;
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.text().await.unwrap().contains("banned"));
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_is_refused() {
    bounded(async {
        let d = daemon().await;
        let port = d.addr.port();
        let cookie = d.login().await;
        for host in [
            format!("evil.example:{port}"),
            format!("localhost.evil.example:{port}"),
            format!("127.0.0.1:{}", port.wrapping_add(1)),
            "localhost".to_string(),
        ] {
            let r = d.get("app/version", &cookie).header("host", &host);
            assert_eq!(status_body(r).await, (401, "Unauthorized".into()), "{host}");
            let r = d
                .http
                .post(format!("{}auth/login", d.base))
                .header("host", &host)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("username", "admin"), ("password", PASSWORD)]));
            assert_eq!(status_body(r).await.0, 401, "{host}");
        }
        for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
            let r = d.get("app/version", &cookie).header("host", &host);
            assert_eq!(status_body(r).await.0, 200, "{host}");
        }
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_origin_or_referer_is_refused() {
    bounded(async {
        let d = daemon().await;
        let cookie = d.login().await;
        let me = format!("http://{}", d.addr);
        let forged = [
            ("origin", "http://evil.example".to_string()),
            ("origin", "null".to_string()),
            ("referer", "http://evil.example/page".to_string()),
            (
                "referer",
                format!("http://127.0.0.1:{}/", d.addr.port() + 1),
            ),
        ];
        for (h, v) in &forged {
            let r = d.post("torrents/pause", &cookie).header(*h, v);
            assert_eq!(
                status_body(r).await,
                (401, "Unauthorized".into()),
                "{h}: {v}"
            );
        }
        assert_eq!(
            d.commands.load(Ordering::SeqCst),
            0,
            "nothing reached the core"
        );
        // A forged login is refused too (login CSRF).
        let r = d
            .http
            .post(format!("{}auth/login", d.base))
            .header("origin", "http://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("username", "admin"), ("password", PASSWORD)]));
        assert_eq!(status_body(r).await.0, 401);

        let ok = [
            d.post("torrents/pause", &cookie).header("origin", &me),
            d.post("torrents/pause", &cookie)
                .header("referer", format!("{me}/index.html")),
            d.post("torrents/pause", &cookie),
        ];
        for rb in ok {
            let (status, body) = status_body(rb).await;
            assert_eq!(status, 200);
            assert_eq!(body, "rendered Ok(Done)");
        }
        assert_eq!(d.commands.load(Ordering::SeqCst), 3);
        d.shutdown().await;
    })
    .await;
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, file, content) in parts {
        b.extend_from_slice(b"--BOUNDARY42\r\n");
        let disp = match file {
            Some(f) => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/x-bittorrent\r\n\r\n"),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        b.extend_from_slice(disp.as_bytes());
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--BOUNDARY42--\r\n");
    b
}

const MULTIPART: &str = "multipart/form-data; boundary=BOUNDARY42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_parsed_and_capped() {
    bounded(async {
        let d = daemon().await;
        let cookie = d.login().await;
        // Query + urlencoded body.
        let r = d
            .post("echo?a=1", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("b", "x y"), ("c", "é&=")]));
        assert_eq!(status_body(r).await, (200, "Post a=1 b=x y c=é&=".into()));
        // Multipart text fields and files.
        let body = multipart(&[
            ("urls", None, b"magnet:?xt=urn:btih:00"),
            ("torrents", Some("a.torrent"), &[7u8; 1000]),
        ]);
        let r = d
            .post("echo", &cookie)
            .header("content-type", MULTIPART)
            .body(body);
        assert_eq!(
            status_body(r).await,
            (
                200,
                "Post urls=magnet:?xt=urn:btih:00 torrents:a.torrent:1000".into()
            )
        );
        // Malformed multipart → 400.
        for (ctype, body) in [
            (MULTIPART, b"--BOUNDARY42\r\nno end".to_vec()),
            (MULTIPART, b"garbage".to_vec()),
            ("multipart/form-data", multipart(&[("a", None, b"1")])),
        ] {
            let r = d
                .post("echo", &cookie)
                .header("content-type", ctype)
                .body(body);
            assert_eq!(status_body(r).await.0, 400);
        }
        // One file over 10 MiB in a body under the cap → 413.
        let big = vec![0u8; 11 << 20];
        let r = d
            .post("echo", &cookie)
            .header("content-type", MULTIPART)
            .body(multipart(&[("torrents", Some("big.torrent"), &big)]));
        assert_eq!(status_body(r).await.0, 413);
        // A 30 MiB add → 413 and the core saw nothing.
        let huge = vec![0u8; 30 << 20];
        let r = d
            .post("torrents/pause", &cookie)
            .header("content-type", MULTIPART)
            .body(multipart(&[("torrents", Some("huge.torrent"), &huge)]));
        assert_eq!(status_body(r).await.0, 413);
        assert_eq!(d.commands.load(Ordering::SeqCst), 0);
        // The server still answers.
        assert_eq!(status_body(d.get("app/version", &cookie)).await.0, 200);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_the_core_and_reads_never_wait_on_it() {
    bounded(async {
        let d = daemon().await;
        let cookie = d.login().await;
        d.gate.send_replace(false); // the core is stuck
        let pending = tokio::spawn(d.post("torrents/pause", &cookie).send());
        // Wait until the core holds the command.
        while d.commands.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..5 {
            assert_eq!(
                status_body(d.get("app/preferences", &cookie)).await,
                (200, "port=6881".into())
            );
            assert_eq!(status_body(d.get("app/version", &cookie)).await.0, 200);
        }
        assert!(!pending.is_finished());
        d.gate.send_replace(true);
        let r = pending.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "rendered Ok(Done)");
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_its_guards_and_other_paths_are_404() {
    bounded(async {
        let d = daemon().await;
        for p in ["/", "/index.html"] {
            let r = d
                .http
                .get(format!("http://{}{p}", d.addr))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{p}");
            let h = r.headers();
            assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'self'"), "{csp}");
            assert_eq!(h["x-frame-options"], "DENY");
            let body = r.text().await.unwrap();
            assert!(body.contains("<script src=\"app.js\""), "{body}");
        }
        let js = d
            .http
            .get(format!("http://{}/app.js", d.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(js.status(), 200);
        assert!(js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        for p in ["/api/v1/x", "/../etc/passwd", "/nothing.js"] {
            let r = d
                .http
                .get(format!("http://{}{p}", d.addr))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{p}");
        }
        d.shutdown().await;
    })
    .await;
}

/// Reads what the server sends until it closes the connection.
async fn read_to_close(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_slow_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let d = daemon().await;
        // Too many headers.
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        let mut req = format!("GET /api/v2/app/version HTTP/1.1\r\nHost: {}\r\n", d.addr);
        for i in 0..(web::MAX_HEADERS + 10) {
            req += &format!("X-H{i}: v\r\n");
        }
        req += "Connection: close\r\n\r\n";
        s.write_all(req.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
        // Headers larger than the cap.
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
            d.addr,
            "a".repeat(web::MAX_HEADER_BYTES * 2)
        );
        let _ = s.write_all(req.as_bytes()).await;
        let answer = read_to_close(&mut s).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer:?}"
        );
        // A client that never finishes its headers is disconnected (after HEADER_TIMEOUT;
        // the test's own bound is far longer).
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"GET /api/v2/app/version HTTP/1.1\r\nHost: x")
            .await
            .unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(!answer.contains("200 OK"), "{answer:?}");
        d.shutdown().await;
    })
    .await;
}
