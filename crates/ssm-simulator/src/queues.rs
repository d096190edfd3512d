//! SQS queues as the simulator stores them: messages with visibility timeouts and receipt
//! handles, the routes that send each (account, region) scope's events to queues, and the
//! per-queue faults ([`QueueFaults`], [`QueueOutage`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::identity::Scope;
use crate::model::{stable_hash, uuid_like};

/// A queue's default `VisibilityTimeout` (as in SQS).
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// `https://sqs.<region>.amazonaws.com/<account>/<name>`: the URL SQS gives a queue, and the
/// one the simulator knows it by.
pub fn queue_url(account: &str, region: &str, name: &str) -> String {
    format!("https://sqs.{region}.amazonaws.com/{account}/{name}")
}

/// A queue's identity: where it lives and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct QueueId {
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) name: String,
}

impl QueueId {
    /// Parses `https://sqs.<region>.amazonaws.com/<account>/<name>` (also the legacy
    /// `https://<region>.queue.amazonaws.com/...`); for any other host (a local endpoint) the
    /// region is `fallback_region`, the caller's signing region.
    pub(crate) fn parse(url: &str, fallback_region: &str) -> Option<QueueId> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let (host, path) = rest.split_once('/')?;
        let host = host.to_ascii_lowercase();
        let region = host
            .strip_prefix("sqs.")
            .and_then(|h| h.strip_suffix(".amazonaws.com"))
            .or_else(|| host.strip_suffix(".queue.amazonaws.com"))
            .unwrap_or(fallback_region);
        let (account, name) = path.trim_end_matches('/').split_once('/')?;
        let valid_name = !name.is_empty()
            && name.len() <= 80
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && valid_name).then(
            || QueueId {
                region: region.to_owned(),
                account: account.to_owned(),
                name: name.to_owned(),
            },
        )
    }

    pub(crate) fn arn(&self) -> String {
        format!("arn:aws:sqs:{}:{}:{}", self.region, self.account, self.name)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&queue_url(&self.account, &self.region, &self.name))
    }
}

/// Which scopes' State Manager events go to a queue (an EventBridge rule and its target; a
/// central bus is several routes into one queue). `None` matches any account or region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRoute {
    /// The queue's URL ([`queue_url`]).
    pub queue_url: String,
    /// Only events of this account.
    pub account: Option<String>,
    /// Only events of this region.
    pub region: Option<String>,
}

impl EventRoute {
    /// Every scope's events to `queue_url`.
    pub fn to(queue_url: impl Into<String>) -> Self {
        EventRoute {
            queue_url: queue_url.into(),
            account: None,
            region: None,
        }
    }

    /// Only events of `account`.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Only events of `region`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    fn matches(&self, scope: &Scope) -> bool {
        self.account.as_deref().is_none_or(|a| a == scope.account)
            && self.region.as_deref().is_none_or(|r| r == scope.region)
    }
}

/// What happens to the events a queue receives, each drawn per event from a generator seeded
/// with `seed` (the same events get the same fate). Messages injected with
/// [`Simulator::inject_message`](crate::Simulator::inject_message) are not affected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueFaults {
    /// Fraction (0 to 1) of events never delivered.
    pub lose: f64,
    /// Fraction of delivered events delivered twice (two messages, one event id).
    pub duplicate: f64,
    /// Fraction of events followed by a malformed message: in turn not JSON, an event of a
    /// foreign source (`aws.ec2`), and a State Manager event without its `association-id`.
    pub malformed: f64,
    /// Every event (and malformed message) becomes receivable this long after the change.
    pub delay: Duration,
    /// Receives hand out the newest receivable messages first (out-of-order delivery).
    pub reorder: bool,
    /// Seed of the generator.
    pub seed: u64,
}

impl QueueFaults {
    /// Loses `fraction` of the events. Panics unless `0 <= fraction <= 1`.
    pub fn lose(mut self, fraction: f64) -> Self {
        self.lose = check_fraction(fraction);
        self
    }

    /// Delivers `fraction` of the delivered events twice. Panics unless `0 <= fraction <= 1`.
    pub fn duplicate(mut self, fraction: f64) -> Self {
        self.duplicate = check_fraction(fraction);
        self
    }

    /// Follows `fraction` of the events with a malformed message. Panics unless
    /// `0 <= fraction <= 1`.
    pub fn malformed(mut self, fraction: f64) -> Self {
        self.malformed = check_fraction(fraction);
        self
    }

