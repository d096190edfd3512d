//! The work of one account in one region (a scope): one loop that lists its associations every
//! interval, selects what to watch ([`crate::discovery`]), decides which to poll
//! ([`crate::feed`]) and polls them, within the scope's own request budget. Its SSM call
//! observer is [`crate::scope_health`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::{ScopeConfig, TargetDetailConfig};
use crate::discovery::Selection;
use crate::events::Routes;
use crate::feed::{self, Decision, Known, Rules};
use crate::limit::Priority;
use crate::metrics::Metrics;
use crate::model::{ListedAssociation, ScopeKey};
use crate::poller::Poller;
use crate::readiness::Readiness;
use crate::scope_health::{rejects_credentials, ScopeHealth};
use crate::shard::Shard;
use crate::ssm::{ApiError, Ssm};
use crate::store::{Entry, Exposed, Live, Store};
use crate::sync::lock;
use crate::tracker::Tracker;

mod cadence;
mod details;
mod listing;
mod slots;
mod sweep;
mod tags;
mod triggered;

use cadence::retry_wait;
pub use cadence::Schedule;
use details::DetailQueue;
pub use listing::delta_margin;
use listing::{update_info, Kind, Listing, Listings};
pub use slots::polls_per_scope;
use slots::{poll_task, with_slot, PollSlots};
use sweep::SweepPlan;
use tags::TagQueue;
use triggered::EventPolls;

/// What every scope of one configuration shares.
pub struct Shared {
    pub store: Arc<Store>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    pub poll_interval: Duration,
    /// How often a scope lists every association; in between, only what ran ([`listing`]).
    pub full_listing_interval: Duration,
    /// How far back a delta listing reaches before the previous listing ([`delta_margin`]).
    pub delta_margin: Duration,
    /// Publish numbers at the end of each poll (no state file) rather than after each save.
    pub publish_each_poll: bool,
    pub selection: Selection,
    pub rules: Rules,
    /// `full_sweep_max_polls_per_interval`: sweep polls per scope and listing at most.
    pub sweep_cap: usize,
    /// How long tags are cached.
    pub discovery_interval: Duration,
    /// For a new association's tracker.
    pub initial_lookback_ms: i64,
    pub late_window_ms: i64,
    pub max_backfill_ms: i64,
    /// Association ID -> the scope that watches it: an association listed by two scopes (the
    /// same account configured twice) is watched once.
    pub claims: Mutex<HashMap<String, String>>,
    /// What each scope's last complete listing found, for the discovery gauges.
    pub report: Mutex<Report>,
    /// How many scopes the configuration has.
    pub scope_count: usize,
    /// Which associations this process owns.
    pub shard: Shard,
    /// Polls of one scope that may run at once ([`polls_per_scope`]).
    pub polls_per_scope: usize,
    /// The `target_detail:` section: what each poll reads of its failed runs' targets.
    pub target_detail: TargetDetailConfig,
    /// When this process started (epoch milliseconds): runs that ended before are history.
    pub started_ms: i64,
    /// Where State Manager events find this configuration's scope loops ([`triggered`]).
    pub routes: Arc<Routes>,
    /// `events.progress_poll_delay`: how long a progress event's poll waits ([`triggered`]).
    pub progress_poll_delay: Duration,
}

/// Per scope: the static IDs it lists and how many associations each selector matched.
#[derive(Default)]
pub struct Report {
    scopes: HashMap<String, (HashSet<String>, Vec<usize>)>,
    warned_selectors: HashSet<usize>,
    warned_ids: HashSet<String>,
}

impl Shared {
    /// A fresh state: the first poll reaches back `initial_lookback` from AWS's "now" then.
    fn fresh(&self) -> Live {
        Live {
            tracker: Tracker::new(self.initial_lookback_ms, self.late_window_ms)
                .with_max_backfill(self.max_backfill_ms),
            exposed: Exposed::default(),
        }
    }

