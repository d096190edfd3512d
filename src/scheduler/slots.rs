//! The poll slots of one account and region: how many polls run at once, which go first
//! (a poll's priority, from why it is polled), a waiting poll that holds only what makes its
//! future, and the task one poll runs as.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::details::DetailQueue;
use super::Shared;
use crate::poller::Poller;
use crate::ssm::{ApiError, Ssm};
use crate::store::Entry;

use crate::feed::Reason;
use crate::limit::Priority;

/// How many polls of one scope may run at once: two per concurrent request of its budget (a
/// poll makes one request at a time, and spends the rest of its time waiting for the budget or
/// reading a page, so a few more polls than requests keep every request slot busy). A running
/// poll's future holds the SDK's request state, kilobytes of it: spawned all at once for the
/// 10,000 associations of a first listing, they would hold tens of MB together, which the
/// allocator keeps afterwards. Polls beyond the slots wait as small tasks.
pub fn polls_per_scope(max_concurrent_requests: usize) -> usize {
    max_concurrent_requests.max(1) * 2
}

/// The priority of every request of a poll, from why it is polled: a due poll (a first poll,
/// a retry, a listing change, a run not seen yet, the late-window poll, a State Manager event
/// and its follow-ups) is a count; a re-poll
/// of runs still in progress and a sweep poll are the safety net, served after every waiting
/// count ([`Priority::Recheck`]).
pub(super) fn priority(reason: Reason) -> Priority {
    match reason {
        Reason::Pending | Reason::Sweep => Priority::Recheck,
        Reason::First
        | Reason::Retry
        | Reason::Changed
        | Reason::Unexplained
        | Reason::Late
        | Reason::Event
        | Reason::FollowUp => Priority::Count,
    }
}

/// The poll slots of one scope. A due poll queues for a slot at once; a re-check poll first
/// waits its turn behind the other re-check polls, so that however many of them wait, at most
/// one is queued for a slot ahead of a due poll (the budget then serves the due poll's
/// requests first).
pub(super) struct PollSlots {
    slots: Semaphore,
    recheck_turn: Semaphore,
}

impl PollSlots {
    pub(super) fn new(slots: usize) -> PollSlots {
        PollSlots {
            slots: Semaphore::new(slots.max(1)),
            recheck_turn: Semaphore::new(1),
        }
    }
}

/// Runs the future `make` makes once a slot of `slots` is free for a poll of `priority`,
/// holding the slot until it ends. `make` is called only then, and its future is boxed: until
/// then the task holds only `make`'s captures, not the (large) future.
pub(super) async fn with_slot<F: std::future::Future>(
    slots: Arc<PollSlots>,
    priority: Priority,
    make: impl FnOnce() -> F,
) -> F::Output {
    let closed = "the poll slots are never closed";
    let _slot = if priority == Priority::Count {
        slots.slots.acquire().await.expect(closed)
    } else {
        let _turn = slots.recheck_turn.acquire().await.expect(closed);
        slots.slots.acquire().await.expect(closed)
    };
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
        let slots = Arc::new(PollSlots::new(1));
        assert!(std::mem::size_of_val(&large(1)) >= 8192);
        let waiting = with_slot(slots, Priority::Recheck, || large(1));
        let size = std::mem::size_of_val(&waiting);
        assert!(size < 256, "a waiting poll task holds {size} bytes");
    }

    /// At most `slots` run at once; the others start as slots free up, in order.
    #[tokio::test(start_paused = true)]
    async fn slots_bound_the_polls_running_at_once() {
        let slots = Arc::new(PollSlots::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for n in 0..7u64 {
            let (running, most) = (running.clone(), most.clone());
            tasks.spawn(with_slot(
                slots.clone(),
                Priority::Count,
                move || async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    tokio::time::sleep(SECOND).await;
                    running.fetch_sub(1, SeqCst);
                    n
                },
            ));
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

    /// A due poll waits behind at most one re-check poll for a slot, however many came
    /// before it: with the one slot busy, five re-check polls then a due poll queue; the due
    /// poll runs second.
    #[tokio::test(start_paused = true)]
    async fn a_due_poll_waits_behind_one_recheck_poll_at_most() {
        let slots = Arc::new(PollSlots::new(1));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        let polls = [Priority::Count, Priority::Recheck, Priority::Recheck]
            .into_iter()
            .chain([Priority::Recheck; 3])
            .chain([Priority::Count]);
        for (n, priority) in polls.enumerate() {
            let order = order.clone();
            tasks.spawn(with_slot(slots.clone(), priority, move || async move {
                order.lock().unwrap().push(n);
                tokio::time::sleep(SECOND).await;
            }));
            // Each queued before the next comes.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(*order.lock().unwrap(), [0, 1, 6, 2, 3, 4, 5]);
    }

    /// Due polls are counts; re-polls of runs in progress and sweep polls are re-checks.
    #[test]
    fn a_poll_goes_at_the_priority_its_reason_says() {
        let rechecks: Vec<_> = Reason::ALL
            .into_iter()
            .filter(|r| priority(*r) == Priority::Recheck)
            .collect();
        assert_eq!(rechecks, [Reason::Pending, Reason::Sweep]);
        assert!(Reason::ALL.iter().all(|r| priority(*r) != Priority::Detail));
    }
}
