//! The counting rules, exhaustively: watermarks, pending and stuck executions, restore.

use super::*;
use crate::model::Status;

const NOW: i64 = 1_800_000_000_000;

fn exec(id: &str, status: &str, created_ms: i64) -> Execution {
    Execution {
        id: id.to_string(),
        status: Status::parse(status),
        created_ms,
        ended_ms: None,
        resources: Vec::new(),
        triggered_alarms: Vec::new(),
    }
}

fn counted(o: &Observation) -> bool {
    matches!(o, Observation::Counted { .. })
}

/// One complete run over `visible` (as the API would filter it) at `now`.
fn poll(t: &mut Tracker, visible: &[Execution], now: i64) -> Vec<Observation> {
    let start = t.begin_poll(now);
    let out = visible
        .iter()
        .filter(|e| e.created_ms > start.since_ms)
        .map(|e| t.observe(e, now))
        .collect();
    assert_eq!(t.next_page(None), Paging::End);
    out
}

#[test]
fn first_poll_reaches_back_the_lookback_from_now() {
    let mut t = Tracker::new(1_000, 600);
    let start = t.begin_poll(NOW);
    assert_eq!(start.since_ms, NOW - 1_000);
    assert_eq!(
        t.observe(&exec("old", "Success", NOW - 1_000), NOW),
        Observation::OutOfWindow
    );
    assert!(counted(&t.observe(&exec("a", "Success", NOW - 999), NOW)));
}

#[test]
fn newest_final_is_by_created_time_not_by_arrival() {
    let mut t = Tracker::new(10_000, 1_000);
    t.begin_poll(NOW);
    let newest = |o| match o {
        Observation::Counted { newest, .. } => newest,
        other => panic!("{other:?}"),
    };
    assert!(newest(t.observe(&exec("b", "Success", NOW - 200), NOW)));
    assert!(!newest(t.observe(&exec("a", "Failed", NOW - 300), NOW)));
    assert!(newest(t.observe(&exec("c", "Failed", NOW - 200), NOW)));
    assert_eq!(t.last_success_ms(), Some(NOW - 200));
}

/// A run interrupted half-way keeps its place: the next poll resumes with the token, and
/// only the run that reaches the end moves the watermark.
#[test]
fn an_interrupted_run_is_resumed_not_restarted() {
    let mut t = Tracker::new(10_000, 0);
    let start = t.begin_poll(NOW);
    assert_eq!(start.token, None);
    assert!(counted(&t.observe(&exec("p1", "Success", NOW - 10), NOW)));
    assert_eq!(t.next_page(Some("B".into())), Paging::More("B".into()));
    // The request with token B fails: the poll ends; the next resumes at B.
    let again = t.begin_poll(NOW + 60_000);
    assert_eq!(again.token.as_deref(), Some("B"));
    assert_eq!(again.since_ms, start.since_ms);
    assert_eq!(t.watermark_ms(), Some(NOW - 10_000), "not moved yet");
    assert!(counted(&t.observe(&exec("p2", "Failed", NOW - 20), NOW)));
    assert_eq!(t.next_page(None), Paging::End);
    assert_eq!(t.watermark_ms(), Some(NOW - 10));
}

#[test]
fn repeated_or_cycling_tokens_end_the_run_without_moving_the_watermark() {
    for cycle in [vec!["A", "A"], vec!["A", "B", "A"]] {
        let mut t = Tracker::new(10_000, 0);
        t.begin_poll(NOW);
        t.observe(&exec("x", "Success", NOW - 5), NOW);
        let mut last = Paging::End;
        for token in &cycle {
            last = t.next_page(Some(token.to_string()));
        }
        assert_eq!(last, Paging::Repeated, "{cycle:?}");
        assert_eq!(t.watermark_ms(), Some(NOW - 10_000));
        assert!(!t.run_open());
        // The next poll starts a new run from the same point; what was counted stays so.
        let start = t.begin_poll(NOW + 1);
        assert_eq!((start.since_ms, start.token), (NOW - 10_000, None));
        assert_eq!(
            t.observe(&exec("x", "Success", NOW - 5), NOW),
            Observation::AlreadyCounted
        );
    }
}

