//! The result of a `bench` run: per scenario the requests, errors, throughput and latency
//! percentiles, and how it compares with `/health` measured in the same run (the baseline:
//! what the gateway costs before any work). A table by default, one JSON document with
//! `-o json` (latencies in microseconds, throughput in requests per second).

use serde::Serialize;

use super::load::{Measurement, Plan};
use super::scenario::Scenario;
use crate::output::View;

/// The gateway as `/health` described it.
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The database backend (`sqlite`, `postgres`), when the gateway says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// One scenario's measurement, with what it was sent to.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub method: String,
    pub path: String,
    pub measurement: Measurement,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    pub gateway: Gateway,
    pub plan: Plan,
    pub started_at: String,
    /// The baseline (`health`) first, then the scenarios in the order run.
    pub results: Vec<ScenarioResult>,
}

#[derive(Debug, Serialize)]
struct Document<'report> {
    gateway: &'report Gateway,
    settings: Settings,
    started_at: &'report str,
    baseline: &'static str,
    scenarios: Vec<ScenarioDocument>,
}

#[derive(Debug, Serialize)]
struct Settings {
    /// `closed_loop` or `open_loop`.
    mode: &'static str,
    connections: usize,
    duration_seconds: f64,
    warmup_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_per_second: Option<u32>,
}

#[derive(Debug, Serialize)]
struct ScenarioDocument {
    name: &'static str,
    method: String,
    path: String,
    /// Answered in the measured window, successfully or not.
    requests: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_samples: Vec<String>,
    /// Successful answers per second.
    throughput_per_second: f64,
    elapsed_seconds: f64,
    /// Open loop: due in the measured window, and of those never sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsent: Option<u64>,
    /// Absent when no request succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_microseconds: Option<Latency>,
    ratio_to_health: Ratios,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    #[serde(rename = "p99_9")]
    p99_9: f64,
    max: f64,
    mean: f64,
}

/// This scenario over the baseline: below 1 for throughput and above 1 for p99 is the cost of
/// the work beyond answering HTTP.
#[derive(Debug, Serialize)]
struct Ratios {
    #[serde(skip_serializing_if = "Option::is_none")]
    throughput: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99: Option<f64>,
}

/// Percentiles of a measurement, in nanoseconds (`None` when nothing succeeded).
#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p99_9: u64,
    max: u64,
    mean: f64,
}

fn percentiles(measurement: &Measurement) -> Option<Percentiles> {
    let latency = &measurement.latency;
    (!latency.is_empty()).then(|| Percentiles {
        p50: latency.value_at_quantile(0.50),
        p90: latency.value_at_quantile(0.90),
        p99: latency.value_at_quantile(0.99),
        p99_9: latency.value_at_quantile(0.999),
        max: latency.max(),
        mean: latency.mean(),
    })
}

/// Microseconds with one decimal, from nanoseconds.
fn microseconds(nanoseconds: f64) -> f64 {
    (nanoseconds / 100.0).round() / 10.0
}

fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && value.is_finite()).then(|| rounded(value / baseline, 3))
}

/// `0.412ms`, `4.12ms`, `41.2ms`, `1.23s`: three significant digits, the unit people read.
fn human_latency(nanoseconds: u64) -> String {
    let milliseconds = nanoseconds as f64 / 1e6;
    if milliseconds >= 1000.0 {
        format!("{:.2}s", milliseconds / 1000.0)
    } else if milliseconds >= 100.0 {
        format!("{milliseconds:.0}ms")
    } else if milliseconds >= 10.0 {
        format!("{milliseconds:.1}ms")
    } else if milliseconds >= 1.0 {
        format!("{milliseconds:.2}ms")
    } else {
        format!("{milliseconds:.3}ms")
    }
}

impl Report {
    fn baseline(&self) -> Option<&ScenarioResult> {
        self.results
            .iter()
            .find(|result| result.scenario == Scenario::Health)
    }

    fn ratios(&self, result: &ScenarioResult) -> Ratios {
        let baseline = self.baseline();
        let throughput = baseline.and_then(|baseline| {
            ratio(
                result.measurement.throughput(),
                baseline.measurement.throughput(),
            )
        });
        let p99 = baseline
            .and_then(|baseline| percentiles(&baseline.measurement))
            .zip(percentiles(&result.measurement))
            .and_then(|(baseline, this)| ratio(this.p99 as f64, baseline.p99 as f64));
        Ratios { throughput, p99 }
    }

