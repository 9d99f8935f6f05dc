//! Federation end to end: two gateways federating (A issues an ID token for its agent, B trusts
//! A by discovery, verifies the token and opens a session bounded by A's trust level); a real
//! external issuer (`federation_idp`) with keys of every allowed algorithm, and every token an
//! attacker would forge, each refused with its reason and nothing stored; a flood of unknown
//! `kid`s that must not turn into a flood of JWKS fetches; registration that checks discovery
//! and changes nothing when it fails; this gateway as an issuer (issue, verify, revoke, org
//! scoping); and signing-key rotation with overlap.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::federation_idp::{Idp, TestKey, forge, hs256};
use crate::harness::Harness;
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    two_gateways_federate,
    provider_tokens_verify_and_every_forgery_is_refused_with_its_reason,
    sessions_are_bounded_by_trust_and_end_with_the_provider_or_the_token,
    unknown_kids_cannot_make_the_gateway_hammer_the_issuer,
    registration_checks_the_issuer_and_changes_nothing_when_it_fails,
    providers_are_admin_only_and_scoped_to_their_org,
    this_gateway_issues_verifies_and_revokes_id_tokens,
    no_allow_follows_a_provider_change_in_the_audit_order,
    a_slow_issuer_is_given_up_on,
);

on_both_backends_with!(
    reload_at_once;
    an_issuer_that_rotates_its_keys_is_followed,
    signing_keys_rotate_with_overlap,
);

/// The secret `reload_at_once` gateways seal their signing keys with.
const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A gateway that reads its signing keys at every use and may fetch a JWKS at any time: what
/// a test of rotation needs to see a change without waiting.
fn reload_at_once(config: &mut agenttrust::gateway::GatewayConfig) {
    config.signing_keys_reload_after = Duration::ZERO;
    config.jwks_min_refresh_interval = Duration::ZERO;
    config.signing_secret =
        Some(agenttrust::gateway::signing::SigningSecret::parse(SECRET).unwrap());
}

// ----- helpers -----

fn str_of(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

/// The audience the gateway expects of an org's federation tokens by default.
fn org_audience(h: &Harness) -> String {
    format!("{}/orgs/{}", h.url, h.org_id)
}

/// Registers `issuer` over HTTP; returns the provider.
fn register(h: &Harness, issuer: &str, trust_level: &str) -> Value {
    let reply = h.post(
        "/api/v1/federation/providers",
        json!({ "issuer": issuer, "name": "test issuer", "trust_level": trust_level }),
    );
    reply.expect_status(201..=201);
    reply.body["provider"].clone()
}

fn link(h: &Harness, provider_id: &str, subject: &str, agent_id: &str) {
    h.post(
        &format!("/api/v1/federation/providers/{provider_id}/subjects"),
        json!({ "subject": subject, "agent_id": agent_id }),
    )
    .expect_status(201..=201);
}

fn verify(h: &Harness, token: &str) -> Value {
    let reply = h.post(
        "/api/v1/federation/tokens/verify",
        json!({ "token": token }),
    );
    let body = reply.ok().clone();
    // Both names of the one fact, always equal.
    assert_eq!(body["valid"], body["active"], "{body}");
    body
}

fn agent(h: &Harness, name: &str, capabilities: &[&str]) -> String {
    str_of(&h.create_agent(name, capabilities)["id"])
}

fn check_in(h: &Harness, agent_id: &str, session_id: &str, tool: &str) -> Value {
    h.check(json!({ "agent_id": agent_id, "session_id": session_id, "action_name": tool }))
}

fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

fn jwks_kids(h: &Harness) -> Vec<String> {
    let reply = h.raw(Method::GET, "/.well-known/jwks.json", &[], None);
    reply.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            assert!(key.get("d").is_none(), "a private half is served: {key}");
            str_of(&key["kid"])
        })
        .collect()
}

// ----- tests -----