/// Widening the window (reload or restart, 2 minutes to an hour) must not move `since`
/// back past IDs already forgotten.
#[test]
fn a_wider_window_never_reaches_below_what_is_remembered() {
    let mut t = Tracker::new(3_600_000, 120_000);
    let history: Vec<_> = (0..60)
        .map(|i| exec(&format!("e{i}"), "Success", NOW - 3_000_000 + i * 50_000))
        .collect();
    let obs = poll(&mut t, &history, NOW);
    assert_eq!(obs.iter().filter(|o| counted(o)).count(), 60);
    poll(&mut t, &history, NOW + 1); // forgets all but the last 2 minutes
    let remembered = t.remembered();
    t.set_late_window(3_600_000);
    let saved = t.save();
    for mut t in [t.clone(), Tracker::restore(saved, 3_600_000, 3_600_000)] {
        let obs = poll(&mut t, &history, NOW + 2);
        assert_eq!(
            obs.iter().filter(|o| counted(o)).count(),
            0,
            "counted twice"
        );
        assert_eq!(t.remembered(), remembered);
    }
}

/// A stuck execution does not pin the window: once the window has passed it, it is
/// re-checked by ID, less often as it ages, and counted when it finally ends.
#[test]
fn a_stuck_execution_is_rechecked_by_id_and_the_window_moves_on() {
    let mut t = Tracker::new(3_600_000, 60_000);
    poll(&mut t, &[exec("stuck", "InProgress", NOW - 1_000)], NOW);
    let mut now = NOW;
    let mut checks = Vec::new();
    let mut done = Vec::new();
    for minute in 1..=600 {
        now = NOW + minute * 60_000;
        let fresh = exec(&format!("n{minute}"), "Success", now - 1_000);
        poll(&mut t, &[fresh], now);
        if minute >= 2 {
            assert!(t.since_ms() > NOW, "since moved past the stuck execution");
        }
        for id in t.due_rechecks(now, 5) {
            checks.push(minute);
            let answer = exec(
                &id,
                if minute < 590 { "InProgress" } else { "Failed" },
                NOW - 1_000,
            );
            done.push(t.observe_recheck(&id, Some(&answer), now));
        }
    }
    // Every minute at first, then spaced by a quarter of its age, 15 minutes at most:
    // about 50 checks over 10 hours instead of 600.
    assert!(checks.len() < 60, "{} re-checks", checks.len());
    assert_eq!(done.iter().filter(|o| counted(o)).count(), 1);
    assert_eq!(t.in_progress(), 0);
    assert!(t.remembered() < 5, "{} IDs remembered", t.remembered());
    let _ = now;
}

#[test]
fn executions_pending_beyond_the_horizon_are_abandoned() {
    let mut t = Tracker::new(3_600_000, 0);
    poll(&mut t, &[exec("stuck", "InProgress", NOW - 1)], NOW);
    assert_eq!(t.begin_poll(NOW + PENDING_HORIZON_MS - 2).abandoned, 0);
    t.next_page(None);
    assert_eq!(t.begin_poll(NOW + PENDING_HORIZON_MS + 1).abandoned, 1);
    assert_eq!(t.in_progress(), 0);
}

/// A final execution dated 2100 is counted once, and the watermark stays where it was.
#[test]
fn a_future_date_is_counted_once_and_never_moves_the_watermark() {
    let mut t = Tracker::new(3_600_000, 60_000);
    let bogus = exec("bogus", "Failed", 4_102_444_800_000);
    let real = exec("real", "Success", NOW - 5_000);
    let obs = poll(&mut t, &[bogus.clone(), real.clone()], NOW);
    assert_eq!(
        obs[0],
        Observation::Counted {
            status: FinalStatus::Failed,
            newest: false,
            late_ms: None,
            future: true
        }
    );
    assert_eq!(t.watermark_ms(), Some(NOW - 5_000));
    for i in 1..5 {
        let later = exec(&format!("l{i}"), "Success", NOW + i * 60_000 - 1);
        let obs = poll(&mut t, &[bogus.clone(), later], NOW + i * 60_000);
        assert_eq!(obs[0], Observation::AlreadyCounted);
        assert!(counted(&obs[1]));
        assert_eq!(t.watermark_ms(), Some(NOW + i * 60_000 - 1));
    }
}

