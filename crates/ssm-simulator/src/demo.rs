//! The demo scenario: five realistic associations with history and live activity, on the
//! simulator's clock.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::identity::Scope;
use crate::model::{stable_hash, uuid_like, SimAssociation, SimExecution, SimTarget};
use crate::simulator::Simulator;
use crate::state::Shared;

/// One association of the demo scenario.
#[derive(Clone, Copy, Debug)]
pub struct DemoAssociation {
    /// Association id (uuid).
    pub id: &'static str,
    /// `AssociationName`.
    pub name: &'static str,
    /// SSM document.
    pub document: &'static str,
    /// `ScheduleExpression`.
    pub schedule: &'static str,
    /// Configured alarms (at most one, as in SSM).
    pub alarms: &'static [&'static str],
}

/// The associations of the demo scenario ([`Simulator::start_demo_activity`]).
pub const DEMO_ASSOCIATIONS: &[DemoAssociation] = &[
    DemoAssociation {
        id: "3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f",
        name: "patch-linux-fleet",
        document: "AWS-RunPatchBaseline",
        schedule: "rate(30 minutes)",
        alarms: &["patch-linux-fleet-errors"],
    },
    DemoAssociation {
        id: "8b1e4f7a-2c3d-4a5b-8e9f-0a1b2c3d4e5f",
        name: "gather-software-inventory",
        document: "AWS-GatherSoftwareInventory",
        schedule: "rate(30 minutes)",
        alarms: &[],
    },
    DemoAssociation {
        id: "c7d8e9f0-1a2b-4c3d-9e4f-5a6b7c8d9e0f",
        name: "install-cloudwatch-agent",
        document: "AWS-ConfigureAWSPackage",
        schedule: "rate(1 hour)",
        alarms: &["cloudwatch-agent-install-failures"],
    },
    DemoAssociation {
        id: "e4f5a6b7-c8d9-4e0f-a1b2-c3d4e5f6a7b8",
        name: "update-ssm-agent",
        document: "AWS-UpdateSSMAgent",
        schedule: "cron(0 2 ? * SUN *)",
        alarms: &[],
    },
    DemoAssociation {
        id: "5a6b7c8d-9e0f-4a1b-b2c3-d4e5f6a7b8c9",
        name: "patch-windows-fleet",
        document: "AWS-RunPatchBaseline",
        schedule: "cron(0 3 ? * SAT *)",
        alarms: &["patch-windows-fleet-errors"],
    },
];

impl Simulator {
    /// Adds [`DEMO_ASSOCIATIONS`] with about 50 minutes of history and spawns a task (ended by
    /// [`Simulator::shutdown`]) that keeps creating and finishing executions: every 2-4 s a
    /// new `InProgress` execution finalised 3-10 s later, and one in eight instead a finished
    /// execution that only becomes visible a few seconds after it was created. Reproducible
    /// (seeded) apart from wall-clock timing. Times are on the simulator's clock
    /// ([`Simulator::set_clock_offset_ms`]). A second call does nothing.
    pub fn start_demo_activity(&self) {
        self.start_demo_activity_with_speedup(1);
    }

