//! Port mapping against fake routers on loopback: a PCP/NAT-PMP UDP server answering with
//! crafted replies (good, garbage, wrong opcode, refusals, truncated) and a fake UPnP IGD
//! (SSDP answerer + a tiny HTTP server for the description, SCPD and SOAP), well-behaved or
//! hostile. Nothing here sends to anything but 127.0.0.1: every config sets `gateway`,
//! `pmp_port` and `upnp_search` to servers this file starts. Every server and wait is bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm::portmap::{spawn, MappingStatus, PortMapConfig, ProtoStatus, Via};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Every fake server stops after this; every wait gives up after it.
const BOUND: Duration = Duration::from_secs(30);
const WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

type Log = Arc<Mutex<Vec<Vec<u8>>>>;

/// A UDP server on loopback answering each datagram with `reply(request)`, logging requests.
async fn udp_server(
    reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (u16, Log) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let l = log.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(BOUND, async {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                l.lock().unwrap().push(buf[..n].to_vec());
                if let Some(r) = reply(&buf[..n]) {
                    let _ = sock.send_to(&r, from).await;
                }
            }
        })
        .await;
    });
    (port, log)
}

/// A well-behaved NAT-PMP answer (external port = internal + `shift`), or `None` for PCP.
fn natpmp_reply(req: &[u8], shift: u16) -> Option<Vec<u8>> {
    match (req.first(), req.get(1)) {
        (Some(0), Some(0)) => {
            let mut r = vec![0, 128, 0, 0, 0, 0, 0, 9];
            r.extend_from_slice(&WAN.octets());
            Some(r)
        }
        (Some(0), Some(&op @ (1 | 2))) if req.len() == 12 => {
            let mut r = vec![0, 128 + op, 0, 0, 0, 0, 0, 9];
            let internal = u16::from_be_bytes([req[4], req[5]]);
            r.extend_from_slice(&req[4..6]);
            r.extend_from_slice(&(internal + shift).to_be_bytes());
            r.extend_from_slice(&req[8..12]);
            Some(r)
        }
        // A NAT-PMP-only router answers PCP with "unsupported version" (RFC 6887 §9).
        (Some(2), _) => Some(vec![0, 128 + req[1], 0, 1, 0, 0, 0, 9]),
        _ => None,
    }
}

/// A well-behaved PCP MAP answer (external port = internal + `shift`).
fn pcp_reply(req: &[u8], shift: u16) -> Option<Vec<u8>> {
    if req.len() != 60 || req[0] != 2 {
        return None;
    }
    let mut r = req.to_vec();
    r[1] = 0x81;
    r[8..24].fill(0);
    let internal = u16::from_be_bytes([req[40], req[41]]);
    r[42..44].copy_from_slice(&(internal + shift).to_be_bytes());
    r[44..60].copy_from_slice(&WAN.to_ipv6_mapped().octets());
    Some(r)
}

fn is_pmp_delete(req: &[u8], op: u8) -> bool {
    req.len() == 12 && req[0] == 0 && req[1] == op && req[8..12] == [0, 0, 0, 0]
}

/// A config that only reaches loopback servers; `silent` is a bound socket nobody answers.
fn config(pmp_port: u16, ssdp: SocketAddr) -> PortMapConfig {
    let mut c = PortMapConfig::new(16881, 16882);
    c.gateway = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    c.pmp_port = pmp_port;
    c.upnp_search = Some(ssdp);
    c.pmp_first_timeout = Duration::from_millis(100);
    c.pmp_tries = 2;
    c.upnp_search_timeout = Duration::from_millis(800);
    c.upnp_request_timeout = Duration::from_secs(1);
    c.retry_first = Duration::from_secs(60);
    c.retry_max = Duration::from_secs(60);
    c.shutdown_timeout = Duration::from_secs(3);
    c
}

/// A loopback UDP socket that never answers (held open so nothing else gets its port).
async fn silent() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

