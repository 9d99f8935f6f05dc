//! Org policies (admin keys only): read, replace atomically after validation (a stale version
//! is a 409), and test a hypothetical check without recording anything. A document is checked
//! against the server's size limits and compiled on the blocking pool (`policy_limits`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;

use crate::api::policies::{PolicyDocument, PolicyTestRequest, PolicyTestResponse};
use crate::api::time;
use crate::guardian::{self, CompiledPolicy};
use crate::store::{self, changes::Change, policies::Replaced};

use super::AppState;
use super::auth::Caller;
use super::check::{self, CheckParams, params::RawCheck};
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::policy_limits::{self, PolicyLimits};

pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyDocument>> {
    caller.require_admin()?;
    let document = match store::policies::get(&state.store, &caller.org_id).await? {
        None => PolicyDocument {
            version: Some(0),
            ..PolicyDocument::default()
        },
        Some(row) => stored_document(&row)?,
    };
    Ok(Json(document))
}

pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody<PolicyDocument>,
) -> ApiResult<Json<PolicyDocument>> {
    caller.require_admin()?;
    let (mut document, _) = compile_within_limits(document, state.settings.policy_limits).await?;
    let expected_version = document.version.take();
    document.updated_at = None;
    document.updated_by = None;
    let document_json = serde_json::to_string(&document).map_err(|_| ApiError::internal())?;
    let summary = serde_json::json!({ "rules": document.rules.len() });
    match store::policies::replace(
        &state.store,
        &caller.org_id,
        &document_json,
        expected_version,
        &caller.actor(),
        summary,
    )
    .await?
    {
        Replaced::Stored(row) => {
            // Committed: this replica's next check decides under the new version.
            state.caches.forget(&Change::Policy {
                org_id: caller.org_id.clone(),
            });
            Ok(Json(stored_document(&row)?))
        }
        Replaced::Stale { current_version } => Err(ApiError::conflict(format!(
            "the policy changed since version {} was read; the stored version is \
             {current_version} (fetch it again and reapply your change)",
            expected_version.unwrap_or_default()
        ))),
    }
}

pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<PolicyTestRequest>,
) -> ApiResult<Json<PolicyTestResponse>> {
    let started = Instant::now();
    caller.require_admin()?;
    if request.agent_id.is_empty() {
        return Err(ApiError::validation("agent_id is required"));
    }
    let params = CheckParams::validate(
        None,
        RawCheck {
            agent_id: &request.agent_id,
            action_name: &request.action_name,
            input_summary: request.action_input_summary.as_deref().unwrap_or(""),
            action_effect: request.action_effect.as_deref(),
            session_id: request.session_id.as_deref(),
        },
    )?;
    let policy = match request.policy {
        Some(document) => Arc::new(
            compile_within_limits(document, state.settings.policy_limits)
                .await?
                .1,
        ),
        None => {
            state
                .caches
                .policies
                .current(&state.store, &caller.org_id)
                .await?
        }
    };
    let (decision, matched_rule) =
        check::decide_only(&state, &caller.org_id, &params, &policy, started).await?;
    Ok(Json(PolicyTestResponse {
        decision,
        matched_rule,
        extra: Default::default(),
    }))
}

/// Checks a document against the server's limits and compiles it, on the blocking pool: a
/// large policy takes CPU for a while, and the async workers must keep answering every other
/// request (`/health`, other orgs' checks) meanwhile. Returns the document with its compiled
/// form; a document past a limit or invalid is a 400 naming the problem.
async fn compile_within_limits(
    document: PolicyDocument,
    limits: PolicyLimits,
) -> ApiResult<(PolicyDocument, CompiledPolicy)> {
    tokio::task::spawn_blocking(move || {
        policy_limits::check(&document, &limits)
            .map_err(|error| ApiError::validation(error.to_string()))?;
        let compiled = guardian::compile(&document)
            .map_err(|error| ApiError::validation(error.to_string()))?;
        Ok((document, compiled))
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "compiling a policy failed");
        ApiError::internal()
    })?
}

fn stored_document(row: &store::policies::PolicyRow) -> ApiResult<PolicyDocument> {
    let mut document: PolicyDocument = serde_json::from_str(&row.document).map_err(|error| {
        tracing::error!(%error, org_id = %row.org_id, "stored policy does not parse");
        ApiError::internal()
    })?;
    document.version = Some(row.version);
    document.updated_at = Some(time::format(row.updated_at));
    document.updated_by = Some(row.updated_by.clone());
    Ok(document)
}
