//! Agent cards and A2A end to end, on both backends: cards generated, signed, published and
//! verified (by the CLI against the gateway's JWKS; a tampered copy served by a test server
//! fails), the JSON-RPC tasks waiting in the gateway, the Guardian deciding who may message
//! whom, and forwarding to an agent's own endpoint (a JSON-RPC server in the test). Attackers:
//! an agent token sending as another agent, a target in another org, reading or cancelling
//! another agent's or org's task, an unpublished card on the public route, malformed and huge
//! bodies — each refused with nothing stored.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use crate::harness::{Harness, Reply};
use crate::on_both_backends;

on_both_backends!(
    cards_are_generated_signed_published_and_verified,
    a_tampered_card_fails_verification,
    a_served_card_shows_the_agent_as_it_stands,
    card_settings_are_validated_and_kept,
    tasks_wait_in_the_gateway_until_the_target_answers,
    the_policy_decides_who_may_message_whom,
    a_message_is_decided_on_all_that_the_target_receives,
    agents_cannot_send_as_others_nor_reach_other_orgs_or_tasks,
    malformed_and_huge_bodies_are_refused_and_store_nothing,
    messages_are_forwarded_to_the_agent_endpoint_and_the_answer_relayed,
    the_cli_sends_and_answers_tasks,
);

// ----- helpers -----

/// An agent with a registered Ed25519 key: `(agent, the key's JWK x)`.
fn keyed_agent(h: &Harness, name: &str) -> (Value, String) {
    let key = agenttrust::agent_key::AgentPrivateKey::generate();
    let public = key.public();
    let reply = h.post(
        "/api/v1/agents",
        json!({"name": name, "capabilities": ["search:web"], "public_key": public.to_pem()}),
    );
    reply.expect_status(200..=201);
    (reply.agent(), public.jwk().x)
}

fn id(agent: &Value) -> String {
    agent["id"].as_str().unwrap().to_string()
}

/// A JSON-RPC call with headers; the raw reply.
fn rpc_with(
    h: &Harness,
    path: &str,
    headers: &[(&str, String)],
    method: &str,
    params: Value,
    request_id: Value,
) -> Reply {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/json".to_string()));
    let body = json!({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params});
    h.raw(
        Method::POST,
        path,
        &headers,
        Some(body.to_string().into_bytes()),
    )
}

fn as_admin(h: &Harness) -> Vec<(&'static str, String)> {
    vec![("X-API-Key", h.admin_key.clone())]
}

