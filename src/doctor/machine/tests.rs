//! Each machine check's judgment: the severity and the words for each situation.

use std::net::{IpAddr, Ipv4Addr};
use tokio::time::Instant;

use super::*;
use crate::portmap::Via;

fn probe(given: bool, tcp: Result<(), BindError>, udp: Result<(), BindError>) -> PortProbe {
    PortProbe {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 6881),
        given,
        tcp,
        udp,
    }
}

fn in_use() -> BindError {
    BindError::from_io(&io::Error::from(io::ErrorKind::AddrInUse))
}

#[test]
fn port_bound_names_the_address() {
    let f = port(&probe(true, Ok(()), Ok(())));
    assert_eq!(f.severity, Severity::Ok);
    assert_eq!(f.topic, "port");
    assert!(f.text.contains("127.0.0.1:6881"), "{}", f.text);
    let mut all = probe(false, Ok(()), Ok(()));
    all.addr = "0.0.0.0:6881".parse().unwrap();
    assert!(port(&all).text.contains("0.0.0.0:6881 (all interfaces)"));
}

#[test]
fn given_port_in_use_fails_default_port_in_use_warns() {
    let f = port(&probe(true, Err(in_use()), Ok(())));
    assert_eq!(f.severity, Severity::Fail);
    assert!(f.text.contains("port 6881 is in use"), "{}", f.text);
    assert!(f.text.contains("TCP:"), "{}", f.text);
    assert!(f.text.contains("--port"), "{}", f.text);
    let f = port(&probe(false, Ok(()), Err(in_use())));
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.text.contains("UDP:"), "{}", f.text);
    assert!(f.text.contains("random port"), "{}", f.text);
    assert!(f.text.contains("forward it"), "{}", f.text);
}

#[test]
fn port_other_bind_error_fails_even_by_default() {
    let e = BindError::from_io(&io::Error::from(io::ErrorKind::AddrNotAvailable));
    assert!(!e.in_use);
    let f = port(&probe(false, Err(e.clone()), Err(e)));
    assert_eq!(f.severity, Severity::Fail);
    assert!(f.text.contains("--bind"), "{}", f.text);
}

fn status(tcp: ProtoStatus, udp: ProtoStatus) -> MappingStatus {
    MappingStatus {
        tcp_port: 6881,
        udp_port: 6881,
        tcp,
        udp,
    }
}

fn mapped(ext: &str) -> ProtoStatus {
    ProtoStatus::Mapped {
        external: ext.parse().unwrap(),
        via: Via::Upnp,
        expires: Instant::now(),
    }
}

#[test]
fn mapping_off_mapped_failed_and_silent() {
    let off = mapping(None, 6881, 30);
    assert_eq!((off.severity, off.topic), (Severity::Ok, "mapping"));
    assert!(off.text.starts_with("off"));

    let both = mapping(
        Some(&status(
            mapped("203.0.113.5:6881"),
            mapped("203.0.113.5:6881"),
        )),
        6881,
        30,
    );
    assert_eq!(both.severity, Severity::Ok);
    assert!(both.text.contains("TCP and UDP"), "{}", both.text);
    assert!(both.text.contains("via UPnP"), "{}", both.text);
    assert!(both.text.contains("203.0.113.5:6881"), "{}", both.text);

    let tcp_only = mapping(
        Some(&status(mapped("203.0.113.5:6881"), ProtoStatus::Pending)),
        6881,
        30,
    );
    assert_eq!(tcp_only.severity, Severity::Ok);
    assert!(tcp_only.text.contains("UDP pending"), "{}", tcp_only.text);

    let failed = ProtoStatus::Failed {
        why: "no gateway answered".into(),
        retry_at: Instant::now(),
    };
    let f = mapping(Some(&status(failed.clone(), failed)), 6881, 30);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.text.contains("no gateway answered"), "{}", f.text);
    assert!(f.text.contains("forward port 6881"), "{}", f.text);

    let silent = mapping(
        Some(&status(ProtoStatus::Pending, ProtoStatus::Pending)),
        6881,
        30,
    );
    assert_eq!(silent.severity, Severity::Warn);
    assert!(silent.text.contains("no answer"), "{}", silent.text);
    assert!(silent.text.contains("in 30s"), "{}", silent.text);
}

#[test]
fn incoming_evidence_or_unknown() {
    let seen = incoming(Some(3), 30);
    assert_eq!((seen.severity, seen.topic), (Severity::Ok, "incoming"));
    assert!(seen.text.starts_with("3 incoming"));
    for none in [Some(0), None] {
        let f = incoming(none, 30);
        assert_eq!(f.severity, Severity::Warn);
        assert!(f.text.contains("unknown"), "{}", f.text);
        assert!(f.text.contains("not necessarily closed"), "{}", f.text);
    }
}

#[test]
fn dht_off_empty_and_populated() {
    let off = dht(None, 6881);
    assert_eq!(off.severity, Severity::Warn);
    assert!(off.text.contains("magnet"), "{}", off.text);
    let empty = dht(Some(0), 6881);
    assert_eq!(empty.severity, Severity::Warn);
    assert!(empty.text.contains("UDP on port 6881"), "{}", empty.text);
    let full = dht(Some(87), 6881);
    assert_eq!(full.severity, Severity::Ok);
    assert_eq!(full.text, "87 nodes in the routing table");
    assert_eq!(dht(Some(1), 6881).text, "1 node in the routing table");
}