/// The issue's acceptance test: gateway A issues an ID token for its agent; gateway B registers
/// A as a provider by discovery, verifies the token and opens a federation session bounded by
/// A's trust level, all through the CLI.
fn two_gateways_federate(b: &Harness) {
    let a = Harness::sqlite();
    let courier_at_a = agent(&a, "courier", &["files:read", "files:write"]);
    let courier_at_b = agent(b, "courier-from-a", &[]);

    // A's discovery document names A as the issuer of tokens signed with its published keys.
    let discovery = a.raw(Method::GET, "/.well-known/openid-configuration", &[], None);
    assert_eq!(discovery.body["issuer"], a.url);
    assert_eq!(jwks_kids(&a).len(), 1);

    let token = a
        .run(&[
            "federation",
            "tokens",
            "issue",
            "--agent",
            "courier",
            "--audience",
            &org_audience(b),
            "--scopes",
            "files:read",
            "-q",
        ])
        .success()
        .value()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a compact JWS: {token}");

    let provider_id = b
        .run(&[
            "federation",
            "providers",
            "add",
            &a.url,
            "--name",
            "gateway-a",
            "--trust-level",
            "standard",
            "-q",
        ])
        .success()
        .value()
        .to_string();
    let provider = b
        .get(&format!("/api/v1/federation/providers/{provider_id}"))
        .ok()["provider"]
        .clone();
    assert_eq!(
        provider["jwks_uri"],
        format!("{}/.well-known/jwks.json", a.url)
    );
    assert_eq!(provider["trust_level"], "standard");

    // Not linked yet: valid, but it acts as no agent of B, and opens no session.
    let verified = verify(b, &token);
    assert_eq!(verified["valid"], true, "{verified}");
    assert!(verified.get("agent_id").is_none(), "{verified}");
    b.cli()
        .args(["federation", "session", "init"])
        .write_stdin(token.clone())
        .assert()
        .code(4);

    b.run(&[
        "federation",
        "subjects",
        "link",
        &provider_id,
        &courier_at_a,
        "--agent",
        "courier-from-a",
    ])
    .success();
    // The token from stdin, never in argv.
    let verified = b
        .cli()
        .args(["federation", "verify", "-o", "json"])
        .write_stdin(token.clone())
        .assert()
        .success();
    let verified: Value = serde_json::from_slice(&verified.get_output().stdout).unwrap();
    assert_eq!(verified["agent_id"], courier_at_b);
    assert_eq!(verified["issuer"], a.url);
    assert_eq!(verified["subject"], courier_at_a);
    assert_eq!(verified["trust_level"], "standard");

    let session = b
        .run(&["federation", "session", "init", &token, "-o", "json"])
        .success()
        .json();
    assert_eq!(session["source"], "federation");
    assert_eq!(session["agent_id"], courier_at_b);
    assert_eq!(session["provider_id"], provider_id);
    assert_eq!(session["issuer"], a.url);
    assert_eq!(session["trust_level"], "standard");
    let session_id = str_of(&session["session_id"]);

    // Standard trust: writes yes, destruction never (not even by asking a human).
    b.run(&[
        "actions",
        "check",
        "--agent",
        "courier-from-a",
        "--session",
        &session_id,
        "--tool",
        "write_file",
    ])
    .success();
    let denied = b
        .run(&[
            "actions",
            "check",
            "--agent",
            "courier-from-a",
            "--session",
            &session_id,
            "--tool",
            "delete_database",
            "-o",
            "json",
        ])
        .code(77)
        .json();
    assert_eq!(denied["rule"], "federation:trust_level");

    // A token for another audience is not B's to accept.
    let elsewhere = a
        .run(&[
            "federation",
            "tokens",
            "issue",
            "--agent",
            "courier",
            "--audience",
            "https://elsewhere.example",
            "-q",
        ])
        .success()
        .value()
        .to_string();
    let refused = b.run(&["federation", "verify", &elsewhere]);
    refused.code(1);
    assert!(
        refused.stderr.contains("wrong audience"),
        "{}",
        refused.stderr
    );

    b.run(&["audit", "verify"]).success();
    a.run(&["audit", "verify"]).success();
    assert_eq!(a.audit_count("federation.token.issued"), 2);
    assert_eq!(b.audit_count("federation.provider.registered"), 1);
}