    /// Records what `scope`'s complete listing found and updates the discovery gauges; warns
    /// (once) of a selector that matches nothing and of static IDs found nowhere, once every
    /// scope has listed.
    fn report(&self, scope: &str, static_found: HashSet<String>, counts: Vec<usize>) {
        let mut report = lock(&self.report);
        report
            .scopes
            .insert(scope.to_string(), (static_found, counts));
        let selectors = self.selection.selectors();
        let mut totals = vec![0usize; selectors.len()];
        let mut found: HashSet<&String> = HashSet::new();
        for (ids, counts) in report.scopes.values() {
            found.extend(ids);
            for (total, n) in totals.iter_mut().zip(counts) {
                *total += n;
            }
        }
        let missing: Vec<String> = self
            .selection
            .static_ids()
            .iter()
            .filter(|id| !found.contains(id))
            .cloned()
            .collect();
        self.metrics
            .static_associations_not_found
            .set(missing.len() as i64);
        for (i, total) in totals.iter().enumerate() {
            self.metrics
                .discovery_selector_associations
                .with_label_values(&[&i.to_string()])
                .set(*total as i64);
        }
        if report.scopes.len() < self.scope_count {
            return;
        }
        for (i, total) in totals.iter().enumerate() {
            if *total == 0 && report.warned_selectors.insert(i) {
                tracing::warn!(
                    selector = i,
                    conditions = %selectors[i].describe(),
                    "discovery selector matches no association in any configured account and region"
                );
            } else if *total > 0 {
                report.warned_selectors.remove(&i);
            }
        }
        for id in &missing {
            // Not to be waited for: no configured account and region has it.
            self.readiness.first_poll_done(id);
            if report.warned_ids.insert(id.clone()) {
                tracing::warn!(
                    association_id = %id,
                    "association not found in any configured account and region (deleted, or in an account or region not configured)"
                );
            }
        }
        report.warned_ids.retain(|id| missing.contains(id));
    }
}

/// One scope: its settings, client and health.
pub struct Scope {
    pub config: ScopeConfig,
    pub ssm: Ssm,
    pub health: Arc<ScopeHealth>,
}

/// Starts the loop of one scope; it ends (its polls stopped) when `stop` fires.
pub fn spawn_scope(
    scope: Scope,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(scope_loop(scope, shared, stop))
}

/// What the scope loop keeps of one watched association between listings.
#[derive(Default)]
struct Watch {
    failures: u32,
    /// No poll before this (after failed polls).
    next_try: Option<Instant>,
    /// The code of the last failure, to log each new one once.
    last_error: Option<String>,
}

/// The per-association operation the scope's tag reader calls (tag selectors).
const TAGS_OPERATION: &str = "ListTagsForResource";

/// The account and region of a scope: a role's account is in its ARN; the exporter's own comes
/// from STS `GetCallerIdentity`.
async fn resolve_key(scope: &Scope) -> Result<ScopeKey, ApiError> {
    let region = scope.health.region.clone();
    let account_id = match &scope.config.role_arn {
        Some(role) => role.account_id.clone(),
        None => scope.ssm.caller_account().await?,
    };
    Ok(ScopeKey { account_id, region })
}

