//! The change feed: from what one `ListAssociations` listing shows of an association and what
//! the exporter already knows of it, whether its executions need a poll now, and why. Pure.
//!
//! An association is polled when
//! - it has never been polled (`first`), unless the listing shows it has not run since the
//!   look-back start: then there is nothing to count and the first poll is recorded without a
//!   call (its look-back start is fixed then, so a run already going is counted when it ends);
//! - its last poll failed or stopped early (`retry`; the caller spaces retries out);
//! - its `LastExecutionDate`, `AssociationVersion` or `Overview` changed since its last
//!   successful poll (`changed`);
//! - its `LastExecutionDate` is newer than every execution seen so far and still within the
//!   late-visibility window: the run it reports has not become visible yet (`unexplained`);
//! - the late-visibility window after its `LastExecutionDate` has passed and no poll has
//!   succeeded since (`late`): an older run that becomes visible after a newer one changes
//!   nothing in the listing, so one poll at the window's end finds every run that became
//!   visible within it (one extra poll per listed run, never a sweep's wait);
//! - it has executions not final yet (`pending`): what moves them is not always in the listing
//!   (with `LastExecutionDate` set at the start of a run, its end changes nothing there);
//! - its sweep slot has passed since its last successful poll (`sweep`): one slot per
//!   `full_sweep_interval`, at a phase of its own (a hash of its ID), so that no association
//!   goes longer than the interval without a poll and the sweeps of N associations cost
//!   N × poll_interval / full_sweep_interval polls per listing, evenly spread: a safety net,
//!   which no rule above relies on.
//!
//! Whether AWS moves `LastExecutionDate` when a run starts or when it ends is not documented;
//! these rules count every execution exactly once either way (tests cover both).

use crate::model::ListedAssociation;

/// Why an association is polled (the `reason` label of `..._polls_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    First,
    Retry,
    Changed,
    Unexplained,
    Late,
    Pending,
    Sweep,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::First,
        Reason::Retry,
        Reason::Changed,
        Reason::Unexplained,
        Reason::Late,
        Reason::Pending,
        Reason::Sweep,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::First => "first",
            Reason::Retry => "retry",
            Reason::Changed => "changed",
            Reason::Unexplained => "unexplained",
            Reason::Late => "late",
            Reason::Pending => "pending",
            Reason::Sweep => "sweep",
        }
    }
}

/// What to do with one listed association.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to read.
    Skip,
    /// A first poll with nothing to read: record it without a call.
    EmptyFirstPoll,
    Poll(Reason),
}

/// What the exporter knows of the association (from its live state).
#[derive(Clone, Debug, Default)]
pub struct Known<'a> {
    /// A poll has started (the look-back start is fixed).
    pub started: bool,
    /// A run has paged to its end.
    pub complete: bool,
    /// The last poll succeeded.
    pub poll_success: bool,
    /// What the listing showed when it was last polled successfully.
    pub signature: Option<&'a str>,
    /// The newest CreatedTime or end time of an execution seen.
    pub seen_ms: Option<i64>,
    /// Executions not final yet.
    pub in_progress: u64,
    /// When it was last polled successfully (host clock).
    pub last_poll_success_ms: Option<i64>,
}

/// The settings the rules use, milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub initial_lookback_ms: i64,
    pub late_window_ms: i64,
    pub full_sweep_ms: i64,
}

/// Decides for `listed`; `aws_now_ms` is AWS's clock (to compare with its dates), `now_ms` the
/// host's (to compare with `last_poll_success_ms`).
pub fn decide(
    listed: &ListedAssociation,
    signature: &str,
    known: &Known<'_>,
    rules: &Rules,
    aws_now_ms: i64,
    now_ms: i64,
) -> Decision {
    if !known.started {
        let lookback_start = aws_now_ms.saturating_sub(rules.initial_lookback_ms);
        return if listed
            .last_execution_ms
            .is_none_or(|last| last <= lookback_start)
        {
            Decision::EmptyFirstPoll
        } else {
            Decision::Poll(Reason::First)
        };
    }
    if !known.complete || !known.poll_success {
        return Decision::Poll(Reason::Retry);
    }
    if known.signature != Some(signature) {
        return Decision::Poll(Reason::Changed);
    }
    if let Some(last) = listed.last_execution_ms {
        // A date far in the future (a bogus clock) is never explained: not chased.
        if known.seen_ms.is_none_or(|seen| last > seen)
            && last >= aws_now_ms.saturating_sub(rules.late_window_ms)
            && last <= aws_now_ms.saturating_add(crate::tracker::FUTURE_TOLERANCE_MS)
        {
            return Decision::Poll(Reason::Unexplained);
        }
        // Runs older than `last` may become visible up to the window after it: once the window
        // has passed, one poll that started after its end sees them all.
        let window_end = last.saturating_add(rules.late_window_ms);
        let aws_offset_ms = aws_now_ms.saturating_sub(now_ms);
        if window_end <= aws_now_ms
            && known
                .last_poll_success_ms
                .is_some_and(|polled| polled.saturating_add(aws_offset_ms) < window_end)
        {
            return Decision::Poll(Reason::Late);
        }
    }
    if known.in_progress > 0 {
        return Decision::Poll(Reason::Pending);
    }
    let slot = sweep_slot(&listed.id, rules.full_sweep_ms, now_ms);
    if known.last_poll_success_ms.is_none_or(|last| last < slot) {
        return Decision::Poll(Reason::Sweep);
    }
    Decision::Skip
}

