//! Agent token semantics at the gateway: format, TTL default and cap, scopes against
//! capabilities, introspection (expiry, revocation, agent revocation, required scopes) and
//! secrets kept only as digests.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{Backend, Harness};
use crate::on_both_backends;

on_both_backends!(
    issue_returns_an_opaque_token_with_its_ttl,
    default_ttl_is_300_seconds,
    ttl_over_the_cap_is_capped,
    ttl_must_be_positive,
    scopes_must_be_capabilities,
    agent_without_capabilities_gets_no_scope,
    introspect_reports_the_token,
    required_scopes_are_honoured,
    revoked_token_is_inactive,
    revoking_the_agent_deactivates_its_tokens,
    a_token_issued_on_a_stale_agent_row_is_dead,
    expired_token_is_inactive,
    unknown_token_is_inactive,
    secrets_are_stored_only_as_digests,
    tokens_are_listed_without_secrets,
    tokens_are_revoked_by_id,
    cli_lists_and_revokes_tokens_by_id,
);

fn timestamp(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    assert!(
        text.ends_with('Z') && !text.contains('.'),
        "timestamps are RFC 3339 UTC with Z and no fraction: {text}"
    );
    agenttrust::api::time::parse(text).unwrap_or_else(|| panic!("not RFC 3339: {text}"))
}

fn introspect(h: &Harness, token: &str, required: &[&str]) -> Value {
    h.post(
        "/api/v1/agent-tokens/introspect",
        json!({"token": token, "target": null, "required_scopes": required}),
    )
    .ok()
    .clone()
}

fn issue_returns_an_opaque_token_with_its_ttl(h: &Harness) {
    let agent = h.create_agent("tokens", &["web:search", "files:read"]);
    let agent_id = agent["id"].as_str().unwrap();
    let before = h.row_counts();
    let issued = h.issue_token(agent_id, &["web:search"], 120);
    let token = issued["token"].as_str().unwrap();
    let random = token.strip_prefix("at_").expect("at_ prefix");
    // At least 32 random bytes, base62: 43 characters or more.
    assert!(random.len() >= 43, "{token}");
    assert!(random.chars().all(|c| c.is_ascii_alphanumeric()), "{token}");
    assert_eq!(issued["agent_id"], agent_id);
    assert_eq!(issued["scopes"], json!(["web:search"]));
    assert!(issued["token_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        timestamp(&issued["expires_at"]) - timestamp(&issued["issued_at"]),
        120
    );
    assert_eq!(
        h.row_counts()["agent_tokens"],
        before["agent_tokens"] + 1,
        "one stored token"
    );
    let second = h.issue_token(agent_id, &["web:search"], 120);
    assert_ne!(second["token"], issued["token"], "tokens are random");
}

fn default_ttl_is_300_seconds(h: &Harness) {
    let agent = h.create_agent("default-ttl", &[]);
    let issued = h
        .post(
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent["id"], "scopes": []}),
        )
        .ok()
        .clone();
    assert_eq!(
        timestamp(&issued["expires_at"]) - timestamp(&issued["issued_at"]),
        300
    );
}

fn ttl_over_the_cap_is_capped(h: &Harness) {
    // Like Vault's max_ttl: asking for more than the server allows gets the most allowed (3600 s
    // by default), and the answer says so in `ttl_seconds` and `expires_at`.
    let agent = h.create_agent("capped", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    for ttl in [3600, 3601, 86_400 * 365] {
        let issued = h.issue_token(agent_id, &[], ttl);
        assert_eq!(
            timestamp(&issued["expires_at"]) - timestamp(&issued["issued_at"]),
            3600,
            "ttl {ttl}: {issued}"
        );
        assert_eq!(issued["ttl_seconds"], 3600, "{issued}");
        // A capped value is never silent: the answer says what was changed, and why.
        if ttl > 3600 {
            let warning = issued["warnings"][0].as_str().unwrap_or_default();
            assert!(
                warning.contains(&format!("ttl {ttl} s was capped to 3600 s"))
                    && warning.contains("--max-token-ttl"),
                "{issued}"
            );
        } else {
            assert!(issued.get("warnings").is_none(), "{issued}");
        }
    }
    // `ttl_seconds` is the same field as `ttl`.
    let issued = h
        .post(
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent_id, "scopes": [], "ttl_seconds": 7200}),
        )
        .ok()
        .clone();
    assert_eq!(issued["ttl_seconds"], 3600, "{issued}");
}