#[test]
fn executions_first_seen_behind_the_watermark_are_reported_late() {
    let mut t = Tracker::new(3_600_000, 600_000);
    poll(&mut t, &[exec("b", "Success", NOW - 1_000)], NOW);
    let obs = poll(
        &mut t,
        &[
            exec("b", "Success", NOW - 1_000),
            exec("late", "Failed", NOW - 91_000),
        ],
        NOW + 1,
    );
    assert_eq!(obs[0], Observation::AlreadyCounted);
    assert_eq!(
        obs[1],
        Observation::Counted {
            status: FinalStatus::Failed,
            newest: false,
            late_ms: Some(90_000),
            future: false
        }
    );
}

#[test]
fn counted_ids_are_forgotten_once_the_window_has_passed_them() {
    let mut t = Tracker::new(100_000, 100);
    let execs: Vec<_> = (1..=1_000)
        .map(|i| exec(&format!("e{i}"), "Success", NOW - 100_000 + i * 10))
        .collect();
    poll(&mut t, &execs, NOW);
    assert_eq!(t.remembered(), 1_000);
    t.begin_poll(NOW + 1);
    // Only those newer than the watermark minus the window (100 ms) remain.
    assert_eq!(t.remembered(), 10);
}

#[test]
fn unknown_status_is_pending_not_an_error() {
    let mut t = Tracker::new(1_000, 0);
    assert_eq!(
        poll(&mut t, &[exec("a", "SomethingNew", NOW - 5)], NOW),
        [Observation::Pending { late_ms: None }]
    );
    assert_eq!(t.in_progress(), 1);
}

#[test]
fn saved_and_restored_trackers_behave_the_same() {
    let mut t = Tracker::new(3_600_000, 60_000);
    poll(
        &mut t,
        &[
            exec("a", "Success", NOW - 10),
            exec("p", "Pending", NOW - 20),
        ],
        NOW,
    );
    let mut restored = Tracker::restore(t.save(), 3_600_000, 60_000);
    let next = [
        exec("a", "Success", NOW - 10),
        exec("p", "Failed", NOW - 20),
    ];
    assert_eq!(
        poll(&mut restored, &next, NOW + 1),
        poll(&mut t, &next, NOW + 1)
    );
    assert_eq!(restored.save(), t.save());
}

