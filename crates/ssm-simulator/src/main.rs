//! `ssm-simulator`: the simulated SSM endpoint as its own process, so that benchmarks can
//! measure the exporter's CPU and memory without the simulator's.
//!
//! A thin command line over the [`ssm_simulator`] library: it creates
//! `--associations` associations with deterministic, valid IDs, gives each `--executions`
//! finished executions spread evenly over `--history` before now, optionally caps the page size,
//! throttles above `--rate-limit` and keeps adding executions (`--new-executions-per-second`),
//! and can write an exporter config listing the IDs (`--config-out`; the exporter's own tests
//! check that it accepts that format, see [`ssm_simulator::ExporterConfig`]). It prints one line,
//! `listening on http://127.0.0.1:PORT`, to stdout once the data is in place, logs to stderr,
//! and runs until SIGTERM or SIGINT.
//!
//! Estate mode (`--accounts A` and/or `--regions r1,r2`): the associations are spread evenly
//! over A accounts × R regions (account 1 is [`DEFAULT_ACCOUNT`], the exporter's own with fake
//! credentials; account k > 1 is `1111111111NN` with NN = k - 1, reached through the role
//! `arn:aws:iam::<account>:role/ssm-association-exporter`, which trusts [`DEFAULT_ACCOUNT`]
//! and demands `--external-id` if given), and `--config-out` writes a config that discovers
//! every association (`discovery: [{}]`) in every account and region. `--active-fraction F`
//! starts a new run on a random (seeded) fraction F of all associations every
//! `--activity-interval` (first after `--activity-delay`); each is InProgress for a few
//! seconds (or `--run-length`) and then ends (mostly Success).
//!
//! Events (`--event-queue URL`, repeatable): SQS queues at AWS-shaped URLs
//! (`https://sqs.<region>.amazonaws.com/<account>/<name>`) served on the same endpoint, fed with
//! the State Manager events of every execution the activity starts and ends (not of the
//! history). Each queue receives every account's and region's events (a central bus) unless
//! `--event-route ACCOUNT/REGION=URL` routes are given (`*` for any account or region).
//! `--event-faults [URL=]SPEC` sets a queue's faults (every queue's without `URL=`), SPEC being
//! comma-separated `lose=F`, `duplicate=F`, `malformed=F`, `delay=DURATION`, `reorder`,
//! `seed=N`; `--queue-outage [URL=]KIND,after=DURATION,for=DURATION` makes a queue fail
//! (`KIND` `error`: HTTP 500, `reset`: connection closed, `throttled`: `RequestThrottled`) for
//! a window; `--queue-visibility-timeout` sets the queues' default visibility timeout.
//!
//! `--requests-address ADDR` serves `GET /_sim/requests` there: the requests received since
//! start, counted by (account, region, operation), as JSON
//! `{"requests": [{"account": "...", "region": "...", "operation": "...", "count": N}, ...]}`.
//! Benchmarks diff two answers to get the calls of a window. The individual request records
//! are dropped every second then, so memory stays flat however long it runs. `GET
//! /_sim/queues` there answers each queue's state:
//! `{"queues": [{"url": "...", "visible": N, "in_flight": N, "delayed": N, "deleted": N,
//! "sent": N, "events": N, "lost": N, "duplicated": N, "malformed": N, "received": N}, ...]}`.
//! `GET /_sim/ends` there lists when the runs of `--new-executions-per-second` and
//! `--active-fraction` reached their final state (the newest 100,000), for latency benchmarks:
//! `{"ends": [{"association_id": "...", "status": "...", "ended_ms": N}, ...]}`.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ssm_simulator::{
    parse_duration, parse_event_route, parse_queue_faults, parse_queue_outage, split_queue_url,
    split_target, EstateAccount, EventRoute, ExporterConfig, SimAssociation, SimExecution,
    Simulator, DEFAULT_ACCOUNT, DEFAULT_REGION,
};
use tokio::net::TcpListener;

/// Seed of every random choice, so that two runs with the same flags serve the same history.
const SEED: u64 = 0x55D_B3C4;

