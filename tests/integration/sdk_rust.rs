//! The same quick start, and the elevation loop (`AgentTrustGuard` → `ApprovalsAPI` → retry, with
//! `SessionsAPI`), and `Delegations` (its `create` reads the `{"delegation": …}` wrapper, its `get`
//! a bare object), `Federation` (issue, verify, providers, sessions, revoke), `Streaming`
//! (SIEM destinations, test, delivery log, subscribe) and `Mcp` (register, get, list, call a
//! tool through the proxy, remove), through the official Rust crate `agenttrustid` 0.5.0, whose
//! serde parsers are strict (required fields, no nulls, no duplicate aliases).

use agenttrustid::SendTaskRequest;
use agenttrustid::{
    ActionCheckRequest, AgentTrustClient, AgentTrustError, AgentTrustGuard, CreateAgentRequest,
    CreateDelegationRequest, IntrospectTokenRequest, IssueFederatedIDTokenRequest,
    IssueTokenRequest, RegisterFederationProviderRequest, RegisterMCPServerRequest, StreamFilter,
    TelemetryEvent, UpdateSIEMDestinationRequest, VerifyFederatedTokenRequest,
};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    quickstart_with_the_rust_sdk,
    rust_sdk_errors_are_typed,
    elevation_loop_with_the_rust_sdk,
    sessions_with_the_rust_sdk,
    delegations_with_the_rust_sdk,
    federation_with_the_rust_sdk,
    streaming_with_the_rust_sdk,
    mcp_with_the_rust_sdk,
    agent_credentials_with_the_rust_sdk,
    cards_and_a2a_with_the_rust_sdk,
);

fn client(h: &Harness, key: &str) -> AgentTrustClient {
    AgentTrustClient::builder()
        .base_url(&h.url)
        .api_key(key)
        .build()
        .expect("client")
}