/// The loop of one scope: find its account, then list, select, decide and poll every interval
/// until `stop` fires; then stop its polls and wait for them.
async fn scope_loop(scope: Scope, shared: Arc<Shared>, stop: CancellationToken) {
    let name = scope.health.name.clone();
    let interval = shared.poll_interval;
    let mut attempt = 0u32;
    let key = loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = resolve_key(&scope) => result,
        };
        match result {
            Ok(key) => break key,
            // STS unreachable (a private network with an SSM endpoint only): the scope works
            // without knowing its account; its series say `account_id="unknown"`.
            Err(error) if !rejects_credentials("GetCallerIdentity", error.kind) && attempt >= 2 => {
                tracing::warn!(scope = %name, code = %error.code, %error, "STS GetCallerIdentity keeps failing; watching this region with account_id=\"unknown\" (allow STS, or set AWS_ENDPOINT_URL_STS)");
                break ScopeKey {
                    account_id: "unknown".to_string(),
                    region: scope.health.region.clone(),
                };
            }
            Err(error) => {
                if attempt == 0 {
                    tracing::error!(scope = %name, code = %error.code, %error, "cannot tell the account of these credentials (STS GetCallerIdentity); trying again");
                    shared.readiness.scope_failed(&name);
                }
                attempt += 1;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry_wait(interval, attempt + 1)) => {}
                }
            }
        }
    };
    let _ = scope.health.key.set(key.clone());
    let labels = [key.account_id.as_str(), key.region.as_str()];
    let metrics = &shared.metrics;
    if key.account_id != "unknown" {
        let _ = metrics
            .credentials_valid
            .remove_label_values(&["unknown", &key.region]);
    }
    if !shared.readiness.credentials_failing(&name) {
        metrics.credentials_valid.with_label_values(&labels).set(1);
    }

    let phase = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut schedule = Schedule::new(interval, phase, Instant::now());
    let mut listings = Listings::new(interval, shared.full_listing_interval, shared.delta_margin);
    let mut state = ScopeState {
        key: key.clone(),
        name: name.clone(),
        watch: HashMap::new(),
        known: HashMap::new(),
        in_flight: HashSet::new(),
        tag_ids: HashSet::new(),
        untagged: HashMap::new(),
        tag_reads: Arc::new(TagQueue::default()),
        polls: JoinSet::new(),
        poll_slots: Arc::new(PollSlots::new(shared.polls_per_scope)),
        first_listing: true,
        listing_error: None,
        details: Arc::new(DetailQueue::default()),
        events: EventPolls::new(shared.routes.register(key.clone())),
        sweep: SweepPlan::default(),
    };
    // Per-target detail is read beside the polls, several at once, never in them.
    let reader = tokio::spawn(details::read_targets(
        state.details.clone(),
        scope.ssm.clone(),
        shared.clone(),
    ));
    // Tags are read beside the listings, several at once, never in them.
    let tag_reader = tokio::spawn(tags::read_tags(
        state.tag_reads.clone(),
        scope.ssm.clone(),
        shared.clone(),
        key.clone(),
        name.clone(),
    ));
    // Associations of this scope from before a reload: a listing that no longer selects them
    // retires them.
    for entry in shared.store.entries() {
        if entry.scope == key {
            state.watch.insert(entry.id.clone(), Watch::default());
        }
    }
    'listings: loop {
        let due = schedule.due();
        let listing = tokio::select! {
            _ = stop.cancelled() => break 'listings,
            listing = listings.list(&scope.ssm) => listing,
        };
        let ok = match listing {
            Ok(listing) => {
                tokio::select! {
                    _ = stop.cancelled() => break 'listings,
                    () = state.apply(&scope, &shared, &listing, due) => {}
                }
                listings.applied(&listing);
                true
            }
            Err(error) => {
                state.listing_failed(&shared, &error);
                false
            }
        };
        let next = schedule.after_poll(ok, Instant::now());
        loop {
            tokio::select! {
                _ = stop.cancelled() => break 'listings,
                _ = tokio::time::sleep_until(next) => break,
                Some(done) = state.polls.join_next(), if !state.polls.is_empty() => {
                    if let Ok((id, result)) = done {
                        let ok = result.is_ok();
                        state.poll_ended(&id, result, interval);
                        state.follow_up(&id, ok, &shared);
                        // Triggers that came while it ran wait for a poll of their own.
                        state.start_event_polls(&scope, &shared);
                    }
                }
                Some(wake) = state.events.next() => state.woken(wake, &scope, &shared),
            }
        }
    }
    state.polls.shutdown().await;
    reader.abort();
    tag_reader.abort();
    let _ = reader.await;
    let _ = tag_reader.await;
}

