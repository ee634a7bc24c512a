//! A real home router for port-mapping tests: `miniupnpd` (UPnP IGD, NAT-PMP and PCP, nftables
//! backend) running in network namespaces this harness creates and deletes itself.
//!
//! Topology (three namespaces per [`Lab`], named `swpm-<pid>-<n>-{lan,rtr,wan}`):
//!
//! ```text
//!  LAN ns                 router ns (miniupnpd, nftables NAT)         WAN ns
//!  eth0 192.168.77.2 ---- lan0 192.168.77.1 | wan0 11.77.0.1 ---- eth0 11.77.0.2
//!  default via .1                                                  (a peer "on the internet")
//! ```
//!
//! Invariants: no interface of the lab ever sits in the host's namespace (each veth pair is
//! created inside the router namespace with its peer placed straight into its namespace), so
//! nothing can reach the host's real network; every path miniupnpd would write on the host
//! (pid file, lease file, minissdpd socket) points into the lab's temp dir; every wait is
//! bounded; `Drop` stops the daemon and deletes the namespaces, and `start` removes stale
//! namespaces of crashed runs (our prefix, creator pid gone). Why the WAN address is a
//! public-looking 11.77.0.1 and why each option is set: `tests/portmap_lab/README.md`.
#![allow(dead_code)]

mod host;

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use host::run_bounded;
use host::{
    cleanup_stale, delete_namespace, in_netns, ip, miniupnpd_path, must, preflight, privileged,
    run_ok, signal,
};

/// Ceiling for one setup or client command (`ip`, `nft`, `upnpc -l`); upnpc's own SSDP
/// discovery waits 2 s, so this only guards against a hang.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);
/// Ceiling for miniupnpd to log that it listens (it takes a few ms here).
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Ceiling for miniupnpd to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Namespace name prefix; stale-namespace cleanup only ever touches names with it.
const PREFIX: &str = "swpm";
const ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
/// Not in miniupnpd's reserved list (its own unit test uses 11.x as the "public" example);
/// it exists only inside the lab's namespaces, which have no link to the host.
const WAN_IP: Ipv4Addr = Ipv4Addr::new(11, 77, 0, 1);
const WAN_PEER_IP: Ipv4Addr = Ipv4Addr::new(11, 77, 0, 2);

/// The chains miniupnpd 2.3.1 (nftables) fills; it does not create them. Names are its
/// defaults (`upnp_table_name`, `upnp_forward_chain`, ...), as in Debian's nft_init.sh, plus
/// the NAT a home router does (masquerade out, established traffic back in).
const NFT_RULES: &str = r#"table inet filter {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        jump miniupnpd
    }
    chain miniupnpd { }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "wan0" masquerade
    }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
}
"#;

/// One port mapping as the router lists it (`upnpc -l`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// "TCP" or "UDP".
    pub proto: String,
    pub external_port: u16,
    pub internal_addr: Ipv4Addr,
    pub internal_port: u16,
    /// miniupnpd names NAT-PMP ones "NAT-PMP <port> <proto>" and PCP ones "PCP MAP <nonce>".
    pub description: String,
    pub lease_secs: u32,
}

/// A running router lab; dropping it tears everything down.
pub struct Lab {
    name: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    daemon_started: Instant,
    http_port: u16,
    stopped: bool,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// Starts a lab with the default configuration; `None` (reason on stderr) when this host
    /// cannot make namespaces or lacks a tool. With `CI=true` it panics instead of skipping.
    pub fn start() -> Option<Lab> {
        Self::start_with(&[])
    }