/// Model check: random histories (executions that start pending, finish later, become
/// visible late within the window, get stuck for a while, or are dated far in the future)
/// polled with random page sizes, polls that fail half-way (the run resumes), stale and
/// repeated tokens, random changes of the late window (reloads) and of the look-back,
/// and crashes that restore the last save. Published numbers are those of the last save;
/// they must never go down, and must end equal to the truth.
#[test]
fn random_histories_configs_faults_and_crashes_are_counted_exactly_once() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    struct World {
        /// execution, visible from, final from, final status
        history: Vec<(Execution, i64, i64, FinalStatus)>,
    }
    impl World {
        fn status_at(&self, i: usize, now: i64) -> Execution {
            let (e, _, fin, status) = &self.history[i];
            let mut e = e.clone();
            if *fin <= now {
                e.status = Status::Final(*status);
            }
            e
        }
        /// What DescribeAssociationExecutions returns at `now`, newest first.
        fn view(&self, since: i64, now: i64) -> Vec<Execution> {
            let mut v: Vec<Execution> = (0..self.history.len())
                .filter(|i| self.history[*i].1 <= now && self.history[*i].0.created_ms > since)
                .map(|i| self.status_at(i, now))
                .collect();
            v.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
            v
        }
        fn by_id(&self, id: &str, now: i64) -> Option<Execution> {
            let i = self.history.iter().position(|h| h.0.id == id)?;
            (self.history[i].1 <= now).then(|| self.status_at(i, now))
        }
    }
    type Counts = BTreeMap<FinalStatus, u64>;

    for seed in 0..400u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        // Executions become visible at most 500 ms late; every window used is larger (a
        // window shrunk below the real lateness loses executions, as documented).
        let mut window = rng.random_range(1_000..3_000i64);
        let mut lookback = rng.random_range(1_000..20_000i64);
        let start_now = 1_000_000i64;
        let mut t = Tracker::new(lookback, window);
        let mut world = World {
            history: Vec::new(),
        };
        // The last save: the tracker's durable part and the numbers published with it.
        let mut saved: Option<(Saved, Counts)> = None;
        let mut live_counts: Counts = BTreeMap::new();
        let mut published: Counts = BTreeMap::new();
        let mut now = start_now;
        let mut next_id = 0;
        let mut floor = None;

        let observe = |t: &mut Tracker, e: &Execution, now: i64, counts: &mut Counts| {
            if let Observation::Counted { status, .. } = t.observe(e, now) {
                *counts.entry(status).or_default() += 1;
            }
        };
        for _round in 0..rng.random_range(10..60) {
            let step = rng.random_range(1..2_500);
            now += step;
            for _ in 0..rng.random_range(0..8) {
                let future = rng.random_bool(0.03);
                let created = if future {
                    now + 1_000_000_000 + rng.random_range(0..1_000)
                } else {
                    now - rng.random_range(0..step)
                };
                let visible = created.min(now) + rng.random_range(0..=500);
                let stuck = rng.random_bool(0.1);
                let fin = created.min(now)
                    + if stuck {
                        rng.random_range(20_000..60_000)
                    } else {
                        rng.random_range(0..5_000)
                    };
                let status = FinalStatus::ALL[rng.random_range(0..5)];
                let e = exec(&format!("x{next_id}"), "InProgress", created);
                world.history.push((e, visible, fin, status));
                next_id += 1;
            }
            // Operator actions: a reload with another window, a restart with another
            // look-back (the floor stays), or a crash back to the last save.
            match rng.random_range(0..20) {
                0 => {
                    window = rng.random_range(1_000..3_000);
                    t.set_late_window(window);
                }
                1 => {
                    lookback = rng.random_range(1_000..20_000);
                    window = rng.random_range(1_000..3_000);
                    let (s, counts) = (t.save(), live_counts.clone());
                    t = Tracker::restore(s.clone(), lookback, window);
                    saved = Some((s, counts));
                }
                2 => {
                    // Crash: back to the last save (or to nothing).
                    match &saved {
                        Some((s, counts)) => {
                            t = Tracker::restore(s.clone(), lookback, window);
                            live_counts = counts.clone();
                        }
                        None => {
                            t = Tracker::new(lookback, window);
                            live_counts.clear();
                            floor = None;
                        }
                    }
                }
                _ => {}
            }
            // A poll: pages of random size, maybe failing, maybe a stale or repeated token.
            let start = t.begin_poll(now);
            floor.get_or_insert(start.since_ms);
            let view = world.view(start.since_ms, now);
            let page_size = rng.random_range(1..6);
            let mut offset: usize = start.token.as_deref().map_or(0, |t| t.parse().unwrap());
            loop {
                if rng.random_bool(0.15) {
                    break; // the request fails: the run stays open
                }
                if rng.random_bool(0.03) {
                    t.restart_run(); // InvalidNextToken: page again from the start
                    offset = 0;
                    continue;
                }
                let end = (offset + page_size).min(view.len());
                for e in &view[offset.min(end)..end] {
                    observe(&mut t, e, now, &mut live_counts);
                }
                let token = if rng.random_bool(0.02) {
                    Some(offset.to_string()) // the API repeats a token
                } else {
                    (end < view.len()).then(|| end.to_string())
                };
                match t.next_page(token) {
                    Paging::More(next) => offset = next.parse().unwrap(),
                    Paging::End | Paging::Repeated => break,
                }
            }
            for id in t.due_rechecks(now, 5) {
                let found = world.by_id(&id, now);
                if let Observation::Counted { status, .. } =
                    t.observe_recheck(&id, found.as_ref(), now)
                {
                    *live_counts.entry(status).or_default() += 1;
                }
            }
            // A save now and then: published numbers are exactly the saved ones.
            if rng.random_bool(0.4) {
                saved = Some((t.save(), live_counts.clone()));
                let counts = live_counts.clone();
                for (status, n) in &counts {
                    assert!(
                        *n >= published.get(status).copied().unwrap_or(0),
                        "seed {seed}: {status} went down"
                    );
                }
                published = counts;
            }
        }
        // Everything finishes and is visible; polls catch up (stuck ones via re-checks).
        now += 100_000;
        for _ in 0..200 {
            let start = t.begin_poll(now);
            let view = world.view(start.since_ms, now);
            for e in &view {
                observe(&mut t, e, now, &mut live_counts);
            }
            assert_eq!(t.next_page(None), Paging::End);
            for id in t.due_rechecks(now, 5) {
                let found = world.by_id(&id, now);
                if let Observation::Counted { status, .. } =
                    t.observe_recheck(&id, found.as_ref(), now)
                {
                    *live_counts.entry(status).or_default() += 1;
                }
            }
            if t.in_progress() == 0 {
                break;
            }
            now += 60_000;
        }
        assert_eq!(t.in_progress(), 0, "seed {seed}");
        let floor = t.floor_ms.unwrap();
        let mut truth: Counts = BTreeMap::new();
        for (e, _, _, status) in &world.history {
            if e.created_ms > floor {
                *truth.entry(*status).or_default() += 1;
            }
        }
        assert_eq!(live_counts, truth, "seed {seed}");
        for (status, n) in &published {
            assert!(
                live_counts[status] >= *n,
                "seed {seed}: {status} went down at the end"
            );
        }
    }
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A tracker that counted `a` six days ago and was saved then, restored now.
fn six_days_old(max_backfill: i64, resume: Resume) -> Tracker {
    let mut t = Tracker::new(7 * DAY, 600_000).with_max_backfill(max_backfill);
    poll(
        &mut t,
        &[exec("a", "Success", NOW - 6 * DAY)],
        NOW - 6 * DAY,
    );
    let mut t = Tracker::restore(t.save(), 7 * DAY, 600_000).with_max_backfill(max_backfill);
    t.resume_as(resume);
    t
}

