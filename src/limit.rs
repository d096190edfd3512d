//! The request budget of one account and region: a rate limit and a concurrency cap for every
//! SSM call, with three priorities.
//!
//! Owned by the daemon (one per configuration and scope), used by `ssm` around each request
//! attempt. A waiting [`Priority::Count`] request (listings, due polls) is always served before
//! a waiting [`Priority::Recheck`] (re-polls of runs in progress, sweep polls), and that before
//! a waiting [`Priority::Detail`] (target and tag reads), which only takes the rate slots
//! nobody above it wants.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sync::lock;

/// Which requests a request gives way to. A waiting request is served before every waiting
/// request of a lower priority; within one priority, in the order they came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A request the numbers depend on now: a listing (full or delta), a page of a due poll (a
    /// listing change, a new run, the late-window poll, a first poll, a retry).
    #[default]
    Count,
    /// A safety net: a page of a re-poll of runs still in progress or of a sweep poll. It
    /// takes a rate slot only when no count request is waiting.
    Recheck,
    /// Optional work (a target or tag read): it waits while a count or re-check request is
    /// waiting, while the next rate slot is not free yet, and while taking a concurrency slot
    /// would leave none free (with a cap above 1). So it only takes rate slots that would
    /// otherwise go unused, never one a waiting request above it is owed, and delays one by
    /// one rate slot at most (one that arrives just after it took a free slot). Up to
    /// [`Budget::detail_parallelism`] of them are in flight at once.
    Detail,
}

impl Priority {
    fn index(self) -> usize {
        match self {
            Priority::Count => 0,
            Priority::Recheck => 1,
            Priority::Detail => 2,
        }
    }
}

/// At most `max_concurrent` requests in flight and at most `requests_per_second` started per
/// second (spaced evenly, no bursts). Each rate slot goes to the first waiting request of the
/// highest priority waiting ([`Priority`]); when the budget cannot cover every association in
/// one interval, polls start late (the delay is published) instead of being throttled by AWS.
pub struct Budget {
    spacing: Duration,
    max_concurrent: usize,
    state: Mutex<State>,
}

struct State {
    /// When the next request may start.
    next_slot: Instant,
    /// Requests holding a slot.
    in_flight: usize,
    /// The waiting requests of each priority, in the order they came.
    waiting: [VecDeque<Waiter>; 3],
    next_id: u64,
}

struct Waiter {
    id: u64,
    wake: Arc<Notify>,
}

impl State {
    /// Wakes the first waiting request of each priority: the only ones that can go next.
    fn wake_heads(&self) {
        for queue in &self.waiting {
            if let Some(head) = queue.front() {
                head.wake.notify_one();
            }
        }
    }
}

/// A granted request slot: hold it for the duration of the request.
pub struct Slot<'a> {
    budget: &'a Budget,
    /// How long the caller waited for the slot.
    pub waited: Duration,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.budget.state);
        state.in_flight -= 1;
        state.wake_heads();
    }
}

/// A request waiting in its queue; leaves it if dropped before its slot was granted (a
/// cancelled caller never holds up the ones behind it).
struct Queued<'a> {
    budget: &'a Budget,
    priority: Priority,
    id: u64,
    granted: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut state = lock(&self.budget.state);
        let queue = &mut state.waiting[self.priority.index()];
        if let Some(at) = queue.iter().position(|w| w.id == self.id) {
            queue.remove(at);
            state.wake_heads();
        }
    }
}

/// What a waiting request does next.
enum Look {
    Go,
    /// Wait for this rate slot (or a change).
    At(Instant),
    /// Wait for a change.
    Wait,
}