fn quickstart_with_the_rust_sdk(h: &Harness) {
    // The blocking client runs on this plain test thread, outside any tokio runtime.
    let client = client(h, &h.admin_key);

    let health = client.health().expect("health");
    assert_eq!(health.status, "healthy");

    let agent = client
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-quickstart".to_string(),
            framework: "custom".to_string(),
            capabilities: vec!["web:search".to_string()],
            ..Default::default()
        })
        .expect("agents.create");
    assert_eq!(agent.name, "rust-quickstart");
    assert_eq!(agent.status, "active");
    assert_eq!(agent.org_id, h.org_id);
    // The SDK generated a key pair and registered the public half.
    assert!(
        agent.public_key.contains("BEGIN PUBLIC KEY"),
        "{}",
        agent.public_key
    );
    assert!(agent.private_key.is_some());

    let listed = client.agents().list(None).expect("agents.list");
    assert!(listed.iter().any(|listed| listed.id == agent.id));
    let fetched = client.agents().get(&agent.id).expect("agents.get");
    assert_eq!(fetched.id, agent.id);
    assert_eq!(fetched.framework, "custom");
    assert_eq!(fetched.public_key, agent.public_key);

    let token = client
        .tokens()
        .issue(&IssueTokenRequest {
            agent_id: agent.id.clone(),
            scope: vec!["web:search".to_string()],
            audience: vec!["mcp://search".to_string()],
            ttl: 120,
        })
        .expect("tokens.issue");
    assert!(token.token.starts_with("at_"));
    assert_eq!(token.scopes, vec!["web:search".to_string()]);
    let issued_at = agenttrust::api::time::parse(token.issued_at.as_deref().unwrap()).unwrap();
    let expires_at = agenttrust::api::time::parse(token.expires_at.as_deref().unwrap()).unwrap();
    assert_eq!(expires_at - issued_at, 120);

    let introspection = client
        .tokens()
        .introspect(&IntrospectTokenRequest {
            token: token.token.clone(),
            target: Some("mcp://search".to_string()),
            required_scopes: vec!["web:search".to_string()],
        })
        .expect("tokens.introspect");
    assert!(introspection.active);
    assert_eq!(introspection.agent_id.as_deref(), Some(agent.id.as_str()));
    assert_eq!(introspection.org_id.as_deref(), Some(h.org_id.as_str()));
    assert_eq!(introspection.guard_tier.as_deref(), Some("fast"));

    let allowed = client
        .actions()
        .check(&ActionCheckRequest {
            agent_id: agent.id.clone(),
            action: "tool_call".to_string(),
            tool_name: "web_search".to_string(),
            tool_input_summary: "latest AI research papers".to_string(),
            session_id: "sess-rust".to_string(),
            action_effect: None,
        })
        .expect("actions.check");
    assert!(allowed.allowed, "{allowed:?}");
    assert!(allowed.check_id.is_some_and(|id| !id.is_empty()));
    assert_eq!(allowed.elevation_required, Some(false));

    let denied = client
        .actions()
        .check(&ActionCheckRequest {
            agent_id: agent.id.clone(),
            action: "tool_call".to_string(),
            tool_name: "delete_all".to_string(),
            tool_input_summary: "delete everything".to_string(),
            session_id: "sess-rust".to_string(),
            action_effect: None,
        })
        .expect("actions.check");
    assert!(!denied.allowed, "{denied:?}");
    assert!(denied.reason.is_some_and(|reason| !reason.is_empty()));

    let explicit = client
        .actions()
        .check(&ActionCheckRequest {
            agent_id: agent.id.clone(),
            action: "tool_call".to_string(),
            tool_name: "save_file".to_string(),
            tool_input_summary: String::new(),
            session_id: String::new(),
            action_effect: Some("write".to_string()),
        })
        .expect("actions.check with write");
    assert!(explicit.allowed);
    assert_eq!(explicit.confidence, Some(1.0));

    client
        .telemetry()
        .report(
            &agent.id,
            "sess-rust",
            &[TelemetryEvent {
                event_type: "tool_end".to_string(),
                tool_name: "web_search".to_string(),
                duration_ms: 1200,
                success: true,
                error_type: None,
                timestamp: "2026-03-01T10:00:00.123456789+00:00".to_string(),
            }],
        )
        .expect("telemetry.report");
    assert_eq!(h.row_counts()["telemetry_events"], 1);

    client
        .tokens()
        .revoke(&token.token, "done")
        .expect("tokens.revoke");
    let revoked = client
        .tokens()
        .introspect(&IntrospectTokenRequest {
            token: token.token.clone(),
            target: None,
            required_scopes: vec![],
        })
        .expect("introspect a revoked token");
    assert!(!revoked.active);
    assert!(revoked.reasoning.is_some_and(|reason| !reason.is_empty()));

    client
        .agents()
        .revoke(&agent.id, "quickstart done")
        .expect("agents.revoke");
    assert_eq!(client.agents().get(&agent.id).unwrap().status, "revoked");
}

