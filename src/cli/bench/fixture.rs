//! What a `bench` run creates through the ordinary API with the profile's key, and removes
//! again: an agent (`agenttrust-bench-…`), a token of it and a registered session. Cleanup
//! revokes the token, then the agent (which deactivates every token the `issue` scenario
//! issued). The API deletes nothing else: the session, the tokens' rows, the checks, telemetry
//! events and audit events stay, as they do for every agent.

use anyhow::Context as _;

use crate::api::agents::{CreateAgentRequest, RevokeAgentRequest};
use crate::api::sessions::OpenSessionRequest;
use crate::api::tokens::{IssueTokenRequest, RevokeTokenRequest};
use crate::client::{self, Client};

/// The capability of the run's agent and the scope of its tokens.
const SCOPE: &str = "bench:read";
/// The run's token outlives any run worth making (the gateway may cap it; cleanup revokes it).
const TOKEN_TTL_SECONDS: i64 = 3600;
const CLEANUP_REASON: &str = "agenttrust bench finished";

/// The objects the load uses.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub agent_id: String,
    /// The run's agent token (`at_…`), introspected by the `introspect` scenario.
    pub token: String,
    pub session_id: String,
    pub scopes: Vec<String>,
}

/// What has been created so far: filled in step by step, so that a run failing or interrupted
/// halfway still cleans up what exists.
#[derive(Debug, Default)]
pub struct Created {
    agent_id: Option<String>,
    token: Option<String>,
}

impl Created {
    /// The agent, when one was created (named in warnings when cleanup fails).
    pub fn agent_id(&self) -> Option<&str> {
        self.agent_id.as_deref()
    }

    /// Creates the agent, its token and a session; `run_id` names the agent.
    pub async fn set_up(&mut self, client: &Client, run_id: &str) -> anyhow::Result<Fixture> {
        let scopes = vec![SCOPE.to_string()];
        let agent = client::agents::create(
            client,
            &CreateAgentRequest {
                name: format!("agenttrust-bench-{run_id}"),
                framework: Some("custom".to_string()),
                capabilities: scopes.clone(),
                metadata: Some(serde_json::json!({"created_by": "agenttrust bench"})),
                ..CreateAgentRequest::default()
            },
        )
        .await
        .context("cannot create the bench agent")?
        .value;
        self.agent_id = Some(agent.id.clone());
        let token = client::tokens::issue(
            client,
            &IssueTokenRequest {
                agent_id: agent.id.clone(),
                scopes: scopes.clone(),
                ttl: Some(TOKEN_TTL_SECONDS),
                session_id: None,
            },
        )
        .await
        .context("cannot issue the bench agent's token")?
        .value;
        self.token = Some(token.token.clone());
        let session = client::sessions::open(
            client,
            &OpenSessionRequest {
                agent_id: Some(agent.id.clone()),
            },
        )
        .await
        .context("cannot open the bench agent's session")?
        .value;
        Ok(Fixture {
            agent_id: agent.id,
            token: token.token,
            session_id: session.session_id,
            scopes,
        })
    }

    /// Revokes the token, then the agent. Every step is tried; the error names what failed.
    pub async fn clean_up(&self, client: &Client) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        if let Some(token) = &self.token {
            let revoked = client::tokens::revoke(
                client,
                &RevokeTokenRequest {
                    token: token.clone(),
                    reason: Some(CLEANUP_REASON.to_string()),
                },
            )
            .await;
            if let Err(error) = revoked {
                failures.push(format!("revoking its token: {error}"));
            }
        }
        if let Some(agent_id) = &self.agent_id {
            let revoked = client::agents::revoke(
                client,
                agent_id,
                &RevokeAgentRequest {
                    reason: Some(CLEANUP_REASON.to_string()),
                },
            )
            .await;
            if let Err(error) = revoked {
                failures.push(format!("revoking it: {error}"));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        let agent_id = self.agent_id.as_deref().unwrap_or("ID");
        Err(anyhow::anyhow!(
            "cleanup of the bench agent {agent_id} failed ({}); revoke it with `agenttrust \
             agents revoke {agent_id} --yes`",
            failures.join("; "),
        ))
    }
}
