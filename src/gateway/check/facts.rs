//! The facts a check is decided on, loaded from the store: the agent (status, mode,
//! capabilities), the session (mode, scope ceiling, whether the gateway opened it), the
//! delegation chain a session was made from (every link's status, restrictions and calls made,
//! so an ancestor's revocation or budget binds), and the presented agent token's scopes.
//! Nothing here comes from what the caller claims about itself.
//!
//! The agent's and the session's rows come through the replica's cache (`gateway::cache`); what
//! of them can flip an allow (status, modes) is read again inside the record transaction, so a
//! stale row can cost a refusal at record time, never an allow.

use crate::api::delegations::Restrictions;
use crate::api::federation::{ProviderStatus, TrustLevel};
use crate::api::policies::SessionMode;
use crate::api::status::{ApprovalStatus, DelegationStatus};
use crate::api::time;
use crate::guardian::{
    self, AgentFacts, ApprovalState, CheckInput, CompiledPolicy, Decision, DelegationFacts,
    FederationFacts, SessionFacts,
};
use crate::store::{self, agents::AgentRow, approvals::ApprovalRow, sessions::SessionRow};

use super::super::AppState;
use super::super::auth::PresentedToken;
use super::super::error::{ApiError, ApiResult};
use super::CheckParams;

/// Everything a decision on one check depends on, but the policy and approvals.
pub struct Facts {
    agent: Option<AgentRow>,
    capabilities: Vec<String>,
    agent_mode: SessionMode,
    session: Option<SessionRow>,
    session_mode: SessionMode,
    scope_ceiling: Option<Vec<String>>,
    delegation: Option<Chain>,
    federation: Option<FederationFacts>,
    token: Option<PresentedToken>,
    now: i64,
}

/// The delegation a session was made from, with its whole chain (root first).
pub struct Chain {
    pub id: String,
    /// `active`, or why not (`revoked`/`expired`): the first link that is not active decides.
    status: DelegationStatus,
    scope: Vec<String>,
    /// Ids of the links, root first (the delegation itself last).
    pub link_ids: Vec<String>,
    restrictions: Vec<Restrictions>,
    calls_made: Vec<i64>,
}

impl Chain {
    async fn load(store: &store::Store, org_id: &str, id: &str, now: i64) -> ApiResult<Chain> {
        let row = store::delegations::get(store, org_id, id)
            .await?
            .ok_or_else(|| {
                tracing::error!(delegation = %id, "a session names a missing delegation");
                ApiError::internal()
            })?;
        let links = store::delegations::with_ancestors(store, &row).await?;
        // Revocation cascades and expiry never outlives the parent, but a check must not
        // depend on a cascade having landed: every link is looked at.
        let status = links
            .iter()
            .map(|link| link.status_at(now))
            .find(|status| *status != DelegationStatus::Active)
            .unwrap_or(DelegationStatus::Active);
        Ok(Chain {
            status,
            scope: row.scope()?,
            id: row.id,
            link_ids: links.iter().map(|link| link.id.clone()).collect(),
            restrictions: links
                .iter()
                .map(store::delegations::DelegationRow::restrictions)
                .collect::<Result<_, _>>()?,
            calls_made: links.iter().map(|link| link.calls_made).collect(),
        })
    }

    /// The `(delegation id, max_calls)` of every link that limits its calls.
    pub fn budgets(&self) -> Vec<(&str, i64)> {
        self.link_ids
            .iter()
            .zip(&self.restrictions)
            .filter_map(|(id, restrictions)| {
                let max_calls = restrictions.max_calls?;
                Some((id.as_str(), i64::try_from(max_calls).unwrap_or(i64::MAX)))
            })
            .collect()
    }

    fn facts(&self) -> DelegationFacts<'_> {
        DelegationFacts {
            id: &self.id,
            active: self.status == DelegationStatus::Active,
            inactive_because: self.status.as_str(),
            scope: &self.scope,
            restrictions: &self.restrictions,
            calls_made: &self.calls_made,
        }
    }
}

impl Facts {
    /// Loads the facts of a check. Reads only.
    pub async fn load(
        state: &AppState,
        org_id: &str,
        params: &CheckParams,
        token: Option<PresentedToken>,
    ) -> ApiResult<Facts> {
        let now = time::now();
        let agent = state
            .caches
            .agent(&state.store, org_id, &params.agent_id)
            .await?;
        let capabilities = match &agent {
            Some(agent) => agent.capabilities()?,
            None => Vec::new(),
        };
        let agent_mode = match &agent {
            Some(agent) => stored_mode(&agent.mode, "agent", &agent.id)?,
            None => SessionMode::Standard,
        };
        let session = match (&params.session_id, &agent) {
            (Some(session_id), Some(_)) => {
                state
                    .caches
                    .session(&state.store, org_id, session_id)
                    .await?
            }
            _ => None,
        };
        let (session_mode, scope_ceiling) = match &session {
            Some(session) => (
                stored_mode(&session.mode, "session", &session.id)?,
                session.scope_ceiling()?,
            ),
            None => (SessionMode::Standard, None),
        };
        let delegation = match session
            .as_ref()
            .and_then(|session| session.delegation_id.as_ref())
        {
            Some(id) => Some(Chain::load(&state.store, org_id, id, now).await?),
            None => None,
        };
        let federation = match &session {
            Some(session) => federation_facts(state, org_id, session).await?,
            None => None,
        };
        Ok(Facts {
            agent,
            capabilities,
            agent_mode,
            session,
            session_mode,
            scope_ceiling,
            delegation,
            federation,
            token,
            now,
        })
    }