/// What one scope loop keeps between listings.
struct ScopeState {
    key: ScopeKey,
    name: String,
    watch: HashMap<String, Watch>,
    /// What the last listing showed of each association this scope watches: a delta listing
    /// replaces what it shows; the change feed decides over all of them.
    known: HashMap<String, ListedAssociation>,
    in_flight: HashSet<String>,
    /// Associations the last full listing needed tags of (their cache is in the store).
    tag_ids: HashSet<String>,
    /// Associations the last full listing skipped while their tags were being read: the next
    /// listing (full or delta) selects them once the tags are in.
    untagged: HashMap<String, ListedAssociation>,
    /// The tag reads to make ([`tags`]).
    tag_reads: Arc<TagQueue>,
    polls: JoinSet<(String, Result<(), ApiError>)>,
    /// Running polls ([`polls_per_scope`]).
    poll_slots: Arc<PollSlots>,
    first_listing: bool,
    listing_error: Option<String>,
    /// The targets polls left to read ([`details`]).
    details: Arc<DetailQueue>,
    /// Polls State Manager events asked for ([`triggered`]).
    events: EventPolls,
    /// The sweep slots of the watched associations, from the end of the last listing.
    sweep: SweepPlan,
}

/// One listing being applied: AWS's and the host's "now", and what it found and asks for.
struct Pass {
    aws_now: i64,
    now: i64,
    /// Associations each discovery selector matched.
    counts: Vec<usize>,
    static_found: HashSet<String>,
    /// What this scope watches after the listing.
    selected: HashSet<String>,
    /// Associations whose first poll readiness waits for.
    awaiting: Vec<String>,
    /// Polls to start, with the listing's signature of each association and their priority.
    to_poll: Vec<(Arc<Entry>, String, Priority)>,
    /// The sweep polls the change feed asked for, with each one's last successful poll.
    sweeps: Vec<(Option<i64>, Asked)>,
}

/// A poll the change feed asked for: the association and the listing's signature of it.
type Asked = (Arc<Entry>, String);

impl ScopeState {
    fn labels(&self) -> [&str; 2] {
        [self.key.account_id.as_str(), self.key.region.as_str()]
    }

    fn listing_failed(&mut self, shared: &Shared, error: &ApiError) {
        shared
            .metrics
            .listing_success
            .with_label_values(&self.labels())
            .set(0);
        if self.listing_error.as_deref() != Some(error.code.as_str()) {
            tracing::warn!(scope = %self.name, code = %error.code, %error, "ListAssociations failed; its associations are not polled until a listing succeeds");
        }
        self.listing_error = Some(error.code.clone());
        if std::mem::take(&mut self.first_listing) {
            shared.readiness.scope_failed(&self.name);
        }
    }

