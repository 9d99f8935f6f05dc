//! The load of one `bench` phase: `connections` workers repeat one prepared request for the
//! warmup (not recorded) and then for the measured duration, each on its own connection of the
//! shared pool.
//!
//! - **Closed loop** (no `--rate`): a worker sends its next request as soon as the previous one
//!   is answered; latency is from sending to the end of the answer.
//! - **Open loop** (`--rate R`): requests are due at fixed times, `R` a second in total, dealt to
//!   the workers in turn. A worker that is late sends at once, and latency counts from when the
//!   request was *due*, so queueing in the gateway shows in the percentiles instead of quietly
//!   lowering the rate (coordinated omission). What was due before the end but never sent is
//!   counted as `unsent`.
//!
//! Latency and throughput count successful (2xx) answers; failures are counted apart, with a few
//! of their messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::scenario::BodyTemplate;
use crate::client::prepared::Prepared;
use crate::output;

/// The longest latency told apart (longer ones count as this): past the default timeout.
const HIGHEST_LATENCY: Duration = Duration::from_secs(120);
/// Distinct error messages kept per phase.
const ERROR_SAMPLES: usize = 5;
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// How the load is shaped (the same for every phase of a run).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Requests per second in total (open loop); `None`: closed loop.
    pub rate: Option<u32>,
}

impl Plan {
    /// Requests due within the measured window of an open-loop phase.
    pub fn scheduled(&self) -> Option<u64> {
        self.rate.map(|rate| {
            let due_before = |elapsed: Duration| (elapsed.as_secs_f64() * f64::from(rate)).ceil();
            (due_before(self.warmup + self.duration) - due_before(self.warmup)) as u64
        })
    }
}

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Latency of each successful request, in nanoseconds.
    pub latency: Histogram<u64>,
    pub succeeded: u64,
    pub failed: u64,
    /// A few distinct error messages.
    pub error_samples: Vec<String>,
    /// From the start of the measured window to the last measured answer (at least the
    /// duration).
    pub elapsed: Duration,
    /// Open loop: requests due in the measured window, sent or not.
    pub scheduled: Option<u64>,
}

impl Measurement {
    fn empty(plan: &Plan) -> Measurement {
        Measurement {
            latency: new_histogram(),
            succeeded: 0,
            failed: 0,
            error_samples: Vec::new(),
            elapsed: plan.duration,
            scheduled: plan.scheduled(),
        }
    }

    /// Requests answered in the measured window, successfully or not.
    pub fn requests(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// Successful answers per second.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.succeeded as f64 / seconds
        } else {
            0.0
        }
    }

    /// Open loop: requests due in the window that were never sent (the gateway fell behind).
    pub fn unsent(&self) -> Option<u64> {
        self.scheduled
            .map(|scheduled| scheduled.saturating_sub(self.requests()))
    }

    fn merge(&mut self, worker: Worker) {
        // Both histograms have the same bounds, so adding cannot fail; were it to, the worker's
        // latencies would be missing from the percentiles, not wrong.
        let _ = self.latency.add(&worker.latency);
        self.succeeded += worker.succeeded;
        self.failed += worker.failed;
        for sample in worker.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(&sample) {
                self.error_samples.push(sample);
            }
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to HIGHEST_LATENCY with 3 significant digits: fixed bounds, valid by construction.
    Histogram::new_with_bounds(1, HIGHEST_LATENCY.as_nanos() as u64, 3)
        .expect("histogram bounds are valid")
}

/// What a phase sends: one prepared request and its body.
pub struct Load {
    pub name: &'static str,
    pub prepared: Prepared,
    pub body: BodyTemplate,
}

/// Shared by the workers of a phase.
struct Shared {
    load: Load,
    plan: Plan,
    /// The phase's start; the measured window is `[measure_from, end)`.
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// Numbers requests (unique event ids in telemetry bodies).
    sequence: AtomicU64,
    /// Answers in the measured window so far, for the progress line.
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// One worker's share of the measurement.
struct Worker {
    latency: Histogram<u64>,
    succeeded: u64,
    failed: u64,
    error_samples: Vec<String>,
    last_answer: Option<Instant>,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            latency: new_histogram(),
            succeeded: 0,
            failed: 0,
            error_samples: Vec::new(),
            last_answer: None,
        }
    }

    /// Records one measured request: `latency` from when it was sent (closed loop) or due
    /// (open loop).
    fn record(
        &mut self,
        shared: &Shared,
        result: Result<(), crate::client::Error>,
        latency: Duration,
    ) {
        self.last_answer = Some(Instant::now());
        match result {
            Ok(()) => {
                self.latency
                    .saturating_record(latency.as_nanos().max(1) as u64);
                self.succeeded += 1;
                shared.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.failed += 1;
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let sample = match error.status() {
                    Some(status) => format!("HTTP {status}: {error}"),
                    None => error.to_string(),
                };
                if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(&sample)
                {
                    self.error_samples.push(sample);
                }
            }
        }
    }
}