    /// Delays every event by `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Hands out the newest messages first.
    pub fn reorder(mut self) -> Self {
        self.reorder = true;
        self
    }

    /// Seeds the generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

fn check_fraction(fraction: f64) -> f64 {
    assert!(
        (0.0..=1.0).contains(&fraction),
        "queue fault fraction must be within 0..=1, got {fraction}"
    );
    fraction
}

/// How a queue fails every request for a while ([`Simulator::set_queue_outage`](crate::Simulator::set_queue_outage)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOutage {
    /// HTTP 500 `InternalFailure`.
    ServerError,
    /// The connection closes without a response.
    ResetConnection,
    /// HTTP 400 `RequestThrottled` (a throttling error to the SDK's retry classifier).
    Throttled,
}

/// A queue's state ([`Simulator::queue_stats`](crate::Simulator::queue_stats)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages a receive would hand out now (`ApproximateNumberOfMessages`).
    pub visible: usize,
    /// Messages received and not yet deleted, still invisible
    /// (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: usize,
    /// Messages never received that are not receivable yet (delayed events,
    /// `ApproximateNumberOfMessagesDelayed`).
    pub delayed: usize,
    /// Messages deleted.
    pub deleted: u64,
    /// Messages ever put in the queue (events, duplicates, malformed and injected messages).
    pub sent: u64,
    /// Events routed to the queue (before faults).
    pub events: u64,
    /// Events lost by [`QueueFaults::lose`].
    pub lost: u64,
    /// Extra copies sent by [`QueueFaults::duplicate`].
    pub duplicated: u64,
    /// Malformed messages sent by [`QueueFaults::malformed`].
    pub malformed: u64,
    /// Messages handed out by receives, redeliveries included.
    pub received: u64,
    /// Deletes with an outdated receipt handle: answered as successes, nothing deleted.
    pub stale_deletes: u64,
}

/// One message in a queue.
struct Message {
    id: String,
    body: String,
    sent_ms: i64,
    /// When a receive may hand it out (after a delay or a visibility timeout).
    available_at: Instant,
    /// Receives so far (`ApproximateReceiveCount`).
    receives: u32,
    first_receive_ms: Option<i64>,
    /// The latest receipt handle.
    handle: Option<String>,
}

/// A message as a receive hands it out.
pub(crate) struct Received {
    pub(crate) id: String,
    pub(crate) body: String,
    pub(crate) handle: String,
    pub(crate) sent_ms: i64,
    pub(crate) receives: u32,
    pub(crate) first_receive_ms: i64,
}

/// Why a delete failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HandleError {
    /// Not a receipt handle of this queue.
    Invalid,
}

/// One queue.
pub(crate) struct Queue {
    pub(crate) visibility_timeout: Duration,
    pub(crate) created_ms: i64,
    faults: QueueFaults,
    rng: StdRng,
    malformed_next: usize,
    outage: Option<(QueueOutage, Instant)>,
    /// By arrival order.
    messages: BTreeMap<u64, Message>,
    next_seq: u64,
    /// Tells long polls that a message arrived.
    pub(crate) notify: Arc<Notify>,
    /// Tag in receipt handles, so that another queue's handles are refused.
    tag: u32,
    stats: QueueStats,
}

impl Queue {
    fn new(id: &QueueId, created_ms: i64) -> Self {
        Queue {
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            created_ms,
            faults: QueueFaults::default(),
            rng: StdRng::seed_from_u64(0),
            malformed_next: 0,
            outage: None,
            messages: BTreeMap::new(),
            next_seq: 0,
            notify: Arc::new(Notify::new()),
            tag: stable_hash(&id.to_string()) as u32,
            stats: QueueStats::default(),
        }
    }

    pub(crate) fn set_faults(&mut self, faults: QueueFaults) {
        self.rng = StdRng::seed_from_u64(faults.seed);
        self.malformed_next = 0;
        self.faults = faults;
    }

    pub(crate) fn set_outage(&mut self, outage: Option<(QueueOutage, Instant)>) {
        self.outage = outage;
    }

    /// The outage in force at `now`, if any.
    pub(crate) fn outage(&self, now: Instant) -> Option<QueueOutage> {
        self.outage
            .filter(|(_, until)| now < *until)
            .map(|(kind, _)| kind)
    }