    /// Applies one complete listing: starts the polls the change feed asks for. A full listing
    /// also selects, and retires what is no longer listed or selected: each association goes
    /// through the steps below in order (`selects`, `watches`, `decide`, `follow`), until one
    /// says no. A delta listing replaces what the last listing showed of the watched
    /// associations it shows, and nothing else; the change feed then decides over every
    /// watched association, so that its rules of time (`late`, `pending`, `retry`, `sweep`)
    /// hold for those the delta listing does not show.
    async fn apply(
        &mut self,
        scope: &Scope,
        shared: &Arc<Shared>,
        listing: &Listing,
        due: Instant,
    ) {
        let listed = &listing.associations;
        if self.listing_error.take().is_some() {
            tracing::info!(scope = %self.name, "ListAssociations works again");
        }
        let mut pass = Pass {
            aws_now: scope.ssm.clock().now_ms(),
            now: now_ms(),
            counts: vec![0usize; shared.selection.selectors().len()],
            static_found: HashSet::new(),
            selected: HashSet::with_capacity(listed.len()),
            awaiting: Vec::new(),
            to_poll: Vec::new(),
            sweeps: Vec::new(),
        };
        let arrived = self.tag_reads.take_arrived();
        if listing.kind == Kind::Full {
            self.known.clear();
            self.untagged.clear();
            let tag_ids = std::mem::take(&mut self.tag_ids);
            for l in listed {
                let selected = match self.selects(shared, l, &mut pass) {
                    Some(selected) => selected,
                    // Tags not read yet: neither selected nor retired for want of them.
                    None => {
                        self.untagged.insert(l.id.clone(), l.clone());
                        self.watch.contains_key(&l.id)
                    }
                };
                if !selected || !self.watches(shared, &l.id) {
                    continue;
                }
                pass.selected.insert(l.id.clone());
                self.known.insert(l.id.clone(), l.clone());
                if let Some((entry, signature, decision)) = self.decide(shared, l, &pass) {
                    self.follow(shared, l, entry, signature, decision, &mut pass);
                }
            }
            // Tags of associations this scope no longer lists are forgotten.
            let gone: HashSet<&String> = tag_ids.difference(&self.tag_ids).collect();
            if !gone.is_empty() {
                shared
                    .store
                    .retain_tags(|id| !gone.contains(&id.to_string()));
            }
        } else {
            for l in listed {
                if let Some(known) = self.known.get_mut(&l.id) {
                    known.clone_from(l);
                }
            }
            // Associations whose tags came in since: selected now, as the full listing showed
            // them (or this delta listing, if newer).
            for id in arrived {
                let Some(mut l) = self.untagged.remove(&id) else {
                    continue;
                };
                if let Some(newer) = listed.iter().find(|n| n.id == id) {
                    l.clone_from(newer);
                }
                if self.selects(shared, &l, &mut pass) == Some(true) && self.watches(shared, &id) {
                    self.known.insert(id, l);
                    let watched = self.known.len() as i64;
                    let gauge = &shared.metrics.associations_watched;
                    gauge.with_label_values(&self.labels()).set(watched);
                }
            }
            let known = std::mem::take(&mut self.known);
            for l in known.values() {
                if let Some((entry, signature, decision)) = self.decide(shared, l, &pass) {
                    self.follow(shared, l, entry, signature, decision, &mut pass);
                }
            }
            self.known = known;
        }
        // At most the cap of sweep polls start; the others are asked for at the next listing.
        let (sweeps, later) = sweep::choose(std::mem::take(&mut pass.sweeps), shared.sweep_cap);
        for (entry, signature) in sweeps {
            self.start_poll(shared, entry, signature, feed::Reason::Sweep, &mut pass);
        }
        for (entry, _) in later {
            entry.mark_polled();
            shared.readiness.first_poll_done(&entry.id);
        }
        let (full_sweep, cap) = (shared.rules.full_sweep_ms as u64, shared.sweep_cap);
        let full_sweep = Duration::from_millis(full_sweep);
        self.sweep = SweepPlan::new(self.known.keys(), full_sweep, shared.poll_interval, cap);
        let gauge = &shared.metrics.sweep_period_seconds;
        let period = self.sweep.period().as_secs_f64();
        gauge.with_label_values(&self.labels()).set(period);
        // Readiness learns what the first listing waits for before any of its polls can end.
        if std::mem::take(&mut self.first_listing) {
            shared
                .readiness
                .scope_listed(&self.name, std::mem::take(&mut pass.awaiting));
        }
        // The queued polls start, due ones first, each once one of the scope's poll slots is
        // free; every request of a poll goes at its priority.
        pass.to_poll.sort_by_key(|(_, _, priority)| *priority);
        for (entry, signature, priority) in std::mem::take(&mut pass.to_poll) {
            let (ssm, shared, details) =
                (scope.ssm.at(priority), shared.clone(), self.details.clone());
            self.polls
                .spawn(with_slot(self.poll_slots.clone(), priority, move || {
                    poll_task(entry, ssm, shared, due, signature, details)
                }));
        }
        if listing.kind == Kind::Full {
            self.full_listing_applied(shared, listed, pass);
        }
        shared
            .metrics
            .listing_success
            .with_label_values(&self.labels())
            .set(1);
        shared
            .metrics
            .associations_awaiting_first_poll
            .set(shared.readiness.awaiting_first_poll() as i64);
    }

    /// What only a full listing decides: which watched associations go, which tags and
    /// denials are forgotten, and the discovery gauges.
    fn full_listing_applied(&mut self, shared: &Shared, listed: &[ListedAssociation], pass: Pass) {
        self.retire_unselected(shared, &pass.selected, pass.now);
        let listed_ids: HashSet<&str> = listed.iter().map(|l| l.id.as_str()).collect();
        // Denials of associations this scope no longer lists go with them.
        shared
            .metrics
            .forget_access_denied(|[id, account, region, _]| {
                *account == self.key.account_id
                    && *region == self.key.region
                    && !listed_ids.contains(id)
            });
        shared
            .metrics
            .associations_watched
            .with_label_values(&self.labels())
            .set(pass.selected.len() as i64);
        shared.report(&self.name, pass.static_found, pass.counts);
        shared
            .metrics
            .owned_associations
            .set(shared.store.len() as i64);
    }