    /// [`Simulator::start_demo_activity`] with the live activity's pauses divided by
    /// `speedup` (at least 1), so tests can watch it without waiting seconds. The history and
    /// the wall-clock timestamps are unchanged.
    pub fn start_demo_activity_with_speedup(&self, speedup: u32) {
        {
            let mut state = self.shared().lock();
            if state.demo_started {
                return;
            }
            state.demo_started = true;
        }
        let mut rng = StdRng::seed_from_u64(0x55D_DE30);
        let now = self.now_ms();
        for (index, demo) in DEMO_ASSOCIATIONS.iter().enumerate() {
            let mut association = SimAssociation::new(demo.document)
                .with_name(demo.name)
                .with_schedule(demo.schedule);
            association.alarms = demo.alarms.iter().map(|a| (*a).to_owned()).collect();
            self.add_association(demo.id, association);
            let mut created = now - 50 * 60 * 1000 + rng.random_range(0..60_000);
            let mut run = 0;
            while created < now - 5 * 60 * 1000 {
                // Guarantee the rarer outcomes appear in the history at least once.
                let forced = match (index, run) {
                    (0, 2) => Some("Cancelled"),
                    (1, 3) => Some("Skipped"),
                    (2, 1) => Some("TimedOut"),
                    (4, 2) => Some("Failed"),
                    _ => None,
                };
                // The past: inserted without events, which only the live activity sends.
                let execution = demo_finished(&mut rng, demo, created, forced);
                if let Some(association) = self
                    .shared()
                    .lock()
                    .association_mut(&Scope::default(), demo.id)
                {
                    association.insert(execution);
                }
                created += rng.random_range(90_000..240_000);
                run += 1;
            }
        }
        tokio::spawn(demo_loop(self.shared().clone(), rng, speedup.max(1)));
    }
}

/// A demo execution in a final status, created at `created_ms`.
fn demo_finished(
    rng: &mut StdRng,
    demo: &DemoAssociation,
    created_ms: i64,
    forced: Option<&'static str>,
) -> SimExecution {
    let status = forced.unwrap_or_else(|| match rng.random_range(0..100) {
        0..75 => "Success",
        75..87 => "Failed",
        87..92 => "TimedOut",
        92..94 => "Cancelled",
        _ => "Skipped",
    });
    let targets: u32 = rng.random_range(3..16);
    let mut execution =
        SimExecution::new(uuid_like(rng.random()), status, created_ms).with_detailed_status(status);
    let counts = match status {
        "Success" => Some(format!("{{Success={targets}}}")),
        "Failed" => {
            let failed = rng.random_range(1..=targets.min(3));
            if failed == targets {
                Some(format!("{{Failed={failed}}}"))
            } else {
                Some(format!("{{Failed={failed},Success={}}}", targets - failed))
            }
        }
        "TimedOut" => Some(format!("{{Success={},TimedOut=1}}", targets - 1)),
        "Cancelled" => Some(format!("{{Cancelled={targets}}}")),
        _ => None,
    };
    execution.resource_count_by_status = counts;
    // Failing runs name their targets (DescribeAssociationExecutionTargets): the counts are
    // then derived from them. A few instances of the association's fleet fail, most as
    // `Failed`, some time out, one at most is unreachable (`Undeliverable`).
    if matches!(status, "Failed" | "TimedOut") {
        let failing = match status {
            "Failed" => rng.random_range(1..=targets.min(3)),
            _ => 1,
        };
        let undeliverable = status == "Failed" && rng.random_bool(0.3);
        execution.resource_count_by_status = None;
        execution.targets = (0..targets)
            .map(|i| {
                let instance = format!(
                    "i-{:017x}",
                    stable_hash(&format!("{}/{i}", demo.id)) & 0x1_ffff_ffff_ffff_ffff
                );
                if i >= failing {
                    SimTarget::new(instance, "Success")
                } else if status == "TimedOut" {
                    SimTarget::new(instance, "TimedOut").with_detailed_status("ExecutionTimedOut")
                } else if undeliverable && i == 0 {
                    SimTarget::new(instance, "Failed").with_detailed_status("Undeliverable")
                } else if i == 1 && rng.random_bool(0.5) {
                    SimTarget::new(instance, "TimedOut").with_detailed_status("DeliveryTimedOut")
                } else {
                    SimTarget::new(instance, "Failed")
                }
            })
            .collect();
    }
    let has_end = match status {
        "Skipped" => false,
        "Cancelled" => rng.random_bool(0.5),
        _ => true,
    };
    if has_end {
        execution.last_execution_ms = Some(created_ms + rng.random_range(20_000..=300_000));
    }
    if let Some(alarm) = demo.alarms.first() {
        let triggered = match status {
            "Failed" | "TimedOut" => rng.random_bool(0.6).then_some("ALARM"),
            _ => rng.random_bool(0.03).then_some("UNKNOWN"),
        };
        if let Some(state) = triggered {
            execution.triggered_alarms = vec![((*alarm).to_owned(), state.to_owned())];
        }
    }
    execution
}