fn as_token(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

fn token_of(h: &Harness, agent_id: &str) -> String {
    h.issue_token(agent_id, &["a2a:send"], 600)["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The JSON-RPC `result` of a 200 answer.
fn result(reply: &Reply) -> Value {
    reply.expect_status(200..=200);
    assert!(
        reply.body.get("error").is_none(),
        "{}: {}",
        reply.what,
        reply.text
    );
    reply.body["result"].clone()
}

/// The JSON-RPC error code of a 200 answer.
fn rpc_error(reply: &Reply) -> i64 {
    reply.expect_status(200..=200);
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        !message.is_empty(),
        "{}: no error message: {}",
        reply.what,
        reply.text
    );
    reply.body["error"]["code"].as_i64().unwrap()
}

fn a2a_rows(h: &Harness) -> i64 {
    h.row_counts()["a2a_tasks"]
}

// ----- cards -----

fn cards_are_generated_signed_published_and_verified(h: &Harness) {
    let (agent, key_x) = keyed_agent(h, "researcher");
    let agent_id = id(&agent);
    let public_path = format!("/a2a/agents/{agent_id}/agent.json");
    // No card yet: the org's read is a 404, and so is the public route.
    h.get(&format!("/api/v1/agents/{agent_id}/card"))
        .expect_error(404);
    h.raw(Method::GET, &public_path, &[], None)
        .expect_error(404);

    let card = h
        .request(
            Method::POST,
            &format!("/api/v1/agents/{agent_id}/card"),
            None,
        )
        .ok()
        .clone();
    assert_eq!(card["name"], "researcher");
    assert_eq!(card["version"], "1.0.0");
    let interface = &card["supportedInterfaces"][0];
    assert_eq!(interface["url"], format!("{}/a2a/agents/{agent_id}", h.url));
    assert_eq!(interface["protocolBinding"], "JSONRPC");
    assert_eq!(interface["protocolVersion"], "1.0");
    assert_eq!(interface["tenant"], h.org_id.as_str());
    assert_eq!(card["provider"]["url"], h.url.as_str());
    assert_eq!(card["capabilities"]["pushNotifications"], false);
    assert_eq!(card["skills"][0]["id"], "search:web");
    assert_eq!(card["defaultInputModes"], json!(["text/plain"]));
    let extension = &card["capabilities"]["extensions"][0];
    assert_eq!(extension["uri"], "https://agenttrust.id/ext/trust/v1");
    let params = &extension["params"];
    // A new agent with a key and a clean record: 50 + 20 (key) + 0 (age) + 15 (clean).
    assert_eq!(params["ati_trust_score"], json!(85));
    assert!(params["ati_trust_score"].is_i64());
    assert_eq!(params["ati_guardian_tier"], "fast");
    assert_eq!(
        params["ati_agent_key"],
        json!({"kty": "OKP", "crv": "Ed25519", "x": key_x})
    );
    // Signed: one detached JWS, ES256, by a key of the gateway's JWKS.
    let signature = &card["signatures"][0];
    let header: Value =
        serde_json::from_slice(&base64_url(signature["protected"].as_str().unwrap())).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JOSE");
    assert_eq!(header["jku"], format!("{}/.well-known/jwks.json", h.url));
    let jwks = h.get("/.well-known/jwks.json").ok().clone();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["kid"] == header["kid"]),
        "the signing key is published: {jwks}"
    );
    // Nothing null anywhere (the Rust SDK rejects nulls).
    assert!(!card.to_string().contains("null"), "{card}");

    // Unpublished: the public route says nothing.
    h.raw(Method::GET, &public_path, &[], None)
        .expect_error(404);
    let published = h
        .request(
            Method::PUT,
            &format!("/api/v1/agents/{agent_id}/card/publish"),
            None,
        )
        .ok()
        .clone();
    assert_eq!(published["name"], "researcher");
    // Public: no credential needed.
    let public = h.raw(Method::GET, &public_path, &[], None);
    assert_eq!(public.ok()["name"], "researcher");
    assert_eq!(h.audit_count("card.published"), 1);

    // The CLI verifies it by URL and by agent name, against the gateway's JWKS.
    let url = format!("{}{public_path}", h.url);
    let verified = h.run(&["cards", "verify", &url, "-o", "json"]);
    verified.success();
    let shown = verified.json();
    assert_eq!(shown["valid"], true);
    assert_eq!(shown["trust"]["ati_trust_score"], json!(85.0));
    assert_eq!(shown["kid"], header["kid"]);
    h.run(&["cards", "verify", "researcher"]).success();
    let text = h.run(&["cards", "get", "researcher"]);
    text.success();
    assert!(text.stdout.contains("trust_score"), "{}", text.stdout);
    // `publish -q` prints the public URL.
    let quiet = h.run(&["cards", "publish", "researcher", "-q"]);
    assert_eq!(quiet.value(), url);

    // Unpublished again: 404 on the public route, and `verify` fails (exit 3: not found).
    h.run(&["cards", "unpublish", "researcher"]).success();
    h.raw(Method::GET, &public_path, &[], None)
        .expect_error(404);
    h.run(&["cards", "verify", &url]).code(3);

    // A revoked agent's card is gone from the public route even when published.
    h.request(
        Method::PUT,
        &format!("/api/v1/agents/{agent_id}/card/publish"),
        None,
    )
    .ok();
    h.post(
        &format!("/api/v1/agents/{agent_id}/revoke"),
        json!({"reason": "test"}),
    )
    .ok();
    h.raw(Method::GET, &public_path, &[], None)
        .expect_error(404);
    h.request(
        Method::PUT,
        &format!("/api/v1/agents/{agent_id}/card/publish"),
        None,
    )
    .expect_error(409);

    // Another org sees no card of this agent, and cannot make one.
    let (_, other_key) = h.other_org("elsewhere");
    h.request_as(
        &other_key,
        Method::GET,
        &format!("/api/v1/agents/{agent_id}/card"),
        None,
    )
    .expect_error(404);
    h.request_as(
        &other_key,
        Method::POST,
        &format!("/api/v1/agents/{agent_id}/card"),
        None,
    )
    .expect_error(404);
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// A server in the test that serves `card` at `/a2a/agents/x/agent.json` (a copy someone
/// altered) and nothing else.
fn serve_card(runtime: &Runtime, card: Value) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/a2a/agents/x/agent.json",
        get(move || {
            let card = card.clone();
            async move { axum::Json(card) }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    url
}

fn a_tampered_card_fails_verification(h: &Harness) {
    let (agent, _) = keyed_agent(h, "honest");
    let agent_id = id(&agent);
    let card = h
        .request(
            Method::PUT,
            &format!("/api/v1/agents/{agent_id}/card/publish"),
            None,
        )
        .ok()
        .clone();
    let jwks = format!("{}/.well-known/jwks.json", h.url);
    let runtime = Runtime::new().unwrap();

    // The genuine card, served elsewhere, verifies against the gateway's keys.
    let genuine = serve_card(&runtime, card.clone());
    let url = format!("{genuine}/a2a/agents/x/agent.json");
    h.run(&["cards", "verify", &url, "--jwks", &jwks]).success();

    // A raised trust score: the signature no longer matches. Exit 1, the reason on stderr.
    let mut tampered = card.clone();
    tampered["capabilities"]["extensions"][0]["params"]["ati_trust_score"] = json!(100);
    let forged = serve_card(&runtime, tampered);
    let url = format!("{forged}/a2a/agents/x/agent.json");
    let run = h.run(&["cards", "verify", &url, "--jwks", &jwks]);
    run.code(1);
    assert!(run.stderr.contains("does not match"), "{}", run.stderr);
    // With -o json the verdict is on stdout, and the exit status is the same.
    let run = h.run(&["cards", "verify", &url, "--jwks", &jwks, "-o", "json"]);
    run.code(1);
    assert_eq!(run.json()["valid"], false);

    // Signatures stripped: exit 1. A key the JWKS lacks: exit 1.
    let mut unsigned = card.clone();
    unsigned["signatures"] = json!([]);
    let bare = serve_card(&runtime, unsigned);
    h.run(&[
        "cards",
        "verify",
        &format!("{bare}/a2a/agents/x/agent.json"),
        "--jwks",
        &jwks,
    ])
    .code(1);
    // A card too large to be one is not read to its end.
    let mut bloated = card.clone();
    bloated["description"] = json!("x".repeat(2 * 1024 * 1024));
    let huge = serve_card(&runtime, bloated);
    let run = h.run(&[
        "cards",
        "verify",
        &format!("{huge}/a2a/agents/x/agent.json"),
        "--jwks",
        &jwks,
    ]);
    run.code(1);
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
    // Without --jwks the test server's own (missing) key set is asked: the forger's issuer.
    h.run(&[
        "cards",
        "verify",
        &format!("{genuine}/a2a/agents/x/agent.json"),
    ])
    .code(3);
    drop(runtime);
}

/// A card is built when it is served: a key rotation (a stolen key replaced) and a lock show in
/// the next card, public and private, with no regeneration, and its signature still verifies.
/// What the operator set is kept.
fn a_served_card_shows_the_agent_as_it_stands(h: &Harness) {
    let (agent, old_x) = keyed_agent(h, "rotating");
    let agent_id = id(&agent);
    let card_path = format!("/api/v1/agents/{agent_id}/card");
    let public_path = format!("/a2a/agents/{agent_id}/agent.json");
    let params = |card: &Value| card["capabilities"]["extensions"][0]["params"].clone();
    h.post(&card_path, json!({"description": "Finds things"}))
        .expect_status(200..=200);
    h.request(Method::PUT, &format!("{card_path}/publish"), None)
        .expect_status(200..=200);
    let public = h.raw(Method::GET, &public_path, &[], None).ok().clone();
    assert_eq!(params(&public)["ati_agent_key"]["x"], old_x.as_str());
    assert_eq!(params(&public)["ati_trust_score"], json!(85));

    // The key is rotated (no grace): the next card names the new key, and only it.
    let new_key = agenttrust::agent_key::AgentPrivateKey::generate();
    h.post(
        &format!("/api/v1/agents/{agent_id}/keys/rotate"),
        json!({"public_key": new_key.public().to_pem(), "grace_seconds": 0}),
    )
    .expect_status(200..=200);
    let public = h.raw(Method::GET, &public_path, &[], None).ok().clone();
    assert_eq!(
        params(&public)["ati_agent_key"]["x"],
        new_key.public().jwk().x
    );
    assert_eq!(
        h.get(&card_path).ok()["capabilities"]["extensions"][0]["params"]["ati_agent_key"]["x"],
        new_key.public().jwk().x
    );
    let url = format!("{}{public_path}", h.url);
    let verified = h.run(&["cards", "verify", &url, "-o", "json"]);
    verified.success();
    assert_eq!(verified.json()["valid"], true);

    // Locked: 25 points off at once, in the private and the public card.
    h.request(
        Method::PUT,
        &format!("/api/v1/agents/{agent_id}/mode"),
        Some(json!({"mode": "locked"})),
    )
    .expect_status(200..=200);
    let public = h.raw(Method::GET, &public_path, &[], None).ok().clone();
    assert_eq!(params(&public)["ati_trust_score"], json!(85 - 15 - 25));
    assert_eq!(
        params(&h.get(&card_path).ok().clone())["ati_trust_score"],
        json!(45)
    );
    let verified = h.run(&["cards", "verify", &url, "-o", "json"]);
    verified.success();
    let shown = verified.json();
    assert_eq!(shown["valid"], true);
    assert_eq!(shown["trust"]["ati_trust_score"], json!(45.0));
    // What the operator set stays, and the row holds nothing else of the card.
    assert_eq!(public["description"], "Finds things");
    let stored = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM agent_cards WHERE agent_id = '{agent_id}' \
             AND settings LIKE '%Finds things%' AND published_at IS NOT NULL"
        ))
        .unwrap();
    assert_eq!(stored, vec![1]);
}