fn rust_sdk_errors_are_typed(h: &Harness) {
    let client = client(h, &h.admin_key);
    match client.agents().get(&uuid::Uuid::new_v4().to_string()) {
        Err(AgentTrustError::NotFound { message, status }) => {
            assert_eq!(status, 404);
            assert!(!message.is_empty());
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let agent = client
        .agents()
        .create(&CreateAgentRequest {
            name: "typed-errors".to_string(),
            capabilities: vec!["web:search".to_string()],
            ..Default::default()
        })
        .unwrap();
    match client.tokens().issue(&IssueTokenRequest {
        agent_id: agent.id.clone(),
        scope: vec!["files:write".to_string()],
        audience: vec![],
        ttl: 60,
    }) {
        Err(AgentTrustError::Validation { message, .. }) => {
            assert!(message.contains("files:write"), "{message}");
        }
        other => panic!("expected Validation, got {other:?}"),
    }
    let wrong = self::client(h, "sk_live_wrong");
    match wrong.agents().list(None) {
        Err(AgentTrustError::Authentication { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected Authentication, got {other:?}"),
    }
}

fn elevation_loop_with_the_rust_sdk(h: &Harness) {
    let operator = client(h, &h.admin_key);
    let agent = operator
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-elevation".to_string(),
            ..Default::default()
        })
        .expect("agents.create");
    let session_id = format!("rust-guard-{}", uuid::Uuid::new_v4());
    let guard = AgentTrustGuard::builder(client(h, &h.admin_key), &agent.id)
        .session_id(&session_id)
        .build();
    guard
        .check("web_search", "rust news")
        .expect("a read passes");

    let approval_id = match guard.check("delete_all", "delete everything") {
        Err(AgentTrustError::ElevationRequired { approval_id, .. }) => approval_id,
        other => panic!("expected ElevationRequired, got {other:?}"),
    };
    assert!(!approval_id.is_empty());

    let pending = operator
        .approvals()
        .get(&approval_id)
        .expect("approvals.get");
    assert_eq!(pending.id, approval_id);
    assert_eq!(pending.status, "pending");
    assert_eq!(pending.session_id, session_id);
    assert_eq!(pending.agent_id, agent.id);
    assert_eq!(pending.org_id, h.org_id);
    assert_eq!(pending.action_name, "delete_all");
    assert_eq!(pending.action_effect, "destructive");
    assert!(pending.expires_at.is_some() && pending.created_at.is_some());
    assert_eq!(pending.decided_by, None);

    operator
        .approvals()
        .approve(&approval_id, "alice@example.com")
        .expect("approvals.approve");
    let approved = operator.approvals().get(&approval_id).unwrap();
    assert_eq!(approved.status, "approved");
    assert_eq!(approved.decided_by.as_deref(), Some("alice@example.com"));

    guard
        .check("delete_all", "delete everything")
        .expect("allowed once approved, in the same session");
    let session = operator
        .sessions()
        .get_session(&session_id)
        .expect("sessions.get_session");
    assert_eq!(session.mode, "elevated");
    assert_eq!(session.source, "sdk");
    assert_eq!(session.total_calls, 3);
    assert_eq!(session.denied_calls, 0);

    // Deciding twice: a 409 the SDK reports as an API error.
    match operator.approvals().deny(&approval_id, "mallory") {
        Err(AgentTrustError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 409);
            assert!(message.contains("approved"), "{message}");
        }
        other => panic!("expected a 409, got {other:?}"),
    }

    // A denial: the retry is ActionDenied, naming the decider.
    let approval_id = match guard.check("drop_table", "DROP TABLE users") {
        Err(AgentTrustError::ElevationRequired { approval_id, .. }) => approval_id,
        other => panic!("expected ElevationRequired, got {other:?}"),
    };
    operator
        .approvals()
        .deny(&approval_id, "bob@example.com")
        .expect("approvals.deny");
    assert_eq!(
        operator.approvals().get(&approval_id).unwrap().status,
        "denied"
    );
    match guard.check("drop_table", "DROP TABLE users") {
        Err(AgentTrustError::ActionDenied { message, .. }) => {
            assert!(message.contains("bob@example.com"), "{message}");
        }
        other => panic!("expected ActionDenied, got {other:?}"),
    }

    let unknown = uuid::Uuid::new_v4().to_string();
    assert!(matches!(
        operator.approvals().get(&unknown),
        Err(AgentTrustError::NotFound { .. })
    ));
    assert!(matches!(
        operator.approvals().approve(&unknown, "alice"),
        Err(AgentTrustError::NotFound { .. })
    ));
}

fn sessions_with_the_rust_sdk(h: &Harness) {
    let client = client(h, &h.admin_key);
    let agent = client
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-sessions".to_string(),
            ..Default::default()
        })
        .expect("agents.create");
    // An MCP session names a registered server.
    let server = client
        .mcp()
        .register_server(&RegisterMCPServerRequest {
            name: "github".to_string(),
            url: "http://127.0.0.1:9/mcp".to_string(),
            capabilities: None,
        })
        .expect("mcp.register_server");
    assert!(matches!(
        client.sessions().init_session(&agent.id, "github"),
        Err(AgentTrustError::NotFound { .. })
    ));
    let session = client
        .sessions()
        .init_session(&agent.id, &server.id)
        .expect("sessions.init_session");
    assert!(!session.session_id.is_empty());
    assert_eq!(session.agent_id, agent.id);
    assert_eq!(session.org_id, h.org_id);
    assert_eq!(session.source, "mcp");
    assert_eq!(session.server_id, server.id);
    assert_eq!(session.mode, "standard");
    assert_eq!(session.total_calls, 0);
    assert!(session.created_at.is_some());

    client
        .actions()
        .check(&ActionCheckRequest {
            agent_id: agent.id.clone(),
            action: "tool_call".to_string(),
            tool_name: "web_search".to_string(),
            tool_input_summary: String::new(),
            session_id: session.session_id.clone(),
            action_effect: Some("read".to_string()),
        })
        .expect("check");
    let fetched = client
        .sessions()
        .get_session(&session.session_id)
        .expect("sessions.get_session");
    assert_eq!(fetched.session_id, session.session_id);
    assert_eq!((fetched.total_calls, fetched.read_calls), (1, 1));

    assert!(matches!(
        client
            .sessions()
            .get_session(&uuid::Uuid::new_v4().to_string()),
        Err(AgentTrustError::NotFound { .. })
    ));
    assert!(matches!(
        client
            .sessions()
            .init_session(&uuid::Uuid::new_v4().to_string(), "github"),
        Err(AgentTrustError::NotFound { .. })
    ));
}

