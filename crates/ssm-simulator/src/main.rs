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

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ssm_simulator::{ExporterConfig, SimAssociation, SimExecution, Simulator};
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

/// Writes the exporter config.
fn write_config(flags: &Flags, path: &Path, ids: &[String]) -> Result<(), String> {
    let config = ExporterConfig {
        poll_interval: flags.poll_interval.clone(),
        initial_lookback: flags.initial_lookback.clone(),
        api_requests_per_second: flags.api_requests_per_second,
        max_concurrent_requests: flags.max_concurrent_requests,
    };
    std::fs::write(path, config.yaml(ids)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a Prometheus-style duration such as `50m` or `1h30m` (units `ms`, `s`, `m`, `h`,
/// `d`, `w`, `y`; a year is 365 days).
fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: &[(&str, u64)] = &[
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let invalid = || format!("invalid duration {text:?}; expected e.g. 50m or 1h30m");
    let mut rest = text;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let letters = rest[digits..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(rest.len(), |n| digits + n);
        let count: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit = UNITS
            .iter()
            .find(|(name, _)| *name == &rest[digits..letters])
            .ok_or_else(invalid)?;
        total = count
            .checked_mul(unit.1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(invalid)?;
        rest = &rest[letters..];
    }
    Ok(Duration::from_millis(total))
}

/// Adds a new InProgress execution to a random association every `1/rate` seconds and
/// finishes it 2-8 seconds later.
async fn trickle(sim: Simulator, ids: Vec<String>, rate: f64) {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let id = ids[rng.random_range(0..ids.len())].clone();
        let now = sim.now_ms();
        let running = SimExecution::new(execution_id(&mut rng), "InProgress", now)
            .with_detailed_status("InProgress");
        let execution_id = running.execution_id.clone();
        sim.add_execution(&id, running);
        let outcome = finished(&mut rng, now, i64::MAX);
        let delay = Duration::from_millis(rng.random_range(2_000..8_000));
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            sim.update_execution(&id, &execution_id, |e| {
                e.status = outcome.status;
                e.detailed_status = outcome.detailed_status;
                e.resource_count_by_status = outcome.resource_count_by_status;
                e.last_execution_ms = outcome.last_execution_ms.map(|_| sim.now_ms());
            });
        });
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    if !(flags.new_executions_per_second.is_finite() && flags.new_executions_per_second >= 0.0) {
        eprintln!("--new-executions-per-second must be a number >= 0");
        return ExitCode::from(2);
    }
    if flags.associations == 0 {
        eprintln!("--associations must be at least 1");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(&flags.listen_address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}: {error}", flags.listen_address);
            return ExitCode::FAILURE;
        }
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

    let mut rng = StdRng::seed_from_u64(SEED);
    let now = sim.now_ms();
    let history_ms = i64::try_from(flags.history.as_millis()).unwrap_or(i64::MAX);
    let step = history_ms / i64::from(flags.executions.max(1));
    let ids: Vec<String> = (1..=flags.associations).map(association_id).collect();
    for (n, id) in ids.iter().enumerate() {
        sim.add_association(
            id,
            SimAssociation::new("AWS-RunPatchBaseline")
                .with_name(format!("bench-{n}"))
                .with_schedule("rate(30 minutes)"),
        );
        // Each association at its own phase within one step.
        let phase = rng.random_range(0..step.max(1));
        for k in 0..i64::from(flags.executions) {
            let created = now - history_ms + k * step + phase;
            sim.add_execution(id, finished(&mut rng, created, now));
        }
    }
    if let Some(path) = &flags.config_out {
        if let Err(error) = write_config(&flags, path, &ids) {
            eprintln!("--config-out: {error}");
            return ExitCode::from(2);
        }
    }
    if flags.new_executions_per_second > 0.0 {
        tokio::spawn(trickle(
            sim.clone(),
            ids.clone(),
            flags.new_executions_per_second,
        ));
    }

    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", sim.endpoint_url());
    let _ = stdout.flush();
    eprintln!(
        "ssm-simulator: {} associations x {} executions over {}s",
        ids.len(),
        flags.executions,
        flags.history.as_secs()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("50m"), Ok(Duration::from_secs(3000)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "5", "m", "5x", "1.5h", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
