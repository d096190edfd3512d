//! The process-wide request budget: a rate limit and a concurrency cap for every SSM call.
//!
//! Owned by the daemon (one per configuration), used by `ssm` around each request attempt.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::sync::lock;

/// At most `max_concurrent` requests in flight and at most `requests_per_second` started per
/// second (spaced evenly, no bursts). Callers queue in order; when the budget cannot cover every
/// association in one interval, polls start late (the delay is published) instead of being
/// throttled by AWS.
pub struct Budget {
    spacing: Duration,
    next_slot: Mutex<Instant>,
    in_flight: Semaphore,
}

/// A granted request slot: hold it for the duration of the request.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    /// How long the caller waited for the slot.
    pub waited: Duration,
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
            next_slot: Mutex::new(Instant::now()),
            in_flight: Semaphore::new(max_concurrent.max(1)),
        }
    }

    /// Waits for a concurrency slot, then for the next rate slot.
    pub async fn acquire(&self) -> Slot<'_> {
        let started = Instant::now();
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the budget's semaphore is never closed");
        let slot = {
            let mut next = lock(&self.next_slot);
            let slot = (*next).max(Instant::now());
            *next = slot + self.spacing;
            slot
        };
        tokio::time::sleep_until(slot).await;
        Slot {
            _permit: permit,
            waited: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On tokio's paused clock: ten requests at 5/s start 200 ms apart, the first at once.
    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly_without_a_burst() {
        let budget = Budget::new(5.0, 10);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..10 {
            let slot = budget.acquire().await;
            starts.push(start.elapsed());
            drop(slot);
        }
        let expected: Vec<_> = (0..10).map(|i| Duration::from_millis(200 * i)).collect();
        assert_eq!(starts, expected);
    }

    /// The concurrency cap holds a second caller until the first releases its slot.
    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_queues_callers() {
        let budget = std::sync::Arc::new(Budget::new(1000.0, 1));
        let first = budget.acquire().await;
        let b = budget.clone();
        let second = tokio::spawn(async move {
            let slot = b.acquire().await;
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
            drop(budget.acquire().await);
            let second = budget.acquire().await;
            assert_eq!(second.waited, Duration::from_secs(1), "rate {rate}");
        }
    }
}