    /// Puts a message in; it becomes receivable at `available_at`. Returns its `MessageId`.
    pub(crate) fn push(&mut self, body: String, sent_ms: i64, available_at: Instant) -> String {
        let id = uuid_like(rand::random());
        self.messages.insert(
            self.next_seq,
            Message {
                id: id.clone(),
                body,
                sent_ms,
                available_at,
                receives: 0,
                first_receive_ms: None,
                handle: None,
            },
        );
        self.next_seq += 1;
        self.stats.sent += 1;
        self.notify.notify_waiters();
        id
    }

    /// Delivers one event under the queue's faults.
    fn deliver_event(&mut self, event: &Value, now_ms: i64, now: Instant) {
        self.stats.events += 1;
        // Three draws per event whatever the settings, so a seed gives each event one fate.
        let (lose, duplicate, malformed): (f64, f64, f64) =
            (self.rng.random(), self.rng.random(), self.rng.random());
        let at = now + self.faults.delay;
        if lose < self.faults.lose {
            self.stats.lost += 1;
        } else {
            self.push(event.to_string(), now_ms, at);
            if duplicate < self.faults.duplicate {
                self.stats.duplicated += 1;
                self.push(event.to_string(), now_ms, at);
            }
        }
        if malformed < self.faults.malformed {
            self.stats.malformed += 1;
            let body = malformed_body(event, self.malformed_next);
            self.malformed_next += 1;
            self.push(body, now_ms, at);
        }
    }

    /// Hands out up to `max` receivable messages (oldest first, newest first under
    /// [`QueueFaults::reorder`]), each invisible for `visibility` from `now` with a new
    /// receipt handle.
    pub(crate) fn receive(
        &mut self,
        max: usize,
        visibility: Duration,
        now: Instant,
        now_ms: i64,
    ) -> Vec<Received> {
        let ready = self
            .messages
            .iter()
            .filter(|(_, m)| m.available_at <= now)
            .map(|(seq, _)| *seq);
        let seqs: Vec<u64> = if self.faults.reorder {
            ready.rev().take(max).collect()
        } else {
            ready.take(max).collect()
        };
        let tag = self.tag;
        seqs.into_iter()
            .filter_map(|seq| {
                let m = self.messages.get_mut(&seq)?;
                m.receives += 1;
                m.available_at = now + visibility;
                let first = *m.first_receive_ms.get_or_insert(now_ms);
                let handle = receipt_handle(tag, seq, m.receives);
                m.handle = Some(handle.clone());
                self.stats.received += 1;
                Some(Received {
                    id: m.id.clone(),
                    body: m.body.clone(),
                    handle,
                    sent_ms: m.sent_ms,
                    receives: m.receives,
                    first_receive_ms: first,
                })
            })
            .collect()
    }

    /// When the next message becomes receivable, if one is waiting.
    pub(crate) fn next_available(&self) -> Option<Instant> {
        self.messages.values().map(|m| m.available_at).min()
    }

    /// Deletes the message of `handle`: its latest handle deletes it; an outdated handle, or
    /// one of a message already deleted, succeeds without deleting anything (as SQS may).
    pub(crate) fn delete(&mut self, handle: &str) -> Result<(), HandleError> {
        let (tag, seq, _) = parse_receipt_handle(handle).ok_or(HandleError::Invalid)?;
        if tag != self.tag || seq >= self.next_seq {
            return Err(HandleError::Invalid);
        }
        match self.messages.get(&seq) {
            None => Ok(()),
            Some(m) if m.handle.as_deref() == Some(handle) => {
                self.messages.remove(&seq);
                self.stats.deleted += 1;
                Ok(())
            }
            Some(m) if m.handle.is_none() => Err(HandleError::Invalid),
            Some(_) => {
                self.stats.stale_deletes += 1;
                Ok(())
            }
        }
    }

    /// The queue's state at `now`.
    pub(crate) fn stats(&self, now: Instant) -> QueueStats {
        let mut stats = self.stats.clone();
        for m in self.messages.values() {
            if m.available_at <= now {
                stats.visible += 1;
            } else if m.receives > 0 {
                stats.in_flight += 1;
            } else {
                stats.delayed += 1;
            }
        }
        stats
    }

    /// Every message not yet deleted, in arrival order: (`MessageId`, body).
    pub(crate) fn bodies(&self) -> Vec<(String, String)> {
        self.messages
            .values()
            .map(|m| (m.id.clone(), m.body.clone()))
            .collect()
    }
}

