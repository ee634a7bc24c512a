//! `swarm daemon`'s web page in a real headless browser (Debian's chromium and
//! chromium-driver, driven by Selenium: `tests/interop/page_driver.py`): log in, add a
//! magnet, watch it reach 100 %, deselect a file, remove it with its data. The screenshot
//! is kept in `target/tmp/daemon-page.png`.
//!
//! Runs only with `SWARM_INTEROP=1`; loopback only, own state directory, no DHT, LSD or
//! port mapping.

mod interop;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use interop::*;

const TREE: &[(&str, usize)] = &[
    ("a.bin", 300_001),
    ("b/middle.bin", 500_003),
    ("c.bin", 200_007),
];

#[test]
fn the_web_page_adds_completes_deselects_and_removes_a_torrent() {
    if !enabled("daemon web page") {
        return;
    }
    require("chromium", "chromium");
    require("chromedriver", "chromium-driver");
    let tmp = tempfile::tempdir().unwrap();
    let content = Content::tree(&tmp.path().join("src"), "pack", TREE, 41);
    let torrent = tmp.path().join("pack.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(32 * 1024), &[]);
    let seed_at = addr(2);
    let mut seed = swarm_seed(&torrent, &content.dir, seed_at, &[]);

    let dir = tmp.path().join("downloads");
    let pw = tmp.path().join("password");
    std::fs::write(&pw, "correct horse battery\n").unwrap();
    let web = addr(1);
    let mut daemon = swarm_daemon(&dir, &tmp.path().join("state"), web, &pw);

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daemon-page.png");
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={seed_at}");
    let mut drive = Command::new(LT_PYTHON);
    drive
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/page_driver.py"))
        .arg(format!("http://{web}/"))
        .args(["admin", "correct horse battery", &link, "2"])
        .arg(&shot)
        .args(["--timeout", "90"]);
    let mut page = Proc::spawn("page driver", &mut drive);
    let status = page.wait_exit(Duration::from_secs(240));
    assert!(status.success(), "{}\n{}", page.logs(), daemon.logs());
    for step in [
        "LOGGED_IN",
        "ADDED",
        "COMPLETE",
        "DIAGNOSED",
        "DESELECTED",
        "REMOVED",
    ] {
        assert!(
            page.stdout().iter().any(|l| l == step),
            "{step}\n{}",
            page.logs()
        );
    }
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    // Removed with its data: nothing of it is left in the download directory.
    wait_until("the data to be deleted", Duration::from_secs(30), || {
        !dir.join("pack").exists()
    });
    daemon.stop();
    seed.stop();
}
