//! Tags, off the listing's path: an association whose selection waits on its tags is queued
//! here (once, while not read yet), and one reader per scope reads them through the request
//! budget's leftover ([`crate::limit::Priority::Detail`]), so a listing or a poll never waits
//! for them. The reader keeps as many reads going as the budget lets detail requests be in
//! flight ([`crate::limit::Budget::detail_parallelism`]: the concurrency cap minus one), each
//! on a rate slot no count or re-check wanted. The tags go to the store's cache (kept in the
//! state file); the next listing selects with them.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::{Shared, TAGS_OPERATION};
use crate::clock::now_ms;
use crate::model::ScopeKey;
use crate::ssm::{ErrorKind, Ssm};
use crate::sync::lock;

/// The associations of one scope whose tags are to be read, oldest first, each once, and
/// those whose read ended since the scope loop last looked.
#[derive(Default)]
pub struct TagQueue {
    waiting: Mutex<Waiting>,
    added: Notify,
}

#[derive(Default)]
struct Waiting {
    order: VecDeque<String>,
    /// Queued or being read.
    queued: HashSet<String>,
    arrived: Vec<String>,
}

impl TagQueue {
    /// Queues a read of `id`'s tags unless one is queued or running.
    pub fn push(&self, id: &str) {
        let mut waiting = lock(&self.waiting);
        if waiting.queued.insert(id.to_string()) {
            waiting.order.push_back(id.to_string());
            drop(waiting);
            self.added.notify_one();
        }
    }

    /// The associations whose tag read ended since the last call.
    pub fn take_arrived(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.waiting).arrived)
    }

    fn done(&self, id: &str) {
        let mut waiting = lock(&self.waiting);
        waiting.queued.remove(id);
        waiting.arrived.push(id.to_string());
    }

    async fn pop(&self) -> String {
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(id) = lock(&self.waiting).order.pop_front() {
                return id;
            }
            added.await;
        }
    }
}

/// The tag reader of one scope: as many reads at once through `ssm`'s detail view as the
/// budget lets detail requests be in flight, until the scope loop stops it.
pub async fn read_tags(
    queue: Arc<TagQueue>,
    ssm: Ssm,
    shared: Arc<Shared>,
    key: ScopeKey,
    name: String,
) {
    let ssm = ssm.detail();
    let slots = Arc::new(Semaphore::new(ssm.detail_parallelism()));
    let mut reads = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let id = queue.pop().await;
        let (ssm, shared, key, name, queue) = (
            ssm.clone(),
            shared.clone(),
            key.clone(),
            name.clone(),
            queue.clone(),
        );
        reads.spawn(async move {
            read_one(&ssm, &shared, &key, &name, &id).await;
            queue.done(&id);
            drop(slot);
        });
        while reads.try_join_next().is_some() {}
    }
}

/// Reads the tags of `id` into the store's cache; a failed read keeps what was read before.
async fn read_one(ssm: &Ssm, shared: &Shared, key: &ScopeKey, name: &str, id: &str) {
    let (metrics, account, region) = (&shared.metrics, &key.account_id, &key.region);
    match ssm.association_tags(id).await {
        Ok(tags) => {
            metrics.access_allowed(id, account, region, TAGS_OPERATION);
            shared.store.set_tags(id, now_ms(), tags);
        }
        Err(error) => {
            // Denied on this association only: its own gauge, not the scope's credentials.
            if error.kind == ErrorKind::AccessDenied {
                metrics.access_denied(id, account, region, TAGS_OPERATION);
            }
            tracing::warn!(scope = %name, association_id = id, code = %error.code, %error, "ListTagsForResource failed; using the tags read before, if any");
        }
    }
}