async fn wait(
    rx: &mut watch::Receiver<MappingStatus>,
    f: impl FnMut(&MappingStatus) -> bool,
) -> MappingStatus {
    let r = tokio::time::timeout(BOUND, rx.wait_for(f)).await;
    r.expect("status did not arrive in time").unwrap().clone()
}

fn settled(s: &MappingStatus) -> bool {
    !matches!(s.tcp, ProtoStatus::Pending) && !matches!(s.udp, ProtoStatus::Pending)
}

fn via(s: &ProtoStatus) -> Option<(SocketAddr, Via)> {
    match s {
        ProtoStatus::Mapped { external, via, .. } => Some((*external, *via)),
        _ => None,
    }
}

fn why(s: &ProtoStatus) -> String {
    match s {
        ProtoStatus::Failed { why, .. } => why.clone(),
        other => panic!("expected failed, got {other:?}"),
    }
}

#[tokio::test]
async fn natpmp_maps_tcp_and_udp_and_removes_them_at_shutdown() {
    let (port, log) = udp_server(|r| natpmp_reply(r, 0)).await;
    let (_s, ssdp) = silent().await;
    let (_c, cancel) = watch::channel(false);
    let h = spawn(config(port, ssdp), cancel);
    let mut rx = h.status.clone();
    let st = wait(&mut rx, settled).await;
    let wan = IpAddr::V4(WAN);
    assert_eq!(
        via(&st.tcp),
        Some((SocketAddr::new(wan, 16881), Via::NatPmp)),
        "{st}"
    );
    assert_eq!(
        via(&st.udp),
        Some((SocketAddr::new(wan, 16882), Via::NatPmp)),
        "{st}"
    );
    assert!(
        st.to_string()
            .starts_with("port 16881 mapped via NAT-PMP: 203.0.113.5:16881"),
        "{st}"
    );
    h.shutdown().await;
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|r| is_pmp_delete(r, 2)),
        "TCP mapping not deleted"
    );
    assert!(
        log.iter().any(|r| is_pmp_delete(r, 1)),
        "UDP mapping not deleted"
    );
}

#[tokio::test]
async fn pcp_reports_a_different_external_port_and_deletes_with_the_same_nonce() {
    let (port, log) = udp_server(|r| pcp_reply(r, 1000)).await;
    let (_s, ssdp) = silent().await;
    let (_c, cancel) = watch::channel(false);
    let h = spawn(config(port, ssdp), cancel);
    let mut rx = h.status.clone();
    let st = wait(&mut rx, settled).await;
    assert_eq!(
        via(&st.tcp),
        Some((SocketAddr::new(IpAddr::V4(WAN), 17881), Via::Pcp)),
        "{st}"
    );
    assert_eq!(st.external_udp().map(|a| a.port()), Some(17882));
    assert!(
        st.to_string().contains("mapped via PCP: 203.0.113.5:17881"),
        "{st}"
    );
    h.shutdown().await;
    let log = log.lock().unwrap();
    let maps: Vec<&Vec<u8>> = log.iter().filter(|r| r[4..8] != [0, 0, 0, 0]).collect();
    let deletes: Vec<&Vec<u8>> = log.iter().filter(|r| r[4..8] == [0, 0, 0, 0]).collect();
    assert_eq!(deletes.len(), 2, "one PCP delete per protocol");
    for d in deletes {
        assert!(
            maps.iter().any(|m| m[24..37] == d[24..37]),
            "delete repeats the mapping's nonce"
        );
    }
}