fn delegations_with_the_rust_sdk(h: &Harness) {
    let client = client(h, &h.admin_key);
    let create_agent = |name: &str, capabilities: &[&str]| {
        client
            .agents()
            .create(&CreateAgentRequest {
                name: name.to_string(),
                capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            })
            .expect("agents.create")
    };
    let a = create_agent("rust-delegator", &["files:read", "web:search"]);
    let b = create_agent("rust-delegate", &[]);
    let c = create_agent("rust-sub-delegate", &[]);

    let restrictions = serde_json::json!({"paths": ["/tmp/*"], "max_file_size": 1024});
    let ab = client
        .delegations()
        .create(&CreateDelegationRequest {
            from_agent_id: a.id.clone(),
            to_agent_id: b.id.clone(),
            scope: vec!["files:read".to_string()],
            ttl_seconds: Some(600),
            restrictions: Some(restrictions.clone()),
            parent_delegation_id: None,
        })
        .expect("delegations.create (wrapped)");
    assert!(!ab.id.is_empty());
    assert_eq!(
        (ab.from_agent_id.as_str(), ab.to_agent_id.as_str()),
        (a.id.as_str(), b.id.as_str())
    );
    assert_eq!(ab.org_id.as_deref(), Some(h.org_id.as_str()));
    assert_eq!(ab.scope, vec!["files:read".to_string()]);
    assert_eq!(ab.restrictions, Some(restrictions));
    assert_eq!(ab.delegation_chain, Some(vec![ab.id.clone()]));
    assert_eq!(ab.revoked_at, None);
    let created_at = agenttrust::api::time::parse(&ab.created_at).expect("created_at");
    let expires_at = agenttrust::api::time::parse(&ab.expires_at).expect("expires_at");
    assert_eq!(expires_at - created_at, 600);

    // No ttl: the SDK leaves it out and the gateway's default hour applies.
    let bc = client
        .delegations()
        .create(&CreateDelegationRequest {
            from_agent_id: b.id.clone(),
            to_agent_id: c.id.clone(),
            scope: vec!["files:read".to_string()],
            ttl_seconds: Some(300),
            restrictions: None,
            parent_delegation_id: Some(ab.id.clone()),
        })
        .expect("re-delegation");
    assert_eq!(
        bc.delegation_chain,
        Some(vec![ab.id.clone(), bc.id.clone()])
    );

    let fetched = client
        .delegations()
        .get(&bc.id)
        .expect("delegations.get (bare)");
    assert_eq!(fetched.id, bc.id);
    assert_eq!(fetched.from_agent_id, b.id);
    assert_eq!(fetched.delegation_chain, bc.delegation_chain);
    assert_eq!(fetched.expires_at, bc.expires_at);
    let listed = client.delegations().list().expect("delegations.list");
    assert!(listed.iter().any(|d| d.id == ab.id) && listed.iter().any(|d| d.id == bc.id));

    let session = client
        .delegations()
        .init_session(&bc.id)
        .expect("delegations.init_session");
    assert_eq!(session.agent_id, c.id);
    assert_eq!(session.source, "a2a");
    assert_eq!(session.scope_ceiling, vec!["files:read".to_string()]);
    let read = |path: &str| {
        client
            .actions()
            .check(&ActionCheckRequest {
                agent_id: c.id.clone(),
                action: "tool_call".to_string(),
                tool_name: "read_file".to_string(),
                tool_input_summary: path.to_string(),
                session_id: session.session_id.clone(),
                action_effect: None,
            })
            .expect("actions.check")
    };
    assert!(read("/tmp/y").allowed);
    assert!(!read("/etc/passwd").allowed);

    client
        .delegations()
        .revoke(&ab.id)
        .expect("delegations.revoke");
    assert!(!read("/tmp/y").allowed);
    let revoked = client.delegations().get(&bc.id).expect("get a revoked one");
    assert!(revoked.revoked_at.is_some(), "{revoked:?}");
    match client.delegations().init_session(&bc.id) {
        Err(AgentTrustError::Api { status, .. }) => assert_eq!(status, 409),
        other => panic!("expected a 409, got {other:?}"),
    }

    match client.delegations().create(&CreateDelegationRequest {
        from_agent_id: a.id.clone(),
        to_agent_id: b.id.clone(),
        scope: vec!["files:write".to_string()],
        ttl_seconds: None,
        restrictions: None,
        parent_delegation_id: None,
    }) {
        Err(AgentTrustError::Validation { message, .. }) => {
            assert!(message.starts_with("scope escalation"), "{message}");
        }
        other => panic!("expected Validation, got {other:?}"),
    }
    assert!(matches!(
        client.delegations().get(&uuid::Uuid::new_v4().to_string()),
        Err(AgentTrustError::NotFound { .. })
    ));
}

