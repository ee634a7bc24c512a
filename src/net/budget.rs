//! The process's budget of outgoing connections: one slot per dialled socket, held from
//! before `connect` until the connection ends, shared by every torrent.
//!
//! Why process-wide: descriptors are. A `fetch` of 500 torrents under `ulimit -n 256`
//! dialled 500 sockets at once, and the surplus ran the process out of descriptors for its
//! own resume data. A dial waits for a slot (holding no descriptor meanwhile) instead.
//!
//! Invariant: at most [`max_dials`] dialled sockets are open at once. Incoming connections
//! are not counted here: the session's half-open table bounds those in their handshake,
//! and the listener backs off when `accept` runs out of descriptors.

use std::sync::{Arc, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Fewest dial slots however low the limit: enough for a few torrents' `max_connecting`.
const MIN_DIALS: usize = 16;

/// Most dial slots however high the limit: libtorrent's session-wide `connections_limit`
/// is 200; a few thousand leaves a large session its peers without growing without end.
const MAX_DIALS: usize = 4096;

/// Soft `RLIMIT_NOFILE` when it cannot be read: Linux's usual default.
const DEFAULT_NOFILE: u64 = 1024;

/// The budget and its size. Dialled sockets open at once: half the soft descriptor limit,
/// within [`MIN_DIALS`, `MAX_DIALS`]. Of the other half, a quarter of the limit is the
/// store's open-file pool; the rest is for incoming peers, the listener, the state
/// directory and the runtime.
fn slots() -> &'static (Arc<Semaphore>, usize) {
    static SLOTS: OnceLock<(Arc<Semaphore>, usize)> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let soft = crate::store::nofile_limits().map_or(DEFAULT_NOFILE, |(soft, _)| soft);
        let n = budget_size(soft);
        (Arc::new(Semaphore::new(n)), n)
    })
}

fn budget_size(soft_limit: u64) -> usize {
    (soft_limit / 2).clamp(MIN_DIALS as u64, MAX_DIALS as u64) as usize
}

/// Waits for a dial slot; dropping the permit gives it back. `None` only if the budget
/// were closed, which it never is (the dial then goes ahead uncounted).
pub async fn dial_slot() -> Option<OwnedSemaphorePermit> {
    take(&slots().0).await
}

async fn take(sem: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    sem.clone().acquire_owned().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_half_the_descriptor_limit_within_bounds() {
        assert_eq!(budget_size(256), 128);
        assert_eq!(budget_size(1024), 512);
        assert_eq!(budget_size(20), MIN_DIALS);
        assert_eq!(budget_size(u64::MAX), MAX_DIALS);
        assert!((MIN_DIALS..=MAX_DIALS).contains(&slots().1));
    }

    #[tokio::test]
    async fn a_dial_past_the_budget_waits_for_a_slot() {
        let sem = Arc::new(Semaphore::new(2));
        let a = take(&sem).await.unwrap();
        let _b = take(&sem).await;
        let mut third = tokio::spawn({
            let sem = sem.clone();
            async move { take(&sem).await }
        });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut third).await;
        assert!(
            waited.is_err(),
            "a third dial got a slot while two were held"
        );
        drop(a);
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), third).await;
        assert!(
            matches!(got, Ok(Ok(Some(_)))),
            "the freed slot went to the waiting dial"
        );
    }
}
