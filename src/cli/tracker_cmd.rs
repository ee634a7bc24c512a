//! `swarm tracker`: the HTTP and UDP tracker server until Ctrl-C, with its caps from the
//! command line.

use super::*;

#[derive(Args, Debug)]
pub(super) struct TrackerArgs {
    /// HTTP announce/scrape address (other than loopback only if you say so).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6969")]
    http: SocketAddr,
    /// UDP (BEP 15) announce/scrape address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6969")]
    udp: SocketAddr,
    /// Do not serve HTTP.
    #[arg(long)]
    no_http: bool,
    /// Do not serve UDP.
    #[arg(long)]
    no_udp: bool,
    /// Announce interval told to clients, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    interval: u64,
    /// Peers stored in all [default: 1000000].
    #[arg(long, value_name = "N")]
    max_peers: Option<usize>,
    /// Torrents (swarms) kept at once [default: 100000].
    #[arg(long, value_name = "N")]
    max_torrents: Option<usize>,
    /// Peers one source (IPv4 address or IPv6 /64) may have stored; beyond it the source's
    /// oldest is replaced [default: 20000].
    #[arg(long, value_name = "N")]
    max_peers_per_source: Option<usize>,
    /// Torrents one source may have created; beyond it its oldest unshared one is replaced
    /// [default: 10000].
    #[arg(long, value_name = "N")]
    max_torrents_per_source: Option<usize>,
    /// HTTP connections from one source at once [default: 8].
    #[arg(long, value_name = "N")]
    http_connections_per_source: Option<usize>,
}

pub(super) fn tracker_cmd(a: TrackerArgs) -> Result<()> {
    use crate::tracker_server::{self, ServerConfig};
    let mut cfg = ServerConfig {
        http: (!a.no_http).then_some(a.http),
        udp: (!a.no_udp).then_some(a.udp),
        interval: std::time::Duration::from_secs(a.interval),
        ..ServerConfig::default()
    };
    let l = &mut cfg.limits;
    for (flag, field) in [
        (a.max_peers, &mut l.max_peers),
        (a.max_torrents, &mut l.max_swarms),
        (a.max_peers_per_source, &mut l.max_peers_per_source),
        (a.max_torrents_per_source, &mut l.max_swarms_per_source),
        (
            a.http_connections_per_source,
            &mut cfg.http_limits.max_per_source,
        ),
    ] {
        if let Some(v) = flag {
            *field = v;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let server = tracker_server::bind(cfg)
            .await
            .context("starting the tracker")?;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(stop_on_signal(stop_tx));
        if let Some(addr) = server.http_addr() {
            println!("http tracker on http://{addr}/announce");
        }
        if let Some(addr) = server.udp_addr() {
            println!("udp tracker on udp://{addr}/announce");
        }
        server.run(stop_rx).await;
        Ok(())
    })
}
