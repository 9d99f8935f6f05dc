//! `agenttrust bench`: the load generator run for real against the gateway. What is asserted is
//! the shape of the report, that every request the report counts really happened (stored check
//! rows), that the run cleans up after itself, and the usage errors; never a speed or a latency
//! (benchmarks are not timed tests).

use serde_json::{Value, json};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    every_scenario_is_measured_beside_health_and_cleaned_up,
    an_open_loop_schedules_rate_times_duration,
    a_check_the_policy_denies_is_not_measured,
    seed_registers_agents_and_spreads_checks_over_them,
    a_seed_stops_at_the_first_refused_check,
);

const SCENARIOS: [&str; 5] = ["health", "check", "introspect", "issue", "telemetry"];

/// The agents the bench created (by their name), as the gateway lists them.
fn bench_agents(h: &Harness) -> Vec<Value> {
    h.get("/api/v1/agents?name_prefix=agenttrust-bench-").ok()["agents"]
        .as_array()
        .unwrap()
        .clone()
}

/// Asserts that every agent the bench created is revoked and none of its tokens is active.
fn assert_cleaned_up(h: &Harness) -> usize {
    let agents = bench_agents(h);
    for agent in &agents {
        let id = agent["id"].as_str().unwrap();
        assert_eq!(agent["status"], "revoked", "{agent}");
        let active = h.get(&format!("/api/v1/agent-tokens?agent_id={id}")).ok()["tokens"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(active, 0, "agent {id} still has active tokens");
        let tokens = h
            .get(&format!(
                "/api/v1/agent-tokens?agent_id={id}&include_inactive=true&limit=1000"
            ))
            .ok()["tokens"]
            .as_array()
            .unwrap()
            .clone();
        assert!(!tokens.is_empty(), "the bench issued no token of {id}");
        for token in &tokens {
            assert_ne!(token["status"], "active", "{token}");
        }
    }
    agents.len()
}

fn every_scenario_is_measured_beside_health_and_cleaned_up(h: &Harness) {
    let before = h.row_counts();
    let run = h.run(&[
        "bench",
        "health,check,introspect",
        "issue",
        "--duration",
        "1s",
        "--connections",
        "2",
        "--warmup",
        "0s",
        "telemetry",
        "-o",
        "json",
    ]);
    run.success();
    let report = run.json();
    let after = h.row_counts();

    assert_eq!(report["gateway"]["url"], h.url.as_str());
    let backend = match h.backend {
        crate::harness::Backend::Sqlite => "sqlite",
        crate::harness::Backend::Postgres => "postgres",
    };
    assert_eq!(report["gateway"]["database"], backend);
    assert_eq!(report["baseline"], "health");
    assert_eq!(
        report["settings"],
        json!({"mode": "closed_loop", "connections": 2, "duration_seconds": 1.0,
               "warmup_seconds": 0.0})
    );
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|scenario| scenario["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, SCENARIOS, "health first, then as given: {report}");
    let mut requests = std::collections::BTreeMap::new();
    for scenario in scenarios {
        let name = scenario["name"].as_str().unwrap();
        let count = scenario["requests"].as_u64().unwrap();
        assert!(count > 0, "{name}: {scenario}");
        assert_eq!(scenario["errors"], 0, "{name}: {scenario}");
        assert!(scenario.get("error_samples").is_none(), "{scenario}");
        assert!(scenario["throughput_per_second"].as_f64().unwrap() > 0.0);
        assert!(scenario["elapsed_seconds"].as_f64().unwrap() >= 1.0);
        for percentile in ["p50", "p90", "p99", "p99_9", "max", "mean"] {
            assert!(
                scenario["latency_microseconds"][percentile].is_number(),
                "{name}: {percentile}: {scenario}"
            );
        }
        for ratio in ["throughput", "p99"] {
            assert!(
                scenario["ratio_to_health"][ratio].is_number(),
                "{name}: {ratio}: {scenario}"
            );
        }
        assert!(
            scenario.get("scheduled").is_none(),
            "closed loop: {scenario}"
        );
        requests.insert(name.to_string(), count as i64);
    }
    assert_eq!(scenarios[0]["ratio_to_health"]["throughput"], 1.0);
    assert_eq!(scenarios[0]["path"], "/health");
    assert_eq!(scenarios[1]["path"], "/api/v1/agenttrust/check");

    // Every counted request reached the store: a check row each, ten events a report, a token
    // per issue (the fixture's own calls come on top).
    let grew = |table: &str| after[table] - before[table];
    assert!(
        grew("checks") >= requests["check"],
        "{before:?} → {after:?}"
    );
    assert!(grew("telemetry_events") >= 10 * requests["telemetry"]);
    assert!(grew("agent_tokens") >= requests["issue"]);
    assert_eq!(assert_cleaned_up(h), 1);
    // Nothing the bench made is deleted: the revoked agent stays.
    assert_eq!(grew("agents"), 1);
}

fn an_open_loop_schedules_rate_times_duration(h: &Harness) {
    let run = h.run(&[
        "bench",
        "check",
        "--rate",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "-o",
        "json",
    ]);
    run.success();
    let report = run.json();
    assert_eq!(report["settings"]["mode"], "open_loop");
    assert_eq!(report["settings"]["rate_per_second"], 50);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2, "{report}");
    for scenario in scenarios {
        let scheduled = scenario["scheduled"].as_u64().unwrap();
        assert!((20..=80).contains(&scheduled), "{scenario}");
        let requests = scenario["requests"].as_u64().unwrap();
        assert!(requests > 0 && requests <= scheduled, "{scenario}");
        assert_eq!(
            scenario["unsent"].as_u64().unwrap(),
            scheduled - requests,
            "{scenario}"
        );
        assert_eq!(scenario["errors"], 0, "{scenario}");
    }
    assert_eq!(assert_cleaned_up(h), 1);

    // The table off a terminal: one tab-separated row per scenario, no header.
    let table = h.run(&[
        "bench",
        "health",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ]);
    table.success();
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(rows.len(), 1, "{}", table.stdout);
    assert!(rows[0].starts_with("health\t"), "{}", table.stdout);
    assert!(
        table.stderr.contains("open loop at 20 requests/s"),
        "{}",
        table.stderr
    );
    // `health` alone needs no agent.
    assert_eq!(bench_agents(h).len(), 1);
}

fn a_check_the_policy_denies_is_not_measured(h: &Harness) {
    h.put_policy(json!({
        "rules": [{"id": "no-bench", "tools": ["read_*"], "decision": "deny",
                   "reason": "no reads today"}]
    }));
    let run = h.run(&["bench", "check", "--duration", "1s", "--warmup", "0s"]);
    run.code(1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("no reads today"), "{}", run.stderr);
    assert!(run.stderr.contains("rule:no-bench"), "{}", run.stderr);
    // Cleaned up all the same.
    assert_eq!(assert_cleaned_up(h), 1);
}

/// The agents a seed registered (by their name), as the gateway lists them.
fn seeded_agents(h: &Harness, prefix: &str) -> Vec<Value> {
    h.get(&format!("/api/v1/agents?name_prefix={prefix}&limit=100"))
        .ok()["agents"]
        .as_array()
        .unwrap()
        .clone()
}

fn seed_registers_agents_and_spreads_checks_over_them(h: &Harness) {
    let before = h.row_counts();
    let run = h.run(&[
        "bench",
        "seed",
        "--agents",
        "7",
        "--checks",
        "23",
        "--connections",
        "3",
        "-o",
        "json",
    ]);
    run.success();
    let report = run.json();
    assert_eq!(report["agents_created"], 7, "{report}");
    assert_eq!(report["checks_made"], 23, "{report}");
    let prefix = report["name_prefix"].as_str().unwrap();
    assert!(prefix.starts_with("agenttrust-seed-"), "{prefix}");

    // Exactly what it says, in the store: every agent and every check is audited, nothing else
    // was written, and the chain still verifies.
    let after = h.row_counts();
    let grew = |table: &str| after[table] - before[table];
    assert_eq!(grew("agents"), 7, "{before:?} → {after:?}");
    assert_eq!(grew("checks"), 23);
    assert_eq!(grew("audit_events"), 30);
    assert_eq!(grew("agent_tokens"), 0);
    let agents = seeded_agents(h, prefix);
    assert_eq!(agents.len(), 7);
    for agent in &agents {
        // Seeded data stays as it is: nothing is revoked afterwards.
        assert_eq!(agent["status"], "active", "{agent}");
        assert_eq!(agent["capabilities"], json!(["bench:read"]), "{agent}");
    }
    // The checks go round the agents: 23 over 7 is 3 or 4 each.
    for agent in &agents {
        let id = agent["id"].as_str().unwrap();
        let made = h
            .sql_integers(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE agent_id = '{id}' \
                 AND allowed = TRUE"
            ))
            .unwrap()[0];
        assert!((3..=4).contains(&made), "agent {id} got {made} checks");
    }
    let verified = h.run(&["audit", "verify", "-o", "json"]);
    verified.success();
    assert_eq!(verified.json()["valid"], true);
}