    /// The decision on these facts under `policy`, given the latest approval of the request.
    pub fn decide(
        &self,
        params: &CheckParams,
        policy: &CompiledPolicy,
        approval: ApprovalState<'_>,
    ) -> Decision {
        guardian::decide(&CheckInput {
            agent: self.agent.as_ref().map(|agent| AgentFacts {
                id: &agent.id,
                name: &agent.name,
                framework: &agent.framework,
                capabilities: &self.capabilities,
                active: agent.is_active(),
                mode: self.agent_mode,
            }),
            action_name: &params.action_name,
            input_summary: &params.input_summary,
            stated_effect: params.stated_effect,
            token_scopes: self.token.as_ref().map(|token| &token.scopes[..]),
            session_id: params.session_id.as_deref(),
            session: self.session.as_ref().map(|session| SessionFacts {
                agent_id: &session.agent_id,
                mode: self.session_mode,
                scope_ceiling: self.scope_ceiling.as_deref(),
                registered: session.is_registered(),
                delegation: self.delegation.as_ref().map(Chain::facts),
                federation: self.federation,
            }),
            approval,
            policy,
            now: self.now,
        })
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    /// The agent is known and active and owns the session: its session is counted.
    pub fn counts_in_session(&self, params: &CheckParams) -> bool {
        let owns_session = self
            .session
            .as_ref()
            .is_none_or(|session| session.agent_id == params.agent_id);
        self.agent.as_ref().is_some_and(AgentRow::is_active) && owns_session
    }

    /// The agent is known and active: its hard denials count towards its lockout.
    pub fn agent_is_active(&self) -> bool {
        self.agent.as_ref().is_some_and(AgentRow::is_active)
    }

    pub fn agent_mode(&self) -> SessionMode {
        self.agent_mode
    }

    pub fn session_mode(&self) -> SessionMode {
        self.session_mode
    }

    pub fn delegation(&self) -> Option<&Chain> {
        self.delegation.as_ref()
    }

    pub fn token(&self) -> Option<&PresentedToken> {
        self.token.as_ref()
    }

    /// The provider a federation session was opened on, when the check is decided in one.
    pub fn provider_id(&self) -> Option<&str> {
        self.federation.as_ref()?;
        self.session.as_ref()?.provider_id.as_deref()
    }

    /// The ID token (issued by this gateway) a federation session was opened with, when the
    /// check is decided in one.
    pub fn federation_token_id(&self) -> Option<&str> {
        self.federation.as_ref()?;
        self.session.as_ref()?.federation_token_id.as_deref()
    }
}

fn stored_mode(text: &str, holder: &str, id: &str) -> ApiResult<SessionMode> {
    text.parse::<SessionMode>().map_err(|error| {
        tracing::error!(%error, %holder, %id, "stored mode is unknown");
        ApiError::internal()
    })
}

/// The latest approval of a request as the Guardian sees it.
pub fn approval_state(row: &ApprovalRow, now: i64) -> ApprovalState<'_> {
    match row.status_at(now) {
        ApprovalStatus::Pending => ApprovalState::Pending { id: &row.id },
        ApprovalStatus::Approved => ApprovalState::Approved {
            id: &row.id,
            grant_expires_at: row.grant_expires_at.unwrap_or(0),
        },
        ApprovalStatus::Denied => ApprovalState::Denied {
            id: &row.id,
            decided_by: row.decided_by.as_deref().unwrap_or("an operator"),
        },
        _ => ApprovalState::Expired { id: &row.id },
    }
}

/// A federation session's standing now: its trust level (the lower of the level it was opened
/// at and its provider's now, so lowering a provider's trust binds its open sessions at once,
/// and raising it never widens them), whether its provider is still active (read at every
/// check, so disabling or deleting a provider stops its sessions at once), and its end.
async fn federation_facts(
    state: &AppState,
    org_id: &str,
    session: &SessionRow,
) -> ApiResult<Option<FederationFacts>> {
    let Some(trust_level) = &session.trust_level else {
        return Ok(None);
    };
    let corrupt = || {
        tracing::error!(session = %session.id, "a federation session has corrupt federation facts");
        ApiError::internal()
    };
    let mut trust_level: TrustLevel = trust_level.parse().map_err(|_| corrupt())?;
    let provider_active = match &session.provider_id {
        None => true,
        Some(provider_id) => {
            match store::federation::get_provider(&state.store, org_id, provider_id).await? {
                Some(provider) => {
                    let now: TrustLevel = provider.trust_level.parse().map_err(|_| corrupt())?;
                    trust_level = trust_level.min(now);
                    provider.status == ProviderStatus::Active.as_str()
                }
                None => false,
            }
        }
    };
    let token_revoked = match &session.federation_token_id {
        Some(token_id) => store::federation::id_token_revoked(&state.store, token_id).await?,
        None => false,
    };
    Ok(Some(FederationFacts {
        trust_level,
        provider_active,
        expires_at: session.expires_at.ok_or_else(corrupt)?,
        token_revoked,
    }))
}
