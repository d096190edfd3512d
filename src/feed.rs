//! The change feed: from what one `ListAssociations` listing shows of an association and what
//! the exporter already knows of it, whether its executions need a poll now, and why. Pure.
//!
//! An association is polled when
//! - it has never been polled (`first`), unless the listing shows it has not run since the
//!   look-back start: then there is nothing to count and the first poll is recorded without a
//!   call (its look-back start is fixed then, so a run already going is counted when it ends);
//! - its last poll failed or stopped early (`retry`; the caller spaces retries out);
//! - its `LastExecutionDate`, `AssociationVersion` or `Overview` changed since its last
//!   successful poll (`changed`), unless polls have already read what the change shows
//!   ([`explained`]: a State Manager event's poll read the run's end before a listing showed
//!   it): the version is the one polled, the date is the newest `CreatedTime` or the newest
//!   end of a final execution read, and the `Overview`'s status is the newest execution's as
//!   read. A date, status or version the polls did not read is polled at once, as before;
//! - its `LastExecutionDate` is newer than every execution seen so far and still within the
//!   late-visibility window: the run it reports has not become visible yet (`unexplained`);
//! - the late-visibility window after its `LastExecutionDate` has passed and no poll has
//!   succeeded since (`late`): an older run that becomes visible after a newer one changes
//!   nothing in the listing, so one poll at the window's end finds every run that became
//!   visible within it (one extra poll per listed run, never a sweep's wait). Not when State
//!   Manager events announced the runs up to that date and polls read every run an event
//!   announced (`events_read_through`): then there is no announced run left to find, and a
//!   run whose event was lost and which became visible late is found by the next poll of the
//!   association (the next run's, or the sweep's), which reads as far back as the late poll
//!   would have (the watermark has not moved since);
//! - it has executions not final yet and a re-poll is due (`pending`): a run's end usually
//!   moves the listing (the `Overview` follows the newest run in both `LastExecutionDate` modes,
//!   the date too when it is set at the end), and then `changed` polls at once; the re-polls are
//!   a safety net for ends the listing does not show (an older run ending while a newer one is
//!   the listing's; with `LastExecutionDate` set at the start, or an end without an end time).
//!   So they are sparse, and sparser as the run ages ([`pending_spacing_ms`]): one is due once
//!   the newest execution in progress is [`PENDING_GROWTH`] times as old as at the last
//!   successful poll, at least a quarter of `pending_recheck_max_interval` and at most all of
//!   it (and at most `full_sweep_interval`) after that poll. An association with executions in
//!   progress is polled by this rule only, never by the sweep, whose bound it keeps;
//! - its sweep slot has passed since its last successful poll (`sweep`): the scope gives each
//!   association one slot per sweep period, evenly spread, and caps the sweep polls per listing
//!   (`crate::scheduler`'s `sweep`): a safety net, which no rule above relies on.
//!
//! Whether AWS moves `LastExecutionDate` when a run starts or when it ends is not documented;
//! these rules count every execution exactly once either way (tests cover both).

use crate::model::{FinalStatus, ListedAssociation};
use crate::store::PollView;

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
    /// A State Manager event named it (`crate::events`): not a rule of the feed, which never
    /// decides it; the scope loop polls at once.
    Event,
    /// A short re-poll after an event's poll that found nothing the event announced (the run
    /// not visible yet): also the scope loop's, never the feed's (`crate::scheduler`).
    FollowUp,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::First,
        Reason::Retry,
        Reason::Changed,
        Reason::Unexplained,
        Reason::Late,
        Reason::Pending,
        Reason::Sweep,
        Reason::Event,
        Reason::FollowUp,
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
            Reason::Event => "event",
            Reason::FollowUp => "follow_up",
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
    /// CreatedTime of the newest of them (AWS's clock).
    pub newest_in_progress_ms: Option<i64>,
    /// When it was last polled successfully (host clock).
    pub last_poll_success_ms: Option<i64>,
    /// Its latest sweep slot at or before now (host clock); `None`: none yet.
    pub sweep_slot_ms: Option<i64>,
    /// What polls have read of its newest executions.
    pub view: PollView,
    /// State Manager events announced its runs up to its `LastExecutionDate`, and polls read
    /// every run they announced (`crate::scheduler`'s events): no `late` poll.
    pub events_read_through: bool,
}