fn card_settings_are_validated_and_kept(h: &Harness) {
    let agent = h.create_agent("writer", &["docs:write", "a2a:send"]);
    let agent_id = id(&agent);
    let path = format!("/api/v1/agents/{agent_id}/card");
    let before = h.row_counts();
    for (body, field) in [
        (json!({"endpoint": "ftp://agent.example/a2a"}), "endpoint"),
        (json!({"endpoint": "http://agent.example/a2a"}), "endpoint"),
        (
            json!({"endpoint": format!("{}/a2a/agents/{agent_id}", h.url)}),
            "endpoint",
        ),
        (
            json!({"documentation_url": "javascript:alert(1)"}),
            "documentation_url",
        ),
        (json!({"description": "x".repeat(2001)}), "description"),
        (
            json!({"skills": [{"id": "has space", "name": "n"}]}),
            "skills[0].id",
        ),
        (json!({"skills": [{"id": "", "name": "n"}]}), "skills[0].id"),
        (json!({"skills": "all"}), "expected a sequence"),
    ] {
        let reply = h.post(&path, body.clone());
        assert_eq!(reply.expect_error(400), "VALIDATION_ERROR", "{body}");
        assert!(
            reply.message().contains(field),
            "{body}: {}",
            reply.message()
        );
    }
    assert_eq!(before, h.row_counts(), "a refused setting stores nothing");

    // Settings are kept by a regeneration that names none (what the SDKs send).
    let set = h
        .post(
            &path,
            json!({
                "description": "Writes the docs",
                "documentation_url": "https://docs.example/writer",
                "skills": [{"id": "write", "name": "Write", "description": "Writes", "tags": ["docs"]}],
                "endpoint": "https://writer.example/a2a",
            }),
        )
        .ok()
        .clone();
    assert_eq!(set["description"], "Writes the docs");
    assert_eq!(set["documentationUrl"], "https://docs.example/writer");
    let again = h.request(Method::POST, &path, None).ok().clone();
    assert_eq!(again["description"], "Writes the docs");
    assert_eq!(
        again["skills"],
        json!([{"id": "write", "name": "Write", "description": "Writes", "tags": ["docs"]}])
    );
    // A runtime key reads cards but cannot change them; an agent token does neither.
    let (runtime_key, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    h.request_as(&runtime_key, Method::GET, &path, None).ok();
    h.request_as(&runtime_key, Method::POST, &path, None)
        .expect_error(403);
    let token = token_of(h, &agent_id);
    h.raw(Method::GET, &path, &as_token(&token), None)
        .expect_error(403);
}

// ----- A2A -----

fn tasks_wait_in_the_gateway_until_the_target_answers(h: &Harness) {
    let a = id(&h.create_agent("alice", &["a2a:send"]));
    let b = id(&h.create_agent("bob", &["a2a:send"]));
    // The Python SDK: an integer id, a string message, metadata; echoed as sent.
    let sent = rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": b, "message": "summarize the report",
               "metadata": {"priority": "high"}}),
        json!(1),
    );
    assert_eq!(sent.body["id"], json!(1));
    assert_eq!(sent.body["jsonrpc"], "2.0");
    let task = result(&sent);
    assert_eq!(task["status"], "pending");
    assert_eq!(task["message"], "summarize the report");
    assert_eq!(task["source_agent_id"], a.as_str());
    assert_eq!(task["target_agent_id"], b.as_str());
    assert_eq!(task["metadata"], json!({"priority": "high"}));
    assert_eq!(task["artifacts"], json!([]));
    assert!(task["created_at"].as_str().unwrap().ends_with('Z'));
    let task_id = task["id"].as_str().unwrap().to_string();
    // The check was recorded under the sending agent, for the target.
    let checks = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE agent_id = '{a}' \
             AND action_name = 'a2a:send:{b}' AND allowed = TRUE"
        ))
        .unwrap();
    assert_eq!(checks, vec![1]);

    // The other SDKs: a string id, an object message, `id` for the task.
    let object = rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": b, "target_agent_id": a, "message": {"role": "user", "content": "hi"}}),
        json!("7"),
    );
    assert_eq!(object.body["id"], json!("7"));
    assert_eq!(
        result(&object)["message"],
        json!({"role": "user", "content": "hi"})
    );

    // tasks/get by `task_id` and by `id`.
    for params in [json!({"task_id": task_id}), json!({"id": task_id})] {
        let got = result(&rpc_with(
            h,
            "/a2a",
            &as_admin(h),
            "tasks/get",
            params,
            json!(2),
        ));
        assert_eq!(got["id"], task_id.as_str());
    }
    let listed = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/list",
        json!({"limit": 50}),
        json!("3"),
    ));
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 2);

    // The target answers with its token; the sender sees the answer.
    let bob = token_of(h, &b);
    let done = result(&rpc_with(
        h,
        "/a2a",
        &as_token(&bob),
        "tasks/complete",
        json!({"id": task_id, "text": "the report says yes"}),
        json!(4),
    ));
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["artifacts"][0]["parts"][0]["text"],
        "the report says yes"
    );
    assert_eq!(done["reply"]["role"], "agent");
    // Ended: it cannot be cancelled or completed again.
    let again = rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/cancel",
        json!({"task_id": task_id}),
        json!(5),
    );
    assert_eq!(rpc_error(&again), -32002);

    // The sender cancels the other one; the status is the Python SDK's spelling.
    let other = result(&object)["id"].as_str().unwrap().to_string();
    let cancelled = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/cancel",
        json!({"id": other}),
        json!(6),
    ));
    assert_eq!(cancelled["status"], "cancelled");
    // Only the target completes a task: the sender's token cannot.
    let third = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": b, "message": "more"}),
        json!(8),
    ));
    let alice = token_of(h, &a);
    let refused = rpc_with(
        h,
        "/a2a",
        &as_token(&alice),
        "tasks/complete",
        json!({"id": third["id"], "text": "I answer my own question"}),
        json!(9),
    );
    refused.expect_status(403..=403);
    assert_eq!(h.audit_count("a2a.task.created"), 3);
}