fn provider_tokens_verify_and_every_forgery_is_refused_with_its_reason(h: &Harness) {
    let idp = Idp::start();
    let es = TestKey::es256("es-1");
    let ed = TestKey::eddsa("ed-1");
    let rs = TestKey::rsa("rs-1", Algorithm::RS256);
    let ps = TestKey::rsa("ps-1", Algorithm::PS256);
    for key in [&es, &ed, &rs, &ps] {
        idp.publish(key);
    }
    // Keys the gateway must never verify with: an HMAC secret and an encryption key.
    idp.publish_raw(json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ" }));
    let mut encryption = TestKey::es256("enc").public_jwk;
    encryption["use"] = json!("enc");
    idp.publish_raw(encryption);

    let provider = register(h, &idp.issuer, "standard");
    let provider_id = str_of(&provider["id"]);
    assert_eq!(provider["jwks_uri"], format!("{}/jwks", idp.issuer));
    assert_eq!(
        provider["authorization_endpoint"],
        format!("{}/authorize", idp.issuer)
    );
    let alice = agent(h, "alice-federated", &[]);
    link(h, &provider_id, "alice@idp", &alice);
    let audience = org_audience(h);
    let claims = idp.claims("alice@idp", &audience);

    // Every allowed algorithm verifies.
    for key in [&es, &ed, &rs, &ps] {
        let verified = verify(h, &key.sign(&claims));
        assert_eq!(verified["valid"], true, "{:?}: {verified}", key.algorithm);
        assert_eq!(verified["agent_id"], alice);
        assert_eq!(verified["subject"], "alice@idp");
        assert_eq!(verified["provider_id"], provider_id);
        assert_eq!(verified["issuer"], idp.issuer);
        assert_eq!(verified["trust_level"], "standard");
        assert!(verified.get("error").is_none(), "{verified}");
    }
    // Valid but unlinked: no agent.
    let stranger = verify(h, &es.sign(&idp.claims("mallory@idp", &audience)));
    assert_eq!(stranger["valid"], true);
    assert!(stranger.get("agent_id").is_none(), "{stranger}");

    let now = agenttrust::api::time::now();
    let with = |changes: Value| {
        let mut claims = claims.clone();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    };
    let valid = es.sign(&claims);
    let tampered = {
        let mut parts: Vec<String> = valid.split('.').map(str::to_string).collect();
        use base64::Engine;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(with(json!({ "sub": "admin@idp" })).to_string());
        parts.join(".")
    };
    let impostor = TestKey::es256("es-1");
    let header_for = |kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header
    };
    let forgeries: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            forge(&json!({ "alg": "none", "kid": "es-1" }), &claims, b""),
            "algorithm not allowed",
        ),
        (
            "alg none, lower case",
            forge(&json!({ "alg": "None" }), &claims, b""),
            "algorithm not allowed",
        ),
        (
            "HS256 keyed with the issuer's public key",
            hs256("es-1", &claims, es.public_jwk.to_string().as_bytes()),
            "algorithm not allowed",
        ),
        (
            "HS256 naming the oct key",
            hs256("hmac", &claims, b"secret-secret-secret"),
            "algorithm not allowed",
        ),
        (
            "RS512",
            forge(
                &json!({ "alg": "RS512", "kid": "rs-1" }),
                &claims,
                &[1; 256],
            ),
            "algorithm not allowed",
        ),
        (
            "an RSA signature naming the EC key",
            rs.sign_with(header_for("es-1"), &claims),
            "algorithm not allowed",
        ),
        (
            "the encryption key",
            es.sign_with(
                Header {
                    kid: Some("enc".into()),
                    ..Header::new(Algorithm::ES256)
                },
                &claims,
            ),
            "unknown key",
        ),
        (
            "expired",
            es.sign(&with(
                json!({ "exp": now - 3600, "iat": now - 4000, "nbf": now - 4000 }),
            )),
            "expired",
        ),
        (
            "not yet valid",
            es.sign(&with(json!({ "nbf": now + 3600 }))),
            "not yet valid",
        ),
        (
            "issued in the future",
            es.sign(&with(json!({ "iat": now + 3600 }))),
            "issued in the future",
        ),
        (
            "no expiry",
            es.sign(&with(json!({ "exp": null }))),
            "malformed token",
        ),
        (
            "wrong audience",
            es.sign(&with(json!({ "aud": "https://elsewhere.example" }))),
            "wrong audience",
        ),
        (
            "no audience",
            es.sign(&with(json!({ "aud": null }))),
            "malformed token",
        ),
        (
            "unknown issuer",
            es.sign(&with(json!({ "iss": "https://evil.example" }))),
            "unknown issuer",
        ),
        (
            "no issuer",
            es.sign(&with(json!({ "iss": null }))),
            "unknown issuer",
        ),
        (
            "unknown key",
            es.sign_with(
                Header {
                    kid: Some("who".into()),
                    ..Header::new(Algorithm::ES256)
                },
                &claims,
            ),
            "unknown key",
        ),
        (
            "another key under a published kid",
            impostor.sign(&claims),
            "bad signature",
        ),
        ("claims changed after signing", tampered, "bad signature"),
        (
            "no subject",
            es.sign(&with(json!({ "sub": null }))),
            "no subject",
        ),
        ("not a JWT", "not-a-jwt".to_string(), "malformed token"),
        ("four parts", format!("{valid}.extra"), "malformed token"),
        // A token that brings its own key, or says where to fetch one, does not get to choose:
        // only the provider's registered JWKS counts.
        (
            "its own key in the header",
            impostor.sign_with(
                Header {
                    kid: Some("es-1".into()),
                    jwk: Some(serde_json::from_value(impostor.public_jwk.clone()).unwrap()),
                    ..Header::new(Algorithm::ES256)
                },
                &claims,
            ),
            "bad signature",
        ),
        (
            "a key URL in the header",
            impostor.sign_with(
                Header {
                    kid: Some("attacker".into()),
                    jku: Some(format!("{}/jwks", idp.issuer)),
                    x5u: Some("https://attacker.example/cert.pem".into()),
                    ..Header::new(Algorithm::ES256)
                },
                &claims,
            ),
            "unknown key",
        ),
    ];
    let before = h.row_counts();
    for (name, token, reason) in &forgeries {
        let answer = verify(h, token);
        assert_eq!(answer["valid"], false, "{name}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(reason),
            "{name}: expected {reason:?}, got {answer}"
        );
        assert!(answer.get("agent_id").is_none(), "{name}: {answer}");
        // The same token opens no session, and nothing is written.
        let refused = h.post(
            "/api/v1/federation/sessions/init",
            json!({ "token": token }),
        );
        refused.expect_error(401);
        assert!(
            refused.message().contains(reason),
            "{name}: {}",
            refused.text
        );
    }
    // The Python SDK's door answers the same.
    let introspected = h.post(
        "/api/v1/federation/tokens/introspect",
        json!({ "token": forgeries[0].1 }),
    );
    assert_eq!(introspected.ok()["active"], false);
    // A valid token from an issuer other than the one the caller expects.
    let hinted = h.post(
        "/api/v1/federation/tokens/verify",
        json!({ "token": valid, "issuer_hint": "https://other.example" }),
    );
    assert_eq!(hinted.ok()["error"], "unknown issuer");
    assert_eq!(
        h.row_counts(),
        before,
        "a refused token changed stored state"
    );

    // Empty and oversized tokens are requests the gateway refuses, not tokens it judges.
    h.post("/api/v1/federation/tokens/verify", json!({ "token": "" }))
        .expect_error(400);
    h.post(
        "/api/v1/federation/tokens/verify",
        json!({ "token": "a".repeat(20_000) }),
    )
    .expect_error(400);
}

