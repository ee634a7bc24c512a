//! The port-mapping lab works: miniupnpd in its namespaces grants, lists, forwards and
//! removes mappings asked for by the reference clients (`upnpc`, `natpmpc`) and by a plain PCP
//! MAP request, all run inside the lab's LAN namespace. Later tests point swarm at the same lab.
//! Skips (with the reason) where namespaces cannot be made, unless `CI=true`.

#[path = "portmap_lab/mod.rs"]
mod lab;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use lab::{run_bounded, Lab, Mapping, CMD_TIMEOUT};

/// How long a first mapping may take while the daemon settles; it takes ~2 s here (upnpc's SSDP
/// wait), so this is only a hang guard.
const FIRST_MAPPING_TIMEOUT: Duration = Duration::from_secs(60);

fn stdout_of(cmd: &mut Command) -> String {
    let out = run_bounded(cmd, CMD_TIMEOUT);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn has(mappings: &[Mapping], proto: &str, port: u16, internal: Ipv4Addr) -> bool {
    mappings.iter().any(|m| {
        m.proto == proto
            && m.external_port == port
            && m.internal_port == port
            && m.internal_addr == internal
    })
}

#[test]
fn upnpc_adds_lists_and_deletes_tcp_and_udp_mappings() {
    let Some(lab) = Lab::start() else { return };
    let client = lab.client_ip().to_string();
    // Through SSDP discovery, as a client finds the router; retried while the daemon settles.
    let deadline = Instant::now() + FIRST_MAPPING_TIMEOUT;
    let first = loop {
        let out = stdout_of(
            lab.lan_cmd("upnpc")
                .args(["-a", &client, "6881", "6881", "TCP"]),
        );
        if out.contains("external 11.77.0.1:6881 TCP is redirected to internal 192.168.77.2:6881") {
            break lab.daemon_started_at().elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "upnpc -a never succeeded; last output:\n{out}\nrouter log:\n{}",
            lab.router_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "portmap lab: miniupnpd start -> first upnpc -a success: {:.3} s",
        first.as_secs_f64()
    );

    let out = stdout_of(lab.lan_cmd("upnpc").args([
        "-u",
        &lab.igd_url(),
        "-a",
        &client,
        "6881",
        "6881",
        "UDP",
    ]));
    assert!(
        out.contains("UDP is redirected to internal 192.168.77.2:6881"),
        "{out}"
    );
    let listed = lab.list_mappings();
    assert!(
        has(&listed, "TCP", 6881, lab.client_ip()) && has(&listed, "UDP", 6881, lab.client_ip()),
        "{listed:?}"
    );
    assert!(
        lab.nft_ruleset().contains("dnat ip to 192.168.77.2:6881"),
        "{}",
        lab.nft_ruleset()
    );

    for proto in ["TCP", "UDP"] {
        let out = stdout_of(
            lab.lan_cmd("upnpc")
                .args(["-u", &lab.igd_url(), "-d", "6881", proto]),
        );
        assert!(
            out.contains("UPNP_DeletePortMapping() returned : 0"),
            "{out}"
        );
    }
    assert_eq!(lab.list_mappings(), vec![]);
    assert!(
        !lab.nft_ruleset().contains("dport 6881"),
        "{}",
        lab.nft_ruleset()
    );
}

#[test]
fn natpmpc_maps_and_unmaps_a_port() {
    let Some(lab) = Lab::start() else { return };
    let gw = lab.router_lan_ip().to_string();
    let out = stdout_of(
        lab.lan_cmd("natpmpc")
            .args(["-g", &gw, "-a", "6881", "6881", "tcp", "3600"]),
    );
    assert!(out.contains("Public IP address : 11.77.0.1"), "{out}");
    assert!(
        out.contains("Mapped public port 6881 protocol TCP to local port 6881"),
        "{out}"
    );
    let out = stdout_of(
        lab.lan_cmd("natpmpc")
            .args(["-g", &gw, "-a", "6881", "6881", "udp", "3600"]),
    );
    assert!(
        out.contains("Mapped public port 6881 protocol UDP to local port 6881"),
        "{out}"
    );

    let listed = lab.list_mappings();
    assert!(
        has(&listed, "TCP", 6881, lab.client_ip()) && has(&listed, "UDP", 6881, lab.client_ip()),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .all(|m| m.description.starts_with("NAT-PMP") && m.lease_secs <= 3600),
        "{listed:?}"
    );

    // NAT-PMP deletes with a zero lifetime (RFC 6886 section 3.4).
    for proto in ["tcp", "udp"] {
        let out = stdout_of(
            lab.lan_cmd("natpmpc")
                .args(["-g", &gw, "-a", "6881", "6881", proto, "0"]),
        );
        assert!(
            out.contains("readnatpmpresponseorretry returned 0 (OK)"),
            "{out}"
        );
    }
    assert_eq!(lab.list_mappings(), vec![]);
}

/// A PCP MAP request (RFC 6887 section 11.1) for `port` over `proto` from `client`.
fn pcp_map_request(
    client: Ipv4Addr,
    proto: u8,
    port: u16,
    lifetime: u32,
    nonce: [u8; 12],
) -> Vec<u8> {
    let mut req = vec![2, 1, 0, 0];
    req.extend_from_slice(&lifetime.to_be_bytes());
    req.extend_from_slice(&client.to_ipv6_mapped().octets());
    req.extend_from_slice(&nonce);
    req.extend_from_slice(&[proto, 0, 0, 0]);
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
    req
}

/// Sends one PCP request from the LAN namespace; returns (result code, lifetime, external).
fn pcp_exchange(lab: &Lab, req: Vec<u8>) -> (u8, u32, SocketAddr) {
    let gw = SocketAddr::from((lab.router_lan_ip(), 5351));
    let client = lab.client_ip();
    let resp = lab.in_lan(move || {
        let sock = UdpSocket::bind((client, 0)).expect("bind in LAN");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.send_to(&req, gw).expect("send PCP");
        let mut buf = [0u8; 1100];
        let (n, _) = sock.recv_from(&mut buf).expect("PCP answer within 5 s");
        buf[..n].to_vec()
    });
    assert!(
        resp.len() >= 60 && resp[0] == 2 && resp[1] == 0x81,
        "not a PCP MAP answer: {resp:?}"
    );
    let lifetime = u32::from_be_bytes(resp[4..8].try_into().unwrap());
    let ext_port = u16::from_be_bytes([resp[42], resp[43]]);
    let ext_ip = Ipv4Addr::new(resp[56], resp[57], resp[58], resp[59]);
    (resp[3], lifetime, SocketAddr::from((ext_ip, ext_port)))
}

#[test]
fn pcp_map_request_is_granted_and_listed() {
    let Some(lab) = Lab::start() else { return };
    let nonce = *b"swarm-lab-01";
    let (result, lifetime, external) = pcp_exchange(
        &lab,
        pcp_map_request(lab.client_ip(), 17, 6881, 3600, nonce),
    );
    assert_eq!(
        (result, external),
        (0, SocketAddr::from((lab.wan_ip(), 6881))),
        "router log:\n{}",
        lab.router_log()
    );
    assert!(lifetime > 0 && lifetime <= 3600, "{lifetime}");
    let listed = lab.list_mappings();
    assert!(has(&listed, "UDP", 6881, lab.client_ip()), "{listed:?}");
    assert!(listed[0].description.starts_with("PCP MAP"), "{listed:?}");

    let (result, lifetime, _) =
        pcp_exchange(&lab, pcp_map_request(lab.client_ip(), 17, 6881, 0, nonce));
    assert_eq!((result, lifetime), (0, 0));
    assert_eq!(lab.list_mappings(), vec![]);
}

#[test]
fn a_mapped_port_forwards_wan_connections_to_the_lan_client() {
    let Some(lab) = Lab::start() else { return };
    let client = lab.client_ip();
    let listener = lab.in_lan(move || TcpListener::bind((client, 6881)).expect("bind in LAN"));
    let out = stdout_of(lab.lan_cmd("upnpc").args([
        "-u",
        &lab.igd_url(),
        "-a",
        &client.to_string(),
        "6881",
        "6881",
        "TCP",
    ]));
    assert!(out.contains("is redirected to internal"), "{out}");

    let external = SocketAddr::from((lab.wan_ip(), 6881));
    lab.in_wan(move || {
        let mut s = TcpStream::connect_timeout(&external, Duration::from_secs(5))
            .expect("connect to the external address");
        s.write_all(b"through the router").unwrap();
    });
    // The connection is already queued, so accept returns at once.
    let (mut conn, from) = listener.accept().expect("forwarded connection");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(
        (got.as_str(), from.ip()),
        ("through the router", lab.wan_peer_ip().into())
    );
}

fn netns_list() -> String {
    String::from_utf8_lossy(
        &run_bounded(Command::new("ip").args(["netns", "list"]), CMD_TIMEOUT).stdout,
    )
    .into_owned()
}

#[test]
fn the_lab_leaves_no_namespace_behind_and_removes_stale_ones() {
    // A namespace as a crashed run leaves it: our prefix and a pid that no longer exists.
    let mut dead = Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = format!("swpm-{dead_pid}-0-lan");
    let made_stale = run_bounded(
        Command::new("ip").args(["netns", "add", &stale]),
        CMD_TIMEOUT,
    )
    .status
    .success();

    let Some(mut lab) = Lab::start() else { return };
    let names = lab.namespaces();
    let listed = netns_list();
    assert!(
        names.iter().all(|n| listed.contains(n.as_str())),
        "{listed}"
    );
    if made_stale {
        assert!(
            !listed.contains(&stale),
            "stale namespace survived:\n{listed}"
        );
    }
    lab.stop();
    let listed = netns_list();
    assert!(
        names.iter().all(|n| !listed.contains(n.as_str())),
        "{listed}"
    );
}