    /// Step 1: whether the listing selects `l` (by name, static ID, or tags from the cache
    /// when a selector needs them). `None` when only tags not read yet can tell: their read is
    /// queued, if this shard owns `l`, no other scope watches it and no other selector took
    /// it; the listing does not wait for it. What it matched is counted, for the gauges.
    fn selects(&mut self, shared: &Shared, l: &ListedAssociation, pass: &mut Pass) -> Option<bool> {
        let mut verdict = shared.selection.by_names(l);
        if !verdict.need_tags.is_empty() {
            self.tag_ids.insert(l.id.clone());
            let cached = shared.store.tags(&l.id);
            let max_age = shared.discovery_interval.as_millis() as i64;
            let fresh = cached
                .as_ref()
                .is_some_and(|(at, _)| now_ms() - at < max_age);
            if !fresh && !verdict.selected() && self.may_watch(shared, &l.id) {
                self.tag_reads.push(&l.id);
            }
            match cached {
                Some((_, tags)) => shared.selection.with_tags(&mut verdict, &tags),
                None if !verdict.selected() => return None,
                None => {}
            }
        }
        if verdict.static_id {
            pass.static_found.insert(l.id.clone());
        }
        for i in &verdict.matched {
            pass.counts[*i] += 1;
        }
        Some(verdict.selected())
    }

    /// Whether this scope would watch `id` if selected: this shard owns it and no other scope
    /// claimed it.
    fn may_watch(&self, shared: &Shared, id: &str) -> bool {
        shared.shard.owns(&self.key, id)
            && lock(&shared.claims)
                .get(id)
                .is_none_or(|owner| *owner == self.name)
    }

    /// Step 2: whether this scope watches the selected `id`: this shard owns it, and no other
    /// scope claimed it first (an association listed by two scopes is watched once).
    fn watches(&self, shared: &Shared, id: &str) -> bool {
        if !shared.shard.owns(&self.key, id) {
            // Another shard's: not waited for here.
            shared.readiness.first_poll_done(id);
            return false;
        }
        let mut claims = lock(&shared.claims);
        match claims.get(id) {
            Some(owner) => *owner == self.name,
            None => {
                claims.insert(id.to_string(), self.name.clone());
                true
            }
        }
    }

    /// Step 3: what the change feed decides for the watched `l`, once its entry (made if new)
    /// holds the listing's info. `None` while a poll of it runs or it waits after failures.
    fn decide(
        &mut self,
        shared: &Shared,
        l: &ListedAssociation,
        pass: &Pass,
    ) -> Option<(Arc<Entry>, String, Decision)> {
        let entry = shared
            .store
            .get(&l.id)
            .unwrap_or_else(|| shared.store.insert(&l.id, &self.key, shared.fresh()));
        let in_flight = self.in_flight.contains(&l.id);
        update_info(&entry, l, &self.key, pass.aws_now, shared, !in_flight);
        let watch = self.watch.entry(l.id.clone()).or_default();
        if in_flight || watch.next_try.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let signature = l.signature();
        let decision = {
            let mut live = lock(&entry.live);
            // Retained state resumes as of this first listing that watches it again.
            live.tracker.settle(pass.aws_now);
            let known = Known {
                started: live.tracker.started(),
                complete: live.exposed.complete,
                poll_success: live.exposed.poll_success,
                signature: live.exposed.signature.as_deref(),
                seen_ms: live.exposed.seen_ms,
                in_progress: live.tracker.in_progress() as u64,
                newest_in_progress_ms: live.tracker.newest_pending_created_ms(),
                last_poll_success_ms: live.exposed.last_poll_success_ms,
                sweep_slot_ms: self.sweep.slot(&l.id, pass.now),
                view: live.exposed.view,
                events_read_through: self.events.read_through(&l.id, l.last_execution_ms),
            };
            feed::decide(l, &signature, &known, &shared.rules, pass.aws_now, pass.now)
        };
        Some((entry, signature, decision))
    }