fn the_policy_decides_who_may_message_whom(h: &Harness) {
    let a = id(&h.create_agent("vault", &[]));
    let b = id(&h.create_agent("intern", &[]));
    let c = id(&h.create_agent("manager", &["a2a:send", "reports:read"]));
    // Only agents with the a2a:send capability may message the vault.
    h.put_policy(json!({"rules": [
        {"id": "vault-needs-capability", "tools": [format!("a2a:send:{a}")],
         "require_capabilities": ["a2a:send"], "decision": "allow"},
    ]}));
    let before = a2a_rows(h);
    let denied = rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": b, "target_agent_id": a, "message": "open up"}),
        json!(1),
    );
    // A 403 (the Python SDK ignores JSON-RPC errors) whose body is the JSON-RPC error too.
    denied.expect_status(403..=403);
    assert_eq!(denied.body["code"], "POLICY_DENIED");
    assert_eq!(denied.body["id"], json!(1));
    assert_eq!(denied.body["error"]["code"], json!(-32010));
    assert!(
        denied.message().contains("vault-needs-capability"),
        "{}",
        denied.text
    );
    assert!(denied.body["error"]["data"]["check_id"].as_str().is_some());
    assert_eq!(a2a_rows(h), before, "a refused message stores no task");
    let recorded = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE agent_id = '{b}' AND allowed = FALSE"
        ))
        .unwrap();
    assert_eq!(recorded, vec![1], "the denial is recorded");
    // message/send is refused the same way.
    let v1 = rpc_with(
        h,
        &format!("/a2a/agents/{a}"),
        &[
            ("X-API-Key", h.admin_key.clone()),
            ("X-Agent-ID", b.clone()),
        ],
        "message/send",
        json!({"message": {"role": "user", "parts": [{"kind": "text", "text": "open"}], "messageId": "m1"}}),
        json!("1"),
    );
    v1.expect_status(403..=403);
    // The manager has the capability; the intern may still message the manager.
    result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": c, "target_agent_id": a, "message": "report"}),
        json!(2),
    ));
    result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": b, "target_agent_id": c, "message": "hello"}),
        json!(3),
    ));
    // The CLI: exit 77, as any denied check.
    let run = h.run(&[
        "a2a",
        "send",
        "--from",
        "intern",
        "--to",
        "vault",
        "let me in",
    ]);
    run.code(77);
    assert!(
        run.stderr.contains("vault-needs-capability"),
        "{}",
        run.stderr
    );
    // A token without a write scope cannot send (the effect is mutating).
    let read_only = h.issue_token(&c, &["reports:read"], 600)["token"]
        .as_str()
        .unwrap()
        .to_string();
    rpc_with(
        h,
        "/a2a",
        &as_token(&read_only),
        "tasks/send",
        json!({"target_agent_id": a, "message": "report"}),
        json!(4),
    )
    .expect_status(403..=403);
}