impl Budget {
    pub fn new(requests_per_second: f64, max_concurrent: usize) -> Budget {
        let rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            1.0
        };
        Budget {
            spacing: Duration::from_secs_f64(1.0 / rate),
            max_concurrent: max_concurrent.max(1),
            state: Mutex::new(State {
                next_slot: Instant::now(),
                in_flight: 0,
                waiting: Default::default(),
                next_id: 0,
            }),
        }
    }

    /// How many detail requests may be in flight at once: the concurrency cap minus one slot
    /// kept free for count and re-check requests (one with a cap of 1).
    pub fn detail_parallelism(&self) -> usize {
        self.detail_cap().max(1)
    }

    /// Requests in flight above which a detail request waits.
    fn detail_cap(&self) -> usize {
        self.max_concurrent - usize::from(self.max_concurrent > 1)
    }

    /// Waits for a concurrency slot and the next rate slot, served as `priority` says.
    pub async fn acquire(&self, priority: Priority) -> Slot<'_> {
        let started = Instant::now();
        let wake = Arc::new(Notify::new());
        let mut queued = {
            let mut state = lock(&self.state);
            let id = state.next_id;
            state.next_id += 1;
            state.waiting[priority.index()].push_back(Waiter {
                id,
                wake: wake.clone(),
            });
            Queued {
                budget: self,
                priority,
                id,
                granted: false,
            }
        };
        // The rate slot this request last went to sleep for.
        let mut awaited = None;
        loop {
            // Registered before looking, so no change between the look and the wait is missed.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let wake_at = {
                let mut state = lock(&self.state);
                let now = Instant::now();
                match self.look(&state, priority, queued.id, now) {
                    Look::Go => {
                        state.waiting[priority.index()].pop_front();
                        state.in_flight += 1;
                        // A request that waited for this rate slot and woke a little after
                        // it keeps the spacing from the slot (no drift); any other starts a
                        // new spacing.
                        let base = if awaited == Some(state.next_slot) {
                            state.next_slot
                        } else {
                            now
                        };
                        state.next_slot = base + self.spacing;
                        state.wake_heads();
                        queued.granted = true;
                        return Slot {
                            budget: self,
                            waited: started.elapsed(),
                        };
                    }
                    Look::At(at) => Some(at),
                    Look::Wait => None,
                }
            };
            awaited = wake_at;
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = woken => {}
                    }
                }
                None => woken.await,
            }
        }
    }

    /// Whether the waiting request `id` of `priority` goes now: it is the first of its
    /// priority, none above it waits, a concurrency slot is free for it, and the rate slot
    /// has come.
    fn look(&self, state: &State, priority: Priority, id: u64, now: Instant) -> Look {
        let p = priority.index();
        if state.waiting[p].front().map(|w| w.id) != Some(id)
            || state.waiting[..p].iter().any(|q| !q.is_empty())
        {
            return Look::Wait;
        }
        let cap = match priority {
            Priority::Detail => self.detail_cap(),
            Priority::Count | Priority::Recheck => self.max_concurrent,
        };
        if state.in_flight >= cap.max(1) {
            Look::Wait
        } else if now < state.next_slot {
            Look::At(state.next_slot)
        } else {
            Look::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MS: Duration = Duration::from_millis(1);

    /// On tokio's paused clock: ten requests at 5/s start 200 ms apart, the first at once.
    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly_without_a_burst() {
        let budget = Budget::new(5.0, 10);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..10 {
            let slot = budget.acquire(Priority::Count).await;
            starts.push(start.elapsed());
            drop(slot);
        }
        let expected: Vec<_> = (0..10).map(|i| Duration::from_millis(200 * i)).collect();
        assert_eq!(starts, expected);
    }

    /// The concurrency cap holds a second caller until the first releases its slot.
    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_queues_callers() {
        let budget = Arc::new(Budget::new(1000.0, 1));
        let first = budget.acquire(Priority::Count).await;
        let b = budget.clone();
        let second = tokio::spawn(async move {
            let slot = b.acquire(Priority::Count).await;
            slot.waited
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(first);
        let waited = second.await.unwrap();
        assert!(waited >= Duration::from_secs(3), "{waited:?}");
        assert!(waited < Duration::from_millis(3_010), "{waited:?}");
    }

    /// A non-positive or non-finite rate falls back to one request a second.
    #[tokio::test(start_paused = true)]
    async fn invalid_rate_means_one_per_second() {
        for rate in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            let budget = Budget::new(rate, 1);
            drop(budget.acquire(Priority::Count).await);
            let second = budget.acquire(Priority::Count).await;
            assert_eq!(second.waited, Duration::from_secs(1), "rate {rate}");
        }
    }

    /// Starts a request of `priority` after `after`, holding its slot for `hold`; returns when
    /// (from `start`) it got its slot.
    fn request(
        budget: &Arc<Budget>,
        start: Instant,
        after: Duration,
        priority: Priority,
        hold: Duration,
    ) -> tokio::task::JoinHandle<Duration> {
        let budget = budget.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + after).await;
            let slot = budget.acquire(priority).await;
            let at = start.elapsed();
            tokio::time::sleep(hold).await;
            drop(slot);
            at
        })
    }

    /// A detail request never goes before a waiting count request, whether the counts were
    /// waiting before it (queued for their rate slots) or arrive while it waits; and the count
    /// requests start exactly when they would without it.
    #[tokio::test(start_paused = true)]
    async fn a_detail_request_never_goes_before_a_waiting_count_request() {
        for with_detail in [false, true] {
            let budget = Arc::new(Budget::new(5.0, 10));
            let start = Instant::now();
            // One count request at once, the detail request at 10 ms, five more counts at
            // 20 ms, one at 1,100 ms (while the detail request still waits).
            let mut counts = vec![request(&budget, start, Duration::ZERO, Priority::Count, MS)];
            let detail =
                with_detail.then(|| request(&budget, start, 10 * MS, Priority::Detail, MS));
            for _ in 0..5 {
                counts.push(request(&budget, start, 20 * MS, Priority::Count, MS));
            }
            counts.push(request(&budget, start, 1_100 * MS, Priority::Count, MS));
            let mut count_starts = Vec::new();
            for c in counts {
                count_starts.push(c.await.unwrap().as_millis());
            }
            count_starts.sort();
            assert_eq!(count_starts, [0, 200, 400, 600, 800, 1_000, 1_200]);
            if let Some(detail) = detail {
                assert_eq!(
                    detail.await.unwrap().as_millis(),
                    1_400,
                    "the detail request takes the first slot no count request wants"
                );
            }
        }
    }

    /// With no count request waiting, detail requests take the free rate slots, several in
    /// flight at once: up to the concurrency cap minus one, the last slot staying free for a
    /// count request. So slow reads (500 ms each, 10 ms spacing) go one rate slot apart, not
    /// one latency apart.
    #[tokio::test(start_paused = true)]
    async fn detail_requests_go_in_parallel_up_to_the_cap_minus_one() {
        let budget = Arc::new(Budget::new(100.0, 4));
        assert_eq!(budget.detail_parallelism(), 3);
        let start = Instant::now();
        let details: Vec<_> = (0..7)
            .map(|_| request(&budget, start, Duration::ZERO, Priority::Detail, 500 * MS))
            .collect();
        let mut starts = Vec::new();
        for d in details {
            starts.push(d.await.unwrap().as_millis());
        }
        // Three at once (10 ms apart), the next three as each of the first ends, and so on.
        assert_eq!(starts, [0, 10, 20, 500, 510, 520, 1_000]);
        // With one concurrency slot, one at a time.
        let budget = Arc::new(Budget::new(100.0, 1));
        assert_eq!(budget.detail_parallelism(), 1);
        let start = Instant::now();
        let details: Vec<_> = (0..3)
            .map(|_| request(&budget, start, Duration::ZERO, Priority::Detail, 500 * MS))
            .collect();
        let mut starts = Vec::new();
        for d in details {
            starts.push(d.await.unwrap().as_millis());
        }
        assert_eq!(starts, [0, 500, 1_000]);
    }

    /// Detail requests in flight never hold the last concurrency slot: with two of three
    /// held by detail requests, a count request goes at its rate slot; a second one (while
    /// the first is in flight) when a detail request ends, before the waiting detail requests,
    /// which go only when a slot stays free after them.
    #[tokio::test(start_paused = true)]
    async fn detail_requests_leave_a_concurrency_slot_for_counts() {
        let budget = Arc::new(Budget::new(10.0, 3));
        let start = Instant::now();
        let details: Vec<_> = (0..4)
            .map(|_| request(&budget, start, Duration::ZERO, Priority::Detail, 1_000 * MS))
            .collect();
        let first = request(&budget, start, 150 * MS, Priority::Count, 2_000 * MS);
        let second = request(&budget, start, 160 * MS, Priority::Count, MS);
        assert_eq!(first.await.unwrap().as_millis(), 200);
        assert_eq!(second.await.unwrap().as_millis(), 1_000);
        let mut starts = Vec::new();
        for d in details {
            starts.push(d.await.unwrap().as_millis());
        }
        // The third when the second ends (a slot stays free for counts), the fourth when the
        // third ends.
        assert_eq!(starts, [0, 100, 1_100, 2_100]);
    }

    /// Under contention the three priorities are served in order: every waiting count request
    /// before any waiting re-check, every re-check before any detail request, whatever the
    /// order they came in; a count request coming later still goes before the waiting ones
    /// below it.
    #[tokio::test(start_paused = true)]
    async fn waiting_requests_are_served_count_then_recheck_then_detail() {
        let budget = Arc::new(Budget::new(5.0, 10));
        let start = Instant::now();
        let first = request(&budget, start, Duration::ZERO, Priority::Count, MS);
        let mut details = Vec::new();
        let mut rechecks = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..3 {
            details.push(request(&budget, start, 10 * MS, Priority::Detail, MS));
        }
        for _ in 0..3 {
            rechecks.push(request(&budget, start, 20 * MS, Priority::Recheck, MS));
        }
        for _ in 0..3 {
            counts.push(request(&budget, start, 30 * MS, Priority::Count, MS));
        }
        // Comes while the re-checks wait: goes before the rest of them.
        counts.push(request(&budget, start, 900 * MS, Priority::Count, MS));
        let starts = |tasks: Vec<tokio::task::JoinHandle<Duration>>| async {
            let mut at = Vec::new();
            for t in tasks {
                at.push(t.await.unwrap().as_millis());
            }
            at.sort();
            at
        };
        assert_eq!(first.await.unwrap(), Duration::ZERO);
        assert_eq!(starts(counts).await, [200, 400, 600, 1_000]);
        assert_eq!(starts(rechecks).await, [800, 1_200, 1_400]);
        assert_eq!(starts(details).await, [1_600, 1_800, 2_000]);
    }

    /// A concurrency slot freed while a re-check and a count request wait for one goes to the
    /// count request, though the re-check came first.
    #[tokio::test(start_paused = true)]
    async fn a_freed_concurrency_slot_goes_to_a_count_before_a_recheck() {
        let budget = Arc::new(Budget::new(1_000.0, 1));
        let start = Instant::now();
        let holder = request(&budget, start, Duration::ZERO, Priority::Count, 500 * MS);
        let recheck = request(&budget, start, 10 * MS, Priority::Recheck, 100 * MS);
        let count = request(&budget, start, 20 * MS, Priority::Count, 100 * MS);
        assert_eq!(holder.await.unwrap(), Duration::ZERO);
        assert_eq!(count.await.unwrap().as_millis(), 500);
        assert_eq!(recheck.await.unwrap().as_millis(), 600);
    }

    /// A caller that stops waiting (a cancelled listing) leaves its queue: the requests
    /// behind it and below it are not held up.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_holds_up_nobody() {
        let budget = Arc::new(Budget::new(5.0, 10));
        let start = Instant::now();
        drop(budget.acquire(Priority::Count).await);
        let b = budget.clone();
        let cancelled = tokio::spawn(async move {
            tokio::time::timeout(50 * MS, b.acquire(Priority::Count))
                .await
                .is_ok()
        });
        let recheck = request(&budget, start, 10 * MS, Priority::Recheck, MS);
        assert!(!cancelled.await.unwrap(), "the count request gave up first");
        let recheck = tokio::time::timeout(Duration::from_secs(10), recheck).await;
        let at = recheck.expect("the re-check was held up").unwrap();
        assert_eq!(at.as_millis(), 200);
    }

    /// With a concurrency cap of 1, detail requests still go when nothing else wants the slot.
    #[tokio::test(start_paused = true)]
    async fn with_one_concurrency_slot_a_detail_request_goes_when_it_is_free() {
        let budget = Arc::new(Budget::new(5.0, 1));
        let start = Instant::now();
        let first = request(&budget, start, Duration::ZERO, Priority::Count, 300 * MS);
        // Waits for the concurrency slot before the detail request does, and goes first.
        let second = request(&budget, start, 5 * MS, Priority::Count, MS);
        let detail = request(&budget, start, 10 * MS, Priority::Detail, MS);
        assert_eq!(first.await.unwrap(), Duration::ZERO);
        assert_eq!(second.await.unwrap().as_millis(), 300);
        assert_eq!(detail.await.unwrap().as_millis(), 500);
    }
}
