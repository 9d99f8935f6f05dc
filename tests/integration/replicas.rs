//! Several replicas on one PostgreSQL database, as behind a load balancer: two in-process
//! gateways, A (the harness's) and B ([`Harness::replica`]). What one replica changes, the other
//! sees within a second, though both keep hot rows in memory (keys, tokens, agents, sessions,
//! policies);
//! what must be exact (lockouts, delegation budgets, one approval per request, the audit chain)
//! is exact across both under concurrency. PostgreSQL only: a SQLite file belongs to one
//! process.

use std::time::{Duration, Instant};

use agenttrust::api::keys::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, Reply};
use crate::on_postgres;

on_postgres!(
    a_token_issued_on_one_replica_works_on_another_until_revoked,
    a_revoked_api_key_is_refused_everywhere_within_a_second,
    a_key_revoked_on_one_replica_ends_its_audit_stream_on_another,
    a_policy_change_reaches_every_replica_within_a_second,
    a_session_mode_set_on_one_replica_binds_checks_on_another,
    an_agent_lockout_is_exact_across_replicas,
    a_delegation_budget_is_exact_across_replicas,
    one_pending_approval_per_request_across_replicas,
    an_approval_decided_on_one_replica_ends_a_wait_on_another,
    a_replica_that_loses_its_notices_stops_trusting_its_caches,
    a_connection_closed_while_idle_is_never_handed_to_a_request,
);

/// How soon a change made on one replica must be seen on every other.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

/// The second replica, caching (it listens for changes), as the first.
fn replica(h: &Harness) -> Harness {
    let b = h.replica();
    assert!(h.caches.serving(), "replica A listens for changes");
    assert!(b.caches.serving(), "replica B listens for changes");
    b
}

/// Polls `seen` until it holds, at most [`PROPAGATION_BOUND`] after `since`; returns how long it
/// took.
fn within_a_second(since: Instant, what: &str, mut seen: impl FnMut() -> bool) -> Duration {
    loop {
        if seen() {
            let took = since.elapsed();
            assert!(took <= PROPAGATION_BOUND, "{what} took {took:?}");
            return took;
        }
        assert!(
            since.elapsed() <= PROPAGATION_BOUND,
            "{what}: not seen within {PROPAGATION_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn id(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {value}"))
        .to_string()
}

fn introspect(h: &Harness, key: &str, token: &str) -> Reply {
    h.request_as(
        key,
        Method::POST,
        "/api/v1/agent-tokens/introspect",
        Some(json!({"token": token})),
    )
}

/// The decision `POST /api/v1/policies/test` gives (decides, records nothing, forgets nothing).
fn decision_of_test(h: &Harness, agent_id: &str, tool: &str) -> Value {
    h.post(
        "/api/v1/policies/test",
        json!({"agent_id": agent_id, "action_name": tool}),
    )
    .ok()["decision"]
        .clone()
}

/// The org's audit chain verifies, through the CLI on either replica and the store.
fn audit_chain_verifies(h: &Harness, b: &Harness) {
    h.run(&["audit", "verify"]).success();
    b.run(&["audit", "verify"]).success();
    assert_eq!(
        h.block_on(agenttrust::store::audit::verify(&h.store, &h.org_id))
            .expect("verify"),
        None
    );
}

fn a_token_issued_on_one_replica_works_on_another_until_revoked(h: &Harness) {
    let b = replica(h);
    let agent = id(&h.create_agent("roaming", &["files:read"]));
    let issued = h.issue_token(&agent, &["files:read"], 600);
    let token = issued["token"].as_str().expect("a token").to_string();
    let read = json!({"action_name": "read_files"});

    let seen = introspect(&b, &b.admin_key, &token);
    assert_eq!(seen.ok()["active"], true, "{}", seen.text);
    // B now holds the token in memory.
    for _ in 0..3 {
        let allowed = b.check_with_token(&token, read.clone());
        assert_eq!(allowed.ok()["allowed"], true, "{}", allowed.text);
    }

    let revoked = h.post(
        "/api/v1/agent-tokens/revoke",
        json!({"token": token, "reason": "leaked"}),
    );
    assert_eq!(revoked.ok()["revoked"], true, "{}", revoked.text);
    let answered = Instant::now();
    // The replica that revoked refuses it at once.
    h.check_with_token(&token, read.clone()).expect_error(401);
    within_a_second(answered, "B refusing the revoked token", || {
        b.check_with_token(&token, read.clone()).status == 401
    });
    let inactive = introspect(&b, &b.admin_key, &token);
    assert_eq!(inactive.ok()["active"], false, "{}", inactive.text);
    audit_chain_verifies(h, &b);
}

