//! Org policies over HTTP (`GET/PUT /api/v1/policies`, `POST /api/v1/policies/test`): the default
//! document, atomic versioned replacement, validation naming the first bad rule with nothing
//! stored, hypothetical checks recording nothing, and the `rule` every check names.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    an_org_without_a_policy_gets_the_defaults,
    put_replaces_the_document_and_bumps_the_version,
    a_stale_version_is_a_conflict,
    invalid_documents_are_refused_and_nothing_is_stored,
    policy_test_evaluates_without_recording,
    rules_decide_checks_and_are_named,
    only_admin_keys_manage_policies,
);

fn an_org_without_a_policy_gets_the_defaults(h: &Harness) {
    let document = h.get("/api/v1/policies").ok().clone();
    assert_eq!(document["version"], 0, "{document}");
    assert_eq!(document["rules"], json!([]), "{document}");
    assert_eq!(
        document["defaults"],
        json!({"read": "allow", "mutating": "allow", "destructive": "require_approval", "admin": "deny"}),
        "{document}"
    );
    assert_eq!(document["approval_ttl_seconds"], 900, "{document}");
    assert_eq!(document["lockout_after_denials"], 5, "{document}");

    // The defaults decide, and every answer names what decided.
    let agent = h.create_agent("defaults", &[]);
    for (tool, effect, allowed, rule) in [
        ("web_search", "read", true, "default:read"),
        ("send_email", "mutating", true, "default:mutating"),
        ("delete_all", "destructive", false, "default:destructive"),
        ("grant_role", "admin", false, "default:admin"),
    ] {
        let decision = h.check(json!({"agent_id": agent["id"], "action_name": tool,
                                      "action_effect": effect}));
        assert_eq!(decision["allowed"], allowed, "{tool}: {decision}");
        assert_eq!(decision["rule"], rule, "{tool}: {decision}");
        // Without a session there is nobody to elevate: a plain denial.
        assert_ne!(decision["elevation_required"], true, "{tool}: {decision}");
    }
    let unknown = h.check(json!({"agent_id": uuid::Uuid::new_v4().to_string(),
                                 "action_name": "web_search"}));
    assert_eq!(unknown["allowed"], false);
    assert_eq!(unknown["rule"], "agent:unknown", "{unknown}");
}

fn sample_policy() -> Value {
    json!({
        "rules": [
            {"id": "no-prod-drops", "tools": ["sql*"], "input": {"contains": ["prod"]},
             "decision": "deny", "reason": "never touch prod"},
            {"id": "deploys-need-a-human", "tools": ["deploy_*"], "decision": "require_approval"},
            {"id": "trusted-reads", "effects": ["read"], "agents": ["langchain"],
             "decision": "allow"},
            {"id": "billing-needs-cap", "tools": ["charge_*"], "require_capabilities": ["billing:write"],
             "decision": "allow"},
            {"id": "read-only-mode", "session_modes": ["read_only"], "effects": ["read"],
             "input": {"regex": ["(?i)^secret"]}, "decision": "deny"}
        ],
        "defaults": {"read": "allow", "mutating": "allow", "destructive": "deny", "admin": "deny"},
        "approval_ttl_seconds": 600,
        "lockout_after_denials": 3
    })
}