impl Shared {
    async fn send(&self) -> Result<(), crate::client::Error> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.load
            .prepared
            .send(self.load.body.render(sequence))
            .await
    }
}

/// Runs one phase: warmup, then the measured window; shows a progress line on a terminal.
pub async fn run(load: Load, plan: Plan, progress: bool) -> Measurement {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let shared = Arc::new(Shared {
        load,
        plan,
        start,
        measure_from,
        end: measure_from + plan.duration,
        sequence: AtomicU64::new(0),
        succeeded: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let progress_line = progress.then(|| tokio::spawn(show_progress(Arc::clone(&shared))));
    let mut workers = JoinSet::new();
    for index in 0..plan.connections {
        let shared = Arc::clone(&shared);
        workers.spawn(async move {
            match shared.plan.rate {
                None => closed_loop(&shared).await,
                Some(rate) => open_loop(&shared, index, rate).await,
            }
        });
    }
    let mut measurement = Measurement::empty(&plan);
    let mut last_answer = shared.end;
    while let Some(joined) = workers.join_next().await {
        // A worker only stops by returning; a panic in one would be a bug, not a measurement.
        if let Ok(worker) = joined {
            if let Some(answered) = worker.last_answer {
                last_answer = last_answer.max(answered);
            }
            measurement.merge(worker);
        }
    }
    measurement.elapsed = last_answer.saturating_duration_since(measure_from);
    if let Some(progress_line) = progress_line {
        progress_line.abort();
        output::progress_clear();
    }
    measurement
}

/// Sends the next request when the previous one is answered, until the end.
async fn closed_loop(shared: &Shared) -> Worker {
    let mut worker = Worker::new();
    loop {
        let sent = Instant::now();
        if sent >= shared.end {
            return worker;
        }
        let result = shared.send().await;
        if sent >= shared.measure_from {
            worker.record(shared, result, sent.elapsed());
        }
    }
}

/// Sends the requests due to worker `index` (every `connections`-th of `rate` a second) at
/// their times, or at once when late; latency counts from when each was due.
async fn open_loop(shared: &Shared, index: usize, rate: u32) -> Worker {
    let mut worker = Worker::new();
    let interval = 1.0 / f64::from(rate);
    let mut number = index as u64;
    loop {
        let due = shared.start + Duration::from_secs_f64(number as f64 * interval);
        if due >= shared.end || Instant::now() >= shared.end {
            return worker;
        }
        tokio::time::sleep_until(due).await;
        let result = shared.send().await;
        if due >= shared.measure_from {
            worker.record(shared, result, due.elapsed());
        }
        number += shared.plan.connections as u64;
    }
}

/// Redraws `check: 3.2s of 10.0s, 2048 requests, 640/s, 0 errors` on stderr until aborted.
async fn show_progress(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let name = shared.load.name;
        let line = if now < shared.measure_from {
            format!(
                "{name}: warming up, {:.1}s of {:.1}s",
                now.duration_since(shared.start).as_secs_f64(),
                shared.plan.warmup.as_secs_f64()
            )
        } else {
            let elapsed = now.duration_since(shared.measure_from);
            let succeeded = shared.succeeded.load(Ordering::Relaxed);
            let failed = shared.failed.load(Ordering::Relaxed);
            let per_second = if elapsed.is_zero() {
                0.0
            } else {
                succeeded as f64 / elapsed.as_secs_f64()
            };
            format!(
                "{name}: {:.1}s of {:.1}s, {} requests, {per_second:.0}/s, {failed} errors",
                elapsed.min(shared.plan.duration).as_secs_f64(),
                shared.plan.duration.as_secs_f64(),
                succeeded + failed,
            )
        };
        output::progress(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: Option<u32>, warmup: u64, duration: u64) -> Plan {
        Plan {
            connections: 4,
            duration: Duration::from_secs(duration),
            warmup: Duration::from_secs(warmup),
            rate,
        }
    }

    #[test]
    fn an_open_loop_schedules_rate_times_duration() {
        assert_eq!(plan(Some(50), 0, 1).scheduled(), Some(50));
        assert_eq!(plan(Some(50), 1, 2).scheduled(), Some(100));
        assert_eq!(plan(Some(3), 0, 1).scheduled(), Some(3));
        assert_eq!(plan(None, 1, 1).scheduled(), None);
    }

    #[test]
    fn throughput_counts_successes_over_the_window() {
        let mut measurement = Measurement::empty(&plan(None, 0, 2));
        measurement.succeeded = 100;
        measurement.failed = 4;
        assert_eq!(measurement.requests(), 104);
        assert!((measurement.throughput() - 50.0).abs() < f64::EPSILON);
        assert_eq!(measurement.unsent(), None);
    }
}