/// `AQEB` and hexadecimal: the queue's tag, the message's sequence number, the receive count,
/// and 64 random bits.
fn receipt_handle(tag: u32, seq: u64, receives: u32) -> String {
    let random: u64 = rand::random();
    format!("AQEB{tag:08x}{seq:016x}{receives:08x}{random:016x}")
}

fn parse_receipt_handle(handle: &str) -> Option<(u32, u64, u32)> {
    let hex = handle.strip_prefix("AQEB")?;
    if hex.len() != 48 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u32::from_str_radix(&hex[0..8], 16).ok()?,
        u64::from_str_radix(&hex[8..24], 16).ok()?,
        u32::from_str_radix(&hex[24..32], 16).ok()?,
    ))
}

/// The `n`th malformed message derived from `event`, cycling through the kinds.
fn malformed_body(event: &Value, n: usize) -> String {
    match n % 3 {
        0 => format!("not json {{{}", event.get("id").unwrap_or(&Value::Null)),
        1 => {
            let mut foreign = event.clone();
            foreign["source"] = Value::from("aws.ec2");
            foreign["detail-type"] = Value::from("EC2 Instance State-change Notification");
            foreign["detail"] =
                serde_json::json!({"instance-id": "i-0123456789abcdef0", "state": "running"});
            foreign.to_string()
        }
        _ => {
            let mut missing = event.clone();
            if let Some(detail) = missing.get_mut("detail").and_then(Value::as_object_mut) {
                detail.remove("association-id");
            }
            missing.to_string()
        }
    }
}

/// Every queue and route.
#[derive(Default)]
pub(crate) struct Queues {
    queues: BTreeMap<QueueId, Queue>,
    routes: Vec<(EventRoute, QueueId)>,
}

impl Queues {
    /// Creates a queue (or keeps an existing one).
    pub(crate) fn add(&mut self, id: QueueId, created_ms: i64) {
        let queue = Queue::new(&id, created_ms);
        self.queues.entry(id).or_insert(queue);
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &QueueId> {
        self.queues.keys()
    }

    pub(crate) fn get(&self, id: &QueueId) -> Option<&Queue> {
        self.queues.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &QueueId) -> Option<&mut Queue> {
        self.queues.get_mut(id)
    }

    pub(crate) fn add_route(&mut self, route: EventRoute, id: QueueId) {
        self.routes.push((route, id));
    }

    pub(crate) fn clear_routes(&mut self) {
        self.routes.clear();
    }

    /// Whether any route takes `scope`'s events (so they are worth building).
    pub(crate) fn routes_scope(&self, scope: &Scope) -> bool {
        self.routes.iter().any(|(route, _)| route.matches(scope))
    }

    /// Sends `scope`'s event to every queue a route names (once per queue, however many
    /// routes match).
    pub(crate) fn publish(&mut self, scope: &Scope, event: &Value, now_ms: i64, now: Instant) {
        let mut targets: Vec<&QueueId> = self
            .routes
            .iter()
            .filter(|(route, _)| route.matches(scope))
            .map(|(_, id)| id)
            .collect();
        targets.sort();
        targets.dedup();
        let targets: Vec<QueueId> = targets.into_iter().cloned().collect();
        for id in targets {
            if let Some(queue) = self.queues.get_mut(&id) {
                queue.deliver_event(event, now_ms, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_parse() {
        let id = QueueId::parse(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/ssm-events",
            "us-east-1",
        )
        .unwrap();
        assert_eq!(
            (id.region.as_str(), id.account.as_str(), id.name.as_str()),
            ("eu-west-1", "123456789012", "ssm-events")
        );
        assert_eq!(
            id.to_string(),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/ssm-events"
        );
        let local = QueueId::parse("http://127.0.0.1:9/123456789012/q", "ap-south-1").unwrap();
        assert_eq!(local.region, "ap-south-1");
        for bad in [
            "sqs.eu-west-1.amazonaws.com/123456789012/q",
            "https://sqs.eu-west-1.amazonaws.com/12345/q",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/a b",
        ] {
            assert_eq!(QueueId::parse(bad, "us-east-1"), None, "{bad}");
        }
    }

    #[test]
    fn receipt_handles_round_trip() {
        let handle = receipt_handle(7, 42, 3);
        assert_eq!(parse_receipt_handle(&handle), Some((7, 42, 3)));
        assert_eq!(parse_receipt_handle("AQEBxyz"), None);
        assert_eq!(parse_receipt_handle("garbage"), None);
    }
}
