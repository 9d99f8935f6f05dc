//! Store tests, run on every backend: a temp SQLite file always, and PostgreSQL when
//! `AGENTTRUST_TEST_DATABASE_URL` names a server (each test gets a database of its own).

use std::collections::BTreeMap;

use sqlx::Connection;

use super::audit::{self, Actor};
use super::telemetry::{EventFilter, EventRow};
use super::*;
use crate::api::keys::Role;

mod durability;
mod group_commit;
mod operator_safety;

/// The env var that turns the PostgreSQL run on.
pub const TEST_DATABASE_URL: &str = "AGENTTRUST_TEST_DATABASE_URL";

/// A store per backend; the temp dir lives as long as the SQLite store is used.
async fn backends() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let mut stores = vec![(Store::connect(&url).await.expect("sqlite store"), Some(dir))];
    if let Ok(admin_url) = std::env::var(TEST_DATABASE_URL)
        && !admin_url.is_empty()
    {
        stores.push((fresh_postgres(&admin_url).await, None));
    } else {
        postgres_unavailable();
    }
    stores
}

/// Without a PostgreSQL server the store tests run on SQLite only: a failure under `CI=true`
/// (CI must test both backends), a note on stderr once per run locally. The note is written to
/// the process's stderr directly, past libtest's capture, so a passing run shows it.
fn postgres_unavailable() {
    let in_ci = std::env::var("CI")
        .is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false" | "FALSE"));
    assert!(
        !in_ci,
        "CI is set but {TEST_DATABASE_URL} is not: the store tests must run on PostgreSQL in CI"
    );
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {TEST_DATABASE_URL} is not set: the store tests ran on SQLite only"
        );
    });
}