fn a_revoked_api_key_is_refused_everywhere_within_a_second(h: &Harness) {
    let b = replica(h);
    let (key, key_id) = h.new_key(Role::Runtime);
    // Both replicas hold the key in memory.
    for replica in [h, &b] {
        for _ in 0..3 {
            introspect(replica, &key, "at_unknown").ok();
        }
    }

    h.request(Method::DELETE, &format!("/api/v1/keys/{key_id}"), None)
        .ok();
    let answered = Instant::now();
    introspect(h, &key, "at_unknown").expect_error(401);
    within_a_second(answered, "B refusing the revoked key", || {
        introspect(&b, &key, "at_unknown").status == 401
    });
    // The admin key, never revoked, still works on both.
    introspect(h, &h.admin_key, "at_unknown").ok();
    introspect(&b, &b.admin_key, "at_unknown").ok();
    audit_chain_verifies(h, &b);
}

/// An audit stream held open on B with a key revoked on A ends as soon as B hears of it.
fn a_key_revoked_on_one_replica_ends_its_audit_stream_on_another(h: &Harness) {
    let b = replica(h);
    let (key, key_id) = h.new_key(Role::Admin);
    let mut stream = crate::audit_log::open_stream_with_key(&b, &key, "", None);
    h.request(Method::DELETE, &format!("/api/v1/keys/{key_id}"), None)
        .ok();
    crate::audit_log::wait_for_stream_end(&b, &mut stream, Duration::from_secs(5));
}

/// A replica whose notice connection dies (a failover, a network cut, an operator's
/// `pg_terminate_backend`) cannot know what changed meanwhile: it must stop answering from its
/// caches at once, not after its heartbeat's silence limit, and turn them back on once it
/// listens again.
fn a_replica_that_loses_its_notices_stops_trusting_its_caches(h: &Harness) {
    let b = replica(h);
    let (key, key_id) = h.new_key(Role::Runtime);
    for replica in [h, &b] {
        for _ in 0..3 {
            introspect(replica, &key, "at_unknown").ok();
        }
    }

    let cut = terminate_listeners(&h.database_url);
    assert!(
        cut >= 2,
        "both replicas' notice connections are cut ({cut} were)"
    );
    // The revocation's notice is sent while B is not listening: B must not need it.
    h.request(Method::DELETE, &format!("/api/v1/keys/{key_id}"), None)
        .ok();
    let answered = Instant::now();
    within_a_second(
        answered,
        "B refusing the revoked key, its notices lost",
        || introspect(&b, &key, "at_unknown").status == 401,
    );

    let since = Instant::now();
    while !(h.caches.serving() && b.caches.serving()) {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the replicas listen again and turn their caches back on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    introspect(&b, &b.admin_key, "at_unknown").ok();
    introspect(&b, &key, "at_unknown").expect_error(401);
}

/// A pooled connection the server closed while it sat idle (a restart, a failover, a proxy's
/// idle timeout) is found out and replaced before any request uses it.
fn a_connection_closed_while_idle_is_never_handed_to_a_request(h: &Harness) {
    let agent = id(&h.create_agent("steady", &[]));
    let read = json!({"agent_id": agent, "action_name": "read_files"});
    // Several pooled connections in use at once, so several sit idle afterwards.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(h.check(read.clone())["allowed"], true);
                    h.get("/api/v1/agents").ok();
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(1200));
    let cut = terminate_backends(&h.database_url, "query NOT ILIKE 'LISTEN%'");
    assert!(
        cut >= 2,
        "the gateway's idle pooled connections are cut ({cut} were)"
    );
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..5 {
                    let decision = h.check(read.clone());
                    assert_eq!(decision["allowed"], true, "{decision}");
                    h.get("/api/v1/agents").ok();
                }
            });
        }
    });
}

/// Terminates every notice connection (the sessions whose last statement was a LISTEN) to the
/// test's database; how many there were.
fn terminate_listeners(database_url: &str) -> i64 {
    terminate_backends(database_url, "query ILIKE 'LISTEN%'")
}

/// Terminates the other connections to the test's database whose `pg_stat_activity` row
/// matches `condition`; how many there were.
fn terminate_backends(database_url: &str, condition: &str) -> i64 {
    use sqlx::Connection;
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND {condition}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(database_url)
            .await
            .expect("connect to the test database");
        sqlx::query_scalar(&terminate)
            .fetch_one(&mut conn)
            .await
            .expect("terminate the connections")
    })
}

