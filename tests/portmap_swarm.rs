//! swarm maps its own port through a real router: `miniupnpd` in the lab's network namespaces
//! (`tests/portmap_lab/`), swarm seeding inside the LAN namespace with port mapping on (its
//! default). While it runs the router lists TCP and UDP mappings of its listen port to its
//! LAN address; after a clean stop (SIGTERM) they are gone. Once with the router's defaults
//! (PCP answers first) and once with NAT-PMP/PCP off in miniupnpd, so swarm must use UPnP IGD
//! (SSDP discovery on the LAN, then SOAP). NAT-PMP proper (PCP's fallback) is proven against
//! a fake router in `tests/portmap_fake.rs`: miniupnpd answers PCP whenever it answers NAT-PMP.
//! A third cell takes the router's port away first, so the router grants another external
//! port, and checks that swarm announces that port to its tracker (a tiny one inside the
//! LAN namespace). A fourth runs `swarm doctor` in the LAN: it reports the mapping the
//! router grants, and the connection a WAN host makes to it. The cells run one after the other (one lab at a time).
//!
//! Network safety: swarm runs only inside the lab's LAN namespace (its multicast and router
//! traffic never reach the host's network), with `--no-dht --no-lsd --no-trackers` and its
//! own `--state-dir`. Skips (with the reason) where namespaces cannot be made, unless
//! `CI=true`. Every wait is bounded.

#[path = "portmap_lab/mod.rs"]
mod lab;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lab::{run_bounded, Lab, CMD_TIMEOUT};

/// One lab at a time in this file.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const PORT: u16 = 16881;
/// Hang guards only: mapping takes about a second here (PCP), a few with UPnP.
const MAP_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A small torrent and its data under `dir`.
fn torrent(dir: &std::path::Path, tracker: Option<&str>) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("mapped.bin"), vec![7u8; 300_000]).unwrap();
    let t = dir.join("mapped.torrent");
    let mut create = Command::new(env!("CARGO_BIN_EXE_swarm"));
    create.args(["create", "-q", "-o"]).arg(&t);
    if let Some(url) = tracker {
        create.args(["--tracker", url]);
    }
    let ok = create
        .arg(data.join("mapped.bin"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "swarm create failed");
    t
}

/// `swarm seed` inside the LAN namespace; its stderr lines arrive on the channel.
fn seed(
    lab: &Lab,
    dir: &std::path::Path,
    t: &std::path::Path,
    extra: &[&str],
) -> (Child, u32, mpsc::Receiver<String>) {
    // `sh` says its pid, then becomes swarm: the test signals swarm itself, not a wrapper.
    let mut cmd = lab.lan_cmd("sh");
    // A swarm left behind by a failed test dies with the lab (`Lab::stop` kills what runs in
    // its namespaces).
    cmd.args(["-c", "echo pid $$ >&2; exec \"$0\" \"$@\""])
        .args([env!("CARGO_BIN_EXE_swarm"), "seed"])
        .args(["--no-lsd", "--no-dht"])
        .args(extra)
        .arg(t)
        .arg("-d")
        .arg(dir.join("data"))
        .args(["--bind", &lab.client_ip().to_string()])
        .args(["--port", &PORT.to_string()])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning swarm in the LAN namespace");
    // Its notes ("swarm: port ... mapped via ...") go to stderr, above the bars.
    let out = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(CMD_TIMEOUT).expect("the shell's pid line");
    let pid = first
        .strip_prefix("pid ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a pid line: {first}"));
    (child, pid, rx)
}

/// Waits for swarm's "mapped via" line; returns it.
fn mapped_line(rx: &mpsc::Receiver<String>, lab: &Lab) -> String {
    let deadline = Instant::now() + MAP_TIMEOUT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("mapped via") => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!(
        "swarm never said its port was mapped; it said:\n{}\nrouter log:\n{}",
        seen.join("\n"),
        lab.router_log()
    );
}

fn mapped(lab: &Lab, proto: &str) -> bool {
    lab.list_mappings().iter().any(|m| {
        m.proto == proto
            && m.external_port == PORT
            && m.internal_port == PORT
            && m.internal_addr == lab.client_ip()
    })
}

/// SIGTERM to swarm itself (`pid`), then a bounded wait for its `ip netns exec` parent.
fn stop(child: &mut Child, pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("swarm did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
}

fn maps_and_unmaps(lab: Lab, via: &str) {
    let dir = tempfile::tempdir().unwrap();
    let t = torrent(dir.path(), None);
    let started = Instant::now();
    let (mut child, pid, rx) = seed(&lab, dir.path(), &t, &["--no-trackers"]);
    let line = mapped_line(&rx, &lab);
    let took = started.elapsed();
    assert!(
        line.contains(&format!(
            "port {PORT} mapped via {via}: {}:{PORT}",
            lab.wan_ip()
        )),
        "{line}"
    );
    // The router lists both; UDP may come a moment after TCP.
    let deadline = Instant::now() + MAP_TIMEOUT;
    while !(mapped(&lab, "TCP") && mapped(&lab, "UDP")) {
        assert!(
            Instant::now() < deadline,
            "router lists {:?}; router log:\n{}",
            lab.list_mappings(),
            lab.router_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "portmap swarm ({via}): start -> mapped TCP+UDP {:.2} s; {line}",
        took.as_secs_f64()
    );
    stop(&mut child, pid);
    let left: Vec<_> = lab
        .list_mappings()
        .into_iter()
        .filter(|m| m.external_port == PORT)
        .collect();
    assert!(
        left.is_empty(),
        "mappings left after a clean stop: {left:?}"
    );
}

#[test]
fn swarm_maps_tcp_and_udp_through_pcp_and_removes_them_at_exit() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::start() else { return };
    maps_and_unmaps(lab, "PCP");
}

#[test]
fn swarm_maps_through_upnp_when_the_router_offers_nothing_else() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::start_with(&["enable_natpmp=no"]) else {
        return;
    };
    // The router really ignores NAT-PMP/PCP now: natpmpc gets no mapping.
    let out = run_bounded(
        lab.lan_cmd("natpmpc").args([
            "-g",
            &lab.router_lan_ip().to_string(),
            "-a",
            "1",
            "1",
            "tcp",
            "1",
        ]),
        CMD_TIMEOUT,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !said.contains("Mapped public port"),
        "NAT-PMP answers: {said}"
    );
    maps_and_unmaps(lab, "UPnP");
}

