//! `agenttrust bench seed`: fills a gateway with data through the ordinary API, so that a later
//! `bench` measures it at a size (as `pgbench -i` does): `--agents` agents named
//! `agenttrust-seed-<run>-<n>`, then `--checks` checks spread over them in turn (allowed reads,
//! each recorded with its audit event, so agents plus checks is how much the audit log grows).
//! Nothing is revoked or removed afterwards: the data is the point.
//!
//! Workers take the next request number from one counter; the first failure (or Ctrl-C) stops
//! them all, and the report says how much was made by then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use tokio::task::JoinSet;

use super::scenario::{INPUT_SUMMARY, TOOL_NAME};
use crate::api::actions::{CheckRequest, Effect};
use crate::api::agents::CreateAgentRequest;
use crate::cli::Context;
use crate::client::{self, Client};
use crate::exit::{Failure, Outcome};
use crate::output::{self, View};

/// The most agents or checks one seed makes (far beyond what a measurement needs).
const MAX_COUNT: u64 = 100_000_000;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// The capability of the seeded agents (their checks read).
const CAPABILITY: &str = "bench:read";

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  agenttrust bench seed --agents 100000 --checks 900000
  agenttrust bench seed --agents 1000 -o json

Registers --agents agents named agenttrust-seed-RUN-N through the ordinary API (an admin key), \
then makes --checks allowed checks spread over them in turn; every agent and every check adds \
one event to the org's audit log. Then measure with `agenttrust bench` as usual: it runs beside \
the seeded data. Nothing is revoked or removed: run it against a gateway you measure on.

Exit status: 0 when everything was made; 1 when a request failed (the report says how much was \
made before) or the run was interrupted; 69 when the gateway is unreachable.")]
pub struct SeedArgs {
    /// Agents to register
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub agents: u64,
    /// Checks to make, spread over the new agents
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_COUNT))]
    pub checks: u64,
    /// Concurrent workers, each with its own connection (1-4096)
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=super::MAX_CONNECTIONS as i64))]
    pub connections: u32,
}

/// How far a seed got.
#[derive(Debug, Default)]
struct Seeded {
    name_prefix: String,
    agents: u64,
    checks: u64,
    agents_elapsed: Duration,
    checks_elapsed: Duration,
}

impl Seeded {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name_prefix": self.name_prefix,
            "agents_created": self.agents,
            "checks_made": self.checks,
            "agents_seconds": self.agents_elapsed.as_secs_f64(),
            "checks_seconds": self.checks_elapsed.as_secs_f64(),
            "agents_per_second": per_second(self.agents, self.agents_elapsed),
            "checks_per_second": per_second(self.checks, self.checks_elapsed),
        })
    }

    fn view(&self) -> View {
        View::Record(vec![
            ("NAME_PREFIX", self.name_prefix.clone()),
            ("AGENTS_CREATED", self.agents.to_string()),
            (
                "AGENTS_PER_SECOND",
                format!("{:.0}", per_second(self.agents, self.agents_elapsed)),
            ),
            ("CHECKS_MADE", self.checks.to_string()),
            (
                "CHECKS_PER_SECOND",
                format!("{:.0}", per_second(self.checks, self.checks_elapsed)),
            ),
        ])
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        return 0.0;
    }
    count as f64 / elapsed.as_secs_f64()
}

pub async fn run(context: &Context, args: SeedArgs) -> anyhow::Result<Outcome> {
    let connections = args.connections as usize;
    let client = context.pooled_client(connections)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let mut seeded = Seeded {
        name_prefix: format!("agenttrust-seed-{run_id}-"),
        ..Seeded::default()
    };
    let progress = output::stderr_is_terminal() && !context.printer.is_quiet();
    context.printer.note(format!(
        "seeding {}: {} agents named {}…, then {} checks, over {connections} connections",
        context.settings.url, args.agents, seeded.name_prefix, args.checks
    ));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let outcome = tokio::select! {
        outcome = fill(&client, &args, &mut seeded, progress) => outcome,
        _ = &mut interrupted => Err(anyhow::Error::from(Failure::Aborted)
            .context("the seed was interrupted (Ctrl-C)")),
    };
    if progress {
        output::progress_clear();
    }
    context.printer.show(
        &seeded.to_json(),
        &[seeded.name_prefix.clone()],
        seeded.view(),
    )?;
    outcome.map(|()| Outcome::Success)
}