/// The settings the rules use, milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub initial_lookback_ms: i64,
    pub late_window_ms: i64,
    pub full_sweep_ms: i64,
    /// `pending_recheck_max_interval`: the longest spacing of `pending` re-polls.
    pub pending_recheck_max_ms: i64,
}

/// A `pending` re-poll is due once the newest execution in progress is this many times as old
/// as at the last successful poll (within the bounds of [`pending_spacing_ms`]). With the
/// defaults (a 60 s `poll_interval`, a 1 h cap), a run in progress for 2 hours costs 4 polls:
/// its start, one a quarter of the cap later (or the `late` poll 10 min after a start that
/// moved `LastExecutionDate`, which is then 8 × 10 min old: past the cap), one the cap later,
/// its end. A smaller factor re-polls sooner after a start seen at a young age: 4 gives a 5th.
pub const PENDING_GROWTH: i64 = 8;

/// How long after the last successful poll, `age_at_last_ms` being the age of the newest
/// execution in progress then, a `pending` re-poll is due: `(PENDING_GROWTH - 1) × age`, at
/// least a quarter of the cap and at most the cap, the cap being the smaller of
/// `pending_recheck_max_interval` and `full_sweep_interval` (so that the sweep's bound holds
/// for associations the sweep leaves to this rule).
pub fn pending_spacing_ms(age_at_last_ms: i64, rules: &Rules) -> i64 {
    let cap = rules.pending_recheck_max_ms.min(rules.full_sweep_ms).max(0);
    age_at_last_ms
        .max(0)
        .saturating_mul(PENDING_GROWTH - 1)
        .clamp(cap / 4, cap)
}

/// Whether the `pending` re-poll of an association with executions in progress is due.
fn pending_due(known: &Known<'_>, rules: &Rules, aws_now_ms: i64, now_ms: i64) -> bool {
    let (Some(polled), Some(created)) = (known.last_poll_success_ms, known.newest_in_progress_ms)
    else {
        return true;
    };
    let aws_offset_ms = aws_now_ms.saturating_sub(now_ms);
    let age_at_last = polled.saturating_add(aws_offset_ms).saturating_sub(created);
    now_ms.saturating_sub(polled) >= pending_spacing_ms(age_at_last, rules)
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
    if known.signature != Some(signature) && !explained(listed, known) {
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
            && !known.events_read_through
            && known
                .last_poll_success_ms
                .is_some_and(|polled| polled.saturating_add(aws_offset_ms) < window_end)
        {
            return Decision::Poll(Reason::Late);
        }
    }
    if known.in_progress > 0 {
        return if pending_due(known, rules, aws_now_ms, now_ms) {
            Decision::Poll(Reason::Pending)
        } else {
            Decision::Skip
        };
    }
    if let Some(slot) = known.sweep_slot_ms {
        if known.last_poll_success_ms.is_none_or(|last| last < slot) {
            return Decision::Poll(Reason::Sweep);
        }
    }
    Decision::Skip
}

