//! `agenttrust bench [SCENARIO…]`: a load generator for a gateway (like pgbench or
//! redis-benchmark). It reads `/health`, creates an agent, a token and a session through the
//! ordinary API with the profile's key (`fixture`), checks that each scenario's request is
//! answered as expected (`scenario`), then loads `/health` and each scenario in turn with the
//! same settings (`load`) and reports each beside `/health` (`report`). Cleanup runs whatever
//! happens: after a failure, and on Ctrl-C.

mod fixture;
mod load;
mod report;
mod scenario;
mod seed;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use self::fixture::Created;
use self::load::{Load, Plan};
use self::report::{Gateway, Report, ScenarioResult};
use self::scenario::Scenario;
use super::Context;
use crate::client::prepared::Prepared;
use crate::client::{self, Client};
use crate::config;
use crate::exit::{Failure, Outcome};
use crate::output;

/// The most workers (and connections) one run may use (the gateway serves 1024 at once by
/// default).
const MAX_CONNECTIONS: u32 = 4096;
const MAX_RATE: u32 = 10_000_000;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  agenttrust bench                                  every scenario, 16 connections, 10s each
  agenttrust bench check --connections 32 --duration 30s
  agenttrust bench check,introspect --rate 2000 --duration 20s -o json
  agenttrust bench seed --agents 100000 --checks 900000   fill the gateway first (see bench seed -h)

Every scenario is run after GET /health with the same settings, and reported beside it: \
REQ/S_VS_HEALTH and P99_VS_HEALTH are the scenario's throughput and p99 latency over those of \
/health in the same run, the cost of the work beyond answering HTTP on this machine. Latency and \
throughput count successful answers; errors (a non-2xx answer or a transport failure) are \
counted apart, with a few of their messages on stderr. A progress line is shown on stderr when \
it is a terminal. With -o json: one document, latencies in microseconds.

Closed loop by default: each of --connections workers sends its next request when the previous \
one is answered. --rate makes it an open loop: requests are due at fixed times, --rate a second \
in all, and latency counts from when each was due, so a gateway that falls behind shows it in \
the percentiles (requests due but never sent are counted as UNSENT).

The requests are ordinary API calls with the profile's API key (an admin key: the run creates \
its own agent). It creates an agent named agenttrust-bench-…, a token of it and a registered \
session, and at the end (after a failure or Ctrl-C too) revokes the token and the agent, which \
deactivates every token the issue scenario issued. Nothing is deleted: the revoked agent, its \
session and token records stay, and so do the checks, telemetry events and audit events the \
load made (the audit log is append-only). Point it at a gateway you run for measuring, not at \
an org whose audit log you want to keep small.

Exit status: 0 when every request succeeded; 1 when some failed (after the report) or the run \
was interrupted; 69 when the gateway is unreachable.")]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Scenarios to run, comma-separated or repeated [default: all]
    #[arg(value_name = "SCENARIO", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Concurrent workers, each with its own connection (1-4096)
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CONNECTIONS as i64))]
    pub connections: u32,
    /// How long each scenario is measured: 10s, 1m
    #[arg(long, value_name = "DURATION", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub duration: Duration,
    /// Open loop: requests a second in all, sent at fixed times [default: closed loop]
    #[arg(long, value_name = "PER_SECOND",
          value_parser = clap::value_parser!(u32).range(1..=MAX_RATE as i64))]
    pub rate: Option<u32>,
    /// Load before each scenario's measurement, not recorded: 1s, 0s for none
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = config::parse_duration)]
    pub warmup: Duration,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Fill the gateway with agents and checks through the API, to measure it at a size (like
    /// pgbench -i)
    Seed(seed::SeedArgs),
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = config::parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("invalid duration {text:?}: it must be more than 0"));
    }
    Ok(duration)
}

impl BenchArgs {
    /// The scenarios in the order they run: `health` (the baseline) first, then the others as
    /// given, each once.
    fn scenarios(&self) -> Vec<Scenario> {
        if self.scenarios.is_empty() {
            return Scenario::ALL.to_vec();
        }
        let mut ordered = vec![Scenario::Health];
        for scenario in &self.scenarios {
            if !ordered.contains(scenario) {
                ordered.push(*scenario);
            }
        }
        ordered
    }

    fn plan(&self) -> Plan {
        Plan {
            connections: self.connections as usize,
            duration: self.duration,
            warmup: self.warmup,
            rate: self.rate,
        }
    }
}

