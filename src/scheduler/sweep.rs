//! The sweep of one account and region: its period, stretched so that it costs at most
//! `full_sweep_max_polls_per_interval` polls per listing, each association's slot in it, and
//! which of the sweep polls a listing asks for it starts.
//!
//! The N watched associations are put in the order of a hash of their IDs; the one at place r
//! has its slots at r × P / N + k × P for every k, P being the *effective period*
//! max(`full_sweep_interval`, ⌈N / cap⌉ × `poll_interval`) ([`effective_period`]). So the
//! slots of all of them together are evenly spaced, P / N apart, one per association per
//! period, and P / N ≥ `poll_interval` / cap. A listing sweeps the associations whose latest
//! slot has passed since their last successful poll ([`crate::feed`]), which in the steady
//! state are those whose slot fell after the previous listing: at most ⌈`poll_interval` /
//! (P / N)⌉ ≤ cap of them, as a half-open span of length L holds at most ⌈L / d⌉ points
//! spaced d apart. Each association is swept at the first listing after each of its slots,
//! so once per period, within one `poll_interval` of its slot. What the spacing alone cannot
//! promise (a listing that came late, a restart after a long stop when every slot has passed,
//! a poll still running at its slot) the ceiling does: a listing starts at most cap sweep
//! polls, those without a successful poll for longest first ([`choose`]); the others wait for
//! the next listing, and none waits behind one polled after it.

use std::collections::HashMap;
use std::time::Duration;

/// The sweep period of N associations: `full_sweep_interval`, or longer when N sweeps per
/// `full_sweep_interval` would cost more than `cap` polls per `interval`: ⌈N / cap⌉
/// intervals, so that N × interval / period ≤ cap.
pub(super) fn effective_period(
    n: usize,
    full_sweep: Duration,
    interval: Duration,
    cap: usize,
) -> Duration {
    let intervals = u32::try_from(n.div_ceil(cap.max(1))).unwrap_or(u32::MAX);
    full_sweep.max(interval.saturating_mul(intervals))
}

/// The sweep slots of one scope's watched associations, made at the end of each listing for
/// the next.
#[derive(Default)]
pub(super) struct SweepPlan {
    period_ms: i64,
    /// Each association's place in the order of the hashes of their IDs.
    places: HashMap<String, i64>,
}

impl SweepPlan {
    pub(super) fn new<'a>(
        ids: impl IntoIterator<Item = &'a String>,
        full_sweep: Duration,
        interval: Duration,
        cap: usize,
    ) -> SweepPlan {
        let mut order: Vec<(u64, &str)> = ids.into_iter().map(|id| (hash(id), &id[..])).collect();
        order.sort_unstable();
        let period = effective_period(order.len(), full_sweep, interval, cap);
        SweepPlan {
            period_ms: i64::try_from(period.as_millis()).unwrap_or(i64::MAX),
            places: order
                .iter()
                .enumerate()
                .map(|(place, (_, id))| (id.to_string(), place as i64))
                .collect(),
        }
    }

    /// The effective period (the `..._sweep_period_seconds` gauge).
    pub(super) fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms.max(0) as u64)
    }

    /// The latest sweep slot of `id` at or before `now_ms` (host clock), rounded up to the
    /// millisecond: a poll at a whole millisecond before it is before the exact slot.
    /// `None` for an association watched since the plan was made (its slots start with the
    /// next plan).
    pub(super) fn slot(&self, id: &str, now_ms: i64) -> Option<i64> {
        let place = i128::from(*self.places.get(id)?);
        let (n, period) = (self.places.len() as i128, i128::from(self.period_ms));
        if period <= 0 {
            return Some(now_ms);
        }
        // On a clock N times as fine, the slots of `place` are place × P + k × N × P: exact.
        let now = i128::from(now_ms) * n;
        let latest = now - (now - place * period).rem_euclid(n * period);
        let ms = latest.div_euclid(n) + i128::from(latest.rem_euclid(n) != 0);
        Some(i64::try_from(ms).unwrap_or(now_ms))
    }
}