/// The gateway federates with itself: the SDK issues an ID token for an agent (its parser
/// refuses an answer with both `token` and `id_token`), verifies it as the gateway's own,
/// registers the gateway's issuer as a provider (discovery), opens a federation session through
/// it, revokes the token (which the provider path then refuses too) and deletes the provider.
fn federation_with_the_rust_sdk(h: &Harness) {
    let client = client(h, &h.admin_key);
    let federation = client.federation();
    let agent = client
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-federated".to_string(),
            capabilities: vec!["files:read".to_string()],
            ..Default::default()
        })
        .expect("agents.create");
    let issued = federation
        .issue_token(
            &agent.id,
            &IssueFederatedIDTokenRequest {
                audience: Some(format!("{}/orgs/{}", h.url, h.org_id)),
                scopes: vec!["files:read".to_string()],
                ttl: Some(120),
                nonce: None,
            },
        )
        .expect("federation.issue_token");
    assert_eq!(issued.id_token.split('.').count(), 3, "{}", issued.id_token);
    assert_eq!(issued.expires_in, 120);
    let request = VerifyFederatedTokenRequest {
        token: issued.id_token.clone(),
        issuer_hint: None,
    };
    let own = federation.introspect_token(&request).expect("introspect");
    assert!(own.valid, "{own:?}");
    assert_eq!(own.agent_id.as_deref(), Some(agent.id.as_str()));
    assert_eq!(own.issuer.as_deref(), Some(h.url.as_str()));

    let provider = federation
        .register_provider(&RegisterFederationProviderRequest {
            issuer: h.url.clone(),
            name: "itself".to_string(),
            trust_level: Some("standard".to_string()),
        })
        .expect("federation.register_provider");
    assert_eq!(provider.issuer, h.url);
    assert_eq!(provider.trust_level, "standard");
    assert_eq!(provider.status, "active");
    assert_eq!(
        provider.jwks_uri,
        format!("{}/.well-known/jwks.json", h.url)
    );
    let listed = federation.list_providers().expect("list_providers");
    assert!(listed.iter().any(|listed| listed.id == provider.id));

    h.post(
        &format!("/api/v1/federation/providers/{}/subjects", provider.id),
        serde_json::json!({ "subject": agent.id, "agent_id": agent.id }),
    )
    .expect_status(201..=201);
    let session = federation.init_session(&request).expect("init_session");
    assert_eq!(session.source, "federation");
    assert_eq!(session.agent_id, agent.id);
    assert_eq!(session.org_id, h.org_id);

    match federation.init_session(&VerifyFederatedTokenRequest {
        token: "not-a-jwt".to_string(),
        issuer_hint: None,
    }) {
        Err(AgentTrustError::Authentication { .. }) => {}
        other => panic!("expected an authentication error, got {other:?}"),
    }

    federation
        .revoke_token(&issued.id_token)
        .expect("federation.revoke_token");
    let revoked = federation.introspect_token(&request).expect("introspect");
    assert!(!revoked.valid);
    assert_eq!(revoked.error.as_deref(), Some("revoked"));

    federation
        .delete_provider(&provider.id)
        .expect("federation.delete_provider");
    let listed = federation.list_providers().expect("list_providers");
    assert!(listed.iter().all(|listed| listed.id != provider.id));
}