/// A simulated AWS SSM endpoint (DescribeAssociationExecutions, DescribeAssociation) for
/// benchmarks and manual testing.
#[derive(Debug, Parser)]
#[command(name = "ssm-simulator", version, about)]
struct Flags {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen_address: String,
    /// Number of associations.
    #[arg(long, default_value_t = 10)]
    associations: u32,
    /// Finished executions per association, spread evenly over --history.
    #[arg(long, default_value_t = 20)]
    executions: u32,
    /// How far back the executions' CreatedTime reaches (Prometheus duration syntax).
    #[arg(long, default_value = "50m", value_parser = parse_duration)]
    history: Duration,
    /// Cap on the executions per page (short pages); the API's own maximum is 50.
    #[arg(long)]
    page_size: Option<usize>,
    /// Answer ThrottlingException above this many requests per second.
    #[arg(long, value_name = "RPS")]
    rate_limit: Option<f64>,
    /// New executions per second across random associations, each InProgress for a few
    /// seconds before it finishes; 0 keeps the data static.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    new_executions_per_second: f64,
    /// Write an exporter configuration listing every association ID to this file.
    #[arg(long, value_name = "PATH")]
    config_out: Option<PathBuf>,
    /// `poll_interval` of the written config.
    #[arg(long, default_value = "60s", requires = "config_out")]
    poll_interval: String,
    /// `api_requests_per_second` of the written config.
    #[arg(long, default_value_t = 5.0, requires = "config_out")]
    api_requests_per_second: f64,
    /// `max_concurrent_requests` of the written config.
    #[arg(long, default_value_t = 4, requires = "config_out")]
    max_concurrent_requests: u32,
    /// `initial_lookback` of the written config.
    #[arg(long, default_value = "1h", requires = "config_out")]
    initial_lookback: String,
    /// `full_sweep_interval` of the written config (estate mode only).
    #[arg(long, default_value = "1h", requires = "config_out")]
    full_sweep_interval: String,
    /// Estate mode: spread the associations over this many accounts (1 to 100): the own
    /// account 123456789012 and 1111111111NN reached through a role.
    #[arg(long, value_name = "A")]
    accounts: Option<u32>,
    /// Estate mode: spread the associations over these regions (comma-separated; default
    /// us-east-1).
    #[arg(long, value_name = "R1,R2", value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// The ExternalId the member accounts' roles demand (estate mode).
    #[arg(long, value_name = "ID")]
    external_id: Option<String>,
    /// Every --activity-interval, start a new run on this fraction (0 to 1) of all
    /// associations, chosen at random (seeded); each is InProgress for a few seconds, then ends.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    active_fraction: f64,
    /// How often --active-fraction starts runs (Prometheus duration syntax).
    #[arg(long, value_name = "S", default_value = "60s", value_parser = parse_duration)]
    activity_interval: Duration,
    /// When the first --active-fraction round starts, after the data is in place (default: one
    /// --activity-interval). Sets the phase of the rounds against a poller's own cadence.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    activity_delay: Option<Duration>,
    /// How long each --active-fraction run stays InProgress (default: 2 to 8 s, at most half of
    /// --activity-interval). A long one with --active-fraction 1 and a long --activity-interval
    /// is a patch wave: every association running at once for this long.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    run_length: Option<Duration>,
    /// Serve GET /_sim/requests (request counts by account, region and operation, JSON) on
    /// this address.
    #[arg(long, value_name = "ADDR")]
    requests_address: Option<String>,
    /// Serve this SQS queue (https://sqs.<region>.amazonaws.com/<account>/<name>) and send it
    /// State Manager events (repeatable).
    #[arg(long, value_name = "URL")]
    event_queue: Vec<String>,
    /// Route one scope's events to a queue: ACCOUNT/REGION=URL, `*` for any (repeatable;
    /// default: every scope to every --event-queue).
    #[arg(long, value_name = "SCOPE=URL")]
    event_route: Vec<String>,
    /// A queue's event faults: [URL=]lose=F,duplicate=F,malformed=F,delay=D,reorder,seed=N
    /// (every queue without URL=; repeatable).
    #[arg(long, value_name = "[URL=]SPEC")]
    event_faults: Vec<String>,
    /// A queue outage: [URL=]error|reset|throttled,after=D,for=D (every queue without URL=;
    /// repeatable).
    #[arg(long, value_name = "[URL=]SPEC")]
    queue_outage: Vec<String>,
    /// The queues' default visibility timeout (Prometheus duration syntax).
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    queue_visibility_timeout: Duration,
}