fn sessions_are_bounded_by_trust_and_end_with_the_provider_or_the_token(h: &Harness) {
    let idp = Idp::start();
    let key = TestKey::es256("k1");
    idp.publish(&key);
    let provider_id = str_of(&register(h, &idp.issuer, "low")["id"]);
    let reader = agent(h, "reader", &[]);
    link(h, &provider_id, "reader@idp", &reader);
    let claims = idp.claims("reader@idp", &org_audience(h));

    let session = h.post(
        "/api/v1/federation/sessions/init",
        json!({ "token": key.sign(&claims) }),
    );
    let session = session.expect_status(201..=201).body.clone();
    assert_eq!(session["source"], "federation");
    assert_eq!(session["trust_level"], "low");
    assert_eq!(
        session["expires_at"],
        agenttrust::api::time::format(claims["exp"].as_i64().unwrap())
    );
    let session_id = str_of(&session["session_id"]);

    // Low trust: reads only, whatever the caller states; the refusal counts as a denial.
    assert_eq!(
        check_in(h, &reader, &session_id, "read_file")["allowed"],
        true
    );
    let write = check_in(h, &reader, &session_id, "write_file");
    assert_eq!(write["allowed"], false);
    assert_eq!(write["rule"], "federation:trust_level");
    let stated = h.check(json!({
        "agent_id": reader, "session_id": session_id, "action_name": "write_file", "effect": "read",
    }));
    assert_eq!(
        stated["rule"], "federation:trust_level",
        "a stated read cannot lower the effect"
    );
    let counters = h
        .get(&format!("/api/v1/sessions/{session_id}"))
        .ok()
        .clone();
    assert_eq!(counters["denied_calls"], 2);

    // Raising the provider's trust never widens a session opened at a lower level; lowering
    // it binds open sessions at once.
    h.request(
        Method::PATCH,
        &format!("/api/v1/federation/providers/{provider_id}"),
        Some(json!({ "trust_level": "high" })),
    )
    .ok();
    assert_eq!(
        check_in(h, &reader, &session_id, "write_file")["rule"],
        "federation:trust_level"
    );
    let high = h.post(
        "/api/v1/federation/sessions/init",
        json!({ "token": key.sign(&claims) }),
    );
    let high_id = str_of(&high.expect_status(201..=201).body["session_id"]);
    assert_eq!(
        check_in(h, &reader, &high_id, "write_file")["allowed"],
        true
    );
    h.run(&[
        "federation",
        "providers",
        "update",
        &provider_id,
        "--trust-level",
        "low",
    ])
    .success();
    assert_eq!(
        check_in(h, &reader, &high_id, "write_file")["rule"],
        "federation:trust_level"
    );

    // Another agent cannot use the federated agent's session.
    let other = agent(h, "other", &[]);
    assert_eq!(
        check_in(h, &other, &session_id, "read_file")["rule"],
        "session:agent-mismatch"
    );

    // A token just past its expiry (within the clock-skew leeway) opens a session that has
    // already ended.
    let now = agenttrust::api::time::now();
    let late = key.sign(&json!({
        "iss": idp.issuer, "sub": "reader@idp", "aud": org_audience(h),
        "iat": now - 120, "nbf": now - 120, "exp": now - 30,
    }));
    let ended = h.post("/api/v1/federation/sessions/init", json!({ "token": late }));
    let ended_id = str_of(&ended.expect_status(201..=201).body["session_id"]);
    let expired = check_in(h, &reader, &ended_id, "read_file");
    assert_eq!(expired["allowed"], false);
    assert_eq!(expired["rule"], "federation:expired");

    // Disabling the provider ends its sessions at their next check; deleting it too.
    h.run(&["federation", "providers", "disable", &provider_id])
        .success();
    assert_eq!(
        check_in(h, &reader, &session_id, "read_file")["rule"],
        "federation:provider"
    );
    assert_eq!(verify(h, &key.sign(&claims))["error"], "provider disabled");
    h.run(&["federation", "providers", "enable", &provider_id])
        .success();
    assert_eq!(
        check_in(h, &reader, &session_id, "read_file")["allowed"],
        true
    );
    h.run(&["federation", "providers", "remove", &provider_id, "--yes"])
        .success();
    assert_eq!(
        check_in(h, &reader, &session_id, "read_file")["rule"],
        "federation:provider"
    );
    assert_eq!(verify(h, &key.sign(&claims))["error"], "unknown issuer");
    h.get(&format!(
        "/api/v1/federation/providers/{provider_id}/subjects"
    ))
    .expect_error(404);
    assert_eq!(
        h.sql_integers(&format!(
            "SELECT COUNT(*) FROM federation_subjects WHERE provider_id = '{provider_id}'"
        )),
        Some(vec![0]),
        "the provider's links went with it"
    );
    h.run(&["audit", "verify"]).success();
}