fn streaming_with_the_rust_sdk(h: &Harness) {
    use crate::streaming::{HEC_TOKEN, Product, Receiver};
    let receiver = Receiver::start(Product::Splunk);
    let client = client(h, &h.admin_key);
    let streaming = client.streaming();
    let created = streaming
        .create(&agenttrustid::CreateSIEMDestinationRequest {
            name: "rust-splunk".to_string(),
            destination_type: "splunk".to_string(),
            endpoint_url: receiver.url.clone(),
            auth_token: Some(HEC_TOKEN.to_string()),
            batch_size: Some(100),
            flush_interval_seconds: Some(60),
            filter_event_types: None,
        })
        .expect("streaming.create");
    assert_eq!(created.name, "rust-splunk");
    assert_eq!(created.destination_type, "splunk");
    assert_eq!(created.org_id.as_deref(), Some(h.org_id.as_str()));
    assert_eq!(created.auth_token.as_deref(), Some("********"));
    assert!(created.is_active);
    assert_eq!(created.batch_size, 100);

    let got = streaming.get(&created.id).expect("streaming.get");
    assert_eq!(got.id, created.id);
    let listed = streaming.list().expect("streaming.list");
    assert_eq!(listed.len(), 1);
    let updated = streaming
        .update(
            &created.id,
            &UpdateSIEMDestinationRequest {
                flush_interval_seconds: Some(30),
                is_active: Some(false),
                ..Default::default()
            },
        )
        .expect("streaming.update");
    assert_eq!(updated.flush_interval_seconds, 30);
    assert!(!updated.is_active);
    assert_eq!(updated.batch_size, 100);

    streaming.test(&created.id).expect("streaming.test");
    let request = receiver.requests().pop().expect("the test event arrived");
    assert_eq!(
        request.header("authorization"),
        format!("Splunk {HEC_TOKEN}")
    );
    assert_eq!(request.events[0]["kind"], "siem.test");

    let records = streaming.delivery_log(&created.id).expect("delivery_log");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, "success");
    assert_eq!(records[0].status_code, Some(200));
    assert!(chrono::DateTime::parse_from_rfc3339(&records[0].delivered_at).is_ok());
    let mut seen = Vec::new();
    streaming
        .subscribe(
            &StreamFilter {
                destination_id: created.id.clone(),
                poll_interval: Some(std::time::Duration::from_millis(10)),
                max_polls: Some(2),
            },
            |record| {
                seen.push(record.id.clone());
                true
            },
        )
        .expect("subscribe");
    assert_eq!(seen, vec![records[0].id.clone()], "each record once");

    streaming.delete(&created.id).expect("streaming.delete");
    assert!(matches!(
        streaming.get(&created.id),
        Err(AgentTrustError::NotFound { .. })
    ));
}

fn mcp_with_the_rust_sdk(h: &Harness) {
    let upstream = crate::mcp::Upstream::start();
    let client = client(h, &h.admin_key);
    let agent = client
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-mcp".to_string(),
            ..Default::default()
        })
        .expect("agents.create");
    let server = client
        .mcp()
        .register_server(&RegisterMCPServerRequest {
            name: "files".to_string(),
            url: upstream.url.clone(),
            capabilities: Some(vec!["files:read".to_string()]),
        })
        .expect("mcp.register_server");
    assert_eq!(server.name, "files");
    assert_eq!(server.url, upstream.url);
    assert_eq!(server.capabilities, Some(vec!["files:read".to_string()]));
    assert_eq!(server.org_id.as_deref(), Some(h.org_id.as_str()));
    assert!(server.created_at.is_some());
    let got = client.mcp().get_server(&server.id).expect("mcp.get_server");
    assert_eq!(got.id, server.id);
    let listed = client.mcp().list_servers().expect("mcp.list_servers");
    assert_eq!(listed.len(), 1);

    let result = client
        .mcp()
        .call_tool(
            &server.id,
            &agent.id,
            "tools/call",
            Some(serde_json::json!({"name": "read_file", "arguments": {"path": "/a"}})),
            None,
        )
        .expect("mcp.call_tool read_file");
    assert_eq!(result["content"][0]["text"], "ran read_file", "{result}");

    // A denial is a typed authorization error carrying the rule; the upstream never sees it.
    h.put_policy(
        serde_json::json!({"rules": [{"id": "no-shell", "tools": ["run_shell"],
                                               "decision": "deny"}]}),
    );
    match client.mcp().call_tool(
        &server.id,
        &agent.id,
        "tools/call",
        Some(serde_json::json!({"name": "run_shell"})),
        None,
    ) {
        Err(AgentTrustError::Authorization { message, .. }) => {
            assert!(message.contains("no-shell"), "{message}");
        }
        other => panic!("expected an authorization error, got {other:?}"),
    }
    assert_eq!(upstream.tool_calls(), ["read_file"]);

    client
        .mcp()
        .remove_server(&server.id)
        .expect("mcp.remove_server");
    assert!(matches!(
        client.mcp().get_server(&server.id),
        Err(AgentTrustError::NotFound { .. })
    ));
}