    /// Step 4: carries out the decision: nothing to read (the association counts as polled),
    /// an empty first poll done here, or a poll queued to start once the listing is applied.
    fn follow(
        &mut self,
        shared: &Shared,
        l: &ListedAssociation,
        entry: Arc<Entry>,
        signature: String,
        decision: Decision,
        pass: &mut Pass,
    ) {
        match decision {
            Decision::Skip => {
                entry.mark_polled();
                shared.readiness.first_poll_done(&l.id);
            }
            Decision::EmptyFirstPoll => {
                Poller::new(entry.clone(), shared.target_detail, shared.started_ms)
                    .empty_first_poll(
                        pass.aws_now,
                        signature,
                        l.last_execution_ms,
                        &shared.store,
                        shared.publish_each_poll,
                    );
                entry.mark_polled();
                shared.readiness.first_poll_done(&l.id);
            }
            // Started once the listing is applied, if within the cap ([`sweep::choose`]).
            Decision::Poll(feed::Reason::Sweep) => {
                let last = lock(&entry.live).exposed.last_poll_success_ms;
                pass.sweeps.push((last, (entry, signature)));
            }
            Decision::Poll(reason) => self.start_poll(shared, entry, signature, reason, pass),
        }
    }

    /// Queues a poll of `entry` to start once the listing is applied.
    fn start_poll(
        &mut self,
        shared: &Shared,
        entry: Arc<Entry>,
        signature: String,
        reason: feed::Reason,
        pass: &mut Pass,
    ) {
        let metrics = &shared.metrics;
        metrics
            .polls_total
            .with_label_values(&[reason.name()])
            .inc();
        if !entry.polled() {
            pass.awaiting.push(entry.id.clone());
        }
        self.in_flight.insert(entry.id.clone());
        // It starts after any trigger waiting for it: it answers them.
        self.events.poll_started(&entry.id);
        pass.to_poll
            .push((entry, signature, slots::priority(reason)));
    }

    /// Step 5: which watched associations go: those the listing no longer has or selects lose
    /// their watch, their claim and (retired in the store) their series.
    fn retire_unselected(&mut self, shared: &Shared, selected: &HashSet<String>, now: i64) {
        let gone: Vec<String> = self
            .watch
            .keys()
            .filter(|id| !selected.contains(*id))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let mut claims = lock(&shared.claims);
            for id in &gone {
                self.watch.remove(id);
                if claims.get(id) == Some(&self.name) {
                    claims.remove(id);
                }
                tracing::info!(scope = %self.name, association_id = %id, "association no longer listed or selected; its series go");
            }
            drop(claims);
            shared.store.retire(&gone, now);
            // Their events' triggers are answered as unwatched; nothing is kept of them.
            self.events.forget(&gone);
            // Their polls' denials go with their series (a tag denial stays while listed).
            shared
                .metrics
                .forget_access_denied(|[id, _, _, operation]| {
                    *operation != TAGS_OPERATION && gone.iter().any(|g| g == id)
                });
        }
    }

    /// A poll of `id` ended.
    fn poll_ended(&mut self, id: &str, result: Result<(), ApiError>, interval: Duration) {
        self.in_flight.remove(id);
        self.events.poll_ended(id, result.is_ok());
        let Some(watch) = self.watch.get_mut(id) else {
            return;
        };
        match result {
            Ok(()) => {
                if watch.last_error.take().is_some() {
                    tracing::info!(association_id = id, "poll recovered");
                }
                watch.failures = 0;
                watch.next_try = None;
            }
            Err(error) => {
                if watch.last_error.as_deref() != Some(error.code.as_str()) {
                    tracing::warn!(association_id = id, code = %error.code, %error, "poll failed");
                } else {
                    tracing::debug!(association_id = id, code = %error.code, %error, "poll failed again");
                }
                watch.last_error = Some(error.code.clone());
                watch.failures = watch.failures.saturating_add(1);
                watch.next_try = Some(Instant::now() + retry_wait(interval, watch.failures));
            }
        }
    }
}