fn unknown_kids_cannot_make_the_gateway_hammer_the_issuer(h: &Harness) {
    let idp = Idp::start();
    let key = TestKey::es256("real");
    idp.publish(&key);
    register(h, &idp.issuer, "standard");
    let claims = idp.claims("anyone", &org_audience(h));
    assert_eq!(verify(h, &key.sign(&claims))["valid"], true);
    assert_eq!(idp.jwks_fetches(), 1);

    // 64 tokens with made-up key ids, 8 at a time: each is an unknown key, and the issuer is
    // asked at most once more (one refresh per interval, one fetch at a time).
    let tokens: Vec<String> = (0..64)
        .map(|n| {
            key.sign_with(
                Header {
                    kid: Some(format!("made-up-{n}")),
                    ..Header::new(Algorithm::ES256)
                },
                &claims,
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for chunk in tokens.chunks(8) {
            scope.spawn(move || {
                for token in chunk {
                    assert_eq!(verify(h, token)["error"], "unknown key");
                }
            });
        }
    });
    assert!(
        idp.jwks_fetches() <= 2,
        "{} JWKS fetches",
        idp.jwks_fetches()
    );
    // The known key keeps working from the cache.
    assert_eq!(verify(h, &key.sign(&claims))["valid"], true);
    assert!(idp.jwks_fetches() <= 2);
}

fn an_issuer_that_rotates_its_keys_is_followed(h: &Harness) {
    let idp = Idp::start();
    let old = TestKey::eddsa("2026-01");
    idp.publish(&old);
    register(h, &idp.issuer, "standard");
    let claims = idp.claims("anyone", &org_audience(h));
    assert_eq!(verify(h, &old.sign(&claims))["valid"], true);
    let new = TestKey::rsa("2026-02", Algorithm::PS256);
    idp.unpublish_all();
    idp.publish(&new);
    // A token under the new kid makes the gateway fetch the set again.
    assert_eq!(verify(h, &new.sign(&claims))["valid"], true);
    assert_eq!(idp.jwks_fetches(), 2);
}

fn registration_checks_the_issuer_and_changes_nothing_when_it_fails(h: &Harness) {
    let idp = Idp::start();
    let before = h.row_counts();
    let refuse = |body: Value, words: &str| {
        let reply = h.post("/api/v1/federation/providers", body.clone());
        reply.expect_error(400);
        assert!(reply.message().contains(words), "{body}: {}", reply.text);
    };
    // The issuer as its tokens name it, byte for byte: a trailing slash is another issuer.
    refuse(
        json!({ "issuer": format!("{}/", idp.issuer), "name": "x" }),
        &format!("is for issuer \"{}\"", idp.issuer),
    );
    idp.claim_issuer("https://impostor.example");
    refuse(
        json!({ "issuer": idp.issuer, "name": "x" }),
        "is for issuer \"https://impostor.example\"",
    );
    refuse(
        json!({ "issuer": "http://idp.example.com", "name": "x" }),
        "plain http",
    );
    refuse(
        json!({ "issuer": "ftp://idp.example.com", "name": "x" }),
        "not a valid URL",
    );
    refuse(
        json!({ "issuer": "https://idp.example.com?tenant=1", "name": "x" }),
        "query",
    );
    refuse(json!({ "issuer": "", "name": "x" }), "issuer is required");
    refuse(
        json!({ "issuer": "http://127.0.0.1:1", "name": "x" }),
        "cannot fetch",
    );
    refuse(
        json!({ "issuer": idp.issuer, "jwks_uri": "http://idp.example.com/jwks" }),
        "plain http",
    );
    refuse(
        json!({ "issuer": idp.issuer, "jwks_uri": format!("{}/jwks", idp.issuer), "trust_level": "ultra" }),
        "unknown trust level",
    );
    refuse(
        json!({ "issuer": idp.issuer, "jwks_uri": format!("{}/jwks", idp.issuer), "status": "paused" }),
        "unknown provider status",
    );
    assert_eq!(
        h.row_counts(),
        before,
        "a refused registration changed stored state"
    );
    assert_eq!(idp.jwks_fetches(), 0);

    // An explicit JWKS URL skips discovery; one behind a cross-host redirect, or too large,
    // is never trusted.
    let key = TestKey::es256("k");
    idp.publish(&key);
    let redirected = h.post(
        "/api/v1/federation/providers",
        json!({ "issuer": idp.issuer, "name": "redirected", "jwks_uri": idp.redirected_jwks_uri() }),
    );
    let provider_id = str_of(&redirected.expect_status(201..=201).body["provider"]["id"]);
    let token = key.sign(&idp.claims("x", &org_audience(h)));
    let answer = verify(h, &token);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("issuer keys unavailable"),
        "{answer}"
    );
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "the redirect to another host was followed"
    );
    h.request(
        Method::PATCH,
        &format!("/api/v1/federation/providers/{provider_id}"),
        Some(json!({ "jwks_uri": idp.huge_jwks_uri() })),
    )
    .ok();
    let answer = verify(h, &token);
    assert!(
        answer["error"].as_str().unwrap().contains("more than"),
        "{answer}"
    );

    // One provider per issuer.
    h.post(
        "/api/v1/federation/providers",
        json!({ "issuer": idp.issuer, "jwks_uri": format!("{}/jwks", idp.issuer) }),
    )
    .expect_error(409);
}