    /// Like [`Lab::start`], with extra miniupnpd.conf lines placed before the lab's own
    /// permission rules (so an extra `deny` wins: miniupnpd applies the first rule matching);
    /// an extra `key=value` replaces the lab's own value for that key.
    pub fn start_with(extra_conf: &[&str]) -> Option<Lab> {
        if let Err(why) = preflight() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("portmap lab cannot run under CI=true: {why}");
            }
            eprintln!("skipping portmap lab test: {why}");
            return None;
        }
        cleanup_stale();
        let name = format!(
            "{PREFIX}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = Lab {
            dir: tempfile::Builder::new()
                .prefix(&name)
                .tempdir()
                .expect("lab temp dir"),
            name,
            daemon: None,
            daemon_started: Instant::now(),
            http_port: 0,
            stopped: false,
        };
        // From here on a panic unwinds through Drop, which deletes what was made.
        if let Err(why) = ip(&["netns", "add", &lab.ns("lan")]) {
            lab.stopped = true;
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("portmap lab: cannot create a network namespace: {why}");
            }
            eprintln!("skipping portmap lab test: cannot create a network namespace: {why}");
            return None;
        }
        lab.build_network();
        lab.start_daemon(extra_conf);
        Some(lab)
    }

    fn ns(&self, side: &str) -> String {
        format!("{}-{side}", self.name)
    }

    fn build_network(&self) {
        let (lan, rtr, wan) = (self.ns("lan"), self.ns("rtr"), self.ns("wan"));
        must(ip(&["netns", "add", &rtr]));
        must(ip(&["netns", "add", &wan]));
        // Created inside the router namespace, each peer straight into its own namespace.
        must(ip(&[
            "-n", &rtr, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns",
            &lan,
        ]));
        must(ip(&[
            "-n", &rtr, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns",
            &wan,
        ]));
        must(ip(&[
            "-n",
            &rtr,
            "addr",
            "add",
            "192.168.77.1/24",
            "dev",
            "lan0",
        ]));
        must(ip(&[
            "-n",
            &rtr,
            "addr",
            "add",
            "11.77.0.1/24",
            "dev",
            "wan0",
        ]));
        must(ip(&[
            "-n",
            &lan,
            "addr",
            "add",
            "192.168.77.2/24",
            "dev",
            "eth0",
        ]));
        must(ip(&[
            "-n",
            &wan,
            "addr",
            "add",
            "11.77.0.2/24",
            "dev",
            "eth0",
        ]));
        for (ns, dev) in [
            (&lan, "eth0"),
            (&wan, "eth0"),
            (&rtr, "lan0"),
            (&rtr, "wan0"),
        ] {
            must(ip(&["-n", ns, "link", "set", dev, "up"]));
        }
        for ns in [&lan, &rtr, &wan] {
            must(ip(&["-n", ns, "link", "set", "lo", "up"]));
        }
        // The client finds its gateway in /proc/net/route; this route also carries SSDP's
        // multicast (239.255.255.250) out of eth0, so no separate multicast route is needed.
        must(ip(&[
            "-n",
            &lan,
            "route",
            "add",
            "default",
            "via",
            "192.168.77.1",
        ]));
        must(run_ok(
            self.router_cmd("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        ));
        let rules = self.dir.path().join("rules.nft");
        fs::write(&rules, NFT_RULES).expect("write nft rules");
        must(run_ok(self.router_cmd("nft").arg("-f").arg(&rules)));
    }

    fn start_daemon(&mut self, extra_conf: &[&str]) {
        let dir = self.dir.path();
        let conf = dir.join("miniupnpd.conf");
        fs::write(&conf, miniupnpd_conf(dir, &self.name, extra_conf)).expect("write conf");
        let log = fs::File::create(self.log_path()).expect("create log");
        let mut cmd = self.router_cmd(&miniupnpd_path().expect("checked in preflight"));
        cmd.arg("-d")
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.join("miniupnpd.pid"));
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        self.daemon_started = Instant::now();
        self.daemon = Some(cmd.spawn().expect("spawn miniupnpd"));
        let deadline = Instant::now() + READY_TIMEOUT;
        // With NAT-PMP/PCP turned off there is no such line to wait for.
        let pmp = !extra_conf.contains(&"enable_natpmp=no");
        loop {
            let text = self.router_log();
            let port = text
                .split("HTTP listening on port ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u16>().ok());
            let pmp_ready = !pmp || text.contains("Listening for NAT-PMP/PCP traffic");
            if let (Some(port), true) = (port, pmp_ready) {
                self.http_port = port;
                return;
            }
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("miniupnpd exited ({status}) before listening; its log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "miniupnpd not listening after {READY_TIMEOUT:?}; its log:\n{text}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `program` run inside the LAN namespace (where the client under test lives).
    pub fn lan_cmd(&self, program: &str) -> Command {
        self.ns_cmd("lan", program)
    }

    /// `program` run inside the WAN namespace (a host on the "internet" side).
    pub fn wan_cmd(&self, program: &str) -> Command {
        self.ns_cmd("wan", program)
    }

    /// `program` run inside the router namespace (miniupnpd's).
    pub fn router_cmd(&self, program: &str) -> Command {
        self.ns_cmd("rtr", program)
    }

    fn ns_cmd(&self, side: &str, program: &str) -> Command {
        let mut cmd = privileged("ip");
        cmd.args(["netns", "exec", &self.ns(side), program]);
        cmd
    }

    /// Runs `f` on a thread that joined the LAN namespace: sockets it opens live there (and
    /// stay there when handed back). Needs root (setns); panics inside `f` propagate.
    pub fn in_lan<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.ns("lan"), f)
    }

    /// Like [`Lab::in_lan`], for the WAN namespace.
    pub fn in_wan<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.ns("wan"), f)
    }

    pub fn router_lan_ip(&self) -> Ipv4Addr {
        ROUTER_LAN_IP
    }
    /// The router's external address (what GetExternalIPAddress / NAT-PMP report).
    pub fn wan_ip(&self) -> Ipv4Addr {
        WAN_IP
    }
    pub fn client_ip(&self) -> Ipv4Addr {
        CLIENT_IP
    }
    /// The WAN-side host, for connecting to a mapped port from "outside".
    pub fn wan_peer_ip(&self) -> Ipv4Addr {
        WAN_PEER_IP
    }
    /// When miniupnpd was spawned (for "time from start to mapped port").
    pub fn daemon_started_at(&self) -> Instant {
        self.daemon_started
    }
    /// The IGD description URL; `upnpc -u URL` skips SSDP discovery.
    pub fn igd_url(&self) -> String {
        format!("http://{ROUTER_LAN_IP}:{}/rootDesc.xml", self.http_port)
    }
    /// The namespace names (LAN, router, WAN), e.g. to check they are gone.
    pub fn namespaces(&self) -> [String; 3] {
        [self.ns("lan"), self.ns("rtr"), self.ns("wan")]
    }
    /// miniupnpd's debug log so far.
    pub fn router_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("miniupnpd.log")
    }

    /// The router's nftables ruleset (miniupnpd's DNAT/accept rules sit in
    /// `prerouting_miniupnpd` and `miniupnpd`).
    pub fn nft_ruleset(&self) -> String {
        let out = must(run_ok(self.router_cmd("nft").args(["list", "ruleset"])));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The mappings miniupnpd holds, read with `upnpc -l` from the LAN namespace. Panics with
    /// upnpc's output when it cannot talk to the router.
    pub fn list_mappings(&self) -> Vec<Mapping> {
        let out = run_bounded(
            self.lan_cmd("upnpc").args(["-u", &self.igd_url(), "-l"]),
            CMD_TIMEOUT,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("Found valid IGD"),
            "upnpc -l could not use the router:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines().filter_map(parse_mapping_line).collect()
    }

    /// Stops miniupnpd (SIGTERM, then SIGKILL), ends whatever else still runs in the lab's
    /// namespaces (processes a test started there), and deletes them. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.stopped {
            self.stopped = true;
            for ns in self.namespaces() {
                delete_namespace(&ns);
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
    }
}

fn miniupnpd_conf(dir: &std::path::Path, name: &str, extra: &[&str]) -> String {
    let d = dir.display();
    // A per-lab uuid so two labs never look like one device.
    let tag: u64 = name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
    });
    let mut conf = format!(
        "ext_ifname=wan0\nlistening_ip=lan0\nhttp_port=0\nenable_upnp=yes\nenable_natpmp=yes\n\
         ipv6_disable=yes\nsecure_mode=yes\nsystem_uptime=no\n\
         lease_file={d}/upnp.leases\nminissdpdsocket={d}/minissdpd.sock\n\
         uuid=5a4d0000-0000-4000-8000-{:012x}\nfriendly_name=swarm port-mapping lab\n",
        tag & 0xffff_ffff_ffff
    );
    // An extra `key=value` replaces the lab's own line for that key (miniupnpd keeps the
    // first value it reads); other extra lines (rules) are added.
    for line in extra {
        if let Some((key, _)) = line.split_once('=') {
            let prefix = format!("{key}=");
            conf = conf
                .lines()
                .filter(|l| !l.starts_with(&prefix))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        conf.push_str(line);
        conf.push('\n');
    }
    conf.push_str("allow 1024-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n");
    conf
}

/// ` 0 TCP  6881->192.168.77.2:6881  'libminiupnpc' '' 604796` → a [`Mapping`].
fn parse_mapping_line(line: &str) -> Option<Mapping> {
    let (index, rest) = line.trim_start().split_once(char::is_whitespace)?;
    index.parse::<u32>().ok()?;
    let (proto, rest) = rest.trim_start().split_once(char::is_whitespace)?;
    let (ports, rest) = rest.trim_start().split_once(char::is_whitespace)?;
    let (ext, int) = ports.split_once("->")?;
    let (addr, int_port) = int.rsplit_once(':')?;
    let rest = rest.trim_start().strip_prefix('\'')?;
    let (description, rest) = rest.split_once("' '")?;
    let lease = rest.rsplit(char::is_whitespace).next()?.parse().ok()?;
    Some(Mapping {
        proto: proto.to_string(),
        external_port: ext.parse().ok()?,
        internal_addr: addr.parse().ok()?,
        internal_port: int_port.parse().ok()?,
        description: description.to_string(),
        lease_secs: lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upnpc_listing_lines() {
        let m =
            parse_mapping_line(" 0 UDP  6883->192.168.77.2:6883  'PCP MAP e7d41e30c9b4' '' 3598")
                .unwrap();
        assert_eq!(
            (m.proto.as_str(), m.external_port, m.internal_port),
            ("UDP", 6883, 6883)
        );
        assert_eq!(
            (m.internal_addr, m.description.as_str(), m.lease_secs),
            (CLIENT_IP, "PCP MAP e7d41e30c9b4", 3598)
        );
        let m = parse_mapping_line(" 12 TCP  7000->192.168.77.2:6881  'a b' '' 0").unwrap();
        assert_eq!(
            (m.external_port, m.internal_port, m.description.as_str()),
            (7000, 6881, "a b")
        );
        assert!(parse_mapping_line(
            " i protocol exPort->inAddr:inPort description remoteHost leaseTime"
        )
        .is_none());
        assert!(parse_mapping_line(
            "GetGenericPortMappingEntry() returned 713 (SpecifiedArrayIndexInvalid)"
        )
        .is_none());
    }
}