/// Registers the agents, then makes the checks; `seeded` follows along, so an interrupted run
/// still reports what exists.
async fn fill(
    client: &Client,
    args: &SeedArgs,
    seeded: &mut Seeded,
    progress: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let prefix = Arc::new(seeded.name_prefix.clone());
    let made = Work::new(args.agents);
    let result = made
        .run(args.connections, progress, "agents", {
            let client = client.clone();
            move |index| create_agent(client.clone(), Arc::clone(&prefix), index)
        })
        .await;
    seeded.agents = made.done();
    seeded.agents_elapsed = started.elapsed();
    let agent_ids = Arc::new(result?);
    if args.checks == 0 {
        return Ok(());
    }
    let started = Instant::now();
    let made = Work::new(args.checks);
    let result = made
        .run(args.connections, progress, "checks", {
            let client = client.clone();
            move |index| {
                let agent_id = agent_ids[(index % agent_ids.len() as u64) as usize].clone();
                check(client.clone(), agent_id)
            }
        })
        .await;
    seeded.checks = made.done();
    seeded.checks_elapsed = started.elapsed();
    result.map(drop)
}

async fn create_agent(client: Client, prefix: Arc<String>, index: u64) -> anyhow::Result<String> {
    let request = CreateAgentRequest {
        name: format!("{prefix}{index}"),
        framework: Some("custom".to_string()),
        capabilities: vec![CAPABILITY.to_string()],
        metadata: Some(serde_json::json!({"created_by": "agenttrust bench seed"})),
        ..CreateAgentRequest::default()
    };
    let agent = client::agents::create(&client, &request)
        .await
        .with_context(|| format!("cannot register agent {}", request.name))?
        .value;
    Ok(agent.id)
}

/// One allowed check; its id is not kept (a seed of millions of checks needs none of them).
async fn check(client: Client, agent_id: String) -> anyhow::Result<()> {
    let request = CheckRequest {
        agent_id: Some(agent_id.clone()),
        action_name: Some(TOOL_NAME.to_string()),
        action_input_summary: Some(INPUT_SUMMARY.to_string()),
        action_effect: Some(Effect::Read.as_str().to_string()),
        ..CheckRequest::default()
    };
    let decision = client::actions::check(&client, &request)
        .await
        .with_context(|| format!("a check of agent {agent_id} failed"))?
        .value;
    if !decision.allowed {
        anyhow::bail!(
            "the seed makes allowed reads (`{TOOL_NAME}`), and the org's policy does not allow \
             one: {} (rule {}); allow reads of the agents named agenttrust-seed-…",
            decision.reason,
            decision.rule.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

/// `total` numbered requests, made by workers that each take the next number; the first
/// failure stops every worker.
struct Work {
    total: u64,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Work {
    fn new(total: u64) -> Work {
        Work {
            total,
            next: Arc::new(AtomicU64::new(0)),
            done: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Runs `request` for every number below `total` on `workers` workers; collects what each
    /// answered (an agent id; `()` for a check, which costs no memory), in no particular order.
    async fn run<F, Fut, T>(
        &self,
        workers: u32,
        progress: bool,
        what: &'static str,
        request: F,
    ) -> anyhow::Result<Vec<T>>
    where
        F: Fn(u64) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send,
        T: Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let (next, done, stop, total) = (
                Arc::clone(&self.next),
                Arc::clone(&self.done),
                Arc::clone(&self.stop),
                self.total,
            );
            let request = request.clone();
            tasks.spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    match request(index).await {
                        Ok(answer) => {
                            answers.push(answer);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(error);
                        }
                    }
                }
                Ok(answers)
            });
        }
        let ticker = progress.then(|| self.draw_progress(what));
        let mut answers = Vec::with_capacity(usize::try_from(self.total).unwrap_or(0));
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined.context("a seed worker panicked")? {
                Ok(mut some) => answers.append(&mut some),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(answers),
        }
    }

    /// Redraws `agents 12,345/100,000 (1,234/s)` until aborted.
    fn draw_progress(&self, what: &'static str) -> tokio::task::JoinHandle<()> {
        let (done, total) = (Arc::clone(&self.done), self.total);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut every = tokio::time::interval(PROGRESS_EVERY);
            loop {
                every.tick().await;
                let made = done.load(Ordering::Relaxed);
                output::progress(&format!(
                    "{what} {made}/{total} ({:.0}/s)",
                    per_second(made, started.elapsed())
                ));
            }
        })
    }
}