/// Restored state last current six days ago reads back `max_backfill` only, and says what it
/// skipped; state current a minute ago reads on from its (old) watermark as any poll does.
#[test]
fn old_retained_state_reads_no_further_back_than_max_backfill() {
    let history = [
        exec("a", "Success", NOW - 6 * DAY),
        exec("skipped", "Failed", NOW - 2 * DAY),
        exec("in", "Failed", NOW - HOUR / 2),
    ];
    let old = Resume::Retained {
        current_ms: NOW - 6 * DAY,
        sharded: false,
    };
    let mut t = six_days_old(HOUR, old);
    let start = t.begin_poll(NOW);
    assert_eq!(start.since_ms, NOW - HOUR);
    assert_eq!(
        start.truncated,
        Some(Truncated {
            watermark_ms: Some(NOW - 6 * DAY),
            would_start_ms: NOW - 6 * DAY - 600_000,
            start_ms: NOW - HOUR,
        })
    );
    assert_eq!(t.observe(&history[1], NOW), Observation::OutOfWindow);
    assert!(counted(&t.observe(&history[2], NOW)));
    assert_eq!(t.next_page(None), Paging::End);
    assert_eq!(t.resume(), None, "bounded once");
    assert_eq!(t.begin_poll(NOW + 1).truncated, None);

    // The same watermark, but state current a minute ago: nothing is cut.
    let current = Resume::Retained {
        current_ms: NOW - 60_000,
        sharded: false,
    };
    let mut t = six_days_old(HOUR, current);
    let start = t.begin_poll(NOW);
    assert_eq!(start.truncated, None);
    assert_eq!(start.since_ms, NOW - 6 * DAY - 600_000);
}

/// With other shards, state older than `max_backfill` may have been counted by another shard
/// meanwhile: it is a return (absorbed), not a bounded backfill.
#[test]
fn old_retained_state_with_other_shards_is_a_return() {
    let old = Resume::Retained {
        current_ms: NOW - 6 * DAY,
        sharded: true,
    };
    let mut t = six_days_old(HOUR, old);
    t.settle(NOW);
    assert_eq!(t.resume(), Some(Resume::Return { at_ms: Some(NOW) }));
    let start = t.begin_poll(NOW + 5_000);
    assert_eq!(
        start.since_ms,
        NOW - HOUR,
        "a return reads no further back either"
    );
    assert_eq!(start.truncated, None);
    assert!(matches!(
        t.observe(&exec("in", "Failed", NOW - HOUR / 2), NOW + 5_000),
        Observation::Absorbed {
            status: FinalStatus::Failed,
            newest: true
        }
    ));
    assert!(counted(
        &t.observe(&exec("new", "Failed", NOW + 1), NOW + 5_000)
    ));
    assert_eq!(t.next_page(None), Paging::End);
    assert_eq!(
        t.take_returned(),
        Some(Returned {
            at_ms: NOW,
            absorbed: 1
        })
    );
    assert_eq!(t.take_returned(), None, "reported once");
}