fn ttl_must_be_positive(h: &Harness) {
    let agent = h.create_agent("positive", &[]);
    let before = h.row_counts();
    for ttl in [0, -1, -3600] {
        let reply = h.post(
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent["id"], "scopes": [], "ttl": ttl}),
        );
        reply.expect_error(400);
    }
    assert_eq!(h.row_counts(), before);
}

fn scopes_must_be_capabilities(h: &Harness) {
    let agent = h.create_agent("scoped", &["web:search"]);
    let before = h.row_counts();
    let reply = h.post(
        "/api/v1/agent-tokens/issue",
        json!({"agent_id": agent["id"], "scopes": ["web:search", "files:write"], "ttl": 60}),
    );
    reply.expect_error(400);
    assert!(
        reply.message().contains("files:write"),
        "the message names the extra scope: {}",
        reply.text
    );
    assert_eq!(h.row_counts(), before);
    // `scope` (singular) is accepted as the same field.
    let issued = h
        .post(
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent["id"], "scope": ["web:search"], "ttl": 60}),
        )
        .ok()
        .clone();
    assert_eq!(issued["scopes"], json!(["web:search"]));
}

/// The same ceiling as a delegation's: an agent registered without capabilities holds nothing
/// to put in a token (fail closed), and the message says how to fix it.
fn agent_without_capabilities_gets_no_scope(h: &Harness) {
    let agent = h.create_agent("unbounded", &[]);
    let before = h.row_counts();
    let reply = h.post(
        "/api/v1/agent-tokens/issue",
        json!({"agent_id": agent["id"], "scopes": ["anything:at-all"], "ttl": 60}),
    );
    reply.expect_error(400);
    assert!(
        reply.message().contains("agents create --capabilities"),
        "{}",
        reply.text
    );
    assert_eq!(h.row_counts(), before);
    // A token without scopes may still be issued; it allows nothing when presented.
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &[], 60);
    assert_eq!(issued["scopes"], json!([]));
}

fn introspect_reports_the_token(h: &Harness) {
    let agent = h.create_agent("introspected", &["web:search"]);
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &["web:search"], 60);
    let result = introspect(h, issued["token"].as_str().unwrap(), &[]);
    assert_eq!(result["active"], true, "{result}");
    assert_eq!(result["agent_id"], agent["id"]);
    assert_eq!(result["org_id"], json!(h.org_id));
    assert_eq!(result["scopes"], json!(["web:search"]));
    assert_eq!(result["expires_at"], issued["expires_at"]);
    assert!(result["reasoning"].as_str().is_some_and(|r| !r.is_empty()));
    // `target` is accepted (the Python SDK always sends it).
    let with_target = h
        .post(
            "/api/v1/agent-tokens/introspect",
            json!({"token": issued["token"], "target": "mcp://filesystem", "required_scopes": []}),
        )
        .ok()
        .clone();
    assert_eq!(with_target["active"], true);
}

fn required_scopes_are_honoured(h: &Harness) {
    let agent = h.create_agent("required", &["web:search", "files:read"]);
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &["web:search"], 60);
    let token = issued["token"].as_str().unwrap();
    assert_eq!(introspect(h, token, &["web:search"])["active"], true);
    let missing = introspect(h, token, &["web:search", "files:read"]);
    assert_eq!(missing["active"], false, "{missing}");
    assert!(
        missing["reasoning"]
            .as_str()
            .unwrap_or("")
            .contains("files:read"),
        "reasoning names the missing scope: {missing}"
    );
}

fn revoked_token_is_inactive(h: &Harness) {
    let agent = h.create_agent("revoked-token", &[]);
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &[], 60);
    let token = issued["token"].as_str().unwrap();
    let other = h.issue_token(agent["id"].as_str().unwrap(), &[], 60);
    h.post(
        "/api/v1/agent-tokens/revoke",
        json!({"token": token, "reason": "leaked"}),
    )
    .ok();
    let result = introspect(h, token, &[]);
    assert_eq!(result["active"], false);
    assert!(
        result["reasoning"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("revoked"),
        "{result}"
    );
    // Only that token.
    assert_eq!(
        introspect(h, other["token"].as_str().unwrap(), &[])["active"],
        true
    );
    // Revoking again changes nothing and is no error.
    h.post("/api/v1/agent-tokens/revoke", json!({"token": token}))
        .ok();
    assert_eq!(introspect(h, token, &[])["active"], false);
}

