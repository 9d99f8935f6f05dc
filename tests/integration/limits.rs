//! Resource limits of the gateway: connections (a half-sent header is cut off, connections past
//! the cap get a 503, a slow request times out) and policy size (refused past the caps with a
//! 400 naming the limit; compiled off the async workers, so `/health` answers meanwhile).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use agenttrust::gateway::GatewayConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    policies_past_the_caps_are_refused,
    a_policy_at_the_cap_compiles_while_health_answers,
);

on_both_backends_with!(
    one_telemetry_event_a_second;
    an_agent_over_its_telemetry_limit_is_refused_and_nothing_is_stored,
);

on_both_backends_with!(
    one_a2a_message_a_second;
    an_agent_over_its_a2a_limit_is_refused_and_nothing_is_stored,
);

fn one_a2a_message_a_second(config: &mut GatewayConfig) {
    config.a2a_rate_limit = std::num::NonZeroU32::new(1);
}

fn one_telemetry_event_a_second(config: &mut GatewayConfig) {
    config.telemetry_rate_limit = std::num::NonZeroU32::new(1);
}

/// Posts a telemetry report of `count` events with `key` (an API key or an agent token):
/// status, `Retry-After` and body.
fn report(h: &Harness, key: &str, agent_id: &str, count: usize) -> (u16, Option<u64>, Value) {
    let events: Vec<Value> = (0..count)
        .map(|_| json!({"event_type": "tool_end", "tool_name": "read_file", "success": true}))
        .collect();
    h.block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/v1/telemetry/report", h.url))
            .json(&json!({"agent_id": agent_id, "events": events}));
        request = if key.starts_with("at_") {
            request.bearer_auth(key)
        } else {
            request
                .header("X-API-Key", key)
                .header("X-Agent-ID", agent_id)
        };
        answer_of(request).await
    })
}

/// Sends `request`: its status, `Retry-After` and body.
async fn answer_of(request: reqwest::RequestBuilder) -> (u16, Option<u64>, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

/// Two agents with `capability`, `{prefix}flooder` and `{prefix}neighbour`, and a token of the
/// flooder's carrying it: `(flooder, neighbour, token)`.
fn flooder_and_neighbour(h: &Harness, prefix: &str, capability: &str) -> (String, String, String) {
    let agent = |name: &str| {
        h.create_agent(&format!("{prefix}{name}"), &[capability])["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (flooder, neighbour) = (agent("flooder"), agent("neighbour"));
    let token = h.issue_token(&flooder, &[capability], 600)["token"]
        .as_str()
        .unwrap()
        .to_string();
    (flooder, neighbour, token)
}

/// An agent that floods telemetry is cut off at its limit, whatever credential it reports
/// with (its own token, or a runtime key naming it), while other agents report on; a refused
/// report stores nothing, not even an audit event.
fn an_agent_over_its_telemetry_limit_is_refused_and_nothing_is_stored(h: &Harness) {
    let (flooder, neighbour, token) = flooder_and_neighbour(h, "", "read_file");
    let (runtime_key, _) = h.new_key(agenttrust::api::keys::Role::Runtime);

    // The burst: at 1 event a second it is one full report (1000 events).
    let (status, _, body) = report(h, &token, &flooder, 1000);
    assert_eq!(
        (status, &body["events_processed"]),
        (200, &json!(1000)),
        "{body}"
    );
    let before = h.row_counts();
    for key in [&token, &runtime_key] {
        let (status, retry_after, body) = report(h, key, &flooder, 5);
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["code"], "RATE_LIMITED");
        assert!(
            body["message"].as_str().unwrap().contains(&flooder),
            "{body}"
        );
        assert!(
            retry_after.is_some_and(|seconds| (1..=5).contains(&seconds)),
            "{retry_after:?}"
        );
    }
    assert_eq!(h.row_counts(), before, "a refused report stores nothing");

    // Another agent has its own budget.
    let (status, _, body) = report(h, &runtime_key, &neighbour, 10);
    assert_eq!(
        (status, &body["events_processed"]),
        (200, &json!(10)),
        "{body}"
    );
}

/// Sends one `tasks/send` from `from` to `to` with `headers`: status, `Retry-After` and body.
fn send_message(
    h: &Harness,
    headers: &[(&str, String)],
    from: &str,
    to: &str,
) -> (u16, Option<u64>, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/send",
        "params": {"source_agent_id": from, "target_agent_id": to, "message": "ping"}});
    h.block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("{}/a2a", h.url))
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        answer_of(request).await
    })
}