#[tokio::test]
async fn renewal_asks_for_the_granted_external_port() {
    let (port, log) = udp_server(|r| natpmp_reply(r, 500)).await;
    let (_s, ssdp) = silent().await;
    let (_c, cancel) = watch::channel(false);
    let mut cfg = config(port, ssdp);
    cfg.lease = Duration::from_secs(1); // renew every half second
    let h = spawn(cfg, cancel);
    let tcp_maps = |log: &Log| -> Vec<u16> {
        let l = log.lock().unwrap();
        l.iter()
            .filter(|r| r.len() == 12 && r[1] == 2 && r[8..12] != [0, 0, 0, 0])
            .map(|r| u16::from_be_bytes([r[6], r[7]]))
            .collect()
    };
    let renewed = tokio::time::timeout(BOUND, async {
        while tcp_maps(&log).len() < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(renewed.is_ok(), "no renewals seen");
    let suggested = tcp_maps(&log);
    assert_eq!(
        suggested[0], 16881,
        "first request suggests the internal port"
    );
    assert!(
        suggested[1..].iter().all(|&p| p == 17381),
        "renewals keep the granted port: {suggested:?}"
    );
    h.shutdown().await;
}

/// Each hostile PCP/NAT-PMP behaviour ends in `failed` with a reason naming it.
#[tokio::test]
async fn hostile_pmp_replies_end_in_failed_with_a_reason() {
    type Reply = fn(&[u8]) -> Option<Vec<u8>>;
    let cases: [(&str, Reply, &str); 5] = [
        ("garbage", |_| Some(vec![0xab; 37]), "wrong size"),
        (
            "wrong opcode",
            |r| {
                natpmp_reply(r, 0).map(|mut v| {
                    v[1] ^= 3;
                    v
                })
            },
            "opcode",
        ),
        (
            "refused",
            |r| {
                natpmp_reply(r, 0).map(|mut v| {
                    if r[0] == 0 {
                        v[3] = 2
                    }
                    v
                })
            },
            "not authorized",
        ),
        (
            "truncated",
            |r| {
                natpmp_reply(r, 0).map(|mut v| {
                    if r[0] == 0 {
                        v.truncate(10)
                    }
                    v
                })
            },
            "wrong size",
        ),
        ("silent", |_| None, "no router answered (PCP/NAT-PMP, UPnP)"),
    ];
    for (name, reply, want) in cases {
        let (port, _log) = udp_server(reply).await;
        let (_s, ssdp) = silent().await;
        let (_c, cancel) = watch::channel(false);
        let h = spawn(config(port, ssdp), cancel);
        let mut rx = h.status.clone();
        let st = wait(&mut rx, settled).await;
        let (t, u) = (why(&st.tcp), why(&st.udp));
        assert!(t.contains(want), "{name}: {t}");
        assert!(!u.is_empty(), "{name}");
        assert!(
            st.to_string().starts_with("port mapping failed: "),
            "{name}: {st}"
        );
        h.shutdown().await;
    }
}

#[path = "portmap_fake/igd.rs"]
mod igd;

#[tokio::test]
async fn upnp_maps_tcp_and_udp_and_deletes_them_at_shutdown() {
    let igd = igd::start(igd::Mode::Good).await;
    let (s, _) = silent().await;
    let mut cfg = config(s.local_addr().unwrap().port(), igd.ssdp);
    cfg.use_pcp = false;
    cfg.use_natpmp = false;
    let (_c, cancel) = watch::channel(false);
    let h = spawn(cfg, cancel);
    let mut rx = h.status.clone();
    let st = wait(&mut rx, settled).await;
    let wan: IpAddr = "203.0.113.7".parse().unwrap();
    assert_eq!(
        via(&st.tcp),
        Some((SocketAddr::new(wan, 16881), Via::Upnp)),
        "{st}"
    );
    assert_eq!(
        via(&st.udp),
        Some((SocketAddr::new(wan, 16882), Via::Upnp)),
        "{st}"
    );
    assert_eq!(
        st.to_string(),
        "port 16881 mapped via UPnP: 203.0.113.7:16881 (UDP via UPnP: 203.0.113.7:16882)"
    );
    h.shutdown().await;
    let actions = igd.actions.lock().unwrap().clone();
    assert!(
        actions.contains(&"AddPortMapping TCP 16881".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"DeletePortMapping TCP 16881".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"DeletePortMapping UDP 16882".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn upnp_port_in_use_reports_the_port_the_router_picked() {
    let igd = igd::start(igd::Mode::PortInUse).await;
    let (s, _) = silent().await;
    let mut cfg = config(s.local_addr().unwrap().port(), igd.ssdp);
    cfg.use_pcp = false;
    cfg.use_natpmp = false;
    let (_c, cancel) = watch::channel(false);
    let h = spawn(cfg, cancel);
    let mut rx = h.status.clone();
    let st = wait(&mut rx, settled).await;
    assert_eq!(st.external_tcp().map(|a| a.port()), Some(40000), "{st}");
    h.shutdown().await;
    let actions = igd.actions.lock().unwrap().clone();
    assert!(
        actions.contains(&"DeletePortMapping TCP 40000".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn hostile_igd_ends_in_failed_without_hanging() {
    use igd::Mode::*;
    // igd-next skips a gateway whose description or SCPD fails (it logs why and keeps
    // listening until the search times out), so those read as "no router answered".
    let cases = [
        (GarbageDescription, "no router answered (UPnP)"),
        (HugeDescription, "no router answered (UPnP)"),
        (EndlessDescription, "no router answered (UPnP)"),
        (GarbageSoap, "UPnP: invalid SOAP reply"),
        (HugeSoap, "length limit exceeded"),
        (EndlessSoap, "UPnP: timed out"),
    ];
    for (mode, want) in cases {
        let igd = igd::start(mode).await;
        let (s, _) = silent().await;
        let mut cfg = config(s.local_addr().unwrap().port(), igd.ssdp);
        cfg.use_pcp = false;
        cfg.use_natpmp = false;
        let (_c, cancel) = watch::channel(false);
        let h = spawn(cfg, cancel);
        let mut rx = h.status.clone();
        let st = wait(&mut rx, settled).await;
        let w = why(&st.tcp);
        eprintln!("{mode:?}: {st}");
        assert!(w.contains(want), "{mode:?}: {w}");
        assert!(
            w.len() < 300,
            "{mode:?}: reason is shortened: {} chars",
            w.len()
        );
        h.shutdown().await;
    }
}

/// A router that is silent at first is retried (back-off) until it maps; the session's
/// `cancel` signal, like `shutdown`, removes the mappings.
#[tokio::test]
async fn silent_router_is_retried_and_cancel_removes_the_mappings() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = AtomicUsize::new(0);
    // Silent for the first 6 datagrams (the first round's PCP and NAT-PMP tries), then PCP.
    let (port, log) = udp_server(move |r| {
        (seen.fetch_add(1, Ordering::SeqCst) >= 6)
            .then(|| pcp_reply(r, 0))
            .flatten()
    })
    .await;
    let (_s, ssdp) = silent().await;
    let mut cfg = config(port, ssdp);
    cfg.retry_first = Duration::from_millis(200);
    cfg.retry_max = Duration::from_secs(1);
    let (cancel_tx, cancel) = watch::channel(false);
    let h = spawn(cfg, cancel);
    let mut rx = h.status.clone();
    // The first round can only meet silence (it stops asking after 4 unanswered tries), so
    // a mapping at all proves a later, backed-off round. (Asserting the intermediate
    // `failed` status would race with the watch channel coalescing updates.)
    let st = wait(&mut rx, |s| {
        s.external_tcp().is_some() && s.external_udp().is_some()
    })
    .await;
    assert!(st.to_string().contains("mapped via PCP"), "{st}");
    cancel_tx.send(true).unwrap();
    let deleted = tokio::time::timeout(BOUND, async {
        while log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.len() == 60 && r[4..8] == [0, 0, 0, 0])
            .count()
            < 2
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(deleted.is_ok(), "cancel did not remove both mappings");
    drop(h);
}