/// Creates the queues, routes, faults and outages of the command line (after the history, so
/// only the activity sends events).
fn set_up_queues(sim: &Simulator, flags: &Flags) -> Result<(), String> {
    let mut urls = Vec::new();
    for url in &flags.event_queue {
        let (account, region, name) = split_queue_url(url)
            .ok_or_else(|| format!("--event-queue {url:?}: expected https://sqs.<region>.amazonaws.com/<account>/<name>"))?;
        urls.push(sim.add_queue(&account, &region, &name));
        sim.set_queue_visibility_timeout(
            urls.last().expect("just pushed"),
            flags.queue_visibility_timeout,
        );
    }
    let known = |url: Option<&str>, flag: &str| -> Result<Vec<String>, String> {
        match url {
            None => Ok(urls.clone()),
            Some(url) if urls.iter().any(|u| u == url) => Ok(vec![url.to_owned()]),
            Some(url) => Err(format!("{flag}: {url} is not an --event-queue")),
        }
    };
    if flags.event_route.is_empty() {
        for url in &urls {
            sim.route_events(EventRoute::to(url.clone()));
        }
    }
    for text in &flags.event_route {
        let route = parse_event_route(text).map_err(|e| format!("--event-route {e}"))?;
        known(Some(&route.queue_url), "--event-route")?;
        sim.route_events(route);
    }
    for text in &flags.event_faults {
        let (url, spec) = split_target(text);
        let faults = parse_queue_faults(spec).map_err(|e| format!("--event-faults: {e}"))?;
        for url in known(url, "--event-faults")? {
            sim.set_queue_faults(&url, faults.clone());
        }
    }
    for text in &flags.queue_outage {
        let (url, spec) = split_target(text);
        let outage = parse_queue_outage(spec).map_err(|e| format!("--queue-outage: {e}"))?;
        for url in known(url, "--queue-outage")? {
            let sim = sim.clone();
            let outage = outage.clone();
            tokio::spawn(async move {
                tokio::time::sleep(outage.after).await;
                sim.set_queue_outage(&url, Some((outage.kind, outage.length)));
            });
        }
    }
    Ok(())
}

impl Flags {
    fn estate(&self) -> bool {
        self.accounts.is_some() || self.regions.is_some()
    }

    /// The accounts of the estate, the own one first.
    fn account_ids(&self) -> Vec<String> {
        (1..=self.accounts.unwrap_or(1))
            .map(|k| {
                if k == 1 {
                    DEFAULT_ACCOUNT.to_owned()
                } else {
                    format!("1111111111{:02}", k - 1)
                }
            })
            .collect()
    }

    fn region_names(&self) -> Vec<String> {
        self.regions
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_REGION.to_owned()])
    }

    /// Checks what clap cannot.
    fn check(&self) -> Result<(), String> {
        if !(self.new_executions_per_second.is_finite() && self.new_executions_per_second >= 0.0) {
            return Err("--new-executions-per-second must be a number >= 0".into());
        }
        if self.associations == 0 {
            return Err("--associations must be at least 1".into());
        }
        if !(self.active_fraction.is_finite() && (0.0..=1.0).contains(&self.active_fraction)) {
            return Err("--active-fraction must be a number from 0 to 1".into());
        }
        if self.activity_interval < Duration::from_secs(1) {
            return Err("--activity-interval must be at least 1s".into());
        }
        if !matches!(self.accounts, None | Some(1..=100)) {
            return Err("--accounts must be 1 to 100".into());
        }
        let regions = self.region_names();
        if regions.is_empty() || regions.iter().any(String::is_empty) {
            return Err("--regions must name at least one region".into());
        }
        let mut unique = regions.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != regions.len() {
            return Err("--regions must not repeat a region".into());
        }
        if self.external_id.is_some() && !self.estate() {
            return Err("--external-id needs --accounts".into());
        }
        Ok(())
    }
}

/// The role the exporter assumes in a member account.
fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/ssm-association-exporter")
}

/// One association and where it lives.
#[derive(Clone, Debug)]
struct Target {
    account: String,
    region: String,
    id: String,
}

/// The `n`th association ID: deterministic, in SSM's 8-4-4-4-12 hexadecimal format.
fn association_id(n: u32) -> String {
    let mix = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    format!("{n:08x}-5353-4d00-8{:03x}-{mix:012x}", n & 0xfff)
}