fn put_replaces_the_document_and_bumps_the_version(h: &Harness) {
    let stored = h.put_policy(sample_policy());
    assert_eq!(stored["version"], 1, "{stored}");
    assert_eq!(stored["rules"].as_array().unwrap().len(), 5, "{stored}");
    assert_eq!(stored["approval_ttl_seconds"], 600);
    assert_eq!(stored["lockout_after_denials"], 3);
    assert!(
        stored["updated_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z')),
        "{stored}"
    );

    let fetched = h.get("/api/v1/policies").ok().clone();
    assert_eq!(fetched["version"], 1);
    assert_eq!(fetched["rules"], stored["rules"]);
    assert_eq!(fetched["defaults"]["destructive"], "deny");

    // With the current version: accepted, version 2; without one: replaces whatever is stored.
    let mut next = sample_policy();
    next["version"] = json!(1);
    next["rules"] = json!([{"id": "only", "tools": ["x"], "decision": "deny"}]);
    let second = h.put_policy(next);
    assert_eq!(second["version"], 2, "{second}");
    assert_eq!(second["rules"].as_array().unwrap().len(), 1);
    let third = h.put_policy(json!({"rules": []}));
    assert_eq!(third["version"], 3, "{third}");
    // Omitted settings take their defaults.
    assert_eq!(third["approval_ttl_seconds"], 900, "{third}");
    assert_eq!(
        third["defaults"]["destructive"], "require_approval",
        "{third}"
    );
    assert_eq!(h.audit_count("policy.updated"), 3);
}

fn a_stale_version_is_a_conflict(h: &Harness) {
    h.put_policy(sample_policy());
    h.put_policy(sample_policy());
    let mut stale = sample_policy();
    stale["version"] = json!(1);
    stale["rules"] = json!([]);
    let counts = h.row_counts();
    let reply = h.request(Method::PUT, "/api/v1/policies", Some(stale));
    reply.expect_error(409);
    assert!(
        reply.message().contains('2'),
        "names the stored version: {}",
        reply.text
    );
    assert_eq!(h.row_counts(), counts, "nothing changed");
    let fetched = h.get("/api/v1/policies").ok().clone();
    assert_eq!(fetched["version"], 2);
    assert_eq!(fetched["rules"].as_array().unwrap().len(), 5);
}

fn invalid_documents_are_refused_and_nothing_is_stored(h: &Harness) {
    h.put_policy(sample_policy());
    let before = h.get("/api/v1/policies").ok().clone();
    let counts = h.row_counts();
    let rule = |id: &str, extra: Value| {
        let mut rule = json!({"id": id, "decision": "deny"});
        for (key, value) in extra.as_object().unwrap() {
            rule[key] = value.clone();
        }
        rule
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "duplicate rule id",
            json!({"rules": [rule("twice", json!({"tools": ["a"]})), rule("twice", json!({"tools": ["b"]}))]}),
            "twice",
        ),
        (
            "bad regex",
            json!({"rules": [rule("fine", json!({})), rule("bad-regex", json!({"input": {"regex": ["(unclosed"]}}))]}),
            "bad-regex",
        ),
        (
            "bad glob",
            json!({"rules": [rule("bad-glob", json!({"tools": ["files_[a-"]}))]}),
            "bad-glob",
        ),
        (
            "unknown effect",
            json!({"rules": [rule("ok", json!({})), rule("odd-effect", json!({"effects": ["explode"]}))]}),
            "explode",
        ),
        (
            "approval ttl 0",
            json!({"rules": [], "approval_ttl_seconds": 0}),
            "approval_ttl_seconds",
        ),
        (
            "misspelt matcher",
            json!({"rules": [rule("typo", json!({"tool": ["x"]}))]}),
            "typo",
        ),
        (
            "unknown decision",
            json!({"rules": [rule("maybe", json!({"decision": "perhaps"}))]}),
            "perhaps",
        ),
        (
            "empty rule id",
            json!({"rules": [rule("", json!({}))]}),
            "id",
        ),
        (
            "lockout 0",
            json!({"rules": [], "lockout_after_denials": 0}),
            "lockout_after_denials",
        ),
    ];
    for (what, document, named) in cases {
        let reply = h.request(Method::PUT, "/api/v1/policies", Some(document));
        let code = reply.expect_error(400);
        assert!(!code.is_empty());
        assert!(
            reply.message().contains(named),
            "{what}: the message names {named:?}: {}",
            reply.text
        );
        assert_eq!(h.row_counts(), counts, "{what}: nothing changed");
    }
    assert_eq!(
        h.get("/api/v1/policies").ok(),
        &before,
        "the stored policy is untouched"
    );
}

