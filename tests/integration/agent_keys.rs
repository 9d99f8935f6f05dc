//! Issue 15: agent keys, proof of possession, WIMSE workload tokens and DPoP, through raw HTTP
//! (the attacker's view: a copied token, a replayed proof, another agent's key) and the real
//! binary (`agents create --generate-key`, `guard check` under sender-constrained tokens), on
//! both backends; and a DPoP proof replayed across two PostgreSQL replicas.

use std::time::Duration;

use agenttrust::agent_key::AgentPrivateKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{self, Harness, Reply};
use crate::on_both_backends;

on_both_backends!(
    wimse_token_bound_by_proof_of_possession,
    proof_of_possession_rejections,
    a_challenge_is_redeemed_once_under_concurrency,
    dpop_rejections,
    security_settings_are_enforced,
    a_wimse_token_for_another_audience_is_refused,
    an_api_key_acts_as_no_agent_on_any_route_when_constrained,
    concurrent_settings_changes_of_different_fields_both_last,
    key_rotation_keeps_the_old_key_for_its_grace,
    generated_key_drives_guard_under_sender_constrained_tokens,
);

const CHECK: &str = "/api/v1/agenttrust/check";

trait Refusal {
    /// Asserts an error with `status` and the error body's shape; the `message`.
    fn refusal(&self, status: u16) -> String;
}

impl Refusal for Reply {
    fn refusal(&self, status: u16) -> String {
        self.expect_error(status);
        self.message().to_string()
    }
}

fn agent_with_key(h: &Harness, name: &str) -> (String, AgentPrivateKey) {
    let key = AgentPrivateKey::generate();
    let reply = h.post(
        "/api/v1/agents",
        json!({"name": name, "capabilities": ["files:read"], "public_key": key.public().to_pem()}),
    );
    reply.expect_status(201..=201);
    (reply.body["id"].as_str().unwrap().to_string(), key)
}

fn now() -> i64 {
    agenttrust::api::time::now()
}

fn challenge(h: &Harness, agent_id: &str) -> String {
    let reply = h.post(&format!("/api/v1/agents/{agent_id}/challenge"), json!({}));
    reply.expect_status(200..=200);
    reply.body["nonce"].as_str().unwrap().to_string()
}

fn proof(key: &AgentPrivateKey, nonce: &str, agent_id: &str, ts: i64) -> Value {
    let message = format!("pop-v1:{nonce}:{agent_id}::{ts}");
    json!({"nonce": nonce, "ts": ts, "signature": key.sign_base64url(message.as_bytes())})
}

/// A WIMSE token bound to `key` (challenge → proof → token).
fn bound_token(h: &Harness, agent_id: &str, key: &AgentPrivateKey) -> String {
    let nonce = challenge(h, agent_id);
    let reply = h.post(
        "/api/v1/wimse/token",
        json!({"agent_id": agent_id, "proof": proof(key, &nonce, agent_id, now())}),
    );
    reply.expect_status(201..=201);
    reply.body["token"].as_str().unwrap().to_string()
}

fn dpop(key: &AgentPrivateKey, method: &str, url: &str, token: &str) -> String {
    key.dpop_proof(method, url, token, now(), &uuid::Uuid::new_v4().to_string())
}

/// A check carrying `token` as the bearer and `proof` as DPoP, with or without the API key.
fn check_with(h: &Harness, api_key: bool, token: &str, proof: Option<&str>, body: Value) -> Reply {
    let mut headers = vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".to_string()),
    ];
    if api_key {
        headers.push(("X-API-Key", h.admin_key.clone()));
    }
    if let Some(proof) = proof {
        headers.push(("DPoP", proof.to_string()));
    }
    h.raw(
        Method::POST,
        CHECK,
        &headers,
        Some(body.to_string().into_bytes()),
    )
}

fn read_check(agent_id: &str) -> Value {
    json!({"agent_id": agent_id, "action_name": "read_file", "action_effect": "read"})
}

fn set_settings(h: &Harness, settings: Value) {
    h.request(
        Method::PUT,
        "/api/v1/orgs/security-settings",
        Some(settings),
    )
    .expect_status(200..=200);
}