/// The latest sweep slot of `id` at or before `now_ms`: each association has one slot per
/// `period`, at its own phase (a hash of its ID), so that it is swept once a period at most
/// (never more than a period without a poll), and the sweeps of N associations are spread
/// evenly: N × interval / period per interval of `interval`, whatever came before.
fn sweep_slot(id: &str, period: i64, now_ms: i64) -> i64 {
    if period <= 0 {
        return now_ms;
    }
    let phase = spread(id, period);
    now_ms - (now_ms - phase).rem_euclid(period)
}

/// A stable offset in `0..range` for `id` (FNV-1a), spreading sweeps.
fn spread(id: &str, range: i64) -> i64 {
    if range <= 0 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % range as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const NOW: i64 = 1_800_000_000_000;
    const RULES: Rules = Rules {
        initial_lookback_ms: 60 * MINUTE,
        late_window_ms: 10 * MINUTE,
        full_sweep_ms: 60 * MINUTE,
    };

    fn listed(last: Option<i64>) -> ListedAssociation {
        ListedAssociation {
            id: "8dfe3659-4309-493a-8755-0123456789ab".into(),
            name: Some("patch".into()),
            document_name: "AWS-RunPatchBaseline".into(),
            document_version: None,
            association_version: Some("1".into()),
            schedule_expression: None,
            targets: String::new(),
            last_execution_ms: last,
            overview: "Success//".into(),
        }
    }

    fn polled<'a>(signature: &'a str, seen: Option<i64>) -> Known<'a> {
        Known {
            started: true,
            complete: true,
            poll_success: true,
            signature: Some(signature),
            seen_ms: seen,
            in_progress: 0,
            last_poll_success_ms: Some(NOW - MINUTE),
        }
    }

    fn decide_now(l: &ListedAssociation, known: &Known<'_>) -> Decision {
        decide(l, &l.signature(), known, &RULES, NOW, NOW)
    }

    #[test]
    fn a_first_look_polls_only_what_ran_within_the_look_back() {
        let fresh = Known::default();
        assert_eq!(decide_now(&listed(None), &fresh), Decision::EmptyFirstPoll);
        let old = listed(Some(NOW - 61 * MINUTE));
        assert_eq!(decide_now(&old, &fresh), Decision::EmptyFirstPoll);
        let recent = listed(Some(NOW - 59 * MINUTE));
        assert_eq!(decide_now(&recent, &fresh), Decision::Poll(Reason::First));
    }

    #[test]
    fn nothing_changed_nothing_read() {
        let l = listed(Some(NOW - 30 * MINUTE));
        let sig = l.signature();
        assert_eq!(
            decide_now(&l, &polled(&sig, Some(NOW - 30 * MINUTE))),
            Decision::Skip
        );
    }

    #[test]
    fn a_change_of_the_listing_is_polled() {
        let before = listed(Some(NOW - 30 * MINUTE));
        let sig = before.signature();
        let known = polled(&sig, Some(NOW - 30 * MINUTE));
        let ran = listed(Some(NOW - MINUTE));
        assert_eq!(decide_now(&ran, &known), Decision::Poll(Reason::Changed));
        let mut edited = before.clone();
        edited.association_version = Some("2".into());
        assert_eq!(decide_now(&edited, &known), Decision::Poll(Reason::Changed));
        let mut overview = before.clone();
        overview.overview = "Failed/Failed/Failed=1".into();
        assert_eq!(
            decide_now(&overview, &known),
            Decision::Poll(Reason::Changed)
        );
    }

    /// The listing reported a run the executions API did not show yet: asked again each
    /// listing while within the late-visibility window, then left to the sweep.
    #[test]
    fn a_run_not_visible_yet_is_chased_within_the_window() {
        let l = listed(Some(NOW - 2 * MINUTE));
        let sig = l.signature();
        let known = polled(&sig, Some(NOW - 30 * MINUTE));
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Unexplained));
        let old = listed(Some(NOW - 11 * MINUTE));
        let sig = old.signature();
        let known = polled(&sig, Some(NOW - 30 * MINUTE));
        assert_eq!(decide_now(&old, &known), Decision::Skip);
    }

    /// An older run that becomes visible after a newer one changes nothing in the listing: one
    /// poll once the window after the newest `LastExecutionDate` has passed finds it, and
    /// only one.
    #[test]
    fn the_end_of_the_late_visibility_window_is_polled_once() {
        let l = listed(Some(NOW - 10 * MINUTE - 1));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 10 * MINUTE - 1));
        // Last polled when the run was listed: the window has ended since.
        known.last_poll_success_ms = Some(NOW - 10 * MINUTE);
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Late));
        // Polled after the window's end: nothing more to wait for.
        known.last_poll_success_ms = Some(NOW - 1);
        assert_eq!(decide_now(&l, &known), Decision::Skip);
        // The window has not ended yet: not yet.
        let recent = listed(Some(NOW - 5 * MINUTE));
        let sig = recent.signature();
        let mut known = polled(&sig, Some(NOW - 5 * MINUTE));
        known.last_poll_success_ms = Some(NOW - 5 * MINUTE);
        assert_eq!(decide_now(&recent, &known), Decision::Skip);
        // The window is on AWS's clock: with the host 3 minutes behind AWS, a poll at host
        // time NOW - 9 min was at AWS time NOW - 6 min, after the window's end (NOW - 7 min).
        let l = listed(Some(NOW - 17 * MINUTE));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 17 * MINUTE));
        known.last_poll_success_ms = Some(NOW - 9 * MINUTE);
        let host_now = NOW - 3 * MINUTE;
        assert_eq!(
            decide(&l, &sig, &known, &RULES, NOW, host_now),
            Decision::Skip
        );
        known.last_poll_success_ms = Some(NOW - 12 * MINUTE);
        assert_eq!(
            decide(&l, &sig, &known, &RULES, NOW, host_now),
            Decision::Poll(Reason::Late)
        );
    }

    #[test]
    fn a_bogus_future_date_is_not_chased() {
        let future = listed(Some(NOW + 365 * 24 * 60 * MINUTE));
        let sig = future.signature();
        let known = polled(&sig, Some(NOW - 30 * MINUTE));
        assert_eq!(decide_now(&future, &known), Decision::Skip);
    }

    #[test]
    fn pending_executions_and_failed_polls_are_polled() {
        let l = listed(Some(NOW - 30 * MINUTE));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 30 * MINUTE));
        known.in_progress = 1;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Pending));
        known.in_progress = 0;
        known.poll_success = false;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Retry));
    }

    /// 1,000 quiet associations listed every minute for 5 hours: each is swept once per hour
    /// (never more than an hour without a poll), and no listing sweeps more than a few more
    /// than the 1,000 × 1 min / 60 min ≈ 16.7 of an even spread.
    #[test]
    fn each_association_is_swept_once_a_period_and_the_sweeps_are_spread_evenly() {
        let n = 1_000;
        let mut last: Vec<i64> = vec![NOW; n];
        let ids: Vec<String> = (0..n)
            .map(|i| format!("{i:08x}-4309-493a-8755-0123456789ab"))
            .collect();
        let mut per_listing = Vec::new();
        let mut longest_gap = 0;
        let mut sweeps = 0;
        for minute in 1..=300 {
            let now = NOW + minute * MINUTE;
            let mut swept = 0;
            for (i, id) in ids.iter().enumerate() {
                let mut l = listed(Some(NOW - 120 * MINUTE));
                l.id = id.clone();
                let sig = l.signature();
                let mut known = polled(&sig, Some(NOW - 120 * MINUTE));
                known.last_poll_success_ms = Some(last[i]);
                if decide(&l, &sig, &known, &RULES, now, now) == Decision::Poll(Reason::Sweep) {
                    longest_gap = longest_gap.max(now - last[i]);
                    last[i] = now;
                    swept += 1;
                }
            }
            sweeps += swept;
            per_listing.push(swept);
        }
        assert!(longest_gap <= 60 * MINUTE, "longest gap {longest_gap} ms");
        assert!(
            (4 * n..=5 * n).contains(&sweeps),
            "{sweeps} sweeps of {n} associations in 5 periods"
        );
        let most = *per_listing.iter().max().unwrap();
        assert!(
            most <= 35,
            "at most {most} sweeps in one listing: {per_listing:?}"
        );
        // After the first period, the even spread: the mean is N × interval / period.
        let mean = per_listing[60..].iter().sum::<usize>() as f64 / 240.0;
        assert!((mean - n as f64 / 60.0).abs() < 0.5, "mean {mean}");
    }
}