fn policy_test_evaluates_without_recording(h: &Harness) {
    h.put_policy(sample_policy());
    let agent = h.create_agent("tested", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let counts = h.row_counts();

    let tested = h
        .post(
            "/api/v1/policies/test",
            json!({"agent_id": agent_id, "action_name": "sql_query",
                   "action_input_summary": "DELETE FROM prod.users", "session_id": "sess-test"}),
        )
        .ok()
        .clone();
    assert_eq!(tested["decision"]["allowed"], false, "{tested}");
    assert_eq!(tested["decision"]["rule"], "rule:no-prod-drops", "{tested}");
    assert_eq!(tested["decision"]["reason"], "never touch prod", "{tested}");
    assert_eq!(tested["matched_rule"], "no-prod-drops", "{tested}");

    // require_approval in a session: elevation, but no approval is created.
    let deploy = h
        .post(
            "/api/v1/policies/test",
            json!({"agent_id": agent_id, "action_name": "deploy_prod", "session_id": "sess-test"}),
        )
        .ok()
        .clone();
    assert_eq!(deploy["decision"]["allowed"], false, "{deploy}");
    assert_eq!(deploy["decision"]["elevation_required"], true, "{deploy}");
    assert_eq!(deploy["matched_rule"], "deploys-need-a-human", "{deploy}");

    // No rule: the default decides, no matched_rule.
    let default = h
        .post(
            "/api/v1/policies/test",
            json!({"agent_id": agent_id, "action_name": "web_search", "action_effect": "read"}),
        )
        .ok()
        .clone();
    assert_eq!(default["decision"]["allowed"], true, "{default}");
    assert_eq!(default["decision"]["rule"], "default:read", "{default}");
    assert!(
        default.get("matched_rule").is_none_or(Value::is_null),
        "{default}"
    );

    // A supplied policy is evaluated instead of the stored one.
    let supplied = h
        .post(
            "/api/v1/policies/test",
            json!({"agent_id": agent_id, "action_name": "web_search", "action_effect": "read",
                   "policy": {"rules": [{"id": "no-search", "tools": ["web_*"], "decision": "deny"}]}}),
        )
        .ok()
        .clone();
    assert_eq!(supplied["decision"]["allowed"], false, "{supplied}");
    assert_eq!(supplied["decision"]["rule"], "rule:no-search", "{supplied}");

    // A supplied invalid policy is a 400 naming the rule.
    let invalid = h.post(
        "/api/v1/policies/test",
        json!({"agent_id": agent_id, "action_name": "x",
               "policy": {"rules": [{"id": "broken", "input": {"regex": ["("]}, "decision": "deny"}]}}),
    );
    invalid.expect_error(400);
    assert!(invalid.message().contains("broken"), "{}", invalid.text);

    assert_eq!(h.row_counts(), counts, "a policy test records nothing");
    assert_eq!(h.get("/api/v1/policies").ok()["version"], 1);
}

fn rules_decide_checks_and_are_named(h: &Harness) {
    h.put_policy(sample_policy());
    let plain = h.create_agent("plain", &[]);
    let billing = h.post(
        "/api/v1/agents",
        json!({"name": "biller", "framework": "langchain", "capabilities": ["billing:write"]}),
    );
    let billing = billing.agent();
    let plain_id = plain["id"].as_str().unwrap();
    let billing_id = billing["id"].as_str().unwrap();

    let denied = h.check(json!({"agent_id": plain_id, "action_name": "sql_exec",
                                "action_input_summary": "drop table PROD.users"}));
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["rule"], "rule:no-prod-drops", "{denied}");
    assert_eq!(denied["reason"], "never touch prod", "{denied}");

    // Capabilities: the rule allows only agents holding billing:write.
    let without = h.check(json!({"agent_id": plain_id, "action_name": "charge_card",
                                 "action_effect": "mutating"}));
    assert_eq!(without["allowed"], false, "{without}");
    assert_eq!(without["rule"], "rule:billing-needs-cap", "{without}");
    assert!(
        without["reason"]
            .as_str()
            .unwrap()
            .contains("billing:write"),
        "{without}"
    );
    let with = h.check(json!({"agent_id": billing_id, "action_name": "charge_card",
                              "action_effect": "mutating"}));
    assert_eq!(with["allowed"], true, "{with}");
    assert_eq!(with["rule"], "rule:billing-needs-cap", "{with}");

    // Agents by framework.
    let read = h.check(json!({"agent_id": billing_id, "action_name": "web_search",
                              "action_effect": "read"}));
    assert_eq!(read["rule"], "rule:trusted-reads", "{read}");
    let read = h.check(json!({"agent_id": plain_id, "action_name": "web_search",
                              "action_effect": "read"}));
    assert_eq!(read["rule"], "default:read", "{read}");

    // The defaults of the stored document: destructive is denied outright here.
    let destructive = h.check(json!({"agent_id": plain_id, "action_name": "delete_all",
                                     "session_id": "sess-rules"}));
    assert_eq!(destructive["allowed"], false, "{destructive}");
    assert_eq!(destructive["elevation_required"], false, "{destructive}");
    assert_eq!(destructive["rule"], "default:destructive", "{destructive}");
}

fn only_admin_keys_manage_policies(h: &Harness) {
    let (runtime, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    h.request_as(&runtime, Method::GET, "/api/v1/policies", None)
        .expect_error(403);
    h.request_as(
        &runtime,
        Method::PUT,
        "/api/v1/policies",
        Some(json!({"rules": []})),
    )
    .expect_error(403);
    // Another org sees its own (empty) policy, never ours.
    h.put_policy(sample_policy());
    let (_, other_key) = h.other_org("globex");
    let theirs = h
        .request_as(&other_key, Method::GET, "/api/v1/policies", None)
        .ok()
        .clone();
    assert_eq!(theirs["version"], 0, "{theirs}");
    assert_eq!(theirs["rules"], json!([]));
}