#[test]
fn ipv6_global_local_or_none_never_fails() {
    let global: Ipv6Addr = "2a01:4f8::1".parse().unwrap();
    assert_eq!(ipv6(&Ok(global)).severity, Severity::Ok);
    for local in ["fe80::1", "fd00::1", "::1", "2001:db8::5"] {
        let a: Ipv6Addr = local.parse().unwrap();
        assert!(!is_global_v6(&a), "{local}");
        let f = ipv6(&Ok(a));
        assert_eq!(f.severity, Severity::Warn);
        assert!(f.text.ends_with("IPv4 peers only"), "{}", f.text);
    }
    let none = ipv6(&Err("network is unreachable".into()));
    assert_eq!(none.severity, Severity::Warn);
    assert_eq!(
        none.text,
        "no IPv6 route (network is unreachable): IPv4 peers only"
    );
}

#[test]
fn disk_writable_with_space_is_ok() {
    let f = disk(
        "/data",
        &DirState::Exists {
            write: Ok(()),
            free: Some(50 << 30),
        },
    );
    assert_eq!((f.severity, f.topic), (Severity::Ok, "disk"));
    assert_eq!(
        f.text,
        "download directory /data is writable, 50.00 GiB free"
    );
    let f = disk(
        "/data/new",
        &DirState::Missing {
            base: "/data".into(),
            write: Ok(()),
            free: None,
        },
    );
    assert_eq!(f.severity, Severity::Ok);
    assert!(f.text.contains("can be created in /data"), "{}", f.text);
}

#[test]
fn disk_not_writable_names_path_reason_and_remedy() {
    let f = disk(
        "/x",
        &DirState::Exists {
            write: Err("read-only file system".into()),
            free: Some(1 << 40),
        },
    );
    assert_eq!(f.severity, Severity::Fail);
    assert_eq!(
        f.text,
        "download directory /x is not writable (read-only file system): fix its permissions \
         or choose another with -o"
    );
    let f = disk(
        "/ro/new",
        &DirState::Missing {
            base: "/ro".into(),
            write: Err("permission denied".into()),
            free: None,
        },
    );
    assert_eq!(f.severity, Severity::Fail);
    assert!(f
        .text
        .contains("cannot be created: /ro is not writable (permission denied)"));
}

#[test]
fn disk_full_low_file_and_unreadable() {
    let state = |free| DirState::Exists {
        write: Ok(()),
        free: Some(free),
    };
    let full = disk("/d", &state(4096));
    assert_eq!(full.severity, Severity::Fail);
    assert!(
        full.text.contains("is full (4.00 KiB free)"),
        "{}",
        full.text
    );
    let low = disk("/d", &state(300 << 20));
    assert_eq!(low.severity, Severity::Warn);
    assert!(low.text.contains("only 300.00 MiB"), "{}", low.text);
    let file = disk("/d", &DirState::NotADirectory { base: "/d".into() });
    assert_eq!(file.severity, Severity::Fail);
    assert!(file.text.contains("is a file"), "{}", file.text);
    let under = disk("/f/d", &DirState::NotADirectory { base: "/f".into() });
    assert!(under.text.contains("cannot be created: /f is a file"));
    let unread = disk("/d", &DirState::Unreadable("permission denied".into()));
    assert_eq!(unread.severity, Severity::Fail);
}

#[test]
fn open_files_low_warns_with_ulimit_advice() {
    let low = open_files(Some((256, 524_288)));
    assert_eq!((low.severity, low.topic), (Severity::Warn, "files"));
    assert!(low.text.contains("`ulimit -n 4096`"), "{}", low.text);
    let capped = open_files(Some((256, 512)));
    assert!(capped.text.contains("`ulimit -n 512`"), "{}", capped.text);
    let stuck = open_files(Some((256, 256)));
    assert!(
        stuck.text.contains("hard limit allows no more"),
        "{}",
        stuck.text
    );
    let fine = open_files(Some((1024, u64::MAX)));
    assert_eq!(fine.severity, Severity::Ok);
    assert_eq!(fine.text, "open-file limit 1024 (hard unlimited)");
    assert_eq!(open_files(None).severity, Severity::Ok);
}

#[test]
fn clock_before_the_build_fails() {
    // 2023-11-14 22:13:20 UTC.
    let built = 1_700_000_000;
    let f = clock(built - 86_400 * 400, Some(built));
    assert_eq!((f.severity, f.topic), (Severity::Fail, "clock"));
    assert!(f.text.contains("2022-10-10"), "{}", f.text);
    assert!(f.text.contains("2023-11-14 22:13"), "{}", f.text);
    assert!(f.text.contains("HTTPS"), "{}", f.text);
    let ok = clock(built + 60, Some(built));
    assert_eq!(ok.severity, Severity::Ok);
    assert!(ok.text.contains("only checked against the build date"));
    assert_eq!(clock(0, None).severity, Severity::Ok);
    assert!(clock(0, None).text.starts_with("1970-01-01 00:00"));
}

#[test]
fn io_reason_drops_the_os_error_tail() {
    let e = io::Error::from_raw_os_error(libc::EROFS);
    assert_eq!(reason(&e), "read-only file system");
    let e = io::Error::from_raw_os_error(libc::EACCES);
    assert_eq!(reason(&e), "permission denied");
    assert_eq!(reason(&io::Error::other("Odd")), "odd");
}