fn revoking_the_agent_deactivates_its_tokens(h: &Harness) {
    let agent = h.create_agent("doomed", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            h.issue_token(agent_id, &[], 600)["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let bystander = h.create_agent("bystander", &[]);
    let kept = h.issue_token(bystander["id"].as_str().unwrap(), &[], 600);

    h.post(
        &format!("/api/v1/agents/{agent_id}/revoke"),
        json!({"reason": "compromised"}),
    )
    .ok();
    let fetched = h.get(&format!("/api/v1/agents/{agent_id}")).ok().clone();
    assert_eq!(fetched["status"], "revoked");
    for token in &tokens {
        let result = introspect(h, token, &[]);
        assert_eq!(result["active"], false, "{result}");
        assert!(
            result["reasoning"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("revoked"),
            "{result}"
        );
    }
    assert_eq!(
        introspect(h, kept["token"].as_str().unwrap(), &[])["active"],
        true
    );
    // A revoked agent gets no new tokens.
    h.post(
        "/api/v1/agent-tokens/issue",
        json!({"agent_id": agent_id, "scopes": [], "ttl": 60}),
    )
    .expect_status(400..=409);
}

/// Issuing reads the agent through the replica's cache. An agent revoked where this replica did
/// not hear of it (another replica's notice not yet heard; here, SQL by hand) may still be
/// issued a token for that moment, but the token never works: a token is only as live as its
/// agent, read afresh when it is first presented.
fn a_token_issued_on_a_stale_agent_row_is_dead(h: &Harness) {
    let agent = h.create_agent("stale-row", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    // The agent's row is kept in memory once a token was issued for it.
    h.issue_token(agent_id, &[], 600);
    assert_eq!(
        h.sql_execute(&format!(
            "UPDATE agents SET status = 'revoked' WHERE id = '{agent_id}'"
        )),
        1
    );
    let issued = h.post(
        "/api/v1/agent-tokens/issue",
        json!({"agent_id": agent_id, "scopes": [], "ttl": 60}),
    );
    if issued.status == 201 {
        let token = issued.body["token"].as_str().unwrap();
        let result = introspect(h, token, &[]);
        assert_eq!(result["active"], false, "{result}");
        let check = h.check_with_token(
            token,
            json!({"agent_id": agent_id, "action_name": "read_files"}),
        );
        assert!(
            check.status == 401 || check.body["allowed"] == false,
            "a token of a revoked agent decides nothing: {} {}",
            check.status,
            check.text
        );
    } else {
        issued.expect_status(409..=409);
    }
}

fn expired_token_is_inactive(h: &Harness) {
    let agent = h.create_agent("expiring", &[]);
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &[], 60);
    let token_id = issued["token_id"].as_str().unwrap();
    // No sleeping: move the stored expiry into the past.
    let past = agenttrust::api::time::now() - 10;
    let changed = h.sql_execute(&format!(
        "UPDATE agent_tokens SET issued_at = {}, expires_at = {past} WHERE id = '{token_id}'",
        past - 60
    ));
    assert_eq!(changed, 1);
    let result = introspect(h, issued["token"].as_str().unwrap(), &[]);
    assert_eq!(result["active"], false, "{result}");
    assert!(
        result["reasoning"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("expired"),
        "{result}"
    );
}

fn unknown_token_is_inactive(h: &Harness) {
    let before = h.row_counts();
    let result = introspect(h, "at_doesnotexist0000000000000000000000000000000", &[]);
    assert_eq!(result["active"], false);
    assert!(result.get("agent_id").is_none(), "{result}");
    assert_eq!(h.row_counts(), before);
}

fn secrets_are_stored_only_as_digests(h: &Harness) {
    let agent = h.create_agent("secretive", &[]);
    let token = h.issue_token(agent["id"].as_str().unwrap(), &[], 60)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let key = h
        .post("/api/v1/keys", json!({"role": "runtime", "name": "k"}))
        .ok()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        key.starts_with("sk_live_") && key.len() >= "sk_live_".len() + 43,
        "{key}"
    );
    // What is stored is each secret's SHA-256 digest, and no row holds a secret in clear.
    for (table, column, secret) in [
        ("agent_tokens", "token_digest", &token),
        ("api_keys", "key_digest", &key),
        ("api_keys", "key_digest", &h.admin_key),
    ] {
        let digest = hex::encode(Sha256::digest(secret.as_bytes()));
        assert_eq!(
            h.sql_integers(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE {column} = '{digest}'"
            )),
            Some(vec![1]),
            "{table}.{column} holds the digest of {secret}"
        );
    }
    match h.backend {
        Backend::Postgres => secrets_in_no_postgres_row(h, &[&token, &key, &h.admin_key]),
        Backend::Sqlite => secrets_in_no_sqlite_file(h, &[&token, &key, &h.admin_key]),
    }
}

/// PostgreSQL: no row of any table, rendered as text, contains a secret.
fn secrets_in_no_postgres_row(h: &Harness, secrets: &[&str]) {
    let tables = h.row_counts();
    assert!(tables.contains_key("agent_tokens"), "{tables:?}");
    for table in tables.keys() {
        for secret in secrets {
            assert_eq!(
                h.sql_integers(&format!(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} AS t \
                     WHERE strpos(CAST(t AS TEXT), '{secret}') > 0"
                )),
                Some(vec![0]),
                "a secret is stored in clear in {table}: {secret}"
            );
        }
    }
}

/// SQLite: every byte the gateway wrote (database, WAL, shared memory) is free of the secrets.
fn secrets_in_no_sqlite_file(h: &Harness, secrets: &[&str]) {
    let mut written = Vec::new();
    for entry in std::fs::read_dir(h.scratch.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gateway.db")
        {
            written.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!written.is_empty());
    for secret in secrets {
        let found = written
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "a secret is stored in clear: {secret}");
    }
}

fn listed(h: &Harness, query: &str) -> Vec<Value> {
    let page = h.get(&format!("/api/v1/agent-tokens{query}")).ok().clone();
    page["tokens"].as_array().expect("tokens").clone()
}

fn ids(tokens: &[Value]) -> Vec<String> {
    tokens
        .iter()
        .map(|token| token["token_id"].as_str().unwrap().to_string())
        .collect()
}

fn tokens_are_listed_without_secrets(h: &Harness) {
    let alice = h.create_agent("alice", &[]);
    let bob = h.create_agent("bob", &[]);
    let alice_id = alice["id"].as_str().unwrap();
    let issued: Vec<Value> = (0..3).map(|_| h.issue_token(alice_id, &[], 600)).collect();
    let bobs = h.issue_token(bob["id"].as_str().unwrap(), &[], 600);
    let [revoked, expired, active] = [&issued[0], &issued[1], &issued[2]];
    h.post(
        "/api/v1/agent-tokens/revoke",
        json!({"token": revoked["token"], "reason": "leaked"}),
    )
    .ok();
    let past = agenttrust::api::time::now() - 10;
    h.sql_execute(&format!(
        "UPDATE agent_tokens SET expires_at = {past} WHERE id = '{}'",
        expired["token_id"].as_str().unwrap()
    ));

    // Active only by default, by agent or across the org.
    let alices = listed(h, &format!("?agent_id={alice_id}"));
    assert_eq!(ids(&alices), [active["token_id"].as_str().unwrap()]);
    assert_eq!(alices[0]["status"], "active");
    assert_eq!(alices[0]["agent_id"], alice["id"]);
    assert_eq!(alices[0]["expires_at"], active["expires_at"]);
    let org = listed(h, "");
    assert_eq!(
        ids(&org),
        [
            active["token_id"].as_str().unwrap(),
            bobs["token_id"].as_str().unwrap()
        ]
    );
    // Everything, with why it is inactive.
    let all = listed(h, &format!("?agent_id={alice_id}&include_inactive=true"));
    let statuses: Vec<&str> = all.iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["revoked", "expired", "active"]);
    assert_eq!(all[0]["revoke_reason"], "leaked");
    assert!(all[0]["revoked_at"].is_string());

    // Pages of one walk every token once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = h
            .get(&format!(
                "/api/v1/agent-tokens?include_inactive=true&limit=1{cursor}"
            ))
            .ok()
            .clone();
        seen.extend(ids(page["tokens"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
        assert!(seen.len() <= 4, "paging does not end");
    }
    assert_eq!(seen.len(), 4);

    // Never a secret; admin keys only; another org sees none of them.
    let everything = h.get("/api/v1/agent-tokens?include_inactive=true").text;
    for token in issued.iter().chain([&bobs]) {
        assert!(!everything.contains(token["token"].as_str().unwrap()));
    }
    let (runtime, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    h.request_as(&runtime, reqwest::Method::GET, "/api/v1/agent-tokens", None)
        .expect_error(403);
    let (_, their_key) = h.other_org("elsewhere");
    let theirs = h.request_as(
        &their_key,
        reqwest::Method::GET,
        "/api/v1/agent-tokens",
        None,
    );
    assert_eq!(theirs.ok()["tokens"], json!([]));
    h.get("/api/v1/agent-tokens?limit=0").expect_error(400);
}

fn tokens_are_revoked_by_id(h: &Harness) {
    let agent = h.create_agent("incident", &[]);
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &[], 600);
    let token = issued["token"].as_str().unwrap();
    let token_id = issued["token_id"].as_str().unwrap();
    let path = format!("/api/v1/agent-tokens/{token_id}/revoke");

    let (runtime, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    h.request_as(&runtime, reqwest::Method::POST, &path, Some(json!({})))
        .expect_error(403);
    let (_, their_key) = h.other_org("elsewhere");
    h.request_as(&their_key, reqwest::Method::POST, &path, Some(json!({})))
        .expect_error(404);
    assert_eq!(
        introspect(h, token, &[])["active"],
        true,
        "untouched by refusals"
    );

    let revoked = h.post(&path, json!({"reason": "incident-42"})).ok().clone();
    assert_eq!(
        revoked,
        json!({"success": true, "revoked": true, "token_id": token_id})
    );
    let result = introspect(h, token, &[]);
    assert_eq!(result["active"], false);
    assert!(
        result["reasoning"]
            .as_str()
            .unwrap()
            .contains("incident-42"),
        "{result}"
    );
    assert_eq!(h.audit_count("token.revoked"), 1);
    // Twice is a no-op; an unknown id is a 404.
    let again = h.post(&path, json!({})).ok().clone();
    assert_eq!(again["revoked"], false);
    assert_eq!(h.audit_count("token.revoked"), 1);
    h.post("/api/v1/agent-tokens/no-such-token/revoke", json!({}))
        .expect_error(404);
}

fn cli_lists_and_revokes_tokens_by_id(h: &Harness) {
    let agent = h.run(&["agents", "create", "--name", "cli-tokens", "-q"]);
    let agent_id = agent.value().to_string();
    // A capped lifetime is announced on stderr; stdout keeps only the token.
    let issued = h.run(&["tokens", "issue", "--agent", &agent_id, "--ttl", "1d", "-q"]);
    issued.success();
    assert!(issued.value().starts_with("at_"), "{}", issued.stdout);
    assert!(
        issued.stderr.contains("warning:") && issued.stderr.contains("capped to 3600 s"),
        "{}",
        issued.stderr
    );
    let listed = h.run(&["tokens", "list", "--agent", &agent_id, "-q"]);
    listed.success();
    let token_id = listed.value().to_string();
    assert_eq!(token_id.lines().count(), 1, "{}", listed.stdout);
    assert!(!listed.stdout.contains("at_"), "never a secret");

    h.run(&["tokens", "revoke", "--id", &token_id]).code(2);
    h.run(&["tokens", "revoke", "--id", &token_id, "--yes"])
        .success();
    let active = h.run(&["tokens", "list", "--agent", &agent_id, "-q"]);
    active.success();
    assert_eq!(active.stdout, "");
    let all = h.run(&[
        "tokens",
        "list",
        "--agent",
        &agent_id,
        "--include-inactive",
        "-o",
        "json",
    ]);
    assert_eq!(all.json()["tokens"][0]["status"], "revoked");
    h.run(&["tokens", "revoke", "--id", "no-such-token", "--yes"])
        .code(3);
    h.run(&["tokens", "revoke", "--yes"]).code(2);
}