fn a_policy_change_reaches_every_replica_within_a_second(h: &Harness) {
    let b = replica(h);
    let agent = id(&h.create_agent("governed", &[]));
    let send = json!({"agent_id": agent, "action_name": "send_message"});
    h.put_policy(json!({"rules": []}));
    // B decides under the first version, and keeps it.
    for _ in 0..3 {
        let decision = b.check(send.clone());
        assert_eq!(decision["allowed"], true, "{decision}");
    }

    h.put_policy(json!({"rules": [
        {"id": "no-messages", "tools": ["send_message"], "decision": "deny"}
    ]}));
    let answered = Instant::now();
    let here = h.check(send.clone());
    assert_eq!(
        here["allowed"], false,
        "A decides under the new policy at once: {here}"
    );
    within_a_second(answered, "B deciding under the new policy", || {
        b.check(send.clone())["allowed"] == false
    });
    audit_chain_verifies(h, &b);
}

/// B keeps the session's `standard` row in memory. Tightened on A (read-only), B lets no write
/// through from the very next check (its record transaction reads the mode again); loosened on A
/// (elevated), B waives approvals within a second, told by the notice alone.
fn a_session_mode_set_on_one_replica_binds_checks_on_another(h: &Harness) {
    let b = replica(h);
    let agent = id(&h.create_agent("moded-across", &[]));
    let session = format!("sess-{}", uuid::Uuid::new_v4());
    let check = |replica: &Harness, action: &str, effect: &str| {
        replica.check(json!({"agent_id": agent, "session_id": session,
                             "action_name": action, "action_effect": effect}))
    };
    let set_mode = |mode: &str| {
        h.request(
            Method::PUT,
            &format!("/api/v1/sessions/{session}/mode"),
            Some(json!({"mode": mode})),
        )
        .ok();
    };
    for _ in 0..3 {
        let write = check(&b, "save_file", "mutating");
        assert_eq!(write["allowed"], true, "{write}");
    }
    set_mode("read_only");
    let write = check(&b, "save_file", "mutating");
    assert_eq!(write["allowed"], false, "B at once: {write}");
    let answered = Instant::now();
    within_a_second(answered, "B deciding on the read-only mode", || {
        check(&b, "save_file", "mutating")["rule"] == "session:read_only"
    });

    set_mode("standard");
    let destructive = check(&b, "delete_all", "destructive");
    assert_eq!(destructive["elevation_required"], true, "{destructive}");
    // `policies/test` decides on B's cached session and records nothing, so nothing on B reads
    // the mode again: only A's notice can make B forget the `standard` it keeps.
    let tested = || {
        b.post(
            "/api/v1/policies/test",
            json!({"agent_id": agent, "session_id": session, "action_name": "delete_all",
                   "action_effect": "destructive"}),
        )
        .ok()["decision"]["rule"]
            .clone()
    };
    assert_eq!(tested(), "default:destructive");
    set_mode("elevated");
    let answered = Instant::now();
    within_a_second(answered, "B deciding on the elevated mode", || {
        tested() == "session:elevated"
    });
    audit_chain_verifies(h, &b);
}

fn an_agent_lockout_is_exact_across_replicas(h: &Harness) {
    let b = replica(h);
    let after = 4;
    h.put_policy(json!({"agent_lockout_after_denials": after,
                        "agent_lockout_window_seconds": 600}));
    let agent = id(&h.create_agent("flooder", &[]));
    // Both replicas know the agent (standard) before the flood.
    for replica in [h, &b] {
        let read = replica.check(json!({"agent_id": agent, "action_name": "read_files"}));
        assert_eq!(read["allowed"], true, "{read}");
    }

    // Hard denials (no session: only the agent's own count applies), alternating A and B.
    let denials = 10;
    std::thread::scope(|scope| {
        for index in 0..denials {
            let replica = if index % 2 == 0 { h } else { &b };
            let agent = agent.clone();
            scope.spawn(move || {
                let decision =
                    replica.check(json!({"agent_id": agent, "action_name": "grant_admin_role"}));
                assert_eq!(decision["allowed"], false, "{decision}");
            });
        }
    });
    // Counted once each, locked exactly once, whichever replica counted.
    assert_eq!(h.audit_count("agent.locked"), 1);
    let counted = h
        .sql_integers(&format!(
            "SELECT CAST(denials_in_window AS BIGINT) FROM agents WHERE id = '{agent}'"
        ))
        .expect("the agent");
    assert_eq!(counted, [denials]);
    for replica in [h, &b] {
        let locked = replica.check(json!({"agent_id": agent, "action_name": "send_message"}));
        assert_eq!(locked["allowed"], false, "{locked}");
        assert_eq!(locked["rule"], "agent:locked", "{locked}");
        // Locked agents still read; the read leaves the locked row in memory.
        let read = replica.check(json!({"agent_id": agent, "action_name": "read_files"}));
        assert_eq!(read["allowed"], true, "{read}");
    }

    // Unlocked on B: A decides on the unlocked agent within a second.
    b.post(&format!("/api/v1/agents/{agent}/unlock"), json!({}))
        .ok();
    let answered = Instant::now();
    assert_eq!(
        decision_of_test(&b, &agent, "send_message")["allowed"],
        true,
        "B sees its own unlock at once"
    );
    within_a_second(answered, "A seeing the unlock", || {
        decision_of_test(h, &agent, "send_message")["allowed"] == true
    });
    audit_chain_verifies(h, &b);
}