/// A random uuid-shaped execution ID.
fn execution_id(rng: &mut StdRng) -> String {
    ssm_simulator::uuid_like(rng.random())
}

/// A finished execution created at `created_ms`: mostly successes, some failures, time-outs,
/// cancellations and skips; every status but Skipped has a LastExecutionDate up to 5 minutes
/// later (never after `now_ms`).
fn finished(rng: &mut StdRng, created_ms: i64, now_ms: i64) -> SimExecution {
    let status = match rng.random_range(0..100) {
        0..80 => "Success",
        80..90 => "Failed",
        90..94 => "TimedOut",
        94..97 => "Cancelled",
        _ => "Skipped",
    };
    let targets: u32 = rng.random_range(1..20);
    let mut execution = SimExecution::new(execution_id(rng), status, created_ms)
        .with_detailed_status(status)
        .with_resource_count_by_status(format!("{{{status}={targets}}}"));
    if status != "Skipped" {
        let end = (created_ms + rng.random_range(5_000..300_000)).min(now_ms.max(created_ms));
        execution = execution.with_last_execution_ms(end);
    }
    execution
}

/// Writes the exporter config: the IDs, or in estate mode the discovery of every account and
/// region.
fn write_config(flags: &Flags, path: &Path, ids: &[String]) -> Result<(), String> {
    let config = ExporterConfig {
        poll_interval: flags.poll_interval.clone(),
        initial_lookback: flags.initial_lookback.clone(),
        api_requests_per_second: flags.api_requests_per_second,
        max_concurrent_requests: flags.max_concurrent_requests,
    };
    let yaml = if flags.estate() {
        let accounts: Vec<EstateAccount> = flags
            .account_ids()
            .into_iter()
            .map(|account| {
                if account == DEFAULT_ACCOUNT {
                    EstateAccount::Own
                } else {
                    EstateAccount::Role {
                        role_arn: role_arn(&account),
                        external_id: flags.external_id.clone(),
                    }
                }
            })
            .collect();
        config.estate_yaml(&flags.region_names(), &accounts, &flags.full_sweep_interval)
    } else {
        config.yaml(ids)
    };
    std::fs::write(path, yaml).map_err(|e| format!("{}: {e}", path.display()))
}

/// The newest run ends: (association ID, final status, simulator time in ms).
type Ends = Arc<Mutex<VecDeque<(String, String, i64)>>>;
/// How many run ends [`Ends`] keeps.
const ENDS_KEPT: usize = 100_000;

/// Starts a run of `target` now: an InProgress execution that ends `delay` later with a
/// random final status, recorded in `ends`.
fn start_run(sim: &Simulator, rng: &mut StdRng, target: &Target, delay: Duration, ends: &Ends) {
    let now = sim.now_ms();
    let running =
        SimExecution::new(execution_id(rng), "InProgress", now).with_detailed_status("InProgress");
    let execution_id = running.execution_id.clone();
    sim.add_execution_in(&target.account, &target.region, &target.id, running);
    let outcome = finished(rng, now, i64::MAX);
    let (sim, target, ends) = (sim.clone(), target.clone(), ends.clone());
    let status = outcome.status.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let ended_ms = sim.now_ms();
        sim.update_execution_in(
            &target.account,
            &target.region,
            &target.id,
            &execution_id,
            |e| {
                e.status = outcome.status;
                e.detailed_status = outcome.detailed_status;
                e.resource_count_by_status = outcome.resource_count_by_status;
                e.last_execution_ms = outcome.last_execution_ms.map(|_| ended_ms);
            },
        );
        let mut ends = ends.lock().unwrap_or_else(|e| e.into_inner());
        if ends.len() == ENDS_KEPT {
            ends.pop_front();
        }
        ends.push_back((target.id, status, ended_ms));
    });
}

/// Adds a new InProgress execution to a random association every `1/rate` seconds and
/// finishes it 2-8 seconds later.
async fn trickle(sim: Simulator, targets: Arc<Vec<Target>>, rate: f64, ends: Ends) {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let target = &targets[rng.random_range(0..targets.len())];
        let delay = Duration::from_millis(rng.random_range(2_000..8_000));
        start_run(&sim, &mut rng, target, delay, &ends);
    }
}

