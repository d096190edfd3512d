//! The poll slots of one account and region: how many polls run at once, a waiting poll that
//! holds only what makes its future, and the task one poll runs as.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::details::DetailQueue;
use super::Shared;
use crate::poller::Poller;
use crate::ssm::{ApiError, Ssm};
use crate::store::Entry;

/// How many polls of one scope may run at once: two per concurrent request of its budget (a
/// poll makes one request at a time, and spends the rest of its time waiting for the budget or
/// reading a page, so a few more polls than requests keep every request slot busy). A running
/// poll's future holds the SDK's request state, kilobytes of it: spawned all at once for the
/// 10,000 associations of a first listing, they would hold tens of MB together, which the
/// allocator keeps afterwards. Polls beyond the slots wait as small tasks.
pub fn polls_per_scope(max_concurrent_requests: usize) -> usize {
    max_concurrent_requests.max(1) * 2
}

/// Runs the future `make` makes once a slot of `slots` is free, holding the slot until it
/// ends. `make` is called only then, and its future is boxed: until then the task holds only
/// `make`'s captures, not the (large) future.
pub(super) async fn with_slot<F: std::future::Future>(
    slots: Arc<Semaphore>,
    make: impl FnOnce() -> F,
) -> F::Output {
    let _slot = slots
        .acquire_owned()
        .await
        .expect("the poll slots are never closed");
    Box::pin(make()).await
}

/// One poll of one association, then its first-poll readiness; the targets it left to read go
/// to the scope's reader (the poll slot is free as soon as the counts are done).
pub(super) async fn poll_task(
    entry: Arc<Entry>,
    ssm: Ssm,
    shared: Arc<Shared>,
    due: Instant,
    signature: String,
    details: Arc<DetailQueue>,
) -> (String, Result<(), ApiError>) {
    let mut poller = Poller::new(entry.clone(), shared.target_detail, shared.started_ms);
    let result = poller
        .poll(
            &ssm,
            &shared.store,
            &shared.metrics,
            due,
            Some(signature),
            shared.publish_each_poll,
        )
        .await;
    if !entry.polled() {
        entry.mark_polled();
        shared.readiness.first_poll_done(&entry.id);
        shared
            .metrics
            .associations_awaiting_first_poll
            .set(shared.readiness.awaiting_first_poll() as i64);
    }
    if let Some(reads) = poller.target_reads() {
        let dropped = details.push(reads);
        shared
            .metrics
            .target_detail_executions_skipped_total
            .inc_by(dropped as u64);
    }
    (entry.id.clone(), result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::task::JoinSet;
    use tokio::time::Instant;

    const SECOND: Duration = Duration::from_secs(1);

    /// A future as large as a poll's (the SDK's request state is kilobytes).
    async fn large(n: u64) -> u64 {
        let buffer = [n as u8; 8192];
        tokio::task::yield_now().await;
        std::hint::black_box(buffer)[0] as u64 + n
    }

    /// A polling task waiting for its slot is small: the large future is made only with a slot.
    #[test]
    fn a_waiting_poll_does_not_hold_its_future() {
        let slots = Arc::new(Semaphore::new(1));
        assert!(std::mem::size_of_val(&large(1)) >= 8192);
        let waiting = with_slot(slots, || large(1));
        let size = std::mem::size_of_val(&waiting);
        assert!(size < 256, "a waiting poll task holds {size} bytes");
    }

    /// At most `slots` run at once; the others start as slots free up, in order.
    #[tokio::test(start_paused = true)]
    async fn slots_bound_the_polls_running_at_once() {
        let slots = Arc::new(Semaphore::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for n in 0..7u64 {
            let (running, most) = (running.clone(), most.clone());
            tasks.spawn(with_slot(slots.clone(), move || async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                tokio::time::sleep(SECOND).await;
                running.fetch_sub(1, SeqCst);
                n
            }));
        }
        let start = Instant::now();
        let mut done = Vec::new();
        while let Some(n) = tasks.join_next().await {
            done.push(n.unwrap());
        }
        done.sort();
        assert_eq!(done, (0..7).collect::<Vec<_>>());
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(start.elapsed(), 4 * SECOND, "7 polls of 1 s, 2 at a time");
    }
}