fn providers_are_admin_only_and_scoped_to_their_org(h: &Harness) {
    let idp = Idp::start();
    idp.publish(&TestKey::es256("k"));
    let (runtime_key, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    let body = json!({ "issuer": idp.issuer, "name": "idp" });
    h.request_as(
        &runtime_key,
        Method::POST,
        "/api/v1/federation/providers",
        Some(body.clone()),
    )
    .expect_error(403);
    let provider_id = str_of(&register(h, &idp.issuer, "high")["id"]);
    h.request_as(
        &runtime_key,
        Method::GET,
        "/api/v1/federation/providers",
        None,
    )
    .expect_error(403);
    let courier = agent(h, "courier", &["files:read"]);
    let token = str_of(&h.issue_token(&courier, &["files:read"], 300)["token"]);
    let as_agent = h.raw(
        Method::GET,
        "/api/v1/federation/providers",
        &[("Authorization", format!("Bearer {token}"))],
        None,
    );
    as_agent.expect_error(403);
    // An agent holding only its own token can neither mint ID tokens nor turn one into a
    // session: those take an org key.
    for (path, body) in [
        (
            "/api/v1/federation/tokens/issue",
            json!({ "agent_id": courier }),
        ),
        (
            "/api/v1/federation/tokens/verify",
            json!({ "token": "x.y.z" }),
        ),
        (
            "/api/v1/federation/sessions/init",
            json!({ "token": "x.y.z" }),
        ),
        (
            "/api/v1/federation/tokens/revoke",
            json!({ "token": "x.y.z" }),
        ),
    ] {
        let reply = h.raw(
            Method::POST,
            path,
            &[
                ("Authorization", format!("Bearer {token}")),
                ("Content-Type", "application/json".to_string()),
            ],
            Some(body.to_string().into_bytes()),
        );
        reply.expect_error(403);
    }

    // Another org sees none of it, and cannot link its subjects to our agents.
    let (_, other_key) = h.other_org("other");
    let path = format!("/api/v1/federation/providers/{provider_id}");
    let listed = h.request_as(
        &other_key,
        Method::GET,
        "/api/v1/federation/providers",
        None,
    );
    assert_eq!(listed.ok()["providers"], json!([]));
    h.request_as(&other_key, Method::GET, &path, None)
        .expect_error(404);
    h.request_as(&other_key, Method::DELETE, &path, None)
        .expect_error(404);
    h.request_as(
        &other_key,
        Method::PATCH,
        &path,
        Some(json!({ "status": "disabled" })),
    )
    .expect_error(404);
    let other_provider = h.request_as(
        &other_key,
        Method::POST,
        "/api/v1/federation/providers",
        Some(json!({ "issuer": idp.issuer, "name": "theirs" })),
    );
    let other_provider_id = str_of(&other_provider.expect_status(201..=201).body["provider"]["id"]);
    h.request_as(
        &other_key,
        Method::POST,
        &format!("/api/v1/federation/providers/{other_provider_id}/subjects"),
        Some(json!({ "subject": "x", "agent_id": courier })),
    )
    .expect_error(404);
    let ours = h.get(&path).ok()["provider"].clone();
    assert_eq!(ours["status"], "active");
    assert_eq!(ours["trust_level"], "high");

    // Listing through the CLI, and deleting asks first.
    let listed = h
        .run(&["federation", "providers", "list", "-q"])
        .success()
        .value()
        .to_string();
    assert_eq!(listed, provider_id);
    h.cli()
        .args(["federation", "providers", "delete", &provider_id])
        .write_stdin("")
        .assert()
        .code(2);
    h.get(&path).ok();
}

fn this_gateway_issues_verifies_and_revokes_id_tokens(h: &Harness) {
    let courier = agent(h, "courier", &["files:read", "files:write"]);
    let issued = h.run(&[
        "federation",
        "tokens",
        "issue",
        "--agent",
        "courier",
        "--audience",
        "https://rp.example",
        "--scopes",
        "files:read",
        "--ttl",
        "2h",
        "-o",
        "json",
    ]);
    issued.success();
    assert!(issued.stderr.contains("capped"), "{}", issued.stderr);
    let issued = issued.json();
    assert!(
        issued.get("id_token").is_none(),
        "exactly one of token/id_token: {issued}"
    );
    assert_eq!(issued["expires_in"], 3600);
    assert_eq!(issued["issuer"], h.url);
    let token = str_of(&issued["token"]);
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "ES256");
    assert!(jwks_kids(h).contains(&str_of(&header["kid"])));

    let verified = h
        .run(&["federation", "verify", &token, "-o", "json"])
        .success()
        .json();
    assert_eq!(verified["agent_id"], courier);
    assert_eq!(verified["trust_level"], "high");
    assert!(verified.get("provider_id").is_none());

    // A session from it is bounded by its scopes.
    let session = h.post(
        "/api/v1/federation/sessions/init",
        json!({ "token": token }),
    );
    let session = session.expect_status(201..=201).body.clone();
    assert_eq!(session["scope_ceiling"], json!(["files:read"]));
    assert!(session.get("provider_id").is_none());

    // Another org of this gateway does not accept it, and cannot revoke it.
    let (_, other_key) = h.other_org("other");
    let theirs = h.request_as(
        &other_key,
        Method::POST,
        "/api/v1/federation/tokens/verify",
        Some(json!({ "token": token })),
    );
    assert_eq!(theirs.ok()["error"], "unknown issuer");
    h.request_as(
        &other_key,
        Method::POST,
        "/api/v1/federation/tokens/revoke",
        Some(json!({ "token": token })),
    )
    .expect_error(400);
    assert_eq!(verify(h, &token)["valid"], true);

    // Refused issues store nothing.
    let before = h.row_counts();
    h.post(
        "/api/v1/federation/tokens/issue",
        json!({ "agent_id": courier, "scopes": ["deploy:prod"] }),
    )
    .expect_error(400);
    h.post(
        "/api/v1/federation/tokens/issue",
        json!({ "agent_id": courier, "ttl": 0 }),
    )
    .expect_error(400);
    h.post(
        "/api/v1/federation/tokens/issue",
        json!({ "agent_id": "nobody" }),
    )
    .expect_error(404);
    h.post("/api/v1/federation/tokens/issue", json!({}))
        .expect_error(400);
    assert_eq!(h.row_counts(), before);

    let session_id = str_of(&session["session_id"]);
    assert_eq!(
        check_in(h, &courier, &session_id, "read_file")["allowed"],
        true
    );
    let revoked = h
        .run(&["federation", "tokens", "revoke", &token, "-o", "json"])
        .success()
        .json();
    assert_eq!(revoked["revoked"], true);
    let refused = h.run(&["federation", "verify", &token]);
    refused.code(1);
    assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
    // The session opened with it ends with it.
    let ended = check_in(h, &courier, &session_id, "read_file");
    assert_eq!(ended["allowed"], false);
    assert_eq!(ended["rule"], "federation:revoked");
    h.post(
        "/api/v1/federation/sessions/init",
        json!({ "token": token }),
    )
    .expect_error(401);
    assert_eq!(h.audit_count("federation.token.issued"), 1);
    assert_eq!(h.audit_count("federation.token.revoked"), 1);

    // A revoked agent gets no token.
    h.post(&format!("/api/v1/agents/{courier}/revoke"), json!({}))
        .ok();
    h.post(
        "/api/v1/federation/tokens/issue",
        json!({ "agent_id": courier }),
    )
    .expect_error(409);
    h.run(&["audit", "verify"]).success();
}

