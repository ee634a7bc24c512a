//! `sync/maindata`: a full update, increments with only what changed, a rid we did not
//! hand out.

use serde_json::Value;

use super::tests::{
    call, keys, view, words, HASH_A, HASH_B, HASH_C, OBSERVED_INFO_KEYS, OBSERVED_MAINDATA_KEYS,
    OBSERVED_SERVER_STATE_KEYS,
};
use crate::daemon::api::{Method, SyncState};

#[test]
fn maindata_full_then_incremental_then_mismatch() {
    let mut v = view();
    let mut sync = SyncState::default();
    let body = |r: (u16, Vec<u8>)| -> Value {
        assert_eq!(r.0, 200);
        serde_json::from_slice(&r.1).unwrap()
    };
    let full = body(call(
        &v,
        &mut sync,
        Method::Get,
        "sync/maindata",
        &[("rid", "0")],
    ));
    assert_eq!(keys(&full), words(OBSERVED_MAINDATA_KEYS));
    assert_eq!(full["full_update"], true);
    assert_eq!(full["rid"], 1);
    assert_eq!(
        keys(&full["server_state"]),
        words(OBSERVED_SERVER_STATE_KEYS)
    );
    let mut no_hash = words(OBSERVED_INFO_KEYS);
    no_hash.remove("hash");
    assert_eq!(keys(&full["torrents"][HASH_A]), no_hash);
    assert_eq!(
        full["trackers"]["http://tracker.a:80/announce"],
        serde_json::json!([HASH_A])
    );

    // Nothing changed: only the rid.
    let same = body(call(
        &v,
        &mut sync,
        Method::Get,
        "sync/maindata",
        &[("rid", "1")],
    ));
    assert_eq!(same, serde_json::json!({"rid": 2}));

    // A's rate and B's pause change; C goes; a category goes.
    v.torrents[0].snapshot.stats.down_rate = 2000.0;
    v.torrents[1].paused = true;
    v.torrents.pop();
    v.categories.remove("misc");
    let inc = body(call(
        &v,
        &mut sync,
        Method::Get,
        "sync/maindata",
        &[("rid", "2")],
    ));
    assert_eq!(inc["rid"], 3);
    assert!(inc.get("full_update").is_none());
    assert_eq!(keys(&inc["torrents"][HASH_A]), words("dlspeed eta"));
    assert_eq!(inc["torrents"][HASH_A]["dlspeed"], 2000);
    assert_eq!(
        inc["torrents"][HASH_B],
        serde_json::json!({"state": "pausedUP"})
    );
    assert_eq!(inc["torrents_removed"], serde_json::json!([HASH_C]));
    assert_eq!(inc["categories_removed"], serde_json::json!(["misc"]));
    assert_eq!(
        inc["server_state"],
        serde_json::json!({"dl_info_speed": 2000})
    );
    assert!(inc.get("categories").is_none() && inc.get("tags").is_none());

    // A rid we did not hand out (or a stale one): everything again.
    for rid in ["77", "2", "abc", "-1"] {
        let again = body(call(
            &v,
            &mut sync,
            Method::Get,
            "sync/maindata",
            &[("rid", rid)],
        ));
        assert_eq!(again["full_update"], true, "rid {rid}");
        assert_eq!(again["torrents"].as_object().unwrap().len(), 2);
    }
}
