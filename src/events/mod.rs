//! SQS intake of State Manager events: each event of a watched association asks its scope's
//! loop for a poll now; events never count anything (polling stays the truth).
//!
//! EventBridge rules send `EC2 State Manager Association State Change` and `EC2 State Manager
//! Instance Association State Change` events to SQS queues (`events:` in the config). One task
//! per queue long-polls it; an event names an association, its account and region: the scope
//! loop of that account and region ([`Routes`]) polls it at once (reason `event`), several
//! events of one association that arrive together making one poll. The message is deleted
//! once that poll has ended (a crash before means the message comes back, never that it is
//! lost); malformed and foreign messages are deleted, logged and counted. A lost, duplicated,
//! delayed, reordered or forged event changes only when an association is polled: what a poll
//! counts comes from `DescribeAssociationExecutions`, never from an event.
//!
//! - `parse.rs`: one message body to an event, or why not (pure);
//! - `routes.rs`: from an event's account and region to the scope loops, and their answers;
//! - `queue.rs`: one queue's task: receive, trigger, wait, delete, backoff, metrics;
//! - `board.rs`: what the status page shows;
//! - `sqs.rs`: the SQS client, the only file that knows `aws_sdk_sqs`.

mod board;
pub mod parse;
mod queue;
mod routes;
mod sqs;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use board::Board;
pub use queue::{retry_wait, OUTCOMES};
pub use routes::{combine, Answer, Registration, Routes, Trigger};
pub use sqs::{BATCH, WAIT_SECONDS};

use crate::config::{Config, EventsConfig};
use crate::metrics::Metrics;
use crate::ssm::{self, ClientSettings};

/// The running queue tasks of one `events:` section.
#[derive(Default)]
pub struct Events {
    config: Option<EventsConfig>,
    tasks: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Events {
    /// Starts one task per queue of `config.events` (none without the section).
    pub async fn start(
        config: &Config,
        client: &ClientSettings,
        routes: Arc<Routes>,
        metrics: Arc<Metrics>,
        board: Arc<Board>,
    ) -> Events {
        let urls: Vec<String> = config
            .events
            .iter()
            .flat_map(|e| e.queues.iter().map(|q| q.url.clone()))
            .collect();
        board.configure(&urls);
        let Some(events) = &config.events else {
            return Events::default();
        };
        for detail_type in parse::DetailType::ALL {
            for outcome in ["polled", "poll_failed", "unwatched", "malformed"] {
                metrics
                    .events_received_total
                    .with_label_values(&[detail_type.name(), outcome]);
            }
        }
        for outcome in ["malformed", "foreign"] {
            metrics
                .events_received_total
                .with_label_values(&[parse::OTHER, outcome]);
        }
        let base = ssm::load_base(config, client).await;
        let mut tasks = Vec::new();
        for queue in &events.queues {
            let reader = queue::Reader {
                url: queue.url.clone(),
                queue: sqs::Queue::new(&base, queue, config.request_timeout).await,
                routes: routes.clone(),
                metrics: metrics.clone(),
                board: board.clone(),
                last_error: std::sync::Mutex::new(None),
            };
            let stop = CancellationToken::new();
            tasks.push((stop.clone(), tokio::spawn(reader.run(stop))));
        }
        tracing::info!(
            queues = tasks.len(),
            "reading State Manager events from SQS"
        );
        Events {
            config: Some(events.clone()),
            tasks,
        }
    }

    /// The section these tasks read.
    pub fn config(&self) -> Option<&EventsConfig> {
        self.config.as_ref()
    }

    /// Stops every queue task and waits for it: a message whose poll had not ended is not
    /// deleted.
    pub async fn stop(&mut self) {
        for (stop, _) in &self.tasks {
            stop.cancel();
        }
        for (_, task) in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}
