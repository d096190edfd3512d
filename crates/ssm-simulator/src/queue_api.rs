//! The SQS part of [`Simulator`]'s API: queues, the routes of State Manager events to them,
//! their faults and outages, their state, and injected messages.

use std::time::Duration;

use tokio::time::Instant;

use crate::identity::{Scope, DEFAULT_ACCOUNT, DEFAULT_REGION};
use crate::queues::{queue_url, EventRoute, QueueFaults, QueueId, QueueOutage, QueueStats};
use crate::simulator::Simulator;

/// The name of the demo's queue ([`Simulator::add_demo_queue`]).
pub const DEMO_QUEUE_NAME: &str = "ssm-association-events";

fn parse(url: &str) -> QueueId {
    QueueId::parse(url, DEFAULT_REGION).unwrap_or_else(|| {
        panic!("{url} is not a queue URL https://sqs.<region>.amazonaws.com/<account>/<name>")
    })
}

impl Simulator {
    /// Creates a queue (an existing one is kept) and returns its URL,
    /// `https://sqs.<region>.amazonaws.com/<account>/<name>`: the `QueueUrl` clients send
    /// while their endpoint points at [`Simulator::endpoint_url`]. It receives no events
    /// until a route names it ([`Simulator::route_events`]).
    pub fn add_queue(&self, account: &str, region: &str, name: &str) -> String {
        let url = queue_url(account, region, name);
        let created_ms = self.now_ms();
        self.shared().lock().queues.add(parse(&url), created_ms);
        url
    }

    /// Sends the State Manager events of the scopes `route` matches to its queue, from now on
    /// (an EventBridge rule targeting the queue; several routes into one queue make a central
    /// bus). An event goes once to each queue whatever the number of routes that match it.
    /// Panics if the queue does not exist.
    pub fn route_events(&self, route: EventRoute) {
        let id = parse(&route.queue_url);
        let mut state = self.shared().lock();
        assert!(
            state.queues.get(&id).is_some(),
            "route_events: no queue {}",
            route.queue_url
        );
        state.queues.add_route(route, id);
    }

    /// Every queue's URL, in (region, account, name) order.
    pub fn queue_urls(&self) -> Vec<String> {
        self.shared()
            .lock()
            .queues
            .ids()
            .map(ToString::to_string)
            .collect()
    }

    /// Removes every route: no more events go to any queue.
    pub fn clear_event_routes(&self) {
        self.shared().lock().queues.clear_routes();
    }

    /// The demo's queue: [`DEMO_QUEUE_NAME`] in [`DEFAULT_ACCOUNT`] and [`DEFAULT_REGION`],
    /// receiving the default scope's events (the scope of the demo associations). Returns its
    /// URL. Call it before or after [`Simulator::start_demo_activity`]: the history is
    /// inserted without events either way, the live activity sends them.
    pub fn add_demo_queue(&self) -> String {
        let url = self.add_queue(DEFAULT_ACCOUNT, DEFAULT_REGION, DEMO_QUEUE_NAME);
        let scope = Scope::default();
        self.route_events(
            EventRoute::to(url.clone())
                .account(scope.account)
                .region(scope.region),
        );
        url
    }

    /// Sets a queue's faults for the events it receives from now on (replacing earlier ones
    /// and restarting the generator from the seed). Panics if the queue does not exist.
    pub fn set_queue_faults(&self, url: &str, faults: QueueFaults) {
        self.with_queue(url, |queue| queue.set_faults(faults));
    }

    /// Sets a queue's default `VisibilityTimeout` (30 s unless set). Panics if the queue does
    /// not exist.
    pub fn set_queue_visibility_timeout(&self, url: &str, timeout: Duration) {
        self.with_queue(url, |queue| queue.visibility_timeout = timeout);
    }

    /// Makes every request to a queue fail as `outage` says for `duration` from now (on
    /// tokio's clock); `None` ends an outage. Events keep arriving meanwhile. Panics if the
    /// queue does not exist.
    pub fn set_queue_outage(&self, url: &str, outage: Option<(QueueOutage, Duration)>) {
        let until = outage.map(|(kind, duration)| (kind, Instant::now() + duration));
        self.with_queue(url, |queue| queue.set_outage(until));
    }

    /// A queue's state now: receivable, in flight, delayed, deleted, and what the faults did.
    /// Panics if the queue does not exist.
    pub fn queue_stats(&self, url: &str) -> QueueStats {
        self.with_queue(url, |queue| queue.stats(Instant::now()))
    }

    /// Puts a raw message in a queue, receivable at once and untouched by the queue's faults
    /// (a forged or foreign event); returns its `MessageId`. Panics if the queue does not exist.
    pub fn inject_message(&self, url: &str, body: impl Into<String>) -> String {
        let body = body.into();
        let now_ms = self.now_ms();
        self.with_queue(url, |queue| queue.push(body, now_ms, Instant::now()))
    }

    /// Every message not yet deleted (received or not), oldest first: (`MessageId`, body).
    /// Panics if the queue does not exist.
    pub fn queue_messages(&self, url: &str) -> Vec<(String, String)> {
        self.with_queue(url, |queue| queue.bodies())
    }

    fn with_queue<T>(&self, url: &str, f: impl FnOnce(&mut crate::queues::Queue) -> T) -> T {
        let id = parse(url);
        let mut state = self.shared().lock();
        let queue = state
            .queues
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no queue {url}"));
        f(queue)
    }
}