/// `with_agent_credentials` (issue 15): every check goes challenge → WIMSE token with a proof of
/// possession → check with the token and a fresh DPoP proof, and keeps working when the org
/// requires proof of possession and sender-constrained tokens; a client without the agent's
/// key is refused then.
fn agent_credentials_with_the_rust_sdk(h: &Harness) {
    use agenttrustid::AgentCredentials;
    use agenttrustid::keys::{InMemoryKeyStore, KeyStore};
    use agenttrustid::models::{IssueWIMSETokenRequest, VerifyWIMSETokenRequest};

    let plain = client(h, &h.admin_key);
    let agent = plain
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-credentials".to_string(),
            capabilities: vec!["files:read".to_string()],
            ..Default::default()
        })
        .expect("agents.create");
    let other = plain
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-credentials-other".to_string(),
            ..Default::default()
        })
        .expect("agents.create");
    let private_key = agent.private_key.clone().expect("a locally generated key");
    let mut key_store = InMemoryKeyStore::new();
    key_store.store(&agent.id, &private_key).expect("key store");

    // The SDK's own PoP issuance and the verify call.
    let issued = plain
        .wimse()
        .issue_token_with_proof(
            &IssueWIMSETokenRequest {
                agent_id: agent.id.clone(),
                ..Default::default()
            },
            &key_store,
        )
        .expect("wimse.issue_token_with_proof");
    assert_eq!(issued.trust_domain, "agenttrust.id");
    let verified = plain
        .wimse()
        .verify_wimse(&VerifyWIMSETokenRequest {
            token: issued.token.clone(),
            trust_domain_filter: None,
        })
        .expect("wimse.verify");
    assert!(verified.valid);
    assert_eq!(verified.agent_id.as_deref(), Some(agent.id.as_str()));

    h.request(
        reqwest::Method::PUT,
        "/api/v1/orgs/security-settings",
        Some(serde_json::json!({
            "require_proof_of_possession": true,
            "require_sender_constrained_tokens": true,
        })),
    )
    .expect_status(200..=200);

    let credentials = AgentCredentials::new(&plain, key_store, &agent.id, &agent.public_key);
    let bound = client(h, &h.admin_key).with_agent_credentials(credentials);
    let request = ActionCheckRequest {
        agent_id: agent.id.clone(),
        tool_name: "read_file".to_string(),
        action_effect: Some("read".to_string()),
        ..Default::default()
    };
    for _ in 0..3 {
        // Each check carries a fresh DPoP proof over the one cached token.
        let decision = bound.actions().check(&request).expect("actions.check");
        assert!(decision.allowed, "{:?}", decision.reason);
    }
    // The token is the agent's: a body naming another agent is refused.
    let error = bound
        .actions()
        .check(&ActionCheckRequest {
            agent_id: other.id.clone(),
            ..request.clone()
        })
        .expect_err("another agent");
    assert!(
        matches!(error, AgentTrustError::Authorization { .. }),
        "{error:?}"
    );
    // Without the agent's key, the API key alone no longer acts as the agent.
    let error = plain.actions().check(&request).expect_err("unconstrained");
    assert!(
        matches!(error, AgentTrustError::Authentication { .. }),
        "{error:?}"
    );
    // Nor is a token issued without a proof.
    let error = plain
        .wimse()
        .issue_token(&IssueWIMSETokenRequest {
            agent_id: agent.id.clone(),
            ..Default::default()
        })
        .expect_err("no proof");
    assert!(
        matches!(error, AgentTrustError::Authentication { .. }),
        "{error:?}"
    );
}

