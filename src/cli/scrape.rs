//! `swarm info --scrape`: ask a torrent's trackers for seeders, leechers and completions.
//!
//! A torrent lists as many trackers as it likes (one crafted torrent listed 500,000 tiers:
//! scraping them all took 1.44 GB and 20,000 descriptors), so the URLs are deduplicated, at
//! most [`MAX_SCRAPES`] are asked (the rest are counted and reported as skipped), at most
//! [`SCRAPE_CONCURRENCY`] at once, and each scrape is bounded in time.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use crate::error::error_chain;
use crate::metainfo::Metainfo;
use crate::tracker::client::{ClientConfig, Tracker};
use crate::tracker::ScrapeStats;
use crate::types::InfoHash;

/// Most distinct trackers asked. Real torrents list a few dozen at most (public ones that
/// pile up trackers reach 30–40); more only costs sockets and time.
pub const MAX_SCRAPES: usize = 50;
/// Scrapes in flight at once: bounds descriptors, while 50 dead trackers still finish in
/// about 4 × [`SCRAPE_TIMEOUT`].
pub const SCRAPE_CONCURRENCY: usize = 16;
/// Longest one scrape may take, whatever its protocol does (a UDP scrape with the config
/// below gives up after about 12 s on its own).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(15);

/// One tracker's answer, or why there is none (an error chain).
pub type ScrapeResult = std::result::Result<ScrapeStats, String>;

/// What `info --scrape` found.
pub struct Scrapes {
    /// `(url, result)` in the torrent's tracker order.
    pub results: Vec<(String, ScrapeResult)>,
    /// Distinct URLs past [`MAX_SCRAPES`], not asked.
    pub skipped: usize,
}

/// The distinct tracker URLs of `tiers` in order (tier by tier), the first `max` of them,
/// and how many distinct ones were left out.
pub fn targets(tiers: &[Vec<String>], max: usize) -> (Vec<String>, usize) {
    let mut seen = HashSet::new();
    let mut chosen = Vec::new();
    let mut skipped = 0usize;
    for url in tiers.iter().flatten() {
        let url = url.trim();
        if url.is_empty() || !seen.insert(url) {
            continue;
        }
        if chosen.len() < max {
            chosen.push(url.to_string());
        } else {
            skipped += 1;
        }
    }
    (chosen, skipped)
}

/// Scrape the torrent's trackers (see the module docs for the bounds).
pub fn scrape_all(meta: &Metainfo) -> Result<Scrapes> {
    let (urls, skipped) = targets(&meta.tracker_tiers(), MAX_SCRAPES);
    let cfg = ClientConfig {
        http_timeout: Duration::from_secs(10),
        udp_retry_base: Duration::from_secs(2),
        udp_max_tries: 2,
        local_addr: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let info_hash = meta.info_hash;
    let mut results = rt.block_on(async move {
        let mut pending = urls.into_iter().enumerate();
        let mut set = JoinSet::new();
        let mut out = Vec::new();
        loop {
            while set.len() < SCRAPE_CONCURRENCY {
                let Some((i, url)) = pending.next() else {
                    break;
                };
                set.spawn(scrape_one(i, url, cfg.clone(), info_hash));
            }
            match set.join_next().await {
                Some(Ok(x)) => out.push(x),
                // A scrape task cannot panic short of a bug; its tracker is left out.
                Some(Err(_)) => {}
                None => break,
            }
        }
        out
    });
    results.sort_by_key(|x| x.0);
    Ok(Scrapes {
        results: results.into_iter().map(|(_, u, r)| (u, r)).collect(),
        skipped,
    })
}

async fn scrape_one(
    i: usize,
    url: String,
    cfg: ClientConfig,
    info_hash: InfoHash,
) -> (usize, String, ScrapeResult) {
    let r = match Tracker::new(&url, &cfg) {
        Ok(mut t) => match tokio::time::timeout(SCRAPE_TIMEOUT, t.scrape(&info_hash)).await {
            Ok(r) => r.map_err(|e| error_chain(&e)),
            Err(_) => Err("timed out".to_string()),
        },
        Err(e) => Err(error_chain(&e)),
    };
    (i, url, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|t| t.iter().map(|u| u.to_string()).collect())
            .collect()
    }

    #[test]
    fn duplicates_are_asked_once_in_tracker_order() {
        let t = tiers(&[
            &["http://a/announce", "udp://b:1"],
            &["http://a/announce"],
            &[" udp://b:1 ", "", "http://c/announce"],
        ]);
        let (urls, skipped) = targets(&t, MAX_SCRAPES);
        assert_eq!(
            urls,
            ["http://a/announce", "udp://b:1", "http://c/announce"]
        );
        assert_eq!(skipped, 0);
    }

    #[test]
    fn at_most_max_are_asked_and_the_rest_counted() {
        // 500,000 one-tracker tiers, half of them repeats.
        let t: Vec<Vec<String>> = (0..500_000)
            .map(|i| vec![format!("udp://127.0.0.1:1/{}", i % 250_000)])
            .collect();
        let (urls, skipped) = targets(&t, MAX_SCRAPES);
        assert_eq!(urls.len(), MAX_SCRAPES);
        assert_eq!(urls[0], "udp://127.0.0.1:1/0");
        assert_eq!(skipped, 250_000 - MAX_SCRAPES);
    }
}