/// A tracker inside the LAN namespace: answers every announce with no peers and sends the
/// `port` and `event` of each on the channel. Serves until `deadline`.
fn lan_tracker(lab: &Lab, deadline: Instant) -> (String, mpsc::Receiver<(u16, String)>) {
    let ip = lab.client_ip();
    let listener = lab.in_lan(move || std::net::TcpListener::bind((ip, 0)).unwrap());
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        while Instant::now() < deadline {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let query = req.split_whitespace().nth(1).unwrap_or("").to_string();
            let param = |k: &str| {
                query
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
            };
            if let Some(port) = param("port").and_then(|p| p.parse().ok()) {
                let _ = tx.send((port, param("event").unwrap_or_default()));
            }
            let body = "d8:intervali1800e5:peers0:e";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, rx)
}

#[test]
fn swarm_announces_the_external_port_the_router_grants() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::start() else { return };
    // Someone else on the LAN holds external port PORT (TCP) already.
    let client = lab.client_ip().to_string();
    let taken = run_bounded(
        lab.lan_cmd("upnpc")
            .args(["-a", &client, "9999", &PORT.to_string(), "TCP"]),
        CMD_TIMEOUT,
    );
    let said = String::from_utf8_lossy(&taken.stdout);
    assert!(said.contains("is redirected"), "upnpc -a failed: {said}");
    let (url, announces) = lan_tracker(&lab, Instant::now() + 2 * MAP_TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let t = torrent(dir.path(), Some(&url));
    let (mut child, pid, rx) = seed(&lab, dir.path(), &t, &[]);
    let line = mapped_line(&rx, &lab);
    // "port P mapped via PCP: IP:EXTERNAL (UDP via ...)"
    let external: u16 = line
        .split(" mapped via ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|addr| addr.rsplit(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no external port in {line:?}"));
    assert_ne!(
        external, PORT,
        "the router gave the taken port again: {line}"
    );
    println!("portmap swarm: router granted external port {external} for {PORT}: {line}");
    // The first announce may go out before the mapping or after it; the `stopped`
    // announce at exit surely comes after it.
    let deadline = Instant::now() + MAP_TIMEOUT;
    let mut seen = Vec::new();
    let first = announces
        .recv_timeout(MAP_TIMEOUT)
        .expect("the first announce reaches the tracker");
    seen.push(first.clone());
    if first.0 != external {
        stop(&mut child, pid);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match announces.recv_timeout(left) {
                Ok((port, event)) if event == "stopped" => {
                    assert_eq!(
                        port, external,
                        "stopped announce named port {port}; announces {seen:?}"
                    );
                    return;
                }
                Ok(other) => seen.push(other),
                Err(_) => break,
            }
        }
    } else {
        stop(&mut child, pid);
        return;
    }
    panic!("no stopped announce reached the tracker; announces {seen:?}");
}

/// `swarm doctor` inside the LAN reports the mapping the router grants (its external
/// address and protocol) and, once a host on the WAN side connects to that address, that
/// incoming connections arrive; it leaves no mapping behind when it ends.
#[test]
fn doctor_reports_the_mapping_and_the_incoming_connection() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = lab.lan_cmd(env!("CARGO_BIN_EXE_swarm"));
    cmd.args(["doctor", "--no-lsd", "--no-dht", "--for", "8s"])
        .args(["--bind", &lab.client_ip().to_string()])
        .args(["--port", &PORT.to_string()])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("-o")
        .arg(dir.path());
    let started = Instant::now();
    let doctor = std::thread::spawn(move || run_bounded(&mut cmd, MAP_TIMEOUT));
    // Once the router maps the port, a WAN host dials the external address.
    let deadline = Instant::now() + MAP_TIMEOUT;
    while !mapped(&lab, "TCP") {
        assert!(Instant::now() < deadline, "{}", lab.router_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let external = std::net::SocketAddr::from((lab.wan_ip(), PORT));
    lab.in_wan(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect_timeout(&external, Duration::from_secs(5))
            .expect("connect to the external address");
        let _ = s.write_all(b"hello");
    });
    let out = doctor.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "swarm doctor in the lab ({:.1} s):\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    let line = |topic: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(topic))
            .unwrap_or_else(|| panic!("no {topic} line:\n{stdout}\n{}", lab.router_log()))
            .to_owned()
    };
    let mapping = line("mapping");
    assert!(
        mapping.starts_with("ok")
            && mapping.contains(&format!(
                "mapped via PCP: external address {}:{PORT}",
                lab.wan_ip()
            )),
        "{mapping}"
    );
    let incoming = line("incoming");
    assert!(incoming.starts_with("ok"), "{incoming}");
    assert!(out.status.success(), "{stdout}");
    let left: Vec<_> = lab
        .list_mappings()
        .into_iter()
        .filter(|m| m.external_port == PORT)
        .collect();
    assert!(left.is_empty(), "mappings left after doctor: {left:?}");
}