/// The demo's live activity; ends on shutdown.
async fn demo_loop(shared: Arc<Shared>, mut rng: StdRng, speedup: u32) {
    let scaled = |ms: u64| Duration::from_millis(ms) / speedup;
    loop {
        let pause = scaled(rng.random_range(2_000..=4_000));
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let demo = &DEMO_ASSOCIATIONS[rng.random_range(0..DEMO_ASSOCIATIONS.len())];
        let now = shared.clock.now_ms();
        if rng.random_range(0..8) == 0 {
            // Late visibility: finished a little while ago, visible only some seconds later.
            let created = now - rng.random_range(1_000..5_000);
            let mut execution = demo_finished(&mut rng, demo, created, None);
            if let Some(end) = execution.last_execution_ms.as_mut() {
                *end = (*end).min(now);
            }
            execution.visible = false;
            let id = execution.execution_id.clone();
            tracing::debug!(association_id = demo.id, execution_id = %id, "demo: late execution");
            insert_if_present(&shared, demo.id, execution);
            let delay = scaled(rng.random_range(3_000..=8_000));
            spawn_later(&shared, delay, demo.id, id, |e| e.visible = true);
        } else {
            let targets: u32 = rng.random_range(3..16);
            let execution = SimExecution::new(uuid_like(rng.random()), "InProgress", now)
                .with_detailed_status("InProgress")
                .with_resource_count_by_status(format!("{{InProgress={targets}}}"));
            let id = execution.execution_id.clone();
            tracing::debug!(association_id = demo.id, execution_id = %id, "demo: new execution");
            insert_if_present(&shared, demo.id, execution);
            let delay = scaled(rng.random_range(3_000..=10_000));
            let outcome = demo_finished(&mut rng, demo, now, None);
            let shared_for_end = shared.clone();
            spawn_later(&shared, delay, demo.id, id, move |e| {
                let end = shared_for_end.clock.now_ms();
                e.status = outcome.status;
                e.detailed_status = outcome.detailed_status;
                e.resource_count_by_status = outcome.resource_count_by_status;
                e.targets = outcome.targets;
                e.triggered_alarms = outcome.triggered_alarms;
                e.last_execution_ms = outcome.last_execution_ms.map(|_| end);
            });
        }
    }
}

/// Inserts an execution unless its association was removed meanwhile.
fn insert_if_present(shared: &Shared, association_id: &str, execution: SimExecution) {
    let now_ms = shared.clock.now_ms();
    let mut state = shared.lock();
    if let Some(association) = state.association_mut(&Scope::default(), association_id) {
        let id = execution.execution_id.clone();
        association.insert(execution);
        state.execution_changed(&Scope::default(), association_id, &id, None, now_ms);
    }
}

/// After `delay` (unless shut down first) applies `f` to an execution, if it still exists.
fn spawn_later(
    shared: &Arc<Shared>,
    delay: Duration,
    association_id: &'static str,
    execution_id: String,
    f: impl FnOnce(&mut SimExecution) + Send + 'static,
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let now_ms = shared.clock.now_ms();
        let mut state = shared.lock();
        if let Some(association) = state.association_mut(&Scope::default(), association_id) {
            if let Some(mut execution) = association.take(&execution_id) {
                let before = execution.clone();
                f(&mut execution);
                association.insert(execution);
                let scope = Scope::default();
                state.execution_changed(
                    &scope,
                    association_id,
                    &execution_id,
                    Some(&before),
                    now_ms,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::model::is_uuid_shaped;

    #[test]
    fn demo_ids_are_uuid_shaped() {
        for demo in super::DEMO_ASSOCIATIONS {
            assert!(is_uuid_shaped(demo.id), "{}", demo.id);
        }
    }
}