/// Every `every` (first after `delay`), starts a run on `fraction` of the associations,
/// picked at random without repeats; each ends `length` later, by default 2-8 seconds (at
/// most half of `every`, at least 1 s), before the next round.
async fn activity(
    sim: Simulator,
    targets: Arc<Vec<Target>>,
    fraction: f64,
    every: Duration,
    delay: Duration,
    length: Option<Duration>,
    ends: Ends,
) {
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let count = ((targets.len() as f64 * fraction).round() as usize).min(targets.len());
    let longest = u64::try_from(every.as_millis() / 2)
        .unwrap_or(u64::MAX)
        .clamp(1_000, 8_000);
    let shortest = longest.min(2_000) / 2;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for i in rand::seq::index::sample(&mut rng, targets.len(), count) {
            let delay = length
                .unwrap_or_else(|| Duration::from_millis(rng.random_range(shortest..=longest)));
            start_run(&sim, &mut rng, &targets[i], delay, &ends);
        }
    }
}

/// Running totals of requests by (account, region, operation).
type Totals = Arc<Mutex<BTreeMap<(String, String, String), u64>>>;

/// Moves the simulator's request records into `totals`.
fn drain(sim: &Simulator, totals: &Totals) {
    let taken = sim.take_request_counts_by_scope();
    let mut totals = totals.lock().unwrap_or_else(|e| e.into_inner());
    for ((scope, operation), n) in taken {
        *totals
            .entry((scope.account, scope.region, operation))
            .or_default() += n;
    }
}