fn a_seed_stops_at_the_first_refused_check(h: &Harness) {
    h.put_policy(json!({
        "rules": [{"id": "no-seed", "tools": ["read_*"], "decision": "deny",
                   "reason": "no reads today"}]
    }));
    let before = h.row_counts();
    let run = h.run(&[
        "bench",
        "seed",
        "--agents",
        "2",
        "--checks",
        "500",
        "--connections",
        "4",
        "-o",
        "json",
    ]);
    run.code(1);
    assert!(run.stderr.contains("no reads today"), "{}", run.stderr);
    assert!(run.stderr.contains("rule:no-seed"), "{}", run.stderr);
    // The report says how far it got: the agents, and no allowed check.
    let report = run.json();
    assert_eq!(report["agents_created"], 2, "{report}");
    assert_eq!(report["checks_made"], 0, "{report}");
    // Every worker stops at its first refusal: at most one denied check each, not 500.
    let denied = h.row_counts()["checks"] - before["checks"];
    assert!((1..=4).contains(&denied), "{denied} checks were made");
}

#[test]
fn bad_input_is_a_usage_error() {
    let h = Harness::sqlite();
    let before = h.row_counts();
    for (args, message) in [
        (&["bench", "--connections", "0"][..], "--connections"),
        (&["bench", "checks"], "possible values: check, introspect"),
        (&["bench", "check,nope"], "nope"),
        (&["bench", "--rate", "0"], "--rate"),
        (&["bench", "--duration", "0s"], "more than 0"),
        (&["bench", "--warmup", "soon"], "--warmup"),
        (&["bench", "seed", "--agents", "0"], "--agents"),
        (&["bench", "seed", "--checks=-1"], "--checks"),
        (&["bench", "seed", "--connections", "0"], "--connections"),
        (&["bench", "check", "seed"], "seed"),
        (&["bench", "seed", "check"], "check"),
    ] {
        let run = h.run(args);
        run.code(2);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    assert_eq!(h.row_counts(), before);
}