/// Of the sweep polls one listing asks for, each with the time of its association's last
/// successful poll (`None`: never), the at most `cap` it starts, longest without a poll
/// first, and the others (asked for again at the next listing).
pub(super) fn choose<T>(mut asked: Vec<(Option<i64>, T)>, cap: usize) -> (Vec<T>, Vec<T>) {
    asked.sort_by_key(|(last, _)| *last);
    let later = asked.split_off(cap.min(asked.len()));
    let strip = |v: Vec<(Option<i64>, T)>| v.into_iter().map(|(_, t)| t).collect();
    (strip(asked), strip(later))
}

/// A stable 64-bit hash of an association ID (FNV-1a): its place among the others.
fn hash(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{decide, Decision, Known, Reason, Rules};
    use crate::model::ListedAssociation;

    const MINUTE: i64 = 60_000;
    const START: i64 = 1_800_000_000_000;
    const CAP: usize = 5;

    fn listed(id: &str) -> ListedAssociation {
        ListedAssociation {
            id: id.to_string(),
            name: None,
            document_name: "AWS-RunPatchBaseline".into(),
            document_version: None,
            association_version: Some("1".into()),
            schedule_expression: None,
            targets: String::new(),
            last_execution_ms: Some(START - 10_000 * MINUTE),
            overview: "Success//".into(),
        }
    }

    /// `n` quiet associations (their listing unchanged since their last poll, which was
    /// `stopped_min` minutes before the start), listed every `interval_min` minutes for
    /// `minutes`, with the production `full_sweep_interval` (1 h) and the default cap: each
    /// listing asks the change feed about every one with the slot its plan gives, and starts
    /// the sweep polls [`choose`] picks; each ends a second later. Returns the sweep polls of
    /// each listing and the minutes at which each association was swept.
    fn sweep(
        n: usize,
        interval_min: i64,
        minutes: i64,
        stopped_min: i64,
    ) -> (Vec<usize>, Vec<Vec<i64>>) {
        let ids: Vec<String> = (0..n)
            .map(|i| format!("{i:08x}-4309-493a-8755-0123456789ab"))
            .collect();
        let rules = Rules {
            initial_lookback_ms: 60 * MINUTE,
            late_window_ms: 10 * MINUTE,
            full_sweep_ms: 60 * MINUTE,
            pending_recheck_max_ms: 60 * MINUTE,
        };
        let interval = Duration::from_millis((interval_min * MINUTE) as u64);
        let plan = SweepPlan::new(&ids, Duration::from_secs(3600), interval, CAP);
        let signature = listed("").signature();
        let mut last: Vec<i64> = vec![START - stopped_min * MINUTE; n];
        let mut per_listing = Vec::new();
        let mut swept = vec![Vec::new(); n];
        for minute in (interval_min..=minutes).step_by(interval_min as usize) {
            let now = START + minute * MINUTE;
            let mut asked = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let l = listed(id);
                let known = Known {
                    started: true,
                    complete: true,
                    poll_success: true,
                    signature: Some(&signature),
                    seen_ms: l.last_execution_ms,
                    last_poll_success_ms: Some(last[i]),
                    sweep_slot_ms: plan.slot(id, now),
                    ..Known::default()
                };
                match decide(&l, &signature, &known, &rules, now, now) {
                    Decision::Poll(Reason::Sweep) => asked.push((Some(last[i]), i)),
                    Decision::Skip => {}
                    other => panic!("{other:?}"),
                }
            }
            let (started, _) = choose(asked, CAP);
            per_listing.push(started.len());
            for i in started {
                last[i] = now + 1_000;
                swept[i].push(minute);
            }
        }
        (per_listing, swept)
    }

    fn gaps(minutes: &[i64]) -> Vec<i64> {
        minutes.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// #21: 1,000 quiet associations in one account and region at the defaults (a 1-minute
    /// interval, a 1-hour `full_sweep_interval`, a cap of 5): swept by `full_sweep_interval`
    /// they would cost 16.7 polls a listing; the period stretches to ⌈1,000 / 5⌉ = 200
    /// minutes, every listing starts exactly 5 sweep polls, none more, and each association
    /// is swept exactly once per 200 minutes, 200 minutes apart: no burst, none starved.
    #[test]
    fn the_sweep_costs_at_most_the_cap_per_interval_and_sweeps_each_once_a_period() {
        let n = 1_000;
        let period = effective_period(n, Duration::from_secs(3600), Duration::from_secs(60), CAP);
        assert_eq!(period, Duration::from_secs(200 * 60));
        let (per_listing, swept) = sweep(n, 1, 3 * 200, 0);
        assert!(
            per_listing.iter().all(|&polls| polls == CAP),
            "sweep polls per listing: {per_listing:?}"
        );
        for (i, minutes) in swept.iter().enumerate() {
            assert_eq!(minutes.len(), 3, "association {i} swept at {minutes:?}");
            assert!(
                minutes[0] <= 200,
                "association {i} first swept at {minutes:?}"
            );
            assert_eq!(
                gaps(minutes),
                [200, 200],
                "association {i} swept at {minutes:?}"
            );
        }
    }

    /// What the spacing cannot promise, the ceiling does: a restart after a 10-hour stop finds
    /// every slot passed; each listing still starts 5 sweep polls, every association is swept
    /// within one period of the restart, and then once a period.
    #[test]
    fn after_a_long_stop_the_sweep_catches_up_within_the_cap() {
        let n = 1_000;
        let (per_listing, swept) = sweep(n, 1, 4 * 200, 600);
        assert!(
            per_listing.iter().all(|&polls| polls == CAP),
            "{per_listing:?}"
        );
        for (i, minutes) in swept.iter().enumerate() {
            assert!(
                minutes[0] <= 200,
                "association {i} first swept at {minutes:?}"
            );
            assert!(
                gaps(minutes).iter().all(|gap| (199..=201).contains(gap)),
                "association {i} swept at {minutes:?}"
            );
        }
    }

    /// Below the cap nothing changes: 200 associations are swept once per `full_sweep_interval`
    /// (3.3 polls a listing, at most ⌈3.3⌉ = 4), 60 minutes apart. With 7-minute listings (not
    /// a divisor of the hour), 20 associations are swept within one interval after each slot:
    /// 56 or 63 minutes apart.
    #[test]
    fn below_the_cap_the_sweep_keeps_its_interval() {
        let n = 200;
        let period = effective_period(n, Duration::from_secs(3600), Duration::from_secs(60), CAP);
        assert_eq!(period, Duration::from_secs(3600));
        let (per_listing, swept) = sweep(n, 1, 240, 0);
        assert!(
            per_listing.iter().all(|&p| (3..=4).contains(&p)),
            "{per_listing:?}"
        );
        for minutes in &swept {
            assert_eq!(gaps(minutes), [60, 60, 60], "{minutes:?}");
        }
        let (per_listing, swept) = sweep(20, 7, 7 * 60, 0);
        assert!(per_listing.iter().all(|&p| p <= CAP), "{per_listing:?}");
        for minutes in &swept {
            assert!(
                gaps(minutes).iter().all(|g| [56, 63].contains(g)),
                "{minutes:?}"
            );
        }
    }

    /// A listing starts at most `cap` of the sweep polls asked for, the longest without a
    /// successful poll first (never polled before anything).
    #[test]
    fn a_listing_starts_at_most_the_cap_longest_waiting_first() {
        let asked = vec![(Some(30), 0), (None, 1), (Some(10), 2), (Some(20), 3)];
        assert_eq!(choose(asked.clone(), 2), (vec![1, 2], vec![3, 0]));
        assert_eq!(choose(asked, 9).0.len(), 4);
    }

    /// Slots are exact: with 3 associations over a 10 ms period, their slots fall at 0, 3⅓
    /// and 6⅔ ms into each period, and a poll at 3 ms is before the second one.
    #[test]
    fn slots_are_evenly_spaced_and_exact() {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let plan = SweepPlan {
            period_ms: 10,
            places: ids.iter().cloned().zip([0, 1, 2]).collect(),
        };
        assert_eq!(plan.slot("a", 100), Some(100));
        assert_eq!(plan.slot("a", 109), Some(100));
        assert_eq!(plan.slot("b", 103), Some(94)); // 93⅓, rounded up
        assert_eq!(plan.slot("b", 104), Some(104)); // 103⅓
        assert_eq!(plan.slot("c", 107), Some(107)); // 106⅔
        assert_eq!(plan.slot("d", 107), None);
        let plan = SweepPlan::new(&ids, Duration::from_millis(10), Duration::from_millis(1), 5);
        assert_eq!(plan.period(), Duration::from_millis(10));
    }
}