fn wimse_token_bound_by_proof_of_possession(h: &Harness) {
    let (agent_id, key) = agent_with_key(h, "bound");
    let agent = h.get(&format!("/api/v1/agents/{agent_id}")).ok().clone();
    assert_eq!(agent["key_thumbprint"], key.public().thumbprint());

    // Two audiences, this gateway among them (a token for others only does not act here).
    let nonce = challenge(h, &agent_id);
    let reply = h.post(
        "/api/v1/wimse/token",
        json!({"agent_id": agent_id, "audience": ["https://api.example", h.url],
               "proof": {"nonce": nonce, "ts": now(), "signature": key.sign_base64url(
                   format!("pop-v1:{nonce}:{agent_id}:https://api.example,{}:{}", h.url, now())
                       .as_bytes())}}),
    );
    reply.expect_status(201..=201);
    let token = reply.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        reply.body["workload_id"],
        format!("spiffe://agenttrust.id/agent/{agent_id}")
    );
    assert_eq!(reply.body["key_thumbprint"], key.public().thumbprint());

    // Signed by a key of the gateway's JWKS, typed as a WIMSE token, bound with cnf.jkt.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("wit+jwt"));
    let jwks = h.get("/.well-known/jwks.json").ok().clone();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|jwk| jwk["kid"].as_str() == header.kid.as_deref())
    );
    let verified = h
        .post("/api/v1/wimse/verify", json!({"token": token}))
        .ok()
        .clone();
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["agent_id"], agent_id.as_str());
    assert_eq!(verified["key_thumbprint"], key.public().thumbprint());
    assert_eq!(verified["capabilities"], json!(["files:read"]));
    assert_eq!(h.audit_count("wimse.token_issued"), 1);
    let events = h
        .block_on(agenttrust::store::audit::list(&h.store, &h.org_id))
        .unwrap();
    assert!(events.iter().all(|event| !event.detail.contains(&token)));

    // The bound token with a proof of its key: a check as the agent.
    let url = format!("{}{CHECK}", h.url);
    let decision = check_with(
        h,
        true,
        &token,
        Some(&dpop(&key, "POST", &url, &token)),
        read_check(&agent_id),
    );
    assert_eq!(decision.ok()["allowed"], true);
    // Without the API key too: the token is the credential.
    let decision = check_with(
        h,
        false,
        &token,
        Some(&dpop(&key, "POST", &url, &token)),
        json!({"action_name": "read_file", "action_effect": "read"}),
    );
    assert_eq!(decision.ok()["agent_id"], agent_id.as_str());

    // Verify answers 200 with valid:false and a reason for garbage.
    let verified = h
        .post("/api/v1/wimse/verify", json!({"token": "a.b.c"}))
        .ok()
        .clone();
    assert_eq!(verified["valid"], false);
    assert!(verified["reason"].as_str().is_some());
    h.post("/api/v1/wimse/verify", json!({"token": ""}))
        .expect_error(400);
}

fn proof_of_possession_rejections(h: &Harness) {
    let (agent_id, key) = agent_with_key(h, "pop");
    let (other_id, other_key) = agent_with_key(h, "pop-other");

    // No proof: issued (unbound) while the org requires nothing, refused once it does.
    h.post("/api/v1/wimse/token", json!({"agent_id": agent_id}))
        .expect_status(201..=201);
    set_settings(h, json!({"require_proof_of_possession": true}));
    let message = h
        .post("/api/v1/wimse/token", json!({"agent_id": agent_id}))
        .refusal(401);
    assert!(message.contains("proof of possession"), "{message}");

    // A proof signed by another key.
    let nonce = challenge(h, &agent_id);
    let message = h
        .post(
            "/api/v1/wimse/token",
            json!({"agent_id": agent_id, "proof": proof(&other_key, &nonce, &agent_id, now())}),
        )
        .refusal(401);
    assert!(message.contains("signature"), "{message}");
    // ...which spent the nonce: the right signature cannot use it any more.
    let message = h
        .post(
            "/api/v1/wimse/token",
            json!({"agent_id": agent_id, "proof": proof(&key, &nonce, &agent_id, now())}),
        )
        .refusal(401);
    assert!(message.contains("nonce"), "{message}");

    // A replayed nonce.
    let nonce = challenge(h, &agent_id);
    let good = json!({"agent_id": agent_id, "proof": proof(&key, &nonce, &agent_id, now())});
    h.post("/api/v1/wimse/token", good.clone())
        .expect_status(201..=201);
    let message = h.post("/api/v1/wimse/token", good).refusal(401);
    assert!(message.contains("already used"), "{message}");

    // A nonce issued for another agent.
    let nonce = challenge(h, &other_id);
    h.post(
        "/api/v1/wimse/token",
        json!({"agent_id": agent_id, "proof": proof(&key, &nonce, &agent_id, now())}),
    )
    .expect_error(401);

    // A stale ts.
    let nonce = challenge(h, &agent_id);
    let message = h
        .post(
            "/api/v1/wimse/token",
            json!({"agent_id": agent_id, "proof": proof(&key, &nonce, &agent_id, now() - 600)}),
        )
        .refusal(401);
    assert!(message.contains("ts"), "{message}");

    // A made-up nonce changes nothing.
    let before = h.row_counts();
    h.post(
        "/api/v1/wimse/token",
        json!({"agent_id": agent_id, "proof": proof(&key, "made-up", &agent_id, now())}),
    )
    .expect_error(401);
    assert_eq!(h.row_counts(), before);

    // An agent without a key has nothing to prove.
    let keyless = h.create_agent("keyless", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.post(&format!("/api/v1/agents/{keyless}/challenge"), json!({}))
        .expect_error(409);
    // A runtime key may ask for a challenge and a token (the SDKs' flow); an agent token not.
    let (runtime, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    let reply = h.request_as(
        &runtime,
        Method::POST,
        &format!("/api/v1/agents/{agent_id}/challenge"),
        None,
    );
    reply.expect_status(200..=200);
}

fn a_challenge_is_redeemed_once_under_concurrency(h: &Harness) {
    let (agent_id, key) = agent_with_key(h, "race");
    for _ in 0..3 {
        let nonce = challenge(h, &agent_id);
        let body = json!({"agent_id": agent_id, "proof": proof(&key, &nonce, &agent_id, now())});
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| h.post("/api/v1/wimse/token", body.clone()).status))
                .collect();
            racers
                .into_iter()
                .map(|racer| racer.join().unwrap())
                .collect()
        });
        assert_eq!(
            statuses.iter().filter(|status| **status == 201).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|status| *status == 201 || *status == 401)
        );
    }
}