/// Agent cards and A2A through the Rust crate: `agentcards()` (generate, get, publish, the
/// public card; its strict parser takes the signed v1.0 card) and `a2a()` (an object message,
/// tasks by `id`, `tasks/list`, cancel, a denial as a typed error).
fn cards_and_a2a_with_the_rust_sdk(h: &Harness) {
    let client = client(h, &h.admin_key);
    let sender = client
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-a2a-sender".to_string(),
            framework: "custom".to_string(),
            capabilities: vec!["a2a:send".to_string()],
            ..Default::default()
        })
        .expect("agents.create");
    let receiver = client
        .agents()
        .create(&CreateAgentRequest {
            name: "rust-a2a-receiver".to_string(),
            framework: "custom".to_string(),
            ..Default::default()
        })
        .expect("agents.create");

    let card = client
        .agentcards()
        .generate(&receiver.id)
        .expect("agentcards.generate");
    assert_eq!(card.name, "rust-a2a-receiver");
    let public_url = format!("{}/a2a/agents/{}", h.url, receiver.id);
    assert_eq!(card.primary_url(), Some(public_url.as_str()));
    // The crate generated a key for the agent: the card carries it, and the score counts it.
    assert_eq!(card.trust_score(), 85.0);
    assert_eq!(card.signatures.len(), 1);
    // No capabilities, no skills set: the one skill every agent has.
    assert_eq!(card.skills[0].id, "message");
    assert!(matches!(
        client.agentcards().get_public(&receiver.id),
        Err(AgentTrustError::NotFound { .. })
    ));
    client
        .agentcards()
        .publish(&receiver.id)
        .expect("agentcards.publish");
    let public = client
        .agentcards()
        .get_public(&receiver.id)
        .expect("agentcards.get_public");
    assert_eq!(public.trust_score(), 85.0);
    assert_eq!(
        client.agentcards().get(&receiver.id).expect("get").name,
        "rust-a2a-receiver"
    );

    let task = client
        .a2a()
        .create_task(&SendTaskRequest {
            source_agent_id: sender.id.clone(),
            target_agent_id: receiver.id.clone(),
            message: serde_json::json!({"role": "user", "content": "summarize"}),
        })
        .expect("a2a.create_task");
    assert_eq!(task.status, "pending");
    assert_eq!(
        task.message,
        Some(serde_json::json!({"role": "user", "content": "summarize"}))
    );
    assert_eq!(
        client.a2a().get_task(&task.id).expect("get_task").id,
        task.id
    );
    let listed = client.a2a().list_tasks().expect("a2a.list_tasks");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].target_agent_id, receiver.id);
    let cancelled = client.a2a().cancel_task(&task.id).expect("a2a.cancel_task");
    assert_eq!(cancelled.status, "cancelled");
    // An ended task: the JSON-RPC error, typed by its code.
    match client.a2a().cancel_task(&task.id) {
        Err(AgentTrustError::Api { code, .. }) => assert_eq!(code, "A2A_ERROR_-32002"),
        other => panic!("expected an A2A error, got {other:?}"),
    }
    match client.a2a().get_task("no-such-task") {
        Err(AgentTrustError::Api { code, .. }) => assert_eq!(code, "A2A_ERROR_-32001"),
        other => panic!("expected an A2A error, got {other:?}"),
    }

    // A denial is a typed authorization error carrying the rule.
    h.put_policy(serde_json::json!({"rules": [{"id": "quiet-receiver",
        "tools": [format!("a2a:send:{}", receiver.id)], "decision": "deny"}]}));
    match client.a2a().create_task(&SendTaskRequest {
        source_agent_id: sender.id.clone(),
        target_agent_id: receiver.id.clone(),
        message: serde_json::json!({"role": "user", "content": "again"}),
    }) {
        Err(AgentTrustError::Authorization { message, .. }) => {
            assert!(message.contains("quiet-receiver"), "{message}");
        }
        other => panic!("expected an authorization error, got {other:?}"),
    }
    // `send_message` with an org key names no sending agent: a JSON-RPC error saying how to.
    match client.a2a().send_message(&receiver.id, "hi", None, None) {
        Err(AgentTrustError::Api { code, message, .. }) => {
            assert_eq!(code, "A2A_ERROR_-32602");
            assert!(message.contains("X-Agent-ID"), "{message}");
        }
        other => panic!("expected an A2A error, got {other:?}"),
    }
}