    /// The `-o json` document.
    pub fn to_json(&self) -> serde_json::Value {
        let plan = &self.plan;
        let document = Document {
            gateway: &self.gateway,
            settings: Settings {
                mode: if plan.rate.is_some() {
                    "open_loop"
                } else {
                    "closed_loop"
                },
                connections: plan.connections,
                duration_seconds: plan.duration.as_secs_f64(),
                warmup_seconds: plan.warmup.as_secs_f64(),
                rate_per_second: plan.rate,
            },
            started_at: &self.started_at,
            baseline: Scenario::Health.name(),
            scenarios: self
                .results
                .iter()
                .map(|result| {
                    let measurement = &result.measurement;
                    ScenarioDocument {
                        name: result.scenario.name(),
                        method: result.method.clone(),
                        path: result.path.clone(),
                        requests: measurement.requests(),
                        errors: measurement.failed,
                        error_samples: measurement.error_samples.clone(),
                        throughput_per_second: rounded(measurement.throughput(), 1),
                        elapsed_seconds: rounded(measurement.elapsed.as_secs_f64(), 3),
                        scheduled: measurement.scheduled,
                        unsent: measurement.unsent(),
                        latency_microseconds: percentiles(measurement).map(|latency| Latency {
                            p50: microseconds(latency.p50 as f64),
                            p90: microseconds(latency.p90 as f64),
                            p99: microseconds(latency.p99 as f64),
                            p99_9: microseconds(latency.p99_9 as f64),
                            max: microseconds(latency.max as f64),
                            mean: microseconds(latency.mean),
                        }),
                        ratio_to_health: self.ratios(result),
                    }
                })
                .collect(),
        };
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_value(document).unwrap_or_default()
    }

    /// The table: one row per scenario.
    pub fn view(&self) -> View {
        let open_loop = self.plan.rate.is_some();
        let mut headers = vec!["SCENARIO", "REQUESTS", "ERRORS"];
        if open_loop {
            headers.push("UNSENT");
        }
        headers.extend([
            "REQ/S",
            "P50",
            "P90",
            "P99",
            "P99.9",
            "MAX",
            "REQ/S_VS_HEALTH",
            "P99_VS_HEALTH",
        ]);
        let dash = || "-".to_string();
        let times = |value: Option<f64>| value.map_or_else(dash, |value| format!("{value:.2}x"));
        let rows = self
            .results
            .iter()
            .map(|result| {
                let measurement = &result.measurement;
                let mut row = vec![
                    result.scenario.name().to_string(),
                    measurement.requests().to_string(),
                    measurement.failed.to_string(),
                ];
                if open_loop {
                    row.push(measurement.unsent().unwrap_or(0).to_string());
                }
                row.push(format!("{:.0}", measurement.throughput()));
                match percentiles(measurement) {
                    Some(latency) => row.extend(
                        [
                            latency.p50,
                            latency.p90,
                            latency.p99,
                            latency.p99_9,
                            latency.max,
                        ]
                        .map(human_latency),
                    ),
                    None => row.extend(std::iter::repeat_with(dash).take(5)),
                }
                let ratios = self.ratios(result);
                row.push(times(ratios.throughput));
                row.push(times(ratios.p99));
                row
            })
            .collect();
        View::Rows { headers, rows }
    }

    /// With `-q`: `name throughput` a line.
    pub fn primary(&self) -> Vec<String> {
        self.results
            .iter()
            .map(|result| {
                format!(
                    "{} {:.0}",
                    result.scenario.name(),
                    result.measurement.throughput()
                )
            })
            .collect()
    }

    /// What the table does not show, for stderr: error samples, requests an open loop could
    /// not send.
    pub fn remarks(&self) -> Vec<String> {
        let mut remarks = Vec::new();
        for result in &self.results {
            let measurement = &result.measurement;
            let name = result.scenario.name();
            if measurement.failed > 0 {
                remarks.push(format!(
                    "{name}: {} of {} requests failed, e.g. {}",
                    measurement.failed,
                    measurement.requests(),
                    measurement.error_samples.join(" | ")
                ));
            }
            if let (Some(unsent), Some(scheduled)) = (measurement.unsent(), measurement.scheduled)
                && unsent > 0
            {
                remarks.push(format!(
                    "{name}: {unsent} of {scheduled} requests due were never sent: the gateway did \
                     not keep up with --rate"
                ));
            }
        }
        remarks
    }

    /// Failed requests over all scenarios.
    pub fn failures(&self) -> u64 {
        self.results
            .iter()
            .map(|result| result.measurement.failed)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_in_three_digits() {
        assert_eq!(human_latency(412_345), "0.412ms");
        assert_eq!(human_latency(4_123_456), "4.12ms");
        assert_eq!(human_latency(41_234_567), "41.2ms");
        assert_eq!(human_latency(412_345_678), "412ms");
        assert_eq!(human_latency(1_234_567_890), "1.23s");
        assert_eq!(microseconds(123_456.0), 123.5);
    }

    #[test]
    fn ratios_need_a_baseline() {
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(50.0, 0.0), None);
    }
}
