//! A check's request, validated and canonical: the action name in its one canonical form
//! ([`crate::guardian::canonical`]), the input summary bounded, the stated effect parsed, and
//! the session bound to the presented token's session when the token was issued for one.

use crate::api::actions::{Effect, MAX_INPUT_SUMMARY_BYTES};
use crate::guardian::canonical;

use super::super::auth::{Caller, Principal};
use super::super::error::{ApiError, ApiResult};
use super::super::validate;

/// A validated check, whatever door it came through.
#[derive(Debug, Clone)]
pub struct CheckParams {
    pub agent_id: String,
    /// Canonical: what rules match, what is classified, approved, audited.
    pub action_name: String,
    pub input_summary: String,
    pub stated_effect: Option<Effect>,
    pub session_id: Option<String>,
}

/// The raw fields of a check, as a door received them.
#[derive(Debug, Clone, Copy)]
pub struct RawCheck<'a> {
    pub agent_id: &'a str,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    pub action_effect: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

impl CheckParams {
    /// Validates a check a client described for `caller`: its input is the client's summary,
    /// at most [`MAX_INPUT_SUMMARY_BYTES`]. An agent token issued for a session may check only
    /// in that session (403 otherwise); naming none means that one.
    pub fn validate(caller: Option<&Caller>, raw: RawCheck<'_>) -> ApiResult<CheckParams> {
        if raw.input_summary.len() > MAX_INPUT_SUMMARY_BYTES {
            return Err(ApiError::validation(format!(
                "action_input_summary is {} bytes; summaries are cut to 200 characters by \
                 clients and may be at most {MAX_INPUT_SUMMARY_BYTES} bytes",
                raw.input_summary.len()
            )));
        }
        Self::validate_whole_input(caller, raw)
    }

    /// Validates a check whose input the gateway took itself from the request it guards (an
    /// MCP tool call's arguments, an A2A message): the decision rests on the whole of it, never
    /// on a cut the caller could pad (a long first argument would push the real one out of
    /// sight of path restrictions, classification and input rules). Its length is bounded by
    /// the request body limit; what is stored of it is bounded by
    /// [`crate::store::checks::recorded_summary`].
    pub fn validate_whole_input(
        caller: Option<&Caller>,
        raw: RawCheck<'_>,
    ) -> ApiResult<CheckParams> {
        validate::identifier("agent_id", raw.agent_id)?;
        let action_name = canonical::action_name(raw.action_name)
            .map_err(|problem| ApiError::validation(format!("action_name {problem}")))?;
        validate::name("action_name", &action_name)?;
        let stated_effect = raw
            .action_effect
            .map(str::parse::<Effect>)
            .transpose()
            .map_err(|error| ApiError::validation(format!("action_effect: {error}")))?;
        if let Some(session_id) = raw.session_id {
            validate::identifier("session_id", session_id)?;
        }
        let token_session = caller.and_then(|caller| match &caller.principal {
            Principal::Agent { session_id, .. } => session_id.as_deref(),
            Principal::Key { .. } | Principal::Workload { .. } => None,
        });
        let session_id = match (raw.session_id, token_session) {
            (Some(named), Some(bound)) if named != bound => {
                return Err(ApiError::forbidden(format!(
                    "the agent token was issued for session {bound}; it cannot act in session \
                     {named}"
                )));
            }
            (named, bound) => named.or(bound).map(str::to_string),
        };
        Ok(CheckParams {
            agent_id: raw.agent_id.to_string(),
            action_name,
            input_summary: raw.input_summary.to_string(),
            stated_effect,
            session_id,
        })
    }
}