fn dpop_rejections(h: &Harness) {
    let (agent_id, key) = agent_with_key(h, "dpop-a");
    let (other_id, other_key) = agent_with_key(h, "dpop-b");
    let token = bound_token(h, &agent_id, &key);
    let url = format!("{}{CHECK}", h.url);
    let body = read_check(&agent_id);
    let refused = |reply: Reply, expected: &str| {
        let message = reply.refusal(401);
        assert!(message.contains(expected), "{expected}: {message}");
    };

    // A bound token without its proof: what a copied token is.
    refused(check_with(h, true, &token, None, body.clone()), "DPoP");
    // A proof by another key than the one the token is bound to.
    let forged = dpop(&other_key, "POST", &url, &token);
    refused(
        check_with(h, true, &token, Some(&forged), body.clone()),
        "cnf.jkt",
    );
    // The wrong htu (another host) and the wrong htm.
    let wrong_htu = dpop(
        &key,
        "POST",
        "http://evil.example/api/v1/agenttrust/check",
        &token,
    );
    refused(
        check_with(h, true, &token, Some(&wrong_htu), body.clone()),
        "htu",
    );
    let wrong_htm = dpop(&key, "GET", &url, &token);
    refused(
        check_with(h, true, &token, Some(&wrong_htm), body.clone()),
        "htm",
    );
    // ath of another token.
    let wrong_ath = dpop(&key, "POST", &url, "another-token");
    refused(
        check_with(h, true, &token, Some(&wrong_ath), body.clone()),
        "ath",
    );
    // An old proof (iat out of the window).
    let old = key.dpop_proof("POST", &url, &token, now() - 600, "old-jti");
    refused(check_with(h, true, &token, Some(&old), body.clone()), "iat");

    // A replayed proof: the first use passes, the second is refused.
    let proof = dpop(&key, "POST", &url, &token);
    assert_eq!(
        check_with(h, true, &token, Some(&proof), body.clone()).ok()["allowed"],
        true
    );
    let before = h.row_counts();
    refused(
        check_with(h, true, &token, Some(&proof), body.clone()),
        "replay",
    );
    assert_eq!(h.row_counts(), before, "a refused check records nothing");

    // Agent A's token with a body naming agent B.
    let proof = dpop(&key, "POST", &url, &token);
    let reply = check_with(h, true, &token, Some(&proof), read_check(&other_id));
    let message = reply.refusal(403);
    assert!(message.contains(&other_id), "{message}");

    // An agent token with a DPoP proof: the proof must be by the agent's key.
    let at = h.issue_token(&agent_id, &[], 300)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let by_other = dpop(&other_key, "POST", &url, &at);
    refused(
        check_with(h, false, &at, Some(&by_other), body.clone()),
        "key",
    );
    let by_agent = dpop(&key, "POST", &url, &at);
    assert_eq!(
        check_with(h, false, &at, Some(&by_agent), body.clone()).ok()["agent_id"],
        agent_id.as_str()
    );

    // An expired WIMSE token.
    let nonce = challenge(h, &agent_id);
    let short = h.post(
        "/api/v1/wimse/token",
        json!({"agent_id": agent_id, "ttl_seconds": 1,
               "proof": proof_body(&key, &nonce, &agent_id)}),
    );
    short.expect_status(201..=201);
    let short = short.body["token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let proof = dpop(&key, "POST", &url, &short);
    refused(
        check_with(h, true, &short, Some(&proof), body.clone()),
        "expired",
    );
    let verified = h
        .post("/api/v1/wimse/verify", json!({"token": short}))
        .ok()
        .clone();
    assert_eq!(verified["valid"], false);
    assert_eq!(verified["reason"], "token expired");

    // A revoked agent's WIMSE token.
    h.post(&format!("/api/v1/agents/{agent_id}/revoke"), json!({}))
        .expect_status(200..=200);
    let proof = dpop(&key, "POST", &url, &token);
    refused(
        check_with(h, true, &token, Some(&proof), body.clone()),
        "revoked",
    );
    let verified = h
        .post("/api/v1/wimse/verify", json!({"token": token}))
        .ok()
        .clone();
    assert_eq!(verified["valid"], false);
    // Spent proofs and challenges are kept only for their window, then pruned.
    let counts = h.row_counts();
    assert!(counts["dpop_proofs_seen"] > 0);
    let pruned = h
        .block_on(agenttrust::store::agent_keys::prune(&h.store, now() + 3600))
        .unwrap();
    assert!(pruned >= counts["dpop_proofs_seen"] as u64);
    let counts = h.row_counts();
    assert_eq!(counts["dpop_proofs_seen"], 0);
    assert_eq!(counts["pop_challenges"], 0);
    // A WIMSE-typed bearer whose claims are not JSON, or name no org: refused before any
    // lookup, with no API key to say which org it is.
    {
        use base64::Engine as _;
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let header = encode(r#"{"typ":"wit+jwt","alg":"ES256","kid":"k"}"#);
        for payload in ["%%%".to_string(), encode(r#"{"sub":"x"}"#)] {
            let forged = format!("{header}.{payload}.c2ln");
            let message = check_with(h, false, &forged, None, body.clone()).refusal(401);
            assert!(message.contains("malformed claims"), "{message}");
        }
    }
    // A DPoP header with no token it could be bound to.
    let reply = h.raw(
        Method::POST,
        CHECK,
        &[
            ("X-API-Key", h.admin_key.clone()),
            ("DPoP", proof.clone()),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(read_check(&other_id).to_string().into_bytes()),
    );
    reply.expect_error(401);
}

fn proof_body(key: &AgentPrivateKey, nonce: &str, agent_id: &str) -> Value {
    proof(key, nonce, agent_id, now())
}

fn security_settings_are_enforced(h: &Harness) {
    let settings = h.get("/api/v1/orgs/security-settings").ok().clone();
    assert_eq!(
        settings,
        json!({"require_proof_of_possession": false, "require_sender_constrained_tokens": false})
    );
    // Only admins change them; a bad body changes nothing.
    let (runtime, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    h.request_as(
        &runtime,
        Method::PUT,
        "/api/v1/orgs/security-settings",
        Some(json!({"require_sender_constrained_tokens": true})),
    )
    .expect_error(403);
    h.request(
        Method::PUT,
        "/api/v1/orgs/security-settings",
        Some(json!({"require_sender_constrained_tokens": "yes"})),
    )
    .expect_error(400);
    assert_eq!(h.get("/api/v1/orgs/security-settings").ok(), &settings);

    let (agent_id, key) = agent_with_key(h, "constrained");
    let at = h.issue_token(&agent_id, &[], 300)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let unbound = h
        .post("/api/v1/wimse/token", json!({"agent_id": agent_id}))
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bound = bound_token(h, &agent_id, &key);
    let url = format!("{}{CHECK}", h.url);
    let body = read_check(&agent_id);

    // Requiring nothing: an API key, a plain agent token and an unbound WIMSE token all check.
    assert_eq!(h.check(body.clone())["allowed"], true);
    // (An agent token's empty scopes may deny the call: answered is what counts here.)
    assert_eq!(
        h.check_with_token(&at, body.clone()).ok()["agent_id"],
        agent_id.as_str()
    );
    assert_eq!(
        check_with(h, true, &unbound, None, body.clone()).ok()["allowed"],
        true
    );

    set_settings(h, json!({"require_sender_constrained_tokens": true}));
    assert_eq!(
        h.get("/api/v1/orgs/security-settings").ok()["require_sender_constrained_tokens"],
        true
    );
    assert_eq!(h.audit_count("org.security_settings_changed"), 1);
    // A copied API key, agent token or unbound token no longer acts as the agent.
    let message = h.post(CHECK, body.clone()).refusal(401);
    assert!(message.contains("sender-constrained"), "{message}");
    h.check_with_token(&at, body.clone()).expect_error(401);
    // ...not on other routes either.
    h.raw(
        Method::POST,
        "/api/v1/telemetry/report",
        &[
            ("Authorization", format!("Bearer {at}")),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(json!({"events": []}).to_string().into_bytes()),
    )
    .expect_error(401);
    check_with(h, true, &unbound, None, body.clone()).expect_error(401);
    // An A2A message is a check too: the API key may not send as the agent there either, and
    // nothing is stored.
    let before = h.row_counts();
    let refused = h.post(
        "/a2a",
        json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/send", "params": {
            "source_agent_id": agent_id, "target_agent_id": agent_id, "message": "hi"}}),
    );
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(h.row_counts(), before);
    // The agent's own key keeps it working.
    let proof = dpop(&key, "POST", &url, &bound);
    assert_eq!(
        check_with(h, true, &bound, Some(&proof), body.clone()).ok()["allowed"],
        true
    );
    let proof = dpop(&key, "POST", &url, &at);
    assert_eq!(
        check_with(h, false, &at, Some(&proof), body.clone()).ok()["agent_id"],
        agent_id.as_str()
    );
    // Admin work with an API key is not acting as an agent.
    h.get("/api/v1/agents").expect_status(200..=200);
    set_settings(h, json!({"require_sender_constrained_tokens": false}));
    assert_eq!(h.check(body)["allowed"], true);
}

/// A WIMSE token acts at the gateway only when its `aud` names the gateway: a token a service
/// was given for itself (bound or not) cannot be replayed here by that service.
fn a_wimse_token_for_another_audience_is_refused(h: &Harness) {
    let (agent_id, key) = agent_with_key(h, "audience");
    let url = format!("{}{CHECK}", h.url);
    let issue = |audience: Value, bound: bool| {
        let mut body = json!({"agent_id": agent_id, "audience": audience});
        if bound {
            let nonce = challenge(h, &agent_id);
            let joined = audience
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|entry| entry.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let ts = now();
            let message = format!("pop-v1:{nonce}:{agent_id}:{joined}:{ts}");
            body["proof"] = json!({"nonce": nonce, "ts": ts, "signature": key.sign_base64url(message.as_bytes())});
        }
        let reply = h.post("/api/v1/wimse/token", body);
        reply.expect_status(201..=201);
        reply.body["token"].as_str().unwrap().to_string()
    };
    let claims = |token: &str| -> Value {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };

    // Asked for without an audience, a token is for the gateway: it says so, and acts here.
    let own = issue(Value::Null, true);
    assert_eq!(claims(&own)["aud"], json!([h.url]));
    let proof = dpop(&key, "POST", &url, &own);
    assert_eq!(
        check_with(h, false, &own, Some(&proof), read_check(&agent_id)).ok()["allowed"],
        true
    );
    // The gateway's URL with a trailing slash names it too.
    let slashed = issue(json!([format!("{}/", h.url)]), true);
    let proof = dpop(&key, "POST", &url, &slashed);
    check_with(h, false, &slashed, Some(&proof), read_check(&agent_id)).expect_status(200..=200);

    // A bound token for another service, with a valid proof of its key: refused, nothing stored.
    let foreign = issue(json!(["https://files.example"]), true);
    assert_eq!(claims(&foreign)["aud"], json!(["https://files.example"]));
    let unbound = issue(json!(["https://files.example"]), false);
    let look_alike = issue(json!([format!("{}/other-service", h.url)]), true);
    let before = h.row_counts();
    let proof = dpop(&key, "POST", &url, &foreign);
    let message = check_with(h, false, &foreign, Some(&proof), read_check(&agent_id)).refusal(401);
    assert!(message.contains("another audience"), "{message}");
    assert!(message.contains(&h.url), "{message}");
    // ...with the API key beside it as well.
    let proof = dpop(&key, "POST", &url, &foreign);
    check_with(h, true, &foreign, Some(&proof), read_check(&agent_id)).expect_error(401);
    // An unbound one (the org requires nothing), and one for another service on its host.
    let message = check_with(h, false, &unbound, None, read_check(&agent_id)).refusal(401);
    assert!(message.contains("another audience"), "{message}");
    let proof = dpop(&key, "POST", &url, &look_alike);
    check_with(h, false, &look_alike, Some(&proof), read_check(&agent_id)).expect_error(401);
    assert_eq!(h.row_counts(), before, "a refused token records nothing");
    // The service it was meant for can still verify it.
    let verified = h
        .post("/api/v1/wimse/verify", json!({"token": foreign}))
        .ok()
        .clone();
    assert_eq!(verified["valid"], true, "{verified}");
}

/// Under sender-constrained tokens, an org key (copied, say) names an agent on every route that
/// acts as one — checks, sessions, the MCP proxy, A2A — and is refused on each with 401, storing
/// nothing; only telemetry, which decides nothing, still takes it. The agent's own credential
/// with its proof does what the key cannot.
fn an_api_key_acts_as_no_agent_on_any_route_when_constrained(h: &Harness) {
    let (agent_id, key) = agent_with_key(h, "acting");
    let (peer_id, _) = agent_with_key(h, "peer");
    let server_id = h.register_mcp_server("files");
    let at = h.issue_token(&agent_id, &[], 300)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let rpc = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    // A task waiting for the agent's answer, sent while the org required nothing.
    let sent = h.post(
        "/a2a",
        rpc(
            "tasks/send",
            json!({"source_agent_id": peer_id, "target_agent_id": agent_id, "message": "hi"}),
        ),
    );
    let task_id = sent.ok()["result"]["id"].as_str().unwrap().to_string();
    let session_id = h
        .post("/api/v1/sessions", json!({"agent_id": agent_id}))
        .ok()["session_id"]
        .as_str()
        .unwrap()
        .to_string();

    set_settings(h, json!({"require_sender_constrained_tokens": true}));
    let json_headers = |extra: &[(&'static str, String)]| {
        let mut headers = vec![
            ("X-API-Key", h.admin_key.clone()),
            ("Content-Type", "application/json".to_string()),
        ];
        headers.extend_from_slice(extra);
        headers
    };
    let mcp_call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let mcp_path = format!("/mcp/{server_id}");
    let peer_path = format!("/a2a/agents/{peer_id}");
    type Headers = Vec<(&'static str, String)>;
    let attempts: Vec<(&str, &str, Headers, Value)> = vec![
        ("check", CHECK, json_headers(&[]), read_check(&agent_id)),
        (
            "actions check",
            "/api/v1/actions/check",
            json_headers(&[]),
            read_check(&agent_id),
        ),
        (
            "MCP session init",
            "/mcp/sessions/init",
            json_headers(&[]),
            json!({"agent_id": agent_id, "server_id": server_id}),
        ),
        (
            "session open",
            "/api/v1/sessions",
            json_headers(&[]),
            json!({"agent_id": agent_id}),
        ),
        (
            "API session init",
            "/api/v1/agenttrust/api-sessions/init",
            json_headers(&[]),
            json!({"token": at}),
        ),
        (
            "MCP proxy by X-Agent-ID",
            &mcp_path,
            json_headers(&[("X-Agent-ID", agent_id.clone())]),
            mcp_call.clone(),
        ),
        (
            "MCP proxy by X-Session-ID",
            &mcp_path,
            json_headers(&[("X-Session-ID", session_id.clone())]),
            mcp_call.clone(),
        ),
        (
            "A2A tasks/send",
            "/a2a",
            json_headers(&[]),
            rpc(
                "tasks/send",
                json!({"source_agent_id": agent_id, "target_agent_id": peer_id, "message": "x"}),
            ),
        ),
        (
            "A2A tasks/send without a source",
            "/a2a",
            json_headers(&[]),
            rpc(
                "tasks/send",
                json!({"target_agent_id": peer_id, "message": "x"}),
            ),
        ),
        (
            "A2A message/send",
            &peer_path,
            json_headers(&[("X-Agent-ID", agent_id.clone())]),
            rpc(
                "message/send",
                json!({"message": {"role": "user", "messageId": "m-1",
                                   "parts": [{"kind": "text", "text": "x"}]}}),
            ),
        ),
        (
            "A2A tasks/complete",
            "/a2a",
            json_headers(&[]),
            rpc("tasks/complete", json!({"id": task_id, "text": "forged"})),
        ),
    ];
    let before = h.row_counts();
    for (route, path, headers, body) in &attempts {
        let reply = h.raw(
            Method::POST,
            path,
            headers,
            Some(body.to_string().into_bytes()),
        );
        assert_eq!(reply.status, 401, "{route}: {}", reply.text);
        assert!(
            reply.message().contains("sender-constrained"),
            "{route}: {}",
            reply.text
        );
    }
    assert_eq!(h.row_counts(), before, "a refused key stores nothing");
    let task = h.post("/a2a", rpc("tasks/get", json!({"id": task_id})));
    assert_eq!(task.ok()["result"]["status"], "pending");

    // Telemetry, which decides nothing, still takes the key (the SDKs report with it).
    h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": agent_id, "events": [{"event_type": "tool_end", "tool_name": "x"}]}),
    )
    .expect_status(200..=200);
    // Admin work is not acting as an agent.
    h.get(&format!("/api/v1/sessions/{session_id}"))
        .expect_status(200..=200);

    // The agent's own bound token with its proof opens its session and answers its task.
    let bound = bound_token(h, &agent_id, &key);
    let with_proof = |path: &str, body: Value| {
        let proof = dpop(&key, "POST", &format!("{}{path}", h.url), &bound);
        h.raw(
            Method::POST,
            path,
            &[
                ("Authorization", format!("Bearer {bound}")),
                ("DPoP", proof),
                ("Content-Type", "application/json".to_string()),
            ],
            Some(body.to_string().into_bytes()),
        )
    };
    let opened = with_proof("/api/v1/sessions", json!({}));
    assert_eq!(opened.status, 201, "{}", opened.text);
    assert_eq!(opened.body["agent_id"], agent_id.as_str());
    let completed = with_proof(
        "/a2a",
        rpc("tasks/complete", json!({"id": task_id, "text": "done"})),
    );
    assert_eq!(
        completed.ok()["result"]["status"],
        "completed",
        "{}",
        completed.text
    );

    // Once the org requires nothing again, the key acts as the agent again.
    set_settings(h, json!({"require_sender_constrained_tokens": false}));
    h.post("/api/v1/sessions", json!({"agent_id": agent_id}))
        .expect_status(201..=201);
    h.post("/api/v1/agenttrust/api-sessions/init", json!({"token": at}))
        .expect_status(201..=201);
}

/// Two admins turning on one setting each at the same moment: both settings end up on, and
/// each change is audited (neither PUT writes back the other field's old value).
fn concurrent_settings_changes_of_different_fields_both_last(h: &Harness) {
    const ROUNDS: i64 = 12;
    let both_off = json!({"require_proof_of_possession": false,
                          "require_sender_constrained_tokens": false});
    for round in 0..ROUNDS {
        set_settings(h, both_off.clone());
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = [
                json!({"require_proof_of_possession": true}),
                json!({"require_sender_constrained_tokens": true}),
            ]
            .into_iter()
            .map(|change| {
                scope.spawn(move || {
                    h.request(Method::PUT, "/api/v1/orgs/security-settings", Some(change))
                        .status
                })
            })
            .collect();
            racers
                .into_iter()
                .map(|racer| racer.join().unwrap())
                .collect()
        });
        assert_eq!(statuses, vec![200, 200]);
        assert_eq!(
            h.get("/api/v1/orgs/security-settings").ok(),
            &json!({"require_proof_of_possession": true,
                    "require_sender_constrained_tokens": true}),
            "round {round}"
        );
    }
    // Each round: two changes and the reset (the first reset changed nothing).
    assert_eq!(
        h.audit_count("org.security_settings_changed"),
        3 * ROUNDS - 1
    );
}

fn key_rotation_keeps_the_old_key_for_its_grace(h: &Harness) {
    let (agent_id, old_key) = agent_with_key(h, "rotating");
    let old_token = bound_token(h, &agent_id, &old_key);
    let new_key = AgentPrivateKey::generate();
    let path = format!("/api/v1/agents/{agent_id}/keys/rotate");
    // Bad input changes nothing.
    let before = h.row_counts();
    h.post(&path, json!({"public_key": "not a key"}))
        .expect_error(400);
    h.post(
        &path,
        json!({"public_key": new_key.public().to_pem(), "grace_seconds": -1}),
    )
    .expect_error(400);
    assert_eq!(h.row_counts(), before);

    let rotated = h
        .post(
            &path,
            json!({"public_key": new_key.public().to_pem(), "grace_seconds": 600}),
        )
        .ok()
        .clone();
    assert_eq!(rotated["key_thumbprint"], new_key.public().thumbprint());
    assert_eq!(
        rotated["public_key"].as_str().unwrap().trim(),
        new_key.public().to_pem().trim()
    );
    assert!(rotated["previous_key_valid_until"].is_string());
    let url = format!("{}{CHECK}", h.url);
    // In the grace period the old key still proves, and its bound token still works.
    bound_token(h, &agent_id, &old_key);
    let proof = dpop(&old_key, "POST", &url, &old_token);
    check_with(h, true, &old_token, Some(&proof), read_check(&agent_id)).expect_status(200..=200);
    let new_token = bound_token(h, &agent_id, &new_key);

    // A rotation with no grace ends the old key at once.
    let newest = AgentPrivateKey::generate();
    h.post(
        &path,
        json!({"public_key": newest.public().to_pem(), "grace_seconds": 0}),
    )
    .expect_status(200..=200);
    let proof = dpop(&new_key, "POST", &url, &new_token);
    let message = check_with(h, true, &new_token, Some(&proof), read_check(&agent_id)).refusal(401);
    assert!(message.contains("rotated"), "{message}");
    let nonce = challenge(h, &agent_id);
    h.post(
        "/api/v1/wimse/token",
        json!({"agent_id": agent_id, "proof": proof_body(&new_key, &nonce, &agent_id)}),
    )
    .expect_error(401);
    bound_token(h, &agent_id, &newest);
    assert_eq!(h.audit_count("agent.key_rotated"), 2);
}

fn generated_key_drives_guard_under_sender_constrained_tokens(h: &Harness) {
    let created = h
        .run(&[
            "agents",
            "create",
            "--name",
            "shell-agent",
            "--capabilities",
            "files:read",
            "--generate-key",
            "-o",
            "json",
        ])
        .success()
        .json();
    let agent_id = created["id"].as_str().unwrap().to_string();
    assert!(created.get("private_key").is_none());
    let key_file = h
        .config_dir
        .path()
        .join("agent-keys")
        .join("default")
        .join(format!("{agent_id}.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(&key_file).unwrap();
    let key = AgentPrivateKey::from_pem(&pem).unwrap();
    assert_eq!(created["key_thumbprint"], key.public().thumbprint());
    assert!(!created.to_string().contains("PRIVATE KEY"));

    h.run(&[
        "orgs",
        "security-settings",
        "set",
        "--require-proof-of-possession",
        "true",
        "--require-sender-constrained-tokens",
        "true",
    ])
    .success();
    let shown = h
        .run(&["orgs", "security-settings", "get", "-o", "json"])
        .success()
        .json();
    assert_eq!(shown["require_sender_constrained_tokens"], true);

    // A check with the API key alone is refused (exit 4); with the stored key it passes.
    let guard = |args: &[&str]| {
        let mut command = h.cli();
        command
            .env("AGENTTRUST_STATE_DIR", h.scratch.path().join("state"))
            .env("AGENTTRUST_AGENT_ID", &agent_id);
        harness::run(command.args(args))
    };
    guard(&["guard", "check", "read_file", "--effect", "read"]).code(0);
    let cache = key_file.with_file_name(format!("{agent_id}.wimse.json"));
    assert!(cache.exists(), "the WIMSE token is cached");
    let cached = std::fs::read_to_string(&cache).unwrap();
    // A second check reuses the cached token (no new challenge).
    guard(&["guard", "check", "read_file", "--effect", "read"]).code(0);
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), cached);
    guard(&[
        "actions",
        "check",
        "--tool",
        "read_file",
        "--effect",
        "read",
    ])
    .code(0);
    // The agent named by its name finds its key too.
    h.run(&[
        "actions",
        "check",
        "--agent",
        "shell-agent",
        "--tool",
        "read_file",
        "--effect",
        "read",
    ])
    .code(0);
    // With an agent token instead of the API key, the stored key signs a DPoP proof for it.
    let token = h.issue_token(&agent_id, &["files:read"], 300)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let token_only = |args: &[&str]| {
        let mut command = h.cli_bare();
        command
            .env("AGENTTRUST_URL", &h.url)
            .env("AGENTTRUST_AGENT_TOKEN", &token)
            .env("AGENTTRUST_AGENT_ID", &agent_id);
        harness::run(command.args(args))
    };
    let answered = token_only(&[
        "actions",
        "check",
        "--tool",
        "read_file",
        "--effect",
        "read",
        "-o",
        "json",
    ]);
    assert_ne!(answered.code, 4, "{}", answered.stderr);
    assert_eq!(answered.json()["agent_id"], agent_id.as_str());
    // `guard` signs every request it makes with the token: the check and the telemetry.
    let state = h.scratch.path().join("token-state");
    let guarded = |args: &[&str]| {
        let mut command = h.cli_bare();
        command
            .env("AGENTTRUST_URL", &h.url)
            .env("AGENTTRUST_AGENT_TOKEN", &token)
            .env("AGENTTRUST_AGENT_ID", &agent_id)
            .env("AGENTTRUST_STATE_DIR", &state);
        harness::run(command.args(args))
    };
    let checked = guarded(&[
        "guard",
        "check",
        "read_file",
        "--effect",
        "read",
        "-o",
        "json",
    ]);
    assert_ne!(checked.code, 4, "{}", checked.stderr);
    let events_before = h
        .sql_integers("SELECT CAST(COUNT(*) AS BIGINT) FROM telemetry_events")
        .unwrap()[0];
    guarded(&[
        "guard",
        "report",
        "read_file",
        "--success",
        "--duration-ms",
        "3",
    ])
    .success();
    guarded(&["guard", "flush"]).success();
    let events_after = h
        .sql_integers("SELECT CAST(COUNT(*) AS BIGINT) FROM telemetry_events")
        .unwrap()[0];
    assert_eq!(events_after, events_before + 1);
    // Another agent with no stored key: the API key alone is refused.
    let keyless = h.create_agent("keyless", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut command = h.cli();
    command.env("AGENTTRUST_AGENT_ID", &keyless);
    harness::run(command.args(["guard", "check", "read_file"])).code(4);

    // Rotating from the CLI replaces the stored key; checks keep working.
    h.run(&["agents", "keys", "rotate", &agent_id, "--grace", "0"])
        .success();
    let rotated = AgentPrivateKey::from_pem(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_ne!(rotated.public(), key.public());
    assert!(!cache.exists(), "the old key's token is forgotten");
    guard(&["guard", "check", "read_file", "--effect", "read"]).code(0);

    // --print-private-key prints the key once and keeps nothing.
    let printed = h
        .run(&[
            "agents",
            "create",
            "--name",
            "printed",
            "--generate-key",
            "--print-private-key",
            "-o",
            "json",
        ])
        .success()
        .json();
    let printed_id = printed["id"].as_str().unwrap();
    assert!(
        printed["private_key"]
            .as_str()
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert!(
        !key_file
            .with_file_name(format!("{printed_id}.pem"))
            .exists()
    );
}

/// Two replicas behind one public URL share the DPoP replay cache: a proof spent on one is
/// refused on the other.
#[test]
fn a_dpop_proof_replayed_across_replicas_is_refused() {
    const PUBLIC_URL: &str = "http://gateway.agenttrust.test";
    let configure = |config: &mut agenttrust::gateway::GatewayConfig| {
        config.public_url = Some(PUBLIC_URL.to_string());
    };
    let Some(first) = Harness::postgres_with(configure) else {
        return harness::postgres_unavailable();
    };
    let second = first.replica_with(configure);
    let (agent_id, key) = agent_with_key(&first, "replicated");
    let token = bound_token(&first, &agent_id, &key);
    let proof = dpop(&key, "POST", &format!("{PUBLIC_URL}{CHECK}"), &token);
    check_with(&second, true, &token, Some(&proof), read_check(&agent_id)).expect_status(200..=200);
    let message =
        check_with(&first, true, &token, Some(&proof), read_check(&agent_id)).refusal(401);
    assert!(message.contains("replay"), "{message}");
    // A fresh proof works on either.
    let proof = dpop(&key, "POST", &format!("{PUBLIC_URL}{CHECK}"), &token);
    check_with(&first, true, &token, Some(&proof), read_check(&agent_id)).expect_status(200..=200);
    drop(second);
}