fn signing_keys_rotate_with_overlap(h: &Harness) {
    let secret_file = h.scratch.path().join("signing.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let secret_file = secret_file.display().to_string();
    let operator = |args: &[&str]| {
        let mut all = vec!["server"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--database-url",
            &h.database_url,
            "--signing-key-secret-file",
            &secret_file,
        ]);
        h.run_bare(&all)
    };
    let listed = operator(&["signing-key", "list", "-o", "json"])
        .success()
        .json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed["keys"][0]["state"], "signing");
    assert_eq!(listed["keys"][0]["sealed"], true);
    let first = str_of(&listed["keys"][0]["id"]);

    let courier = agent(h, "courier", &[]);
    let issue = || {
        str_of(
            &h.post(
                "/api/v1/federation/tokens/issue",
                json!({ "agent_id": courier }),
            )
            .ok()["token"],
        )
    };
    let old_token = issue();
    assert_eq!(jwt_header(&old_token)["kid"], first);

    // A rotation under another secret is refused: its key could not be opened by the gateway.
    let wrong = h.scratch.path().join("wrong.secret");
    std::fs::write(&wrong, "BBECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let refused = h.run_bare(&[
        "server",
        "signing-key",
        "rotate",
        "--database-url",
        &h.database_url,
        "--signing-key-secret-file",
        &wrong.display().to_string(),
    ]);
    refused.code(1);
    assert!(
        refused.stderr.contains("key-encryption key"),
        "{}",
        refused.stderr
    );

    let second = operator(&["signing-key", "rotate", "--overlap", "1h", "-q"])
        .success()
        .value()
        .to_string();
    assert_ne!(second, first);
    let kids = jwks_kids(h);
    assert!(kids.contains(&first) && kids.contains(&second), "{kids:?}");
    let new_token = issue();
    assert_eq!(jwt_header(&new_token)["kid"], second);
    assert_eq!(
        verify(h, &old_token)["valid"],
        true,
        "the old key is published until its tokens expire"
    );

    // Rotating with no overlap drops the retired key at once: its tokens stop verifying.
    let third = operator(&["signing-key", "rotate", "--overlap", "0s", "-q"])
        .success()
        .value()
        .to_string();
    let kids = jwks_kids(h);
    assert!(!kids.contains(&second), "{kids:?}");
    assert!(kids.contains(&first) && kids.contains(&third), "{kids:?}");
    assert_eq!(verify(h, &new_token)["error"], "unknown key");
    assert_eq!(verify(h, &old_token)["valid"], true);
    let listed = operator(&["signing-key", "list", "-o", "json"])
        .success()
        .json();
    let state_of = |id: &str| {
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["id"] == id)
            .map(|key| str_of(&key["state"]))
            .unwrap_or_else(|| panic!("no key {id}: {listed}"))
    };
    assert_eq!(state_of(&third), "signing");
    assert_eq!(state_of(&second), "expired");
    assert_eq!(state_of(&first), "published");
}

