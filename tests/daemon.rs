//! The daemon's core on loopback, driven by its commands (the HTTP edge is tested in
//! `daemon_web.rs`): add a `.torrent` and a magnet, complete them from swarm seeds, choose
//! files, pause, restart from the state directory without re-hashing, delete with data,
//! and refuse save paths outside the download root. Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarm::daemon::core::{Daemon, DaemonConfig};
use swarm::daemon::model::{
    AddRequest, AddSource, Command, CommandError, CommandReply, Hashes, TorrentView, View,
};
use swarm::selection::Priority;
use swarm::snapshot::Phase;
use swarm::types::InfoHash;

fn config(state: &Path, dir: &Path) -> DaemonConfig {
    let mut t = test_config();
    t.session.bind = ip(1);
    t.session.state_dir = Some(state.to_path_buf());
    DaemonConfig {
        session: t.session,
        torrent: t.torrent,
        download_dir: dir.to_path_buf(),
        download_root: dir.to_path_buf(),
        refresh: Duration::from_millis(100),
    }
}

async fn ask(d: &Daemon, cmd: Command) -> Result<CommandReply, CommandError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    d.commands().send((cmd, tx)).await.expect("daemon running");
    tokio::time::timeout(TEST_TIMEOUT, rx)
        .await
        .expect("answered in time")
        .expect("answered")
}

/// Waits until `ok` holds for the torrent `hash` in the published view.
async fn wait_for(d: &Daemon, hash: InfoHash, what: &str, ok: impl Fn(&TorrentView) -> bool) {
    let mut view = d.view();
    let found = tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            {
                let v: Arc<View> = view.borrow_and_update().clone();
                if v.torrent(&hash).is_some_and(&ok) {
                    return;
                }
            }
            view.changed().await.expect("daemon running");
        }
    })
    .await;
    let v = d.view().borrow().clone();
    assert!(
        found.is_ok(),
        "{what}: not in time; {:?}",
        v.torrent(&hash)
            .map(|t| (t.snapshot.phase, t.paused, &t.error))
    );
}