fn a_delegation_budget_is_exact_across_replicas(h: &Harness) {
    let b = replica(h);
    let owner = id(&h.create_agent("budget-owner", &["files:read"]));
    let helper = id(&h.create_agent("budget-helper", &[]));
    let max_calls = 6;
    let granted = h.post(
        "/api/v1/delegations",
        json!({"from_agent_id": owner, "to_agent_id": helper, "scope": ["files:read"],
               "restrictions": {"max_calls": max_calls}, "ttl_seconds": 600}),
    );
    assert_eq!(granted.status, 201, "{}", granted.text);
    let delegation = id(&granted.body["delegation"]);
    // One session opened on each replica: the budget is the delegation's, not a session's.
    let sessions: Vec<String> = [h, &b]
        .iter()
        .map(|replica| {
            let opened = replica.raw(
                Method::POST,
                &format!("/api/v1/delegations/{delegation}/session"),
                &[("X-API-Key", replica.admin_key.clone())],
                None,
            );
            assert_eq!(opened.status, 201, "{}", opened.text);
            opened.body["session_id"]
                .as_str()
                .expect("a session")
                .to_string()
        })
        .collect();

    let calls = 16;
    let allowed: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..calls)
            .map(|index| {
                let (replica, session) = if index % 2 == 0 {
                    (h, &sessions[0])
                } else {
                    (&b, &sessions[1])
                };
                let helper = helper.clone();
                scope.spawn(move || {
                    let decision = replica
                        .check(json!({"agent_id": helper, "action_name": "read_files",
                               "session_id": session}));
                    decision["allowed"] == true
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a worker"))
            .filter(|allowed| *allowed)
            .count()
    });
    assert_eq!(allowed, max_calls as usize);
    let made = h
        .sql_integers(&format!(
            "SELECT CAST(calls_made AS BIGINT) FROM delegations WHERE id = '{delegation}'"
        ))
        .expect("the delegation");
    assert_eq!(made, [max_calls]);
    audit_chain_verifies(h, &b);
}

fn one_pending_approval_per_request_across_replicas(h: &Harness) {
    let b = replica(h);
    let agent = id(&h.create_agent("elevating", &[]));
    let session = format!("sess-{}", uuid::Uuid::new_v4());
    let request = json!({"agent_id": agent, "session_id": session, "action_name": "delete_all",
                         "action_source": "api", "action_input_summary": "delete everything"});
    let approval_ids: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..12)
            .map(|index| {
                let replica = if index % 2 == 0 { h } else { &b };
                let request = request.clone();
                scope.spawn(move || {
                    let decision = replica.check(request);
                    assert_eq!(decision["allowed"], false, "{decision}");
                    assert_eq!(decision["elevation_required"], true, "{decision}");
                    decision["approval_id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("an approval id: {decision}"))
                        .to_string()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a worker"))
            .collect()
    });
    assert!(
        approval_ids.iter().all(|id| *id == approval_ids[0]),
        "one approval for one request: {approval_ids:?}"
    );
    let stored = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM approvals WHERE session_id = '{session}'"
        ))
        .expect("a count");
    assert_eq!(stored, [1]);
    assert_eq!(h.audit_count("approval.requested"), 1);
    audit_chain_verifies(h, &b);
}

fn an_approval_decided_on_one_replica_ends_a_wait_on_another(h: &Harness) {
    let b = replica(h);
    let agent = id(&h.create_agent("waiting", &[]));
    let session = format!("sess-{}", uuid::Uuid::new_v4());
    let request = json!({"agent_id": agent, "session_id": session, "action_name": "delete_all",
                         "action_source": "api", "action_input_summary": "delete everything"});
    let pending = h.check(request.clone());
    let approval_id = pending["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an approval id: {pending}"))
        .to_string();

    std::thread::scope(|scope| {
        // `approvals wait` polls replica A...
        let waiting =
            scope.spawn(|| h.run(&["approvals", "wait", &approval_id, "--timeout", "20s"]));
        // ...while a human approves on replica B (let the wait start polling first: an approval
        // decided before it starts would end it at once, proving less).
        std::thread::sleep(Duration::from_millis(500));
        b.post(
            &format!("/mcp/approvals/{approval_id}/approve"),
            json!({"decided_by": "alice@example.com"}),
        )
        .ok();
        waiting.join().expect("the wait").success();
    });
    // The retried call is allowed, on either replica.
    let retried = b.check(request);
    assert_eq!(retried["allowed"], true, "{retried}");
    audit_chain_verifies(h, &b);
}