/// A federated agent keeps writing while an admin lowers its provider's trust, then disables
/// the provider: whatever it was told before, no write allowed in its session is recorded after
/// the trust was lowered, and nothing at all after the provider was disabled (in the audit
/// order).
fn no_allow_follows_a_provider_change_in_the_audit_order(h: &Harness) {
    let idp = Idp::start();
    let key = TestKey::es256("k");
    idp.publish(&key);
    let provider_id = str_of(&register(h, &idp.issuer, "standard")["id"]);
    let racer = agent(h, "provider-racer", &[]);
    link(h, &provider_id, "racer@idp", &racer);
    let token = key.sign(&idp.claims("racer@idp", &org_audience(h)));
    let sessions: Vec<String> = (0..4)
        .map(|_| {
            let reply = h.post(
                "/api/v1/federation/sessions/init",
                json!({ "token": token }),
            );
            str_of(&reply.expect_status(201..=201).body["session_id"])
        })
        .collect();
    let path = format!("/api/v1/federation/providers/{provider_id}");
    std::thread::scope(|scope| {
        for session_id in &sessions {
            let racer = &racer;
            scope.spawn(move || {
                for call in 0..20 {
                    let tool = if call % 2 == 0 {
                        "write_file"
                    } else {
                        "read_file"
                    };
                    check_in(h, racer, session_id, tool);
                }
            });
        }
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            h.request(Method::PATCH, &path, Some(json!({ "trust_level": "low" })))
                .ok();
            std::thread::sleep(Duration::from_millis(20));
            h.request(Method::PATCH, &path, Some(json!({ "status": "disabled" })))
                .ok();
        });
    });
    let events = h
        .block_on(agenttrust::store::audit::list(&h.store, &h.org_id))
        .unwrap();
    let changes: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| event.kind == "federation.provider.updated")
        .map(|(index, _)| index)
        .collect();
    assert_eq!(changes.len(), 2);
    let allowed_after = |from: usize, effect: Option<&str>| {
        events[from..]
            .iter()
            .filter(|event| event.kind == "check.decided")
            .filter(|event| {
                let detail: Value = serde_json::from_str(&event.detail).unwrap();
                detail["agent_id"] == racer.as_str()
                    && detail["allowed"] == true
                    && effect.is_none_or(|effect| detail["effect"] == effect)
            })
            .count()
    };
    assert_eq!(
        allowed_after(changes[0], Some("mutating")),
        0,
        "writes allowed after the trust was lowered"
    );
    assert_eq!(
        allowed_after(changes[1], None),
        0,
        "calls allowed after the provider was disabled"
    );
    h.run(&["audit", "verify"]).success();
}

/// An issuer whose JWKS does not answer in time is given up on (the gateway's fetch timeout,
/// 5 s), and the token is refused, not left hanging.
fn a_slow_issuer_is_given_up_on(h: &Harness) {
    let idp = Idp::start();
    let key = TestKey::es256("k");
    let reply = h.post(
        "/api/v1/federation/providers",
        json!({ "issuer": idp.issuer, "name": "slow", "jwks_uri": idp.slow_jwks_uri() }),
    );
    reply.expect_status(201..=201);
    let answer = verify(h, &key.sign(&idp.claims("x", &org_audience(h))));
    let error = answer["error"].as_str().unwrap();
    assert!(error.starts_with("issuer keys unavailable"), "{answer}");
    assert!(error.contains("timed out"), "{answer}");
}
