//! A task row in the two shapes the SDKs read: the legacy Task (`tasks/*`: snake_case, a flat
//! `status`, the message echoed as sent) and the A2A v1.0 Task (`message/send`: camelCase,
//! `status {state, timestamp, message?}`, the messages in `history`).

use serde_json::Value;

use crate::api::Extra;
use crate::api::a2a::{Task, V1Task, V1TaskStatus};
use crate::api::time;
use crate::store::a2a::TaskRow;

use super::Failure;

fn parse<T: serde::de::DeserializeOwned>(
    row: &TaskRow,
    what: &str,
    text: &str,
) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|error| {
        tracing::error!(%error, task = %row.id, what, "a stored A2A task is corrupt");
        Failure::Gateway(super::ApiError::internal())
    })
}

pub fn legacy(row: &TaskRow) -> Result<Task, Failure> {
    Ok(Task {
        id: row.id.clone(),
        source_agent_id: row.source_agent_id.clone(),
        target_agent_id: row.target_agent_id.clone(),
        status: row.status(),
        message: parse(row, "message", &row.message)?,
        artifacts: parse(row, "artifacts", &row.artifacts)?,
        metadata: parse(row, "metadata", &row.metadata)?,
        created_at: time::format(row.created_at),
        updated_at: time::format(row.updated_at),
        extra: extra(row)?,
    })
}

/// Members both shapes carry beyond their own: the context, the target's answer, where the
/// task was forwarded, the check that allowed it.
fn extra(row: &TaskRow) -> Result<Extra, Failure> {
    let mut extra = Extra::new();
    extra.insert("context_id".to_string(), row.context_id.clone().into());
    extra.insert("check_id".to_string(), row.check_id.clone().into());
    if let Some(reply) = &row.reply {
        extra.insert("reply".to_string(), parse::<Value>(row, "reply", reply)?);
    }
    if let Some(forwarded_to) = &row.forwarded_to {
        extra.insert("forwarded_to".to_string(), forwarded_to.clone().into());
    }
    Ok(extra)
}

pub fn v1(row: &TaskRow) -> Result<V1Task, Failure> {
    let message: Value = parse(row, "message", &row.message)?;
    let reply: Option<Value> = match &row.reply {
        Some(reply) => Some(parse(row, "reply", reply)?),
        None => None,
    };
    let mut history = vec![message];
    if let Some(reply) = &reply {
        history.push(reply.clone());
    }
    let mut metadata = Extra::new();
    metadata.insert(
        "source_agent_id".to_string(),
        row.source_agent_id.clone().into(),
    );
    metadata.insert(
        "target_agent_id".to_string(),
        row.target_agent_id.clone().into(),
    );
    metadata.insert("check_id".to_string(), row.check_id.clone().into());
    if let Some(forwarded_to) = &row.forwarded_to {
        metadata.insert("forwarded_to".to_string(), forwarded_to.clone().into());
    }
    Ok(V1Task {
        id: row.id.clone(),
        context_id: row.context_id.clone(),
        status: V1TaskStatus {
            state: row.status().v1_state().to_string(),
            timestamp: time::format(row.updated_at),
            message: reply,
        },
        history,
        artifacts: parse(row, "artifacts", &row.artifacts)?,
        kind: "task".to_string(),
        metadata,
        extra: Extra::new(),
    })
}

/// A wire value as JSON (the shapes above always serialize).
pub fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|_| Failure::Gateway(super::ApiError::internal()))
}
