//! Per-target detail, off the polls' path: the targets polls left to read wait here, one entry
//! per association, and one reader per scope reads them on what the request budget leaves over
//! ([`crate::limit::Priority::Detail`]), several associations at once (as many as the budget
//! lets detail requests be in flight: [`crate::limit::Budget::detail_parallelism`]). A poll
//! never waits for them, nor holds a poll slot.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::Shared;
use crate::poller::TargetReads;
use crate::ssm::Ssm;
use crate::sync::lock;

/// The target reads of one scope, oldest association first. An association already waiting
/// takes in the later poll's reads (the newest executions kept, at most
/// [`crate::poller::MAX_TARGET_EXECUTIONS_PER_POLL`]), so the queue holds at most one entry per
/// watched association however long the counts keep the budget busy.
#[derive(Default)]
pub struct DetailQueue {
    waiting: Mutex<VecDeque<TargetReads>>,
    added: Notify,
}

impl DetailQueue {
    /// Queues what a poll left to read; returns how many executions were dropped for newer
    /// ones of the same association.
    pub fn push(&self, reads: TargetReads) -> usize {
        if reads.is_empty() {
            return 0;
        }
        let mut waiting = lock(&self.waiting);
        let dropped = match waiting.iter_mut().find(|r| r.id() == reads.id()) {
            Some(queued) => queued.merge(reads),
            None => {
                waiting.push_back(reads);
                0
            }
        };
        drop(waiting);
        self.added.notify_one();
        dropped
    }

    /// The oldest entry, once there is one.
    async fn pop(&self) -> TargetReads {
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(reads) = lock(&self.waiting).pop_front() {
                return reads;
            }
            added.await;
        }
    }
}

/// The reader of one scope: reads the queued targets through `ssm`'s detail view, one read
/// going per detail request the budget lets be in flight (each association's own reads one
/// after another), until the scope loop stops it.
pub async fn read_targets(queue: Arc<DetailQueue>, ssm: Ssm, shared: Arc<Shared>) {
    let ssm = ssm.detail();
    let slots = Arc::new(Semaphore::new(ssm.detail_parallelism()));
    let mut reading = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let reads = queue.pop().await;
        let (ssm, shared) = (ssm.clone(), shared.clone());
        reading.spawn(async move {
            let publish = shared.publish_each_poll;
            reads
                .read(&ssm, &shared.metrics, &shared.store, publish)
                .await;
            drop(slot);
        });
        while reading.try_join_next().is_some() {}
    }
}