/// Whether polls have already read what the listing shows of `listed` (after a successful
/// poll): its `AssociationVersion` is the one last polled; its `LastExecutionDate` is exactly
/// the newest `CreatedTime` read or the newest end of a final execution read (AWS's date
/// follows one or the other: the newest run's start, or the newest end); and its `Overview`,
/// which follows the newest run by `CreatedTime`, has that run's status as read (`Success`
/// for Success and Skipped, `Failed` for the other final statuses, neither while it runs). A
/// run the polls have not read moves the date past both, or the status away from the one
/// read; runs older than the newest change nothing in the listing either way (`late`).
fn explained(listed: &ListedAssociation, known: &Known<'_>) -> bool {
    let (Some(polled), Some(last)) = (known.signature, listed.last_execution_ms) else {
        return false;
    };
    let Some((created, status)) = known.view.newest else {
        return false;
    };
    // `ListedAssociation::signature`: date|version|overview.
    let version = polled.split('|').nth(1).unwrap_or_default();
    let status_read = match status {
        Some(FinalStatus::Success | FinalStatus::Skipped) => "Success",
        Some(_) => "Failed",
        None => "",
    };
    let listed_status = listed.overview.split('/').next().unwrap_or_default();
    let status_consistent = match status_read {
        "" => !matches!(listed_status, "Success" | "Failed"),
        read => listed_status == read,
    };
    version == listed.association_version.as_deref().unwrap_or_default()
        && (last == created || known.view.newest_end_ms == Some(last))
        && status_consistent
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
        pending_recheck_max_ms: 60 * MINUTE,
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
            newest_in_progress_ms: None,
            last_poll_success_ms: Some(NOW - MINUTE),
            sweep_slot_ms: None,
            view: PollView::default(),
            events_read_through: false,
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

    /// #22: a poll that read a run's end before the listing showed it (a State Manager
    /// event's) explains the listing's change, whether the date moved at the run's start or at
    /// its end: no second poll. Whatever the polls did not read is polled at once.
    #[test]
    fn a_listing_change_a_poll_has_read_is_not_polled_again() {
        let before = listed(Some(NOW - 30 * MINUTE));
        let sig = before.signature();
        let mut known = polled(&sig, Some(NOW - MINUTE));
        // Read: a run created 2 minutes ago that ended successfully a minute ago.
        known.view = PollView {
            newest: Some((NOW - 2 * MINUTE, Some(FinalStatus::Success))),
            newest_end_ms: Some(NOW - MINUTE),
            ..PollView::default()
        };
        let shows = |last: i64, overview: &str| {
            let mut l = listed(Some(last));
            l.overview = overview.into();
            l
        };
        let at_end = shows(NOW - MINUTE, "Success/Success/Success=1");
        assert_eq!(decide_now(&at_end, &known), Decision::Skip);
        let at_start = shows(NOW - 2 * MINUTE, "Success/Success/Success=1");
        assert_eq!(decide_now(&at_start, &known), Decision::Skip);
        // A date the polls did not read: a newer run, or one between (not visible yet).
        for last in [NOW - MINUTE + 1, NOW - 90_000] {
            let l = shows(last, "Success/Success/Success=1");
            assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Changed));
        }
        // A status other than the one read: a newer run failed, or one is running.
        for overview in ["Failed/Failed/Failed=1", "Pending/InProgress/InProgress=1"] {
            let l = shows(NOW - MINUTE, overview);
            assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Changed));
        }
        // A new version.
        let mut edited = at_end.clone();
        edited.association_version = Some("2".into());
        assert_eq!(decide_now(&edited, &known), Decision::Poll(Reason::Changed));
        // Nothing read (a restart: the view is not kept): polled.
        let mut fresh = known.clone();
        fresh.view = PollView::default();
        assert_eq!(decide_now(&at_end, &fresh), Decision::Poll(Reason::Changed));
        // Read running: its start is explained, not its end.
        known.view = PollView {
            newest: Some((NOW - 2 * MINUTE, None)),
            newest_end_ms: Some(NOW - 30 * MINUTE),
            ..PollView::default()
        };
        known.in_progress = 1;
        known.newest_in_progress_ms = Some(NOW - 2 * MINUTE);
        let running = shows(NOW - 2 * MINUTE, "Pending/InProgress/InProgress=1");
        assert_eq!(decide_now(&running, &known), Decision::Skip);
        assert_eq!(
            decide_now(&at_start, &known),
            Decision::Poll(Reason::Changed)
        );
        // Timed out counts as Failed, Skipped as Success.
        known.in_progress = 0;
        known.view.newest = Some((NOW - 2 * MINUTE, Some(FinalStatus::TimedOut)));
        let failed = shows(NOW - 2 * MINUTE, "Failed/TimedOut/TimedOut=1");
        assert_eq!(decide_now(&failed, &known), Decision::Skip);
        assert_eq!(
            decide_now(&at_start, &known),
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

    /// With events that announced the runs up to `LastExecutionDate`, every announced run
    /// read, the window's end costs no `late` poll; without that evidence it does.
    #[test]
    fn runs_events_announced_and_polls_read_need_no_late_poll() {
        let l = listed(Some(NOW - 10 * MINUTE - 1));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 10 * MINUTE - 1));
        known.last_poll_success_ms = Some(NOW - 10 * MINUTE);
        known.events_read_through = true;
        assert_eq!(decide_now(&l, &known), Decision::Skip);
        known.events_read_through = false;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Late));
    }

    #[test]
    fn a_bogus_future_date_is_not_chased() {
        let future = listed(Some(NOW + 365 * 24 * 60 * MINUTE));
        let sig = future.signature();
        let known = polled(&sig, Some(NOW - 30 * MINUTE));
        assert_eq!(decide_now(&future, &known), Decision::Skip);
    }

    #[test]
    fn failed_polls_are_polled_again() {
        let l = listed(Some(NOW - 30 * MINUTE));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 30 * MINUTE));
        known.poll_success = false;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Retry));
        known.poll_success = true;
        known.complete = false;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Retry));
    }

    /// The listings of a run in progress that the listing does not move (no date, a constant
    /// signature), one a minute from `first_poll` (its age at the poll that saw it) to `until`
    /// minutes: the ages in minutes at which a `pending` re-poll is made.
    fn pending_polls(first_poll: i64, until: i64, rules: &Rules) -> Vec<i64> {
        let created = NOW - 3 * 60 * MINUTE;
        let l = listed(None);
        let sig = l.signature();
        let mut known = polled(&sig, None);
        known.in_progress = 1;
        known.newest_in_progress_ms = Some(created);
        known.last_poll_success_ms = Some(created + first_poll * MINUTE);
        let mut polls = Vec::new();
        for age in first_poll + 1..=until {
            let now = created + age * MINUTE;
            match decide(&l, &sig, &known, rules, now, now) {
                Decision::Poll(Reason::Pending) => {
                    polls.push(age);
                    known.last_poll_success_ms = Some(now);
                }
                Decision::Skip => {}
                other => panic!("at age {age} min: {other:?}"),
            }
        }
        polls
    }

    /// #21: a run in progress is re-polled less often as it ages (it used to be polled at every
    /// listing). Seen at its start (the `changed` poll a minute in), a 2-hour run is re-polled
    /// twice: a quarter of the cap later, then the cap later; with its `changed` polls at its
    /// start and end, 4 polls. Seen first at 10 min (the `late` poll after a start that moved
    /// `LastExecutionDate`), once. Seen an hour in, every cap.
    #[test]
    fn a_run_in_progress_is_re_polled_less_often_as_it_ages() {
        assert_eq!(pending_polls(1, 120, &RULES), vec![16, 76]);
        assert_eq!(pending_polls(10, 120, &RULES), vec![70]);
        assert_eq!(pending_polls(60, 240, &RULES), vec![120, 180, 240]);
        // Between a quarter of the cap and the cap: 7 × its age at the last poll.
        assert_eq!(pending_spacing_ms(0, &RULES), 15 * MINUTE);
        assert_eq!(pending_spacing_ms(-MINUTE, &RULES), 15 * MINUTE);
        assert_eq!(pending_spacing_ms(3 * MINUTE, &RULES), 21 * MINUTE);
        assert_eq!(pending_spacing_ms(9 * MINUTE, &RULES), 60 * MINUTE);
        // The cap is configurable, and never longer than the sweep interval (whose bound the
        // pending rule keeps, as it replaces the sweep for runs in progress).
        let small = Rules {
            pending_recheck_max_ms: 4 * MINUTE,
            ..RULES
        };
        assert_eq!(pending_polls(60, 72, &small), vec![64, 68, 72]);
        let short_sweep = Rules {
            full_sweep_ms: 20 * MINUTE,
            ..RULES
        };
        assert_eq!(pending_spacing_ms(9 * MINUTE, &short_sweep), 20 * MINUTE);
    }

    /// The newest execution in progress sets the pace: a new run next to an old stuck one is
    /// re-polled as a new run.
    #[test]
    fn the_newest_execution_in_progress_sets_the_pace() {
        let l = listed(None);
        let sig = l.signature();
        let mut known = polled(&sig, None);
        known.in_progress = 2;
        known.last_poll_success_ms = Some(NOW - 16 * MINUTE);
        // Polled when the newest was a minute old: due 15 minutes later.
        known.newest_in_progress_ms = Some(NOW - 17 * MINUTE);
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Pending));
        // Polled when it was 3 days old: not for an hour.
        known.newest_in_progress_ms = Some(NOW - 3 * 24 * 60 * MINUTE);
        assert_eq!(decide_now(&l, &known), Decision::Skip);
        // Not known (no CreatedTime): polled, as before.
        known.newest_in_progress_ms = None;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Pending));
    }

    /// The sparse schedule only spaces what the listing does not show: a change of the listing
    /// (the run's end moving the `Overview` or the date, a new version) is polled at once, and
    /// the sweep does not poll an association whose runs the pending rule re-polls.
    #[test]
    fn a_run_in_progress_yields_to_listing_changes_and_replaces_the_sweep() {
        let l = listed(Some(NOW - 120 * MINUTE));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 120 * MINUTE));
        known.in_progress = 1;
        known.newest_in_progress_ms = Some(NOW - 120 * MINUTE);
        known.last_poll_success_ms = Some(NOW - 59 * MINUTE);
        // The sweep alone would poll (its slot 30 minutes ago came after its last poll)...
        known.sweep_slot_ms = Some(NOW - 30 * MINUTE);
        let quiet = Known {
            in_progress: 0,
            newest_in_progress_ms: None,
            ..known.clone()
        };
        assert_eq!(decide_now(&l, &quiet), Decision::Poll(Reason::Sweep));
        // ...but the run in progress waits for its re-poll, due the cap after the last poll.
        assert_eq!(decide_now(&l, &known), Decision::Skip);
        known.last_poll_success_ms = Some(NOW - 60 * MINUTE);
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Pending));
        known.last_poll_success_ms = Some(NOW - MINUTE);
        let mut ended = l.clone();
        ended.overview = "Failed/Failed/Failed=1".into();
        assert_eq!(decide_now(&ended, &known), Decision::Poll(Reason::Changed));
        let ended = listed(Some(NOW - MINUTE));
        assert_eq!(decide_now(&ended, &known), Decision::Poll(Reason::Changed));
        known.poll_success = false;
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Retry));
    }

    /// The run's age is on AWS's clock, the time since the last poll on the host's.
    #[test]
    fn a_run_s_age_is_on_aws_s_clock() {
        let l = listed(None);
        let sig = l.signature();
        let mut known = polled(&sig, None);
        known.in_progress = 1;
        // The host is 5 minutes ahead of AWS. Polled at host NOW - 11 min = AWS NOW - 16 min,
        // when the run (created at AWS NOW - 17 min) was a minute old: due 15 minutes later.
        let host_now = NOW + 5 * MINUTE;
        known.newest_in_progress_ms = Some(NOW - 17 * MINUTE);
        known.last_poll_success_ms = Some(host_now - 16 * MINUTE);
        assert_eq!(
            decide(&l, &sig, &known, &RULES, NOW, host_now),
            Decision::Poll(Reason::Pending)
        );
        known.last_poll_success_ms = Some(host_now - 14 * MINUTE);
        assert_eq!(
            decide(&l, &sig, &known, &RULES, NOW, host_now),
            Decision::Skip
        );
        // Read on the host's clock alone, the run would have been 6 minutes old at that poll:
        // not due for 42 minutes.
        known.last_poll_success_ms = Some(host_now - 16 * MINUTE);
        assert_eq!(
            decide(&l, &sig, &known, &RULES, host_now, host_now),
            Decision::Skip
        );
    }

    /// A sweep poll is due once the association's sweep slot (given by its scope) has passed
    /// since its last successful poll, and only then.
    #[test]
    fn a_sweep_slot_passed_since_the_last_poll_is_swept() {
        let l = listed(Some(NOW - 120 * MINUTE));
        let sig = l.signature();
        let mut known = polled(&sig, Some(NOW - 120 * MINUTE));
        assert_eq!(decide_now(&l, &known), Decision::Skip, "no slot yet");
        known.sweep_slot_ms = Some(NOW - 2 * MINUTE);
        assert_eq!(decide_now(&l, &known), Decision::Skip, "polled since");
        known.sweep_slot_ms = Some(NOW - MINUTE);
        assert_eq!(decide_now(&l, &known), Decision::Skip, "polled at the slot");
        known.sweep_slot_ms = Some(NOW - MINUTE + 1);
        assert_eq!(decide_now(&l, &known), Decision::Poll(Reason::Sweep));
    }
}
