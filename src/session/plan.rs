//! Per-torrent policy decided when a torrent is added: which trackers it announces to and
//! when it gives up. Pure functions, so every rule has a plain test.

use std::time::Duration;

use super::{Mode, Sources};
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;

/// The tiers a torrent announces to: its own (`announce-list`, or `announce`), then each
/// extra tracker as a tier of its own. A private torrent (BEP 27) gets its peers from its
/// own trackers only, so extras are ignored (with a warning).
pub(super) fn tracker_tiers(meta: &Metainfo, sources: &Sources) -> Vec<Vec<String>> {
    if sources.no_trackers {
        return Vec::new();
    }
    let mut tiers = meta.tracker_tiers();
    if meta.private && !sources.extra_trackers.is_empty() {
        tracing::warn!("private torrent: --tracker ignored, using the torrent's trackers");
    } else {
        tiers.extend(sources.extra_trackers.iter().map(|t| vec![t.clone()]));
    }
    tiers
}

/// When a torrent stops trying: only a download whose peers come from `--peer` (or a
/// magnet's `x.pe`: `link_peers`) alone gives up, after `peer_timeout` without any
/// connection. Trackers keep finding peers, a seed waits for leechers, and without given
/// peers nobody comes unless they dial us.
pub(super) fn give_up_after(
    mode: Mode,
    sources: &Sources,
    link_peers: bool,
    has_trackers: bool,
) -> Option<Duration> {
    let given = !sources.peers.is_empty() || link_peers;
    match mode {
        Mode::Seed => None,
        Mode::Fetch { .. } if !given || has_trackers => None,
        Mode::Fetch { .. } => sources.peer_timeout,
    }
}

/// The tiers a magnet announces to before its metadata is known: each `tr` a tier of its
/// own (as the `.torrent` saved from it will list them), then the extra trackers.
pub(super) fn magnet_tiers(link: &Magnet, sources: &Sources) -> Vec<Vec<String>> {
    if sources.no_trackers {
        return Vec::new();
    }
    let own = link.trackers.iter();
    own.chain(&sources.extra_trackers)
        .map(|t| vec![t.clone()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{create_torrent, CreateOptions};

    fn meta(trackers: &[&str], private: bool) -> Metainfo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let bytes = create_torrent(&CreateOptions {
            path,
            trackers: trackers.iter().map(|s| s.to_string()).collect(),
            piece_length: None,
            private,
            comment: None,
            created_by: None,
            creation_date: None,
            include_junk: false,
        })
        .unwrap();
        Metainfo::from_bytes(&bytes).unwrap()
    }

    fn sources(extra: &[&str], no_trackers: bool) -> Sources {
        Sources {
            extra_trackers: extra.iter().map(|s| s.to_string()).collect(),
            no_trackers,
            ..Sources::default()
        }
    }

    #[test]
    fn extra_trackers_are_tiers_after_the_torrents_own() {
        let m = meta(&["http://a/announce"], false);
        let tiers = tracker_tiers(&m, &sources(&["udp://b:1", "http://c/x"], false));
        assert_eq!(
            tiers,
            vec![
                vec!["http://a/announce".to_string()],
                vec!["udp://b:1".to_string()],
                vec!["http://c/x".to_string()]
            ]
        );
    }

    #[test]
    fn private_torrents_ignore_extra_trackers() {
        let m = meta(&["http://a/announce"], true);
        let tiers = tracker_tiers(&m, &sources(&["udp://b:1"], false));
        assert_eq!(tiers, vec![vec!["http://a/announce".to_string()]]);
    }

    #[test]
    fn no_trackers_means_none() {
        let m = meta(&["http://a/announce"], false);
        assert!(tracker_tiers(&m, &sources(&["udp://b:1"], true)).is_empty());
    }

    #[test]
    fn only_a_peer_only_download_gives_up() {
        let t = Some(Duration::from_secs(30));
        let peers = Sources {
            peers: vec!["127.0.0.1:1".parse().unwrap()],
            peer_timeout: t,
            ..Sources::default()
        };
        let fetch = Mode::Fetch { seed: false };
        assert_eq!(give_up_after(fetch, &peers, false, false), t);
        assert_eq!(give_up_after(fetch, &peers, false, true), None);
        assert_eq!(give_up_after(Mode::Seed, &peers, false, false), None);
        let none = Sources {
            peer_timeout: t,
            ..Sources::default()
        };
        assert_eq!(give_up_after(fetch, &none, false, false), None);
        // A magnet's x.pe peers count as given.
        assert_eq!(give_up_after(fetch, &none, true, false), t);
        assert_eq!(give_up_after(fetch, &none, true, true), None);
        let forever = Sources {
            peer_timeout: None,
            ..peers
        };
        assert_eq!(give_up_after(fetch, &forever, false, false), None);
    }

    #[test]
    fn a_magnet_announces_to_each_tr_then_the_extras() {
        let link = Magnet::parse(
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\
             &tr=http%3A%2F%2Fa%2Fannounce&tr=udp%3A%2F%2Fb%3A1",
        )
        .unwrap();
        let extra = sources(&["http://c/announce"], false);
        assert_eq!(
            magnet_tiers(&link, &extra),
            vec![
                vec!["http://a/announce".to_string()],
                vec!["udp://b:1".to_string()],
                vec!["http://c/announce".to_string()],
            ]
        );
        assert!(magnet_tiers(&link, &sources(&[], true)).is_empty());
    }
}