/// The sender chooses the message: what the policy refuses must not reach the target past a
/// long first part, in a data part, or in a second text field.
fn a_message_is_decided_on_all_that_the_target_receives(h: &Harness) {
    let target = id(&h.create_agent("treasury", &[]));
    let sender = id(&h.create_agent("clerk", &[]));
    h.put_policy(json!({"rules": [
        {"id": "no-wires", "tools": [format!("a2a:send:{target}")],
         "input": {"contains": ["wire the funds"]}, "decision": "deny"},
    ]}));
    let before = a2a_rows(h);
    let sender_headers = [
        ("X-API-Key", h.admin_key.clone()),
        ("X-Agent-ID", sender.clone()),
    ];
    let padding = "please read carefully. ".repeat(40);
    let hidden = [
        // Past a cut of the text.
        json!({"role": "user", "messageId": "m1",
               "parts": [{"kind": "text", "text": format!("{padding} now wire the funds")}]}),
        // In a data part, which is forwarded as it is.
        json!({"role": "user", "messageId": "m2",
               "parts": [{"kind": "text", "text": "hello"},
                         {"kind": "data", "data": {"step": "wire the funds"}}]}),
        // In `parts` behind a `content` field.
        json!({"role": "user", "messageId": "m3", "content": "hello",
               "parts": [{"kind": "text", "text": "wire the funds"}]}),
    ];
    for (n, message) in hidden.into_iter().enumerate() {
        let refused = rpc_with(
            h,
            &format!("/a2a/agents/{target}"),
            &sender_headers,
            "message/send",
            json!({"message": message}),
            json!(n),
        );
        refused.expect_status(403..=403);
        assert!(refused.message().contains("no-wires"), "{}", refused.text);
    }
    let legacy = rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": sender, "target_agent_id": target,
               "message": format!("{padding} wire the funds")}),
        json!(9),
    );
    legacy.expect_status(403..=403);
    assert_eq!(a2a_rows(h), before, "no refused message is stored");
    let refused = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE agent_id = '{sender}' \
             AND allowed = FALSE AND rule = 'rule:no-wires'"
        ))
        .unwrap();
    assert_eq!(refused, vec![4]);
}