fn complete(t: &TorrentView) -> bool {
    matches!(t.snapshot.phase, Phase::Seeding | Phase::Done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrents_are_added_completed_chosen_paused_restored_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files = [
        ("a.bin", 70_001),
        ("b/middle.bin", 150_003),
        ("c.bin", 90_007),
    ];
    let content = make_content(&src, "pack", &files, 5);
    let meta = make_torrent(&content, 32 * 1024);
    let single = make_content(&src, "one.bin", &[("", 123_457)], 9);
    let one = make_torrent(&single, 16 * 1024);
    let seed = Running::seed(&meta, &src, ip(2)).await;
    let seed_at: SocketAddr = seed.addr.unwrap();

    let state = tmp.path().join("state");
    let dir = tmp.path().join("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start(config(&state, &dir)).await.unwrap();

    // A save path outside the download root is refused, and nothing is added.
    let link = format!("magnet:?xt=urn:btih:{}&x.pe={seed_at}", meta.info_hash);
    let outside = AddRequest {
        sources: vec![AddSource::Magnet(link.clone())],
        save_path: Some(tmp.path().join("elsewhere")),
        ..AddRequest::default()
    };
    assert!(matches!(
        ask(&d, Command::Add(outside)).await,
        Err(CommandError::Forbidden(_))
    ));
    let dotdot = AddRequest {
        save_path: Some(dir.join("..").join("elsewhere")),
        sources: vec![AddSource::Magnet(link.clone())],
        ..AddRequest::default()
    };
    assert!(matches!(
        ask(&d, Command::Add(dotdot)).await,
        Err(CommandError::Forbidden(_))
    ));
    // A broken .torrent is a bad request.
    let broken = AddRequest {
        sources: vec![AddSource::Torrent(b"d4:spam".to_vec())],
        ..AddRequest::default()
    };
    assert!(matches!(
        ask(&d, Command::Add(broken)).await,
        Err(CommandError::BadRequest(_))
    ));
    assert!(d.view().borrow().torrents.is_empty());

    // The multi-file torrent by magnet (its peer in the link), the single file by .torrent
    // with its seed dialling us (the daemon's torrents have no peers of their own).
    let added = ask(
        &d,
        Command::Add(AddRequest {
            sources: vec![AddSource::Magnet(link)],
            ..AddRequest::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(added, CommandReply::Added(vec![meta.info_hash]));
    // The same bytes `make_torrent` parsed (its options, again).
    let one_bytes = swarm::create::create_torrent(&swarm::create::CreateOptions {
        path: single.clone(),
        piece_length: Some(16 * 1024),
        created_by: Some("swarm tests".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        swarm::metainfo::Metainfo::from_bytes(&one_bytes)
            .unwrap()
            .info_hash,
        one.info_hash
    );
    ask(
        &d,
        Command::Add(AddRequest {
            sources: vec![AddSource::Torrent(one_bytes)],
            paused: false,
            ..AddRequest::default()
        }),
    )
    .await
    .unwrap();
    let daemon_at = SocketAddr::new(ip(1), d.view().borrow().listen_port);
    let _dialler = Running::start(
        &one,
        &src,
        swarm::session::Mode::Seed,
        ip(4),
        vec![daemon_at],
        test_config(),
    )
    .await;
    wait_for(&d, meta.info_hash, "magnet complete", complete).await;
    wait_for(&d, one.info_hash, "torrent complete", complete).await;
    assert_eq!(hash_tree(&meta, &dir), hash_tree(&meta, &src));
    assert_eq!(hash_tree(&one, &dir), hash_tree(&one, &src));
    {
        let v = d.view().borrow().clone();
        let t = v.torrent(&meta.info_hash).unwrap();
        assert_eq!(t.files.len(), 3);
        assert_eq!(t.files[1].path, "pack/b/middle.bin");
        assert!(t.completion_on.is_some());
    }

    // Skip a file: the torrent runs again with the selection, and stays complete.
    ask(
        &d,
        Command::FilePrio {
            hash: meta.info_hash,
            files: vec![2],
            priority: Priority::Skip,
        },
    )
    .await
    .unwrap();
    let unknown = Command::FilePrio {
        hash: meta.info_hash,
        files: vec![3],
        priority: Priority::Skip,
    };
    assert!(matches!(
        ask(&d, unknown).await,
        Err(CommandError::BadRequest(_))
    ));
    wait_for(&d, meta.info_hash, "selection applied", |t| {
        t.files[2].priority == Priority::Skip && t.snapshot.selection.is_some() && complete(t)
    })
    .await;
    // Pause one.
    ask(&d, Command::Pause(Hashes::Some(vec![one.info_hash])))
        .await
        .unwrap();
    wait_for(&d, one.info_hash, "paused", |t| t.paused).await;

    // A restart comes back with both, the pause and the selection, and trusts the resume
    // data: nothing is checked again.
    tokio::time::timeout(TEST_TIMEOUT, d.shutdown())
        .await
        .unwrap();
    let d = Daemon::start(config(&state, &dir)).await.unwrap();
    {
        let v = d.view().borrow().clone();
        assert_eq!(v.torrents.len(), 2);
        assert!(v.torrent(&one.info_hash).unwrap().paused);
        assert!(!v.torrent(&meta.info_hash).unwrap().paused);
    }
    wait_for(&d, meta.info_hash, "seeding after a restart", |t| {
        complete(t) && t.files[2].priority == Priority::Skip
    })
    .await;
    let t = d.view().borrow().torrent(&meta.info_hash).unwrap().clone();
    assert_eq!(
        t.snapshot.checked_bytes, 0,
        "the restart re-hashed the data"
    );

    // Delete one with its data: its files go, the other's stay.
    ask(
        &d,
        Command::Delete {
            hashes: Hashes::Some(vec![meta.info_hash]),
            delete_files: true,
        },
    )
    .await
    .unwrap();
    assert!(d.view().borrow().torrent(&meta.info_hash).is_none());
    assert!(!dir.join("pack").exists(), "{:?}", std::fs::read_dir(&dir));
    assert!(dir.join("one.bin").exists());
    tokio::time::timeout(TEST_TIMEOUT, d.shutdown())
        .await
        .unwrap();
    let saved = std::fs::read_to_string(state.join("daemon.json")).unwrap();
    assert!(!saved.contains(&meta.info_hash.to_hex()), "{saved}");
    assert!(saved.contains(&one.info_hash.to_hex()), "{saved}");
    drop(seed);
}