/// An agent that floods its peers with A2A messages is cut off at its limit, whatever
/// credential it sends with, before any check or task is stored; other agents send on.
fn an_agent_over_its_a2a_limit_is_refused_and_nothing_is_stored(h: &Harness) {
    let (flooder, neighbour, token) = flooder_and_neighbour(h, "a2a-", "a2a:send");
    let as_key = [("X-API-Key", h.admin_key.clone())];
    let as_token = [("Authorization", format!("Bearer {token}"))];
    // The burst is ten seconds' worth at one a second; messages in a row past it, by the key
    // until it is refused and then by the agent's token, overrun it whatever the pace of this
    // machine (a refill lets one through now and then).
    let mut passed = 0;
    let mut refused_by = std::collections::BTreeSet::new();
    for sent in 0..60 {
        if refused_by.len() == 2 {
            break;
        }
        let (credential, headers) = if refused_by.contains("key") {
            ("token", &as_token)
        } else {
            ("key", &as_key)
        };
        let (status, retry_after, body) = send_message(h, headers, &flooder, &neighbour);
        if sent < 10 {
            assert_eq!(status, 200, "message {sent}: {body}");
        }
        match status {
            200 => {
                assert!(body["result"]["id"].is_string(), "{body}");
                passed += 1;
            }
            429 => {
                assert_eq!(body["code"], "RATE_LIMITED");
                assert!(
                    body["message"].as_str().unwrap().contains(&flooder),
                    "{body}"
                );
                assert!(
                    retry_after.is_some_and(|seconds| (1..=5).contains(&seconds)),
                    "{retry_after:?}"
                );
                refused_by.insert(credential);
            }
            other => panic!("message {sent}: {other} {body}"),
        }
    }
    assert!(passed < 60, "the limit held");
    assert_eq!(
        refused_by.len(),
        2,
        "both credentials are refused: {refused_by:?}"
    );
    // A refused message stores nothing: one check and one task per message that passed.
    let stored = |sql: &str| h.sql_integers(sql).unwrap()[0];
    assert_eq!(
        stored(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE agent_id = '{flooder}'"
        )),
        passed
    );
    assert_eq!(
        stored(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM a2a_tasks WHERE source_agent_id = '{flooder}'"
        )),
        passed
    );
    // Another agent has its own budget.
    let (status, _, body) = send_message(h, &as_key, &neighbour, &flooder);
    assert_eq!(status, 200, "{body}");
}

/// The gateway's address as `host:port`.
fn address(h: &Harness) -> String {
    h.url.trim_start_matches("http://").to_string()
}

/// Reads from `stream` until the server closes it, at most `limit`; returns what was read and
/// how long it took, or `None` when the connection was still open at `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return Some((received, started.elapsed())),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A reset is a close too.
            Err(_) => return Some((received, started.elapsed())),
        }
    }
    None
}

#[test]
fn a_half_sent_header_is_cut_off_within_the_timeout() {
    let h = Harness::sqlite_with(|config: &mut GatewayConfig| {
        config.connection_limits.header_read_timeout = Duration::from_millis(300);
    });
    let mut stream = TcpStream::connect(address(&h)).expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .expect("write");
    let (_, took) = read_until_closed(&mut stream, Duration::from_secs(10))
        .expect("the server closes a connection whose header never ends");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A whole request on a new connection is served as usual.
    assert_eq!(
        h.raw(Method::GET, "/health", &[], None).ok()["status"],
        "healthy"
    );
}

#[test]
fn connections_past_the_cap_get_a_503_until_one_closes() {
    let h = Harness::sqlite_with(|config: &mut GatewayConfig| {
        config.connection_limits.max_connections = 2;
        config.connection_limits.header_read_timeout = Duration::from_secs(30);
    });
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address(&h)).expect("connect"))
        .collect();
    let refused = h.raw(Method::GET, "/health", &[], None);
    assert_eq!(refused.expect_error(503), "TOO_MANY_CONNECTIONS");
    assert!(
        refused.message().contains("maximum of 2 connections"),
        "{}",
        refused.text
    );

    drop(held);
    // The server notices the closed connections and frees their places.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = h.raw(Method::GET, "/health", &[], None);
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert!(Instant::now() < deadline, "the places were never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_request_whose_body_never_arrives_times_out() {
    let h = Harness::sqlite_with(|config: &mut GatewayConfig| {
        config.connection_limits.request_timeout = Duration::from_millis(500);
    });
    let before = h.row_counts();
    let mut stream = TcpStream::connect(address(&h)).expect("connect");
    let head = format!(
        "POST /api/v1/agents HTTP/1.1\r\nHost: gateway\r\nX-API-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        h.admin_key
    );
    stream.write_all(head.as_bytes()).expect("write");
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut buffer = [0u8; 4096];
    let read = stream.read(&mut buffer).expect("an answer");
    let answer = String::from_utf8_lossy(&buffer[..read]).to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert_eq!(h.row_counts(), before);
}