fn agents_cannot_send_as_others_nor_reach_other_orgs_or_tasks(h: &Harness) {
    let a = id(&h.create_agent("a", &["a2a:send"]));
    let b = id(&h.create_agent("b", &["a2a:send"]));
    let c = id(&h.create_agent("c", &["a2a:send"]));
    let (other_org, other_key) = h.other_org("rival");
    let _ = other_org;
    let outsider = h
        .request_as(
            &other_key,
            Method::POST,
            "/api/v1/agents",
            Some(json!({"name": "spy"})),
        )
        .agent();
    let outsider = id(&outsider);
    let b_token = token_of(h, &b);
    let before = a2a_rows(h);

    // Agent B's token sending as agent A: refused, nothing stored, nothing checked as A.
    let spoofed = rpc_with(
        h,
        "/a2a",
        &as_token(&b_token),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": c, "message": "I am A"}),
        json!(1),
    );
    spoofed.expect_status(403..=403);
    assert!(
        spoofed.message().contains("cannot act as agent"),
        "{}",
        spoofed.text
    );
    assert_eq!(spoofed.body["error"]["code"], json!(-32010));
    let as_a = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE agent_id = '{a}'"
        ))
        .unwrap();
    assert_eq!(as_a, vec![0]);
    // message/send with B's token and X-Agent-ID naming A: the same.
    rpc_with(
        h,
        &format!("/a2a/agents/{c}"),
        &[("Authorization", format!("Bearer {b_token}")), ("X-Agent-ID", a.clone())],
        "message/send",
        json!({"message": {"role": "user", "parts": [{"kind": "text", "text": "I am A"}], "messageId": "m"}}),
        json!("1"),
    )
    .expect_status(403..=403);
    // A target in another org is not found (as a missing one); so is a sender there.
    let cross = rpc_with(
        h,
        "/a2a",
        &as_token(&b_token),
        "tasks/send",
        json!({"target_agent_id": outsider, "message": "psst"}),
        json!(2),
    );
    assert_eq!(rpc_error(&cross), -32601);
    let cross = rpc_with(
        h,
        &format!("/a2a/agents/{outsider}"),
        &as_token(&b_token),
        "message/send",
        json!({"message": {"role": "user", "parts": [{"kind": "text", "text": "psst"}], "messageId": "m"}}),
        json!(3),
    );
    assert_eq!(rpc_error(&cross), -32601);
    let from_rival = rpc_with(
        h,
        "/a2a",
        &[("X-API-Key", other_key.clone())],
        "tasks/send",
        json!({"source_agent_id": outsider, "target_agent_id": a, "message": "hi"}),
        json!(4),
    );
    assert_eq!(rpc_error(&from_rival), -32601);
    assert_eq!(a2a_rows(h), before, "no refused message stored a task");

    // A task from A to B: C's token, and the other org, neither read nor cancel it.
    let task = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": b, "message": "private"}),
        json!(5),
    ));
    let task_id = task["id"].as_str().unwrap().to_string();
    let c_token = token_of(h, &c);
    for (headers, method) in [
        (as_token(&c_token), "tasks/get"),
        (as_token(&c_token), "tasks/cancel"),
        (as_token(&c_token), "tasks/complete"),
        (vec![("X-API-Key", other_key.clone())], "tasks/get"),
        (vec![("X-API-Key", other_key.clone())], "tasks/cancel"),
    ] {
        let reply = rpc_with(
            h,
            "/a2a",
            &headers,
            method,
            json!({"id": task_id}),
            json!(6),
        );
        assert_eq!(rpc_error(&reply), -32001, "{method}");
    }
    let listed = result(&rpc_with(
        h,
        "/a2a",
        &as_token(&c_token),
        "tasks/list",
        json!({}),
        json!(7),
    ));
    assert_eq!(listed["tasks"], json!([]));
    let listed = result(&rpc_with(
        h,
        "/a2a",
        &[("X-API-Key", other_key.clone())],
        "tasks/list",
        json!({}),
        json!(8),
    ));
    assert_eq!(listed["tasks"], json!([]));
    rpc_with(
        h,
        "/a2a",
        &as_token(&c_token),
        "tasks/list",
        json!({"agent_id": a}),
        json!(9),
    )
    .expect_status(403..=403);
    // Still pending: nobody above changed it. B (its target) sees it.
    let seen = result(&rpc_with(
        h,
        "/a2a",
        &as_token(&b_token),
        "tasks/get",
        json!({"id": task_id}),
        json!(10),
    ));
    assert_eq!(seen["status"], "pending");
    // No credentials at all: 401.
    rpc_with(h, "/a2a", &[], "tasks/list", json!({}), json!(11)).expect_error(401);
}

