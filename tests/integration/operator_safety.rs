//! Operator safety: the org's last active admin key cannot be revoked (409 saying how to make
//! another first), the CLI warns before revoking the key it runs with, and capped values are
//! announced instead of applied in silence.

use reqwest::Method;
use serde_json::json;

use agenttrust::api::keys::Role;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    the_last_admin_key_cannot_be_revoked,
    a_key_knows_it_is_the_current_one,
    cli_warns_before_revoking_its_own_key,
);

fn active_admin_keys(h: &Harness) -> i64 {
    h.sql_integers(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM api_keys WHERE org_id = '{}' \
         AND role = 'admin' AND revoked_at IS NULL",
        h.org_id
    ))
    .expect("a count")[0]
}

fn harness_key_id(h: &Harness) -> String {
    let listed = h.get("/api/v1/keys").ok().clone();
    listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["current"] == true)
        .unwrap_or_else(|| panic!("the harness key is marked current: {listed}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn the_last_admin_key_cannot_be_revoked(h: &Harness) {
    let own = harness_key_id(h);
    // Runtime keys manage nothing: they do not count.
    let (_, runtime_id) = h.new_key(Role::Runtime);
    let before = h.row_counts();
    let reply = h.request(Method::DELETE, &format!("/api/v1/keys/{own}"), None);
    assert_eq!(reply.expect_error(409), "CONFLICT");
    assert!(
        reply.message().contains("last active admin key")
            && reply
                .message()
                .contains("agenttrust keys create --role admin"),
        "{}",
        reply.text
    );
    assert_eq!(h.row_counts(), before);
    assert_eq!(active_admin_keys(h), 1);
    h.get("/api/v1/agents").ok();

    // With a second admin key either may go, but not both.
    let (second, second_id) = h.new_key(Role::Admin);
    h.request(Method::DELETE, &format!("/api/v1/keys/{runtime_id}"), None)
        .ok();
    h.request_as(
        &second,
        Method::DELETE,
        &format!("/api/v1/keys/{own}"),
        None,
    )
    .ok();
    h.get("/api/v1/agents").expect_error(401);
    let reply = h.request_as(
        &second,
        Method::DELETE,
        &format!("/api/v1/keys/{second_id}"),
        None,
    );
    reply.expect_error(409);
    assert_eq!(active_admin_keys(h), 1);
    // Revoking an already revoked key is still a no-op, not a conflict.
    h.request_as(
        &second,
        Method::DELETE,
        &format!("/api/v1/keys/{own}"),
        None,
    )
    .ok();
}

fn a_key_knows_it_is_the_current_one(h: &Harness) {
    let own = harness_key_id(h);
    let (runtime, runtime_id) = h.new_key(Role::Runtime);
    let fetched = h.get(&format!("/api/v1/keys/{own}")).ok().clone();
    assert_eq!(fetched["current"], true, "{fetched}");
    assert_eq!(fetched["role"], "admin");
    let other = h.get(&format!("/api/v1/keys/{runtime_id}")).ok().clone();
    assert!(
        other.get("current").is_none(),
        "only the caller's key: {other}"
    );
    assert!(!other.to_string().contains(&runtime), "never the secret");
    h.get("/api/v1/keys/no-such-key").expect_error(404);
    h.request_as(&runtime, Method::GET, &format!("/api/v1/keys/{own}"), None)
        .expect_error(403);
    let (_, their_key) = h.other_org("elsewhere");
    h.request_as(
        &their_key,
        Method::GET,
        &format!("/api/v1/keys/{own}"),
        None,
    )
    .expect_error(404);
}

fn cli_warns_before_revoking_its_own_key(h: &Harness) {
    let own = harness_key_id(h);
    // The last admin key: refused by the gateway, with the way out.
    let refused = h.run(&["keys", "revoke", &own, "--yes"]);
    refused.code(1);
    assert!(
        refused.stderr.contains("Create another admin key first"),
        "{}",
        refused.stderr
    );
    // Not the last one: without a terminal the question cannot be asked, and it names the key.
    h.new_key(Role::Admin);
    let unconfirmed = h.run(&["keys", "revoke", &own]);
    unconfirmed.code(2);
    assert!(
        unconfirmed
            .stderr
            .contains(&format!("{own}, the key you are using now")),
        "{}",
        unconfirmed.stderr
    );
    assert!(
        unconfirmed.stderr.contains("warning:"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(active_admin_keys(h), 2);
    let revoked = h.run(&["keys", "revoke", &own, "--yes"]);
    revoked.success();
    assert!(
        revoked.stderr.contains("AGENTTRUST_API_KEY") && revoked.stderr.contains(&own),
        "{}",
        revoked.stderr
    );
    assert_eq!(active_admin_keys(h), 1);
    // Another key is revoked without the warning.
    let (_, runtime_id) = {
        let (secret, _) = h.new_key(Role::Admin);
        let created = h
            .request_as(
                &secret,
                Method::POST,
                "/api/v1/keys",
                Some(json!({"role": "runtime"})),
            )
            .ok()
            .clone();
        (secret, created["id"].as_str().unwrap().to_string())
    };
    let (admin, _) = h.new_key(Role::Admin);
    let plain = run_with_key(h, &admin, &["keys", "revoke", &runtime_id, "--yes"]);
    plain.success();
    assert!(!plain.stderr.contains("warning:"), "{}", plain.stderr);
}

fn run_with_key(h: &Harness, key: &str, args: &[&str]) -> crate::harness::Run {
    crate::harness::run(h.cli().env("AGENTTRUST_API_KEY", key).args(args))
}