/// Serves `GET /_sim/requests`, `/_sim/queues` and `/_sim/ends` on `listener`, and drains the
/// records every second.
async fn serve_requests(listener: TcpListener, sim: Simulator, totals: Totals, ends: Ends) {
    {
        let (sim, totals) = (sim.clone(), totals.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                drain(&sim, &totals);
            }
        });
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (sim, totals, ends) = (sim.clone(), totals.clone(), ends.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let answer = requests_answer(&req, &sim, &totals, &ends);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The answer to one request on `--requests-address`.
fn requests_answer(
    req: &Request<Incoming>,
    sim: &Simulator,
    totals: &Totals,
    ends: &Ends,
) -> Response<Full<Bytes>> {
    let reply = |status, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        response
    };
    if req.method() == Method::GET && req.uri().path() == "/_sim/queues" {
        let queues: Vec<serde_json::Value> = sim
            .queue_urls()
            .into_iter()
            .map(|url| {
                let s = sim.queue_stats(&url);
                serde_json::json!({
                    "url": url, "visible": s.visible, "in_flight": s.in_flight,
                    "delayed": s.delayed, "deleted": s.deleted, "sent": s.sent,
                    "events": s.events, "lost": s.lost, "duplicated": s.duplicated,
                    "malformed": s.malformed, "received": s.received,
                })
            })
            .collect();
        return reply(
            StatusCode::OK,
            serde_json::json!({ "queues": queues }).to_string(),
        );
    }
    if req.method() == Method::GET && req.uri().path() == "/_sim/ends" {
        let ends = ends.lock().unwrap_or_else(|e| e.into_inner());
        let ends: Vec<serde_json::Value> = ends
            .iter()
            .map(|(id, status, ms)| {
                serde_json::json!({ "association_id": id, "status": status, "ended_ms": ms })
            })
            .collect();
        return reply(
            StatusCode::OK,
            serde_json::json!({ "ends": ends }).to_string(),
        );
    }
    if req.method() != Method::GET || req.uri().path() != "/_sim/requests" {
        return reply(
            StatusCode::NOT_FOUND,
            r#"{"error": "only GET /_sim/requests, /_sim/queues and /_sim/ends"}"#.into(),
        );
    }
    drain(sim, totals);
    let totals = totals.lock().unwrap_or_else(|e| e.into_inner());
    let requests: Vec<serde_json::Value> = totals
        .iter()
        .map(|((account, region, operation), count)| {
            serde_json::json!({
                "account": account, "region": region, "operation": operation, "count": count,
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        serde_json::json!({ "requests": requests }).to_string(),
    )
}

/// Creates the associations and their history; returns where each lives.
fn populate(sim: &Simulator, flags: &Flags) -> Vec<Target> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let now = sim.now_ms();
    let history_ms = i64::try_from(flags.history.as_millis()).unwrap_or(i64::MAX);
    let step = history_ms / i64::from(flags.executions.max(1));
    let targets: Vec<Target> = if flags.estate() {
        let accounts = flags.account_ids();
        let regions = flags.region_names();
        for account in accounts.iter().filter(|a| *a != DEFAULT_ACCOUNT) {
            sim.add_role(
                role_arn(account),
                account.clone(),
                flags.external_id.clone(),
                [DEFAULT_ACCOUNT],
            );
        }
        let scopes: Vec<(&String, &String)> = accounts
            .iter()
            .flat_map(|a| regions.iter().map(move |r| (a, r)))
            .collect();
        let total = flags.associations as usize;
        let (each, extra) = (total / scopes.len(), total % scopes.len());
        scopes
            .iter()
            .enumerate()
            .flat_map(|(k, (account, region))| {
                let n = each + usize::from(k < extra);
                let prefix = format!("bench-{account}-{region}");
                sim.add_associations_in(account, region, n, &prefix)
                    .into_iter()
                    .map(|id| Target {
                        account: (*account).clone(),
                        region: (*region).clone(),
                        id,
                    })
            })
            .collect()
    } else {
        (1..=flags.associations)
            .map(|n| {
                let id = association_id(n);
                sim.add_association(
                    &id,
                    SimAssociation::new("AWS-RunPatchBaseline")
                        .with_name(format!("bench-{}", n - 1))
                        .with_schedule("rate(30 minutes)"),
                );
                Target {
                    account: DEFAULT_ACCOUNT.to_owned(),
                    region: DEFAULT_REGION.to_owned(),
                    id,
                }
            })
            .collect()
    };
    for target in &targets {
        // Each association at its own phase within one step.
        let phase = rng.random_range(0..step.max(1));
        for k in 0..i64::from(flags.executions) {
            let created = now - history_ms + k * step + phase;
            sim.add_execution_in(
                &target.account,
                &target.region,
                &target.id,
                finished(&mut rng, created, now),
            );
        }
    }
    targets
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    if let Err(message) = flags.check() {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(&flags.listen_address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}: {error}", flags.listen_address);
            return ExitCode::FAILURE;
        }
    };
    let requests_listener = match &flags.requests_address {
        None => None,
        Some(address) => match TcpListener::bind(address).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                eprintln!("cannot listen on {address}: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let sim = match Simulator::start_on(listener).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("starting the simulator failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    sim.set_page_size(flags.page_size);
    if let Some(rate) = flags.rate_limit {
        if !(rate.is_finite() && rate >= 0.0) {
            eprintln!("--rate-limit must be a number >= 0");
            return ExitCode::from(2);
        }
        sim.set_rate_limit(Some(rate));
    }

    let targets = Arc::new(populate(&sim, &flags));
    if let Err(error) = set_up_queues(&sim, &flags) {
        eprintln!("{error}");
        return ExitCode::from(2);
    }
    let ends = Ends::default();
    if let Some(path) = &flags.config_out {
        let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        if let Err(error) = write_config(&flags, path, &ids) {
            eprintln!("--config-out: {error}");
            return ExitCode::from(2);
        }
    }
    if flags.new_executions_per_second > 0.0 {
        tokio::spawn(trickle(
            sim.clone(),
            targets.clone(),
            flags.new_executions_per_second,
            ends.clone(),
        ));
    }
    if flags.active_fraction > 0.0 {
        tokio::spawn(activity(
            sim.clone(),
            targets.clone(),
            flags.active_fraction,
            flags.activity_interval,
            flags.activity_delay.unwrap_or(flags.activity_interval),
            flags.run_length,
            ends.clone(),
        ));
    }
    if let Some(listener) = requests_listener {
        tokio::spawn(serve_requests(
            listener,
            sim.clone(),
            Totals::default(),
            ends.clone(),
        ));
    }

    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", sim.endpoint_url());
    let _ = stdout.flush();
    eprintln!(
        "ssm-simulator: {} associations x {} executions over {}s in {} account(s) x {} region(s)",
        targets.len(),
        flags.executions,
        flags.history.as_secs(),
        flags.account_ids().len(),
        flags.region_names().len(),
    );

    shutdown_signal().await;
    sim.shutdown();
    ExitCode::SUCCESS
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