/// A return: what was final before ownership came back is absorbed (the other owner counted
/// it), what was still running then is counted when it ends, what starts later is counted;
/// a restart in the middle of the return's first run keeps its moment.
#[test]
fn a_return_absorbs_what_ended_before_it_and_counts_what_ends_after() {
    let mut t = Tracker::new(DAY, 600_000);
    // Owned until an hour ago: counted `a`, `p` still running.
    poll(
        &mut t,
        &[
            exec("a", "Success", NOW - HOUR - 60_000),
            exec("p", "InProgress", NOW - HOUR - 30_000),
        ],
        NOW - HOUR,
    );
    // Moved away (retired, marked), then back: the first listing that watches it settles.
    t.resume_as(Resume::Return { at_ms: None });
    t.resume_as(Resume::Retained {
        current_ms: NOW,
        sharded: true,
    });
    t.settle(NOW);
    assert_eq!(t.resume(), Some(Resume::Return { at_ms: Some(NOW) }));
    let visible = [
        exec("a", "Success", NOW - HOUR - 60_000),
        exec("p", "Failed", NOW - HOUR - 30_000),
        exec("b", "Failed", NOW - 20 * 60_000),
        exec("r", "InProgress", NOW - 60_000),
        exec("n", "TimedOut", NOW + 10_000),
    ];
    let start = t.begin_poll(NOW + 20_000);
    assert_eq!(
        t.in_progress(),
        0,
        "what was running then is the other owner's to count"
    );
    let seen: Vec<Observation> = visible
        .iter()
        .filter(|e| e.created_ms > start.since_ms)
        .map(|e| t.observe(e, NOW + 20_000))
        .collect();
    assert!(matches!(seen[0], Observation::AlreadyCounted));
    assert!(matches!(seen[1], Observation::Absorbed { .. }), "{seen:?}");
    assert!(matches!(seen[2], Observation::Absorbed { .. }), "{seen:?}");
    assert!(matches!(seen[3], Observation::Pending { late_ms: None }));
    assert!(counted(&seen[4]), "created after the return: counted");
    // A restart before the run ends: the return, its moment and what its run found running
    // are in the saved state (with the numbers counted so far).
    let mut t = Tracker::restore(t.save(), DAY, 600_000);
    assert_eq!(t.resume(), Some(Resume::Return { at_ms: Some(NOW) }));
    assert_eq!(t.in_progress(), 1);
    let later = NOW + 60_000;
    let start = t.begin_poll(later);
    let seen: Vec<(String, Observation)> = [
        exec("b", "Failed", NOW - 20 * 60_000),
        exec("r", "Success", NOW - 60_000),
        exec("n", "TimedOut", NOW + 10_000),
    ]
    .into_iter()
    .filter(|e| e.created_ms > start.since_ms)
    .map(|e| (e.id.clone(), t.observe(&e, later)))
    .collect();
    assert!(matches!(seen[0].1, Observation::AlreadyCounted), "{seen:?}");
    assert!(
        counted(&seen[1].1),
        "running at the return, ended after: {seen:?}"
    );
    assert!(matches!(seen[2].1, Observation::AlreadyCounted), "{seen:?}");
    assert_eq!(t.next_page(None), Paging::End);
    assert_eq!(t.resume(), None);
    assert_eq!(
        t.take_returned(),
        Some(Returned {
            at_ms: NOW,
            absorbed: 0
        }),
        "the run that ended counted its own absorptions (before the restart: 2)"
    );
    // Later runs count as usual.
    t.begin_poll(later + 1);
    assert!(counted(
        &t.observe(&exec("m", "Failed", NOW + 30_000), later + 1)
    ));
}

/// What is known about retained state merges: a return stays a return, the oldest
/// `current` wins.
#[test]
fn resume_facts_merge_to_the_safe_side() {
    let mut t = Tracker::new(HOUR, 0);
    t.resume_as(Resume::Retained {
        current_ms: 5,
        sharded: false,
    });
    t.resume_as(Resume::Retained {
        current_ms: 9,
        sharded: true,
    });
    assert_eq!(
        t.resume(),
        Some(Resume::Retained {
            current_ms: 5,
            sharded: true
        })
    );
    t.resume_as(Resume::Return { at_ms: None });
    t.resume_as(Resume::Retained {
        current_ms: 1,
        sharded: false,
    });
    assert_eq!(t.resume(), Some(Resume::Return { at_ms: None }));
}