pub async fn run(context: &Context, args: BenchArgs) -> anyhow::Result<Outcome> {
    if let Some(BenchCommand::Seed(seed)) = args.command {
        return seed::run(context, seed).await;
    }
    let scenarios = args.scenarios();
    let plan = args.plan();
    let client = context.pooled_client(plan.connections)?;
    let health = client::health::get(&client)
        .await
        .context("cannot read the gateway's /health")?
        .value;
    let gateway = Gateway {
        url: context.settings.url.clone(),
        service: health.service.clone(),
        version: health.version.clone(),
        database: health
            .extra
            .get("database")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
    };
    context.printer.note(describe(&gateway, &plan, &scenarios));
    let started_at = crate::api::time::format(crate::api::time::now());
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let progress = output::stderr_is_terminal() && !context.printer.is_quiet();

    let mut created = Created::default();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let measured = tokio::select! {
        measured = measure(&client, &mut created, &scenarios, plan, &run_id, progress) => {
            Some(measured)
        }
        _ = &mut interrupted => None,
    };
    if progress {
        output::progress_clear();
    }
    let cleaned = clean_up(&client, &created).await;
    let results = match measured {
        Some(Ok(results)) => results,
        Some(Err(error)) => {
            warn_unless_clean(cleaned);
            return Err(error);
        }
        None => {
            warn_unless_clean(cleaned);
            return Err(
                anyhow::Error::from(Failure::Aborted).context("the bench was interrupted (Ctrl-C)")
            );
        }
    };
    let report = Report {
        gateway,
        plan,
        started_at,
        results,
    };
    for remark in report.remarks() {
        context.printer.note(remark);
    }
    context
        .printer
        .show(&report.to_json(), &report.primary(), report.view())?;
    cleaned?;
    let failures = report.failures();
    if failures > 0 {
        anyhow::bail!("{failures} requests failed (see the samples above)");
    }
    Ok(Outcome::Success)
}

/// `benchmarking http://… (agenttrust-gateway 0.1.0, sqlite): closed loop, 16 connections, …`
fn describe(gateway: &Gateway, plan: &Plan, scenarios: &[Scenario]) -> String {
    let mut about = [gateway.service.as_str(), gateway.version.as_str()]
        .into_iter()
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(database) = &gateway.database {
        about = if about.is_empty() {
            database.clone()
        } else {
            format!("{about}, {database}")
        };
    }
    let shape = match plan.rate {
        Some(rate) => format!(
            "open loop at {rate} requests/s over {} connections",
            plan.connections
        ),
        None => format!("closed loop, {} connections", plan.connections),
    };
    let names = scenarios
        .iter()
        .map(|scenario| scenario.name())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "benchmarking {} ({about}): {shape}, {} per scenario after a {} warmup; {names}",
        gateway.url,
        seconds(plan.duration),
        seconds(plan.warmup)
    )
}

fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// Sets up what the scenarios need, probes each once, then measures each in turn.
async fn measure(
    client: &Client,
    created: &mut Created,
    scenarios: &[Scenario],
    plan: Plan,
    run_id: &str,
    progress: bool,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let fixture = if scenarios.iter().any(|scenario| scenario.needs_fixture()) {
        Some(created.set_up(client, run_id).await?)
    } else {
        None
    };
    let event_id_prefix = format!("bench-{run_id}");
    if let Some(fixture) = &fixture {
        for scenario in scenarios {
            scenario.probe(client, fixture, &event_id_prefix).await?;
        }
    }
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let prepared = Prepared::new(client, scenario.endpoint())?;
        let method = scenario.endpoint().method().to_string();
        let path = prepared.url().path().to_string();
        let load = Load {
            name: scenario.name(),
            prepared,
            body: scenario.body(fixture.as_ref(), &event_id_prefix)?,
        };
        let measurement = load::run(load, plan, progress).await;
        results.push(ScenarioResult {
            scenario: *scenario,
            method,
            path,
            measurement,
        });
    }
    Ok(results)
}

/// Cleans up what was created; a second Ctrl-C gives up on it (and says what is left).
async fn clean_up(client: &Client, created: &Created) -> anyhow::Result<()> {
    let Some(agent_id) = created.agent_id() else {
        return Ok(());
    };
    tokio::select! {
        cleaned = created.clean_up(client) => cleaned,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "cleanup interrupted: revoke the bench agent with `agenttrust agents revoke \
             {agent_id} --yes`"
        )),
    }
}

/// A failed cleanup after a failed run: the run's error is the one reported, this a warning.
fn warn_unless_clean(cleaned: anyhow::Result<()>) {
    if let Err(error) = cleaned {
        output::warn(format!("{error:#}"));
    }
}
