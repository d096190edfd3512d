//! The request budget of one account and region: a rate limit and a concurrency cap for every
//! SSM call, with two priorities.
//!
//! Owned by the daemon (one per configuration and scope), used by `ssm` around each request
//! attempt. [`Priority::Count`] is everything the numbers depend on (listings, poll pages,
//! re-checks); [`Priority::Detail`] is optional work (per-target detail) that only takes what
//! the counts leave over.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::sync::lock;

/// Which requests a request gives way to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// A request the numbers depend on: a listing, a poll's page, a re-check. Served in order.
    #[default]
    Count,
    /// Optional work (per-target detail): it waits while the next rate slot is not free yet
    /// (a count request waiting for its rate slot holds the ones before it), while taking a
    /// concurrency slot would leave none free (with a cap above 1; a count request waiting
    /// for a concurrency slot gets the next one freed, never a detail request), and while
    /// another detail request is in flight. So it only takes rate slots that would otherwise
    /// go unused, never one a waiting count request was given, and delays a count request by
    /// one slot at most (one that arrives just after it took a free slot).
    Detail,
}

/// At most `max_concurrent` requests in flight and at most `requests_per_second` started per
/// second (spaced evenly, no bursts). Count requests queue in order; when the budget cannot
/// cover every association in one interval, polls start late (the delay is published) instead
/// of being throttled by AWS. Detail requests go only when no count request is waiting
/// ([`Priority::Detail`]).
pub struct Budget {
    spacing: Duration,
    max_concurrent: usize,
    state: Mutex<State>,
    in_flight: Semaphore,
    /// Woken when a request ends: a waiting detail request looks again.
    changed: Notify,
}

struct State {
    /// When the next request may start.
    next_slot: Instant,
    /// Detail requests holding a slot (at most one).
    details_in_flight: usize,
}

/// A granted request slot: hold it for the duration of the request.
pub struct Slot<'a> {
    permit: Option<SemaphorePermit<'a>>,
    budget: &'a Budget,
    priority: Priority,
    /// How long the caller waited for the slot.
    pub waited: Duration,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        // The concurrency slot is free before a waiting detail request looks.
        drop(self.permit.take());
        if self.priority == Priority::Detail {
            lock(&self.budget.state).details_in_flight -= 1;
        }
        self.budget.changed.notify_waiters();
    }
}

impl Budget {
    pub fn new(requests_per_second: f64, max_concurrent: usize) -> Budget {
        let rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            1.0
        };
        let max_concurrent = max_concurrent.max(1);
        Budget {
            spacing: Duration::from_secs_f64(1.0 / rate),
            max_concurrent,
            state: Mutex::new(State {
                next_slot: Instant::now(),
                details_in_flight: 0,
            }),
            in_flight: Semaphore::new(max_concurrent),
            changed: Notify::new(),
        }
    }

    /// Waits for a concurrency slot, then for the next rate slot, as `priority` says.
    pub async fn acquire(&self, priority: Priority) -> Slot<'_> {
        match priority {
            Priority::Count => self.acquire_count().await,
            Priority::Detail => self.acquire_detail().await,
        }
    }

    async fn acquire_count(&self) -> Slot<'_> {
        let started = Instant::now();
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the budget's semaphore is never closed");
        let slot = {
            let mut state = lock(&self.state);
            let slot = state.next_slot.max(Instant::now());
            state.next_slot = slot + self.spacing;
            slot
        };
        tokio::time::sleep_until(slot).await;
        Slot {
            permit: Some(permit),
            budget: self,
            priority: Priority::Count,
            waited: started.elapsed(),
        }
    }

    async fn acquire_detail(&self) -> Slot<'_> {
        let started = Instant::now();
        // Keep a concurrency slot free for count requests, unless there is only one.
        let keep_free = usize::from(self.max_concurrent > 1);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so no change between the look and the wait is missed.
            changed.as_mut().enable();
            let wake_at = {
                let mut state = lock(&self.state);
                let now = Instant::now();
                if state.details_in_flight > 0 {
                    None
                } else if state.next_slot > now {
                    Some(state.next_slot)
                } else if self.in_flight.available_permits() <= keep_free {
                    None
                } else {
                    match self.in_flight.try_acquire() {
                        Ok(permit) => {
                            state.next_slot = now + self.spacing;
                            state.details_in_flight += 1;
                            return Slot {
                                permit: Some(permit),
                                budget: self,
                                priority: Priority::Detail,
                                waited: started.elapsed(),
                            };
                        }
                        Err(_) => None,
                    }
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
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

    /// With no count request waiting, a detail request takes the next free rate slot; a
    /// second detail request waits for the first to end, and neither takes the last free
    /// concurrency slot, which stays for a count request.
    #[tokio::test(start_paused = true)]
    async fn detail_requests_use_spare_slots_one_at_a_time_leaving_a_concurrency_slot() {
        let budget = Arc::new(Budget::new(5.0, 3));
        let start = Instant::now();
        // Two long count requests hold two of the three concurrency slots until 2,000 and
        // 2,200 ms.
        let long = [
            request(&budget, start, Duration::ZERO, Priority::Count, 2_000 * MS),
            request(&budget, start, Duration::ZERO, Priority::Count, 2_000 * MS),
        ];
        let first = request(&budget, start, MS, Priority::Detail, 500 * MS);
        let second = request(&budget, start, 2 * MS, Priority::Detail, MS);
        // The detail requests wait for a long count to end (taking the third slot would leave
        // none), then go one after the other: at 2,000 ms, and at 2,500 ms when the first
        // ends (not at 2,200, when a slot and a rate slot are free, but the first is in flight).
        for (n, long) in long.into_iter().enumerate() {
            assert_eq!(long.await.unwrap().as_millis(), 200 * n as u128);
        }
        assert_eq!(first.await.unwrap().as_millis(), 2_000);
        assert_eq!(second.await.unwrap().as_millis(), 2_500);
        // A count request meanwhile was never held by them: one at 2,100 ms while the first
        // detail request is in flight gets its slot at 2,200 (the rate slot after 2,000).
        let budget = Arc::new(Budget::new(5.0, 2));
        let start = Instant::now();
        let detail = request(&budget, start, Duration::ZERO, Priority::Detail, 1_000 * MS);
        let count = request(&budget, start, 100 * MS, Priority::Count, MS);
        assert_eq!(detail.await.unwrap(), Duration::ZERO);
        assert_eq!(count.await.unwrap().as_millis(), 200);
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