async fn fresh_postgres(admin_url: &str) -> Store {
    let name = format!("store_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("database URL has a path");
    Store::connect(&format!("{base}/{name}"))
        .await
        .expect("postgres store")
}

async fn org_with_agent(store: &Store, capabilities: &[String]) -> (String, agents::AgentRow) {
    let org = orgs::create(store, &format!("org-{}", new_id()), &Actor::operator())
        .await
        .expect("org");
    let agent = agents::create(
        store,
        agents::NewAgent {
            org_id: &org.id,
            name: "demo",
            framework: "custom",
            capabilities,
            metadata: &serde_json::Map::new(),
            public_key: None,
        },
        &Actor::operator(),
    )
    .await
    .expect("agent");
    (org.id, agent)
}

/// The real check path — the gateway's check service — over this store, as an admin key.
struct Checker {
    app: crate::gateway::AppState,
    caller: crate::gateway::auth::Caller,
}

impl Checker {
    /// Stores `policy` (a policy document) for the org first, when given.
    async fn new(store: &Store, org_id: &str, policy: Option<serde_json::Value>) -> Checker {
        if let Some(policy) = policy {
            policies::replace(
                store,
                org_id,
                &policy.to_string(),
                None,
                &Actor::operator(),
                serde_json::json!({}),
            )
            .await
            .unwrap();
        }
        Checker {
            app: crate::gateway::AppState {
                writer: super::group_commit::GroupCommit::start(store),
                store: store.clone(),
                settings: std::sync::Arc::default(),
                caches: std::sync::Arc::default(),
                federation: std::sync::Arc::new(crate::gateway::federation::Federation {
                    issuer: "http://127.0.0.1:0".to_string(),
                    signing: crate::gateway::signing::SigningKeys::start(store, None)
                        .await
                        .unwrap(),
                    outbound: crate::gateway::outbound::Outbound::new(false),
                    jwks: Default::default(),
                }),
                streaming: std::sync::Arc::default(),
                mcp: std::sync::Arc::new(crate::gateway::mcp::Mcp::new(
                    false,
                    crate::gateway::mcp::DEFAULT_UPSTREAM_TIMEOUT,
                    crate::gateway::mcp::sessions::DEFAULT_IDLE_TIMEOUT,
                )),
                a2a: std::sync::Arc::default(),
            },
            caller: crate::gateway::auth::Caller {
                org_id: org_id.to_string(),
                principal: crate::gateway::auth::Principal::Key {
                    id: "test-key".to_string(),
                    role: Role::Admin,
                    may_act_as_agent: true,
                },
            },
        }
    }

    async fn check(
        &self,
        agent_id: &str,
        action_name: &str,
        session_id: Option<&str>,
    ) -> crate::api::actions::CheckDecision {
        use crate::gateway::check::{self, CheckParams, params::RawCheck};
        let params = CheckParams::validate(
            Some(&self.caller),
            RawCheck {
                agent_id,
                action_name,
                input_summary: "",
                action_effect: None,
                session_id,
            },
        )
        .unwrap();
        check::decide_and_record(&self.app, &self.caller, &params, std::time::Instant::now())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn org_names_are_unique_and_the_audit_chain_starts() {
    for (store, _dir) in backends().await {
        let org = orgs::create(&store, "acme", &Actor::operator())
            .await
            .unwrap();
        let again = orgs::create(&store, "acme", &Actor::operator()).await;
        assert!(
            matches!(again, Err(Error::Conflict(_))),
            "{}",
            store.backend_name()
        );
        assert_eq!(
            orgs::find(&store, "acme").await.unwrap().unwrap().id,
            org.id
        );
        assert_eq!(
            orgs::find(&store, &org.id).await.unwrap().unwrap().name,
            "acme"
        );
        let events = audit::list(&store, &org.id).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "org.created");
        assert_eq!(events[0].prev_hash, audit::GENESIS_HASH);
        assert_eq!(audit::verify(&store, &org.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn keys_are_found_by_digest_until_revoked() {
    for (store, _dir) in backends().await {
        let (org_id, _) = org_with_agent(&store, &[]).await;
        let created = keys::create(
            &store,
            keys::NewKey {
                id: "key-1",
                org_id: &org_id,
                name: "ci",
                role: Role::Runtime,
                prefix: "sk_live_abcd",
                key_digest: "digest-1",
            },
            &Actor::operator(),
        )
        .await
        .unwrap();
        assert_eq!(created.role().unwrap(), Role::Runtime);
        let found = keys::find_active_by_digest(&store, "digest-1")
            .await
            .unwrap();
        assert_eq!(found.map(|row| row.id), Some("key-1".to_string()));
        let revoked = keys::revoke(&store, &org_id, "key-1", &Actor::operator())
            .await
            .unwrap()
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(
            keys::find_active_by_digest(&store, "digest-1")
                .await
                .unwrap()
                .is_none()
        );
        // Another org cannot see or revoke it.
        assert!(
            keys::revoke(&store, "other-org", "key-1", &Actor::operator())
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn agent_names_are_unique_per_org_and_revocation_takes_the_tokens() {
    for (store, _dir) in backends().await {
        let capabilities = vec!["files:read".to_string()];
        let (org_id, agent) = org_with_agent(&store, &capabilities).await;
        let duplicate = agents::create(
            &store,
            agents::NewAgent {
                org_id: &org_id,
                name: "demo",
                framework: "custom",
                capabilities: &capabilities,
                metadata: &serde_json::Map::new(),
                public_key: None,
            },
            &Actor::operator(),
        )
        .await;
        assert!(matches!(duplicate, Err(Error::Conflict(_))));
        let now = crate::api::time::now();
        for digest in ["t1", "t2"] {
            tokens::issue(
                &store,
                &tokens::NewToken {
                    org_id: org_id.clone(),
                    agent_id: agent.id.clone(),
                    token_digest: digest.to_string(),
                    scopes: capabilities.clone(),
                    session_id: None,
                    issued_at: now,
                    expires_at: now + 300,
                    actor: Actor::operator(),
                },
            )
            .await
            .unwrap();
        }
        assert_eq!(
            tokens::revoke(&store, &org_id, "t1", "test", &Actor::operator())
                .await
                .unwrap(),
            tokens::Revocation::Revoked
        );
        assert_eq!(
            tokens::revoke(&store, &org_id, "t1", "test", &Actor::operator())
                .await
                .unwrap(),
            tokens::Revocation::AlreadyRevoked
        );
        assert_eq!(
            tokens::revoke(&store, "other-org", "t2", "test", &Actor::operator())
                .await
                .unwrap(),
            tokens::Revocation::NotFound
        );
        let revoked = agents::revoke(&store, &org_id, &agent.id, "gone", &Actor::operator())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.tokens_revoked, 1, "only the live token is counted");
        assert_eq!(revoked.agent.status, agents::STATUS_REVOKED);
        let token = tokens::find_by_digest(&store, "t2").await.unwrap().unwrap();
        assert!(token.revoked_at.is_some());
        assert_eq!(token.agent_status, agents::STATUS_REVOKED);
        assert!(
            agents::get(&store, "other-org", &agent.id)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn session_counters_are_exact_under_concurrent_checks() {
    for (store, _dir) in backends().await {
        let (org_id, agent) = org_with_agent(&store, &[]).await;
        let lenient =
            serde_json::json!({"lockout_after_denials": 1000, "agent_lockout_after_denials": 1000});
        let checker = std::sync::Arc::new(Checker::new(&store, &org_id, Some(lenient)).await);
        let mut tasks = Vec::new();
        for index in 0..40 {
            let checker = checker.clone();
            let agent_id = agent.id.clone();
            tasks.push(tokio::spawn(async move {
                let action = match index % 4 {
                    0 => "read_file",
                    1 => "send_message",
                    2 => "grant_admin_role",
                    _ => "list_files",
                };
                let decision = checker.check(&agent_id, action, Some("sess-1")).await;
                assert_eq!(
                    decision.allowed,
                    index % 4 != 2,
                    "{action}: {}",
                    decision.reason
                );
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let session = sessions::get(&store, &org_id, "sess-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.total_calls, 40);
        assert_eq!(session.read_calls, 20);
        assert_eq!(session.write_calls, 20);
        assert_eq!(session.denied_calls, 10);
        assert_eq!(session.source, sessions::SOURCE_SDK);
        // Every decision is in the chain (after the org, the agent and the policy), and the
        // chain links.
        assert_eq!(audit::list(&store, &org_id).await.unwrap().len(), 3 + 40);
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_rewritten_audit_event_breaks_the_chain() {
    for (store, _dir) in backends().await {
        let (org_id, agent) = org_with_agent(&store, &[]).await;
        Checker::new(&store, &org_id, None)
            .await
            .check(&agent.id, "read_file", None)
            .await;
        on_db!(store, |pool| sqlx::query(
            "UPDATE audit_events SET detail = '{}' WHERE org_id = $1 AND seq = 2"
        )
        .bind(&org_id)
        .execute(pool)
        .await
        .unwrap()
        .rows_affected());
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), Some(2));
    }
}

#[tokio::test]
async fn telemetry_pages_follow_the_cursor_without_gaps_or_repeats() {
    for (store, _dir) in backends().await {
        let (org_id, agent) = org_with_agent(&store, &[]).await;
        let now = crate::api::time::now();
        let rows: Vec<EventRow> = (0..25)
            .map(|index| EventRow {
                id: new_id(),
                org_id: org_id.clone(),
                agent_id: agent.id.clone(),
                session_id: Some(if index % 2 == 0 { "even" } else { "odd" }.to_string()),
                event_type: "tool_end".to_string(),
                tool_name: Some(format!("tool-{index}")),
                duration_ms: Some(index),
                success: true,
                error_type: None,
                // Odd events are named by their reporter, even ones are not.
                client_event_id: (index % 2 == 1).then(|| format!("reporter-{index}")),
                occurred_at: now,
                received_at: now,
            })
            .collect();
        telemetry::insert_batch(&store, &rows, &audit::Actor::operator())
            .await
            .unwrap();
        // A retried report: the named events are not stored twice.
        let retried: Vec<EventRow> = rows
            .iter()
            .filter(|row| row.client_event_id.is_some())
            .map(|row| EventRow {
                id: new_id(),
                ..row.clone()
            })
            .collect();
        telemetry::insert_batch(&store, &retried, &audit::Actor::operator())
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, more) = telemetry::list(
                &store,
                EventFilter {
                    org_id: &org_id,
                    agent_id: Some(&agent.id),
                    session_id: None,
                    after_id: cursor.as_deref(),
                    limit: 10,
                },
            )
            .await
            .unwrap();
            seen.extend(page.iter().map(|row| row.tool_name.clone().unwrap()));
            cursor = page.last().map(|row| row.id.clone());
            if !more {
                break;
            }
        }
        let expected: Vec<String> = (0..25).map(|index| format!("tool-{index}")).collect();
        assert_eq!(seen, expected);
        let (odd, _) = telemetry::list(
            &store,
            EventFilter {
                org_id: &org_id,
                agent_id: None,
                session_id: Some("odd"),
                after_id: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
        assert_eq!(odd.len(), 12);
        let (other_org, _) = telemetry::list(
            &store,
            EventFilter {
                org_id: "other-org",
                agent_id: None,
                session_id: None,
                after_id: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
        assert!(other_org.is_empty());
    }
}

#[tokio::test]
async fn row_counts_cover_every_table() {
    for (store, _dir) in backends().await {
        let counts: BTreeMap<String, i64> = store.row_counts().await.unwrap();
        assert_eq!(counts.len(), TABLES.len());
        assert!(counts.values().all(|count| *count == 0));
    }
}

#[tokio::test]
async fn the_lockout_is_exact_under_concurrent_denials_and_unlock_forgives() {
    for (store, _dir) in backends().await {
        let (org_id, agent) = org_with_agent(&store, &[]).await;
        let policy = serde_json::json!({"lockout_after_denials": 5});
        let checker = std::sync::Arc::new(Checker::new(&store, &org_id, Some(policy)).await);
        let deny = async |checker: &Checker, agent_id: &str| {
            let decision = checker
                .check(agent_id, "grant_admin_role", Some("sess-1"))
                .await;
            assert!(!decision.allowed);
        };
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (checker, agent_id) = (checker.clone(), agent.id.clone());
            tasks.push(tokio::spawn(async move {
                deny(&checker, &agent_id).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let session = sessions::get(&store, &org_id, "sess-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (session.denied_calls, session.mode.as_str()),
            (4, "standard")
        );
        deny(&checker, &agent.id).await;
        let session = sessions::get(&store, &org_id, "sess-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((session.denied_calls, session.mode.as_str()), (5, "locked"));

        let unlocked =
            sessions::set_mode(&store, &org_id, "sess-1", "standard", &Actor::operator())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(unlocked.denials_since_unlock(), 0);
        deny(&checker, &agent.id).await;
        let session = sessions::get(&store, &org_id, "sess-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (session.denials_since_unlock(), session.mode.as_str()),
            (1, "standard")
        );
        assert!(
            sessions::set_mode(&store, "other-org", "sess-1", "locked", &Actor::operator())
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn identical_pending_requests_share_one_approval_which_is_decided_once() {
    for (store, _dir) in backends().await {
        let (org_id, agent) = org_with_agent(&store, &[]).await;
        let checker = std::sync::Arc::new(Checker::new(&store, &org_id, None).await);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (checker, agent_id) = (checker.clone(), agent.id.clone());
            tasks.push(tokio::spawn(async move {
                let decision = checker.check(&agent_id, "delete_all", Some("sess-1")).await;
                assert!(decision.elevation_required, "{}", decision.reason);
                decision.approval_id.unwrap()
            }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        let id = &ids[0];
        let requested = audit::list(&store, &org_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.kind == "approval.requested")
            .count();
        assert_eq!(requested, 1);

        let first = approvals::decide(&store, &org_id, id, true, "alice", 600, &Actor::operator())
            .await
            .unwrap();
        let approved = match first {
            approvals::Decided::Decided(row) => row,
            other => panic!("{other:?}"),
        };
        assert_eq!(approved.status, approvals::STATUS_APPROVED);
        assert_eq!(approved.decided_by.as_deref(), Some("alice"));
        assert!(approved.grant_expires_at.is_some());
        let second = approvals::decide(&store, &org_id, id, false, "bob", 600, &Actor::operator())
            .await
            .unwrap();
        assert!(matches!(second, approvals::Decided::NotPending(_)));
        let elsewhere = approvals::decide(
            &store,
            "other-org",
            id,
            true,
            "eve",
            600,
            &Actor::operator(),
        )
        .await
        .unwrap();
        assert!(matches!(elsewhere, approvals::Decided::NotFound));
        assert!(
            approvals::session_has_active_grant(&store, &org_id, "sess-1")
                .await
                .unwrap()
        );
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn an_expired_approval_cannot_be_decided_and_a_new_request_opens_another() {
    for (store, _dir) in backends().await {
        let (org_id, agent) = org_with_agent(&store, &[]).await;
        let checker = Checker::new(&store, &org_id, None).await;
        let first = checker
            .check(&agent.id, "delete_all", Some("sess-1"))
            .await
            .approval_id
            .unwrap();
        on_db!(store, |pool| sqlx::query(
            "UPDATE approvals SET expires_at = 0 WHERE id = $1"
        )
        .bind(&first)
        .execute(pool)
        .await
        .unwrap()
        .rows_affected());
        let row = approvals::get(&store, &org_id, &first)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.status_at(crate::api::time::now()),
            crate::api::status::ApprovalStatus::Expired
        );
        let decided = approvals::decide(
            &store,
            &org_id,
            &first,
            true,
            "alice",
            600,
            &Actor::operator(),
        )
        .await
        .unwrap();
        assert!(matches!(decided, approvals::Decided::NotPending(_)));
        let second = checker
            .check(&agent.id, "delete_all", Some("sess-1"))
            .await
            .approval_id
            .unwrap();
        assert_ne!(first, second);
        let pending = approvals::list(
            &store,
            approvals::ApprovalFilter {
                org_id: &org_id,
                status: Some("pending"),
                agent_id: None,
                session_id: None,
                before_id: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .0;
        assert_eq!(
            pending
                .iter()
                .map(|row| row.id.as_str())
                .collect::<Vec<_>>(),
            [second.as_str()]
        );
    }
}

#[tokio::test]
async fn policies_replace_with_optimistic_versions() {
    for (store, _dir) in backends().await {
        let (org_id, _) = org_with_agent(&store, &[]).await;
        assert_eq!(policies::version(&store, &org_id).await.unwrap(), 0);
        let summary = || serde_json::json!({});
        let stored = policies::replace(
            &store,
            &org_id,
            "{\"rules\":[]}",
            Some(0),
            &Actor::operator(),
            summary(),
        )
        .await
        .unwrap();
        assert!(matches!(stored, policies::Replaced::Stored(ref row) if row.version == 1));
        let stale = policies::replace(
            &store,
            &org_id,
            "{}",
            Some(0),
            &Actor::operator(),
            summary(),
        )
        .await
        .unwrap();
        assert_eq!(stale, policies::Replaced::Stale { current_version: 1 });
        assert_eq!(
            policies::get(&store, &org_id)
                .await
                .unwrap()
                .unwrap()
                .document,
            "{\"rules\":[]}",
            "a stale write changes nothing"
        );
        let forced = policies::replace(&store, &org_id, "{}", None, &Actor::operator(), summary())
            .await
            .unwrap();
        assert!(matches!(forced, policies::Replaced::Stored(ref row) if row.version == 2));
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), None);
    }
}

async fn delegate(
    store: &Store,
    org_id: &str,
    from: &str,
    to: &str,
    parent: Option<&delegations::DelegationRow>,
    expires_at: i64,
) -> delegations::DelegationRow {
    let scope = vec!["files:read".to_string()];
    let id = new_id();
    match delegations::create(
        store,
        delegations::NewDelegation {
            id: &id,
            org_id,
            from_agent_id: from,
            to_agent_id: to,
            parent,
            scope: &scope,
            restrictions: &Default::default(),
            depth: parent.map_or(1, |parent| parent.depth + 1),
            created_at: crate::api::time::now(),
            expires_at,
        },
        &Actor::operator(),
    )
    .await
    .unwrap()
    {
        delegations::Created::Stored(row) => *row,
        delegations::Created::ChainEnded(why) => panic!("{why}"),
    }
}

async fn agent(store: &Store, org_id: &str, name: &str) -> String {
    agents::create(
        store,
        agents::NewAgent {
            org_id,
            name,
            framework: "custom",
            capabilities: &["files:read".to_string()],
            metadata: &serde_json::Map::new(),
            public_key: None,
        },
        &Actor::operator(),
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn revoking_a_delegation_revokes_its_whole_subtree_and_nothing_else() {
    for (store, _dir) in backends().await {
        let (org_id, a) = org_with_agent(&store, &["files:read".to_string()]).await;
        let b = agent(&store, &org_id, "b").await;
        let c = agent(&store, &org_id, "c").await;
        let d = agent(&store, &org_id, "d").await;
        let later = crate::api::time::now() + 600;
        let ab = delegate(&store, &org_id, &a.id, &b, None, later).await;
        let bc = delegate(&store, &org_id, &b, &c, Some(&ab), later).await;
        let cd = delegate(&store, &org_id, &c, &d, Some(&bc), later).await;
        let sibling = delegate(&store, &org_id, &a.id, &c, None, later).await;
        assert_eq!(
            cd.chain().unwrap(),
            [ab.id.clone(), bc.id.clone(), cd.id.clone()]
        );

        let (revoked, descendants) =
            delegations::revoke(&store, &org_id, &bc.id, "test", &Actor::operator())
                .await
                .unwrap()
                .unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(descendants, 1, "c→d went with b→c");
        let now = crate::api::time::now();
        for (id, active) in [
            (&ab.id, true),
            (&bc.id, false),
            (&cd.id, false),
            (&sibling.id, true),
        ] {
            let row = delegations::get(&store, &org_id, id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.is_active_at(now), active, "{id}");
        }
        assert!(
            delegations::revoke(&store, "other-org", &ab.id, "x", &Actor::operator())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn revoking_an_agent_revokes_every_delegation_from_or_to_it_and_below() {
    for (store, _dir) in backends().await {
        let (org_id, a) = org_with_agent(&store, &["files:read".to_string()]).await;
        let b = agent(&store, &org_id, "b").await;
        let c = agent(&store, &org_id, "c").await;
        let later = crate::api::time::now() + 600;
        let ab = delegate(&store, &org_id, &a.id, &b, None, later).await;
        let bc = delegate(&store, &org_id, &b, &c, Some(&ab), later).await;
        let ac = delegate(&store, &org_id, &a.id, &c, None, later).await;
        agents::revoke(&store, &org_id, &b, "gone", &Actor::operator())
            .await
            .unwrap()
            .unwrap();
        let now = crate::api::time::now();
        for (id, active) in [(&ab.id, false), (&bc.id, false), (&ac.id, true)] {
            let row = delegations::get(&store, &org_id, id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.is_active_at(now), active, "{id}");
        }
        // Expiry needs no sweeper: a delegation past its time simply stops counting.
        let expired = delegate(&store, &org_id, &a.id, &c, None, now - 1).await;
        assert_eq!(
            delegations::get(&store, &org_id, &expired.id)
                .await
                .unwrap()
                .unwrap()
                .status_at(now),
            crate::api::status::DelegationStatus::Expired
        );
    }
}

#[tokio::test]
async fn a_delegation_call_budget_holds_across_its_sessions_when_checks_race() {
    for (store, _dir) in backends().await {
        let (org_id, a) = org_with_agent(&store, &["files:read".to_string()]).await;
        let b = agent(&store, &org_id, "b").await;
        let restrictions = crate::api::delegations::Restrictions {
            max_calls: Some(3),
            ..Default::default()
        };
        let id = new_id();
        let delegations::Created::Stored(delegation) = delegations::create(
            &store,
            delegations::NewDelegation {
                id: &id,
                org_id: &org_id,
                from_agent_id: &a.id,
                to_agent_id: &b,
                parent: None,
                scope: &["files:read".to_string()],
                restrictions: &restrictions,
                depth: 1,
                created_at: crate::api::time::now(),
                expires_at: crate::api::time::now() + 600,
            },
            &Actor::operator(),
        )
        .await
        .unwrap() else {
            panic!("the delegation is stored");
        };
        // Two sessions of the same delegation: the budget is the delegation's, not each one's.
        let mut session_ids = Vec::new();
        for _ in 0..2 {
            let session = sessions::create(
                &store,
                sessions::NewSession {
                    org_id: &org_id,
                    agent_id: &b,
                    source: "delegation",
                    server_id: None,
                    scope_ceiling: &["files:read".to_string()],
                    token_id: None,
                    delegation_id: Some(&delegation.id),
                    federation: None,
                },
                &Actor::operator(),
            )
            .await
            .unwrap();
            session_ids.push(session.id);
        }
        let checker = std::sync::Arc::new(Checker::new(&store, &org_id, None).await);
        let mut tasks = Vec::new();
        for index in 0..8 {
            let (checker, agent_id, session_id) =
                (checker.clone(), b.clone(), session_ids[index % 2].clone());
            tasks.push(tokio::spawn(async move {
                checker
                    .check(&agent_id, "read_files", Some(&session_id))
                    .await
                    .allowed
            }));
        }
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(task.await.unwrap());
        }
        assert_eq!(allowed, 3, "{}", store.backend_name());
        let row = delegations::get(&store, &org_id, &delegation.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.calls_made, 3);
        let refused = on_db!(store, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM checks WHERE org_id = $1 AND rule = $2 AND allowed = $3",
        )
        .bind(&org_id)
        .bind(crate::guardian::scope::MAX_CALLS_RULE)
        .bind(false)
        .fetch_one(pool)
        .await
        .unwrap());
        assert_eq!(refused, 5);
        // A fresh session of the same delegation gets no fresh budget.
        let session = sessions::create(
            &store,
            sessions::NewSession {
                org_id: &org_id,
                agent_id: &b,
                source: "delegation",
                server_id: None,
                scope_ceiling: &["files:read".to_string()],
                token_id: None,
                delegation_id: Some(&delegation.id),
                federation: None,
            },
            &Actor::operator(),
        )
        .await
        .unwrap();
        let decision = checker.check(&b, "read_files", Some(&session.id)).await;
        assert_eq!(
            decision.rule.as_deref(),
            Some(crate::guardian::scope::MAX_CALLS_RULE)
        );
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), None);
    }
}

#[test]
fn only_a_sqlite_url_names_a_database_file() {
    assert_eq!(
        sqlite_file("sqlite:///var/lib/agenttrust/agenttrust.db?mode=rwc"),
        Some(std::path::PathBuf::from(
            "/var/lib/agenttrust/agenttrust.db"
        ))
    );
    assert_eq!(sqlite_file("sqlite::memory:"), None);
    assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
    assert_eq!(sqlite_file("postgres://app@db:5432/agenttrust"), None);
}