fn malformed_and_huge_bodies_are_refused_and_store_nothing(h: &Harness) {
    let a = id(&h.create_agent("sender", &[]));
    let b = id(&h.create_agent("receiver", &[]));
    let before = h.row_counts();
    let post_raw = |body: Vec<u8>| {
        h.raw(
            Method::POST,
            "/a2a",
            &[
                ("X-API-Key", h.admin_key.clone()),
                ("Content-Type", "application/json".to_string()),
            ],
            Some(body),
        )
    };
    // Not JSON: a 400 with the gateway's error body.
    post_raw(b"{\"jsonrpc\": \"2.0\", \"method\": ".to_vec()).expect_error(400);
    // JSON, but not a JSON-RPC request.
    for (body, code) in [
        (json!({"method": "tasks/list", "id": 1}), -32600),
        (
            json!({"jsonrpc": "1.0", "method": "tasks/list", "id": 1}),
            -32600,
        ),
        (
            json!([{"jsonrpc": "2.0", "method": "tasks/list", "id": 1}]),
            -32600,
        ),
        (json!({"jsonrpc": "2.0", "id": 1}), -32600),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/explode", "id": 1}),
            -32601,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1, "params": [1, 2]}),
            -32602,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1, "params": {"source_agent_id": a}}),
            -32602,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1,
                "params": {"source_agent_id": a, "target_agent_id": b, "message": 42}}),
            -32602,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1,
                "params": {"source_agent_id": a, "target_agent_id": b, "message": "x", "metadata": "y"}}),
            -32602,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1,
                "params": {"source_agent_id": "a b", "target_agent_id": b, "message": "x"}}),
            -32602,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/list", "id": 1, "params": {"limit": 100000}}),
            -32602,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "tasks/get", "id": 1, "params": {}}),
            -32602,
        ),
    ] {
        let reply = post_raw(body.to_string().into_bytes());
        assert_eq!(rpc_error(&reply), code, "{body}: {}", reply.text);
    }
    // A message too large for a task (the body itself is within the limit).
    let big = json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1,
        "params": {"source_agent_id": a, "target_agent_id": b, "message": "x".repeat(300 * 1024)}});
    let reply = post_raw(big.to_string().into_bytes());
    assert_eq!(rpc_error(&reply), -32602);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bytes")
    );
    // Metadata too large for a task.
    let padded = json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1,
        "params": {"source_agent_id": a, "target_agent_id": b, "message": "x",
                   "metadata": {"pad": "x".repeat(20 * 1024)}}});
    let reply = post_raw(padded.to_string().into_bytes());
    assert_eq!(rpc_error(&reply), -32602);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("metadata"),
        "{}",
        reply.text
    );
    // A body over the gateway's limit: 413, read no further.
    let huge = json!({"jsonrpc": "2.0", "method": "tasks/send", "id": 1,
        "params": {"source_agent_id": a, "target_agent_id": b, "message": "x".repeat(2 * 1024 * 1024)}});
    post_raw(huge.to_string().into_bytes()).expect_error(413);
    // message/send without a message, or with a task to continue.
    for params in [
        json!({}),
        json!({"message": {"role": "user"}}),
        json!({"message": {"role": "user", "parts": [], "taskId": "t1"}}),
    ] {
        let reply = rpc_with(
            h,
            &format!("/a2a/agents/{b}"),
            &[
                ("X-API-Key", h.admin_key.clone()),
                ("X-Agent-ID", a.clone()),
            ],
            "message/send",
            params,
            json!(1),
        );
        assert_eq!(rpc_error(&reply), -32602);
    }
    // An org key naming no sender for message/send.
    let reply = rpc_with(
        h,
        &format!("/a2a/agents/{b}"),
        &as_admin(h),
        "message/send",
        json!({"message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": "m"}}),
        json!(1),
    );
    assert_eq!(rpc_error(&reply), -32602);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Agent-ID")
    );
    assert_eq!(before, h.row_counts(), "nothing was stored or checked");
}

// ----- forwarding -----

/// What the agent's endpoint in the test received.
#[derive(Default)]
struct Endpoint {
    received: Mutex<Vec<(Value, Option<String>)>>,
}

/// An A2A v1.0 endpoint: `SendMessage` answers a completed task whose artifact is the text
/// upper-cased; the message "fail" gets a JSON-RPC error.
async fn endpoint(
    State(state): State<Arc<Endpoint>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let version = headers
        .get("a2a-version")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    state.received.lock().unwrap().push((body.clone(), version));
    let text = body["params"]["message"]["parts"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if text == "fail" {
        return axum::Json(
            json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32603, "message": "boom"}}),
        );
    }
    // A hostile endpoint: more artifacts, or bigger ones, than a task keeps (within 1 MiB).
    let flood = |artifacts: Vec<Value>| {
        axum::Json(
            json!({"jsonrpc": "2.0", "id": body["id"], "result": {"task": {
                "id": "remote-2", "status": {"state": "TASK_STATE_COMPLETED"}, "artifacts": artifacts,
            }}}),
        )
    };
    if text == "flood" {
        return flood(
            (0..65)
                .map(|n| json!({"artifactId": format!("a{n}"), "parts": [{"text": "x"}]}))
                .collect(),
        );
    }
    if text == "bloat" {
        return flood(vec![
            json!({"artifactId": "big", "parts": [{"text": "x".repeat(300 * 1024)}]}),
        ]);
    }
    axum::Json(
        json!({"jsonrpc": "2.0", "id": body["id"], "result": {"task": {
            "id": "remote-1", "contextId": "ctx",
            "status": {"state": "TASK_STATE_COMPLETED", "message": {"role": "ROLE_AGENT", "parts": [{"text": "done"}], "messageId": "r1"}},
            "artifacts": [{"artifactId": "a1", "parts": [{"text": text.to_uppercase()}]}],
        }}}),
    )
}

