//! The `ssm-association-exporter` binary: flags, logging, `--config.check`, `--demo`, wiring
//! and exit codes. Everything else is the library's `run`.
//!
//! Exit codes: 0 after a clean shutdown or a valid `--config.check`; 2 for invalid flags or
//! configuration (nothing is started); 1 when the listen address cannot be bound or the
//! exporter fails to start.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ssm_association_exporter::config::{self, Config, DEFAULT_CONFIG_FILE};
use ssm_association_exporter::logging::{self, LogFormat};
use ssm_association_exporter::shard::Shard;
use ssm_association_exporter::ssm::ClientSettings;
use ssm_association_exporter::web_config::WebConfig;
use ssm_association_exporter::{run, ConfigSource, Options, DEFAULT_TELEMETRY_PATH};
use tokio::net::TcpListener;

/// The built-in configuration of `--demo`, polling the in-process simulated SSM endpoint.
const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");
const DEMO_CONFIG_NAME: &str = "config/demo.yaml (built in)";

/// Prometheus exporter for AWS Systems Manager State Manager association executions.
#[derive(Debug, Parser)]
#[command(name = "ssm-association-exporter", version, about)]
struct Flags {
    /// Path to the YAML configuration file.
    #[arg(long = "config.file", value_name = "PATH", default_value = DEFAULT_CONFIG_FILE)]
    config_file: PathBuf,
    /// Address to listen on for HTTP (":9832" means every IPv4 interface).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9832"
    )]
    listen_address: String,
    /// Path to a web configuration file (exporter-toolkit format) enabling TLS and/or basic
    /// authentication.
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Most HTTP connections served at once; more wait to be accepted.
    #[arg(long = "web.max-connections", value_name = "N",
          default_value_t = ssm_association_exporter::http::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_connections: u64,
    /// Enable `POST /-/reload` (as Prometheus' flag of this name); without it the endpoint
    /// answers 403 and reloads nothing. SIGHUP always reloads.
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = DEFAULT_TELEMETRY_PATH)]
    telemetry_path: String,
    /// Only log messages with the given severity or above (RUST_LOG, when set, wins).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,
    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    log_format: LogFormat,
    /// Validate the configuration file, print a summary and exit (0 valid, 2 invalid).
    #[arg(long = "config.check")]
    config_check: bool,
    /// Run against a built-in simulated SSM endpoint with demo associations (no AWS access).
    /// Needs the default `demo` build feature; without it this flag exits with status 2.
    #[arg(long)]
    demo: bool,
    /// This process's shard: it watches only the associations the hash of
    /// account_id/region/association_id assigns to it.
    #[arg(long = "shard", value_name = "N", default_value_t = 0)]
    shard: u32,
    /// How many shards the associations are split into (1: no sharding).
    #[arg(long = "total-shards", value_name = "M", default_value_t = 1)]
    total_shards: u32,
    /// Take --shard from the ordinal at the end of the host name (a StatefulSet pod's
    /// `name-<ordinal>`); --shard must then be left out.
    #[arg(long = "shard.from-hostname")]
    shard_from_hostname: bool,
    /// GET /healthz of the exporter at --web.listen-address and exit 0 (healthy) or 1: a
    /// container HEALTHCHECK for images without a shell or curl.
    #[arg(long)]
    healthcheck: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    #[cfg(not(feature = "demo"))]
    if flags.demo {
        eprintln!("--demo is not available: this binary was built without the `demo` feature");
        return ExitCode::from(2);
    }
    if flags.healthcheck {
        let tls = match &flags.web_config_file {
            Some(path) => match WebConfig::load(path) {
                Ok(web) => web.tls_acceptor().is_some(),
                Err(error) => {
                    eprintln!("healthcheck failed: {error}");
                    return ExitCode::FAILURE;
                }
            },
            None => false,
        };
        return match healthcheck(&flags.listen_address, tls) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("healthcheck failed: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if flags.config_check {
        return match config::load(&flags.config_file) {
            Ok(config) => {
                println!(
                    "{} is valid\n{}",
                    flags.config_file.display(),
                    config.summary()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(error) = logging::init(&flags.log_level, flags.log_format) {
        eprintln!("{error}");
        return ExitCode::from(2);
    }
    if let Err(message) = check_telemetry_path(&flags.telemetry_path) {
        tracing::error!("--web.telemetry-path: {message}");
        return ExitCode::from(2);
    }
    let shard = match shard_of(&flags) {
        Ok(shard) => shard,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let web = match &flags.web_config_file {
        None => WebConfig::plain(),
        Some(path) => match WebConfig::load(path) {
            Ok(web) => web,
            Err(error) => {
                tracing::error!(%error, "invalid web configuration; nothing started");
                eprintln!("{error}");
                return ExitCode::from(2);
            }
        },
    };
    let config = if flags.demo {
        config::parse(DEMO_CONFIG, DEMO_CONFIG_NAME)
    } else {
        config::load(&flags.config_file)
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration; nothing started");
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "starting the async runtime failed");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(flags, config, web, shard))
}

/// The shard from `--shard`/`--total-shards`, or from the host name with
/// `--shard.from-hostname` (`HOSTNAME`, as Kubernetes sets it to the pod name, else the
/// kernel's host name).
fn shard_of(flags: &Flags) -> Result<Shard, String> {
    let index = if flags.shard_from_hostname {
        if flags.shard != 0 {
            return Err("set either --shard or --shard.from-hostname, not both".to_string());
        }
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default();
        Shard::ordinal_from_hostname(&hostname)?
    } else {
        flags.shard
    };
    Shard::new(index, flags.total_shards)
}

async fn serve(flags: Flags, config: Config, web: WebConfig, shard: Shard) -> ExitCode {
    let address = listen_address(&flags.listen_address);
    // Bind before anything starts, so a bad address fails at once.
    let listener = match TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    #[cfg_attr(not(feature = "demo"), allow(unused_mut))]
    let mut options = Options {
        telemetry_path: flags.telemetry_path.clone(),
        client: ClientSettings::default(),
        config_source: Some(if flags.demo {
            ConfigSource::Builtin {
                name: DEMO_CONFIG_NAME,
                text: DEMO_CONFIG,
            }
        } else {
            ConfigSource::File(flags.config_file.clone())
        }),
        enable_lifecycle: flags.enable_lifecycle,
        max_connections: flags.max_connections as usize,
        web: std::sync::Arc::new(web),
        shard,
    };
    #[cfg(feature = "demo")]
    let mut simulator = None;
    #[cfg(feature = "demo")]
    if flags.demo {
        let sim = match ssm_simulator::Simulator::start().await {
            Ok(sim) => sim,
            Err(error) => {
                tracing::error!(%error, "starting the simulated SSM endpoint failed");
                return ExitCode::FAILURE;
            }
        };
        sim.start_demo_activity();
        // The queue `config/demo.yaml`'s `events:` reads: the live activity's events.
        sim.add_demo_queue();
        tracing::info!(endpoint = %sim.endpoint_url(), "demo mode: polling the built-in simulated SSM endpoint with fake credentials");
        options.client = ClientSettings {
            endpoint_url: Some(sim.endpoint_url()),
            fake_credentials: true,
        };
        simulator = Some(sim);
    }
    if let Ok(local) = listener.local_addr() {
        tracing::info!(address = %local, telemetry_path = %flags.telemetry_path, web = %options.web.describe(), "listening");
    }
    let result = run(config, options, listener, shutdown_signal()).await;
    #[cfg(feature = "demo")]
    if let Some(sim) = simulator {
        sim.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "exporter failed");
            ExitCode::FAILURE
        }
    }
}

/// `:9832` (Prometheus style) means every IPv4 interface.
fn listen_address(flag: &str) -> String {
    if flag.starts_with(':') {
        format!("0.0.0.0{flag}")
    } else {
        flag.to_string()
    }
}

/// GETs `/healthz` on the local exporter (over TLS when it serves TLS); `Ok` on 200.
/// Wildcard listen addresses are probed on loopback.
fn healthcheck(flag: &str, tls: bool) -> Result<(), String> {
    use std::net::{SocketAddr, ToSocketAddrs};

    let address = listen_address(flag);
    let mut target: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let status_line = ssm_association_exporter::healthcheck::probe(target, tls)?;
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{target}: {status_line:?}"))
    }
}

fn check_telemetry_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!("{path:?} must start with / and name a path"));
    }
    if matches!(path, "/healthz" | "/readyz") {
        return Err(format!("{path:?} is taken by the exporter's own endpoint"));
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("received SIGTERM"),
                    _ = int.recv() => tracing::info!("received SIGINT"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