/// A policy of `rules` rules, each matching the input against `pattern`.
fn regex_policy(rules: usize, pattern: &str) -> Value {
    let rules: Vec<Value> = (0..rules)
        .map(|index| {
            json!({"id": format!("rule-{index:04}"), "tools": ["*"],
                   "input": {"regex": [pattern]}, "decision": "deny",
                   "reason": "no secrets in tool input"})
        })
        .collect();
    json!({ "rules": rules })
}

fn policies_past_the_caps_are_refused(h: &Harness) {
    let agent = h.create_agent("limited", &[]);
    let before = h.row_counts();
    // The review's policy: 2000 regex rules, about 137 KiB.
    let huge = regex_policy(2000, r"(password|secret|token)\s*[:=]\s*\w{8,}");
    assert!(
        huge.to_string().len() > 137 * 1024,
        "{}",
        huge.to_string().len()
    );
    let reply = h.request(Method::PUT, "/api/v1/policies", Some(huge.clone()));
    reply.expect_error(400);
    assert!(
        reply.message().contains("2000 rules") && reply.message().contains("at most 500"),
        "{}",
        reply.text
    );
    // Under the rule cap but past the compiled-size cap: the rule where it ran out is named.
    let heavy = regex_policy(300, r"(password|secret)\w+\d{3}");
    let reply = h.request(Method::PUT, "/api/v1/policies", Some(heavy.clone()));
    reply.expect_error(400);
    assert!(
        reply.message().contains("--max-policy-compiled-bytes")
            && reply.message().contains("rule-0"),
        "{}",
        reply.text
    );
    assert_eq!(h.row_counts(), before, "nothing stored");
    assert_eq!(h.get("/api/v1/policies").ok()["version"], 0);
    // The same caps hold for a policy given to `policies test`.
    for policy in [huge, heavy] {
        let reply = h.post(
            "/api/v1/policies/test",
            json!({"agent_id": agent["id"], "action_name": "web_search", "policy": policy}),
        );
        reply.expect_error(400);
    }
}

/// Uploads `policy` from a thread of its own; the thread returns the status and how long the
/// upload took.
fn upload_policy(h: &Harness, policy: Value) -> std::thread::JoinHandle<(u16, Duration)> {
    let url = format!("{}/api/v1/policies", h.url);
    let key = h.admin_key.clone();
    std::thread::spawn(move || {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let status = runtime.block_on(async {
            reqwest::Client::new()
                .put(url)
                .header("X-API-Key", key)
                .json(&policy)
                .timeout(Duration::from_secs(180))
                .send()
                .await
                .expect("the policy upload is answered")
                .status()
                .as_u16()
        });
        (status, started.elapsed())
    })
}

fn a_policy_at_the_cap_compiles_while_health_answers(h: &Harness) {
    let agent = h.create_agent("busy", &[]);
    // About 7.5 MiB compiled, under the default 8 MiB; the pattern differs per upload so each
    // is compiled in full. Two at once: as many as the test gateway has async workers, so a
    // compile on a worker would stall everything else until it ends.
    let uploads: Vec<_> = ["password", "secret"]
        .into_iter()
        .map(|word| upload_policy(h, regex_policy(100, &format!(r"({word}|token)\w+\d{{3}}"))))
        .collect();
    let mut answered_meanwhile = 0;
    let mut slowest = Duration::ZERO;
    while uploads.iter().any(|upload| !upload.is_finished()) {
        let asked = Instant::now();
        assert_eq!(
            h.raw(Method::GET, "/health", &[], None).ok()["status"],
            "healthy"
        );
        slowest = slowest.max(asked.elapsed());
        answered_meanwhile += 1;
    }
    let mut fastest_upload = Duration::MAX;
    for upload in uploads {
        let (status, took) = upload.join().expect("upload thread");
        // One of the two may lose the race for the version: 409, nothing half-written.
        assert!(status == 200 || status == 409, "{status}");
        assert!(took < Duration::from_secs(120), "compiling took {took:?}");
        fastest_upload = fastest_upload.min(took);
    }
    assert!(
        answered_meanwhile >= 2,
        "the uploads ended before /health was asked"
    );
    assert!(
        slowest < fastest_upload / 3,
        "/health took {slowest:?} while policies compiled for {fastest_upload:?}"
    );
    // The stored policy decides checks (compiled again, by the policy cache, off the workers).
    let decision = h.check(json!({"agent_id": agent["id"], "action_name": "web_search",
                                  "action_input_summary": "token1234"}));
    assert_eq!(decision["allowed"], false, "{decision}");
    assert_eq!(decision["rule"], "rule:rule-0000", "{decision}");
}