fn messages_are_forwarded_to_the_agent_endpoint_and_the_answer_relayed(h: &Harness) {
    let runtime = Runtime::new().unwrap();
    let state = Arc::new(Endpoint::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint_url = format!("http://{}/a2a", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/a2a", post(endpoint))
        .with_state(Arc::clone(&state));
    runtime.spawn(async move { axum::serve(listener, app).await });

    let a = id(&h.create_agent("caller", &["a2a:send"]));
    let b = id(&h.create_agent("worker", &[]));
    h.post(
        &format!("/api/v1/agents/{b}/card"),
        json!({"endpoint": endpoint_url}),
    )
    .ok();
    let a_token = token_of(h, &a);
    let answered = rpc_with(
        h,
        &format!("/a2a/agents/{b}"),
        &as_token(&a_token),
        "message/send",
        json!({"message": {"role": "user", "parts": [{"kind": "text", "text": "shout this"}], "messageId": "m1"}}),
        json!("1"),
    );
    let task = result(&answered);
    // A v1.0 Task, camelCase, with the answer relayed.
    assert_eq!(task["kind"], "task");
    assert_eq!(task["status"]["state"], "completed");
    assert!(task["contextId"].as_str().is_some());
    assert_eq!(task["artifacts"][0]["parts"][0]["text"], "SHOUT THIS");
    assert_eq!(task["status"]["message"]["parts"][0]["text"], "done");
    assert_eq!(task["history"][0]["parts"][0]["text"], "shout this");
    assert_eq!(task["metadata"]["forwarded_to"], endpoint_url.as_str());
    // What the endpoint got: a v1.0 SendMessage with provenance, and no credential of ours.
    {
        let received = state.received.lock().unwrap();
        assert_eq!(received.len(), 1);
        let (body, version) = &received[0];
        assert_eq!(body["method"], "SendMessage");
        assert_eq!(version.as_deref(), Some("1.0"));
        assert_eq!(body["params"]["message"]["role"], "ROLE_USER");
        assert_eq!(
            body["params"]["message"]["metadata"]["agenttrust"]["source_agent_id"],
            a.as_str()
        );
        assert!(!body.to_string().contains(&a_token));
        assert!(!body.to_string().contains(&h.admin_key));
    }
    // The legacy door relays too; the stored task says so.
    let legacy = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": b, "message": "again"}),
        json!(2),
    ));
    assert_eq!(legacy["status"], "completed");
    assert_eq!(legacy["artifacts"][0]["parts"][0]["text"], "AGAIN");
    assert_eq!(legacy["forwarded_to"], endpoint_url.as_str());
    // The endpoint's error fails the task, with the reason as the reply.
    let failed = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": b, "message": "fail"}),
        json!(3),
    ));
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["reply"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("boom")
    );
    // An answer with more artifacts, or bigger ones, than a task keeps fails the task, and none
    // of it is stored.
    for text in ["flood", "bloat"] {
        let task = result(&rpc_with(
            h,
            "/a2a",
            &as_admin(h),
            "tasks/send",
            json!({"source_agent_id": a, "target_agent_id": b, "message": text}),
            json!(6),
        ));
        assert_eq!(task["status"], "failed", "{text}");
        assert_eq!(task["artifacts"], json!([]), "{text}");
        let reason = task["reply"]["parts"][0]["text"].as_str().unwrap();
        assert!(reason.contains("too large"), "{text}: {reason}");
        let stored = h
            .sql_integers(&format!(
                "SELECT CAST(LENGTH(artifacts) AS BIGINT) FROM a2a_tasks WHERE id = '{}'",
                task["id"].as_str().unwrap()
            ))
            .unwrap();
        assert_eq!(stored, vec![2], "{text}: only [] is stored");
    }
    // A denied message never reaches the endpoint.
    h.put_policy(
        json!({"rules": [{"id": "no-worker", "tools": ["a2a:send:*"], "decision": "deny"}]}),
    );
    let count = state.received.lock().unwrap().len();
    rpc_with(
        h,
        &format!("/a2a/agents/{b}"),
        &as_token(&a_token),
        "message/send",
        json!({"message": {"role": "user", "parts": [{"kind": "text", "text": "x"}], "messageId": "m2"}}),
        json!("4"),
    )
    .expect_status(403..=403);
    assert_eq!(state.received.lock().unwrap().len(), count);
    // An endpoint that is down fails the task (not the call), and says why.
    h.put_policy(json!({"rules": []}));
    h.post(
        &format!("/api/v1/agents/{b}/card"),
        json!({"endpoint": "http://127.0.0.1:9/a2a"}),
    )
    .ok();
    let down = result(&rpc_with(
        h,
        "/a2a",
        &as_admin(h),
        "tasks/send",
        json!({"source_agent_id": a, "target_agent_id": b, "message": "anyone?"}),
        json!(5),
    ));
    assert_eq!(down["status"], "failed");
    drop(runtime);
}

fn the_cli_sends_and_answers_tasks(h: &Harness) {
    h.create_agent("planner", &[]);
    let doer = id(&h.create_agent("doer", &["a2a:send"]));
    let sent = h.run(&[
        "a2a",
        "send",
        "--from",
        "planner",
        "--to",
        "doer",
        "plan the launch",
        "-q",
    ]);
    sent.success();
    let task_id = sent.value().to_string();
    let listed = h.run(&[
        "a2a", "tasks", "list", "--agent", "doer", "--status", "pending", "-o", "json",
    ]);
    listed.success();
    assert_eq!(listed.json()["tasks"][0]["id"], task_id.as_str());
    let shown = h.run(&["a2a", "tasks", "get", &task_id]);
    shown.success();
    assert!(shown.stdout.contains("plan the launch"), "{}", shown.stdout);
    // The target answers with its own token.
    let token = token_of(h, &doer);
    let token_file = h.scratch.path().join("doer.token");
    std::fs::write(&token_file, &token).unwrap();
    let done = h.run(&[
        "a2a",
        "tasks",
        "complete",
        &task_id,
        "--text",
        "launch planned",
        "--agent-token-file",
        token_file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    done.success();
    assert_eq!(done.json()["status"], "completed");
    let shown = h.run(&["a2a", "tasks", "get", &task_id]);
    assert!(shown.stdout.contains("launch planned"), "{}", shown.stdout);
    // Ended: cancelling is a conflict (exit 1); an unknown task is exit 3.
    h.run(&["a2a", "tasks", "cancel", &task_id]).code(1);
    h.run(&[
        "a2a",
        "tasks",
        "get",
        "00000000-0000-7000-8000-000000000000",
    ])
    .code(3);
    // An unknown target: exit 3. No --from and no token: a usage error.
    h.run(&["a2a", "send", "--from", "planner", "--to", "nobody", "hi"])
        .code(3);
    h.run(&["a2a", "send", "--to", "doer", "hi"]).code(2);
}
