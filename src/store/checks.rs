//! Guardian decisions: every check is recorded (with its session counters and audit event, in
//! one transaction) before the answer is sent.

use crate::api::time;

use super::audit::{self, Actor, NewEvent};
use super::sessions::{self, CallCount};
use super::{Result, Store, on_tx};

/// One decision to record.
#[derive(Debug, Clone)]
pub struct CheckRecord<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub session_id: Option<&'a str>,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    pub effect: &'a str,
    pub allowed: bool,
    pub elevation_required: bool,
    pub reason: &'a str,
    pub rule: &'a str,
    pub confidence: f64,
    /// Whether the session (when one is named) is counted: only for known, active agents,
    /// since a session belongs to an agent.
    pub count_in_session: bool,
}

pub async fn record(store: &Store, check: CheckRecord<'_>, actor: &Actor) -> Result<()> {
    const SQL: &str = "INSERT INTO checks (id, org_id, agent_id, session_id, action_name, \
                       input_summary, effect, allowed, elevation_required, reason, rule, confidence, \
                       created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    let now = time::now();
    let mut tx = store.begin().await?;
    if let (Some(session_id), true) = (check.session_id, check.count_in_session) {
        let call = CallCount {
            read: check.effect == "read",
            denied: !check.allowed,
        };
        sessions::count_call(&mut tx, check.org_id, session_id, check.agent_id, call, now).await?;
    }
    on_tx!(&mut tx, conn => { sqlx::query(SQL)
        .bind(check.id)
        .bind(check.org_id)
        .bind(check.agent_id)
        .bind(check.session_id)
        .bind(check.action_name)
        .bind(check.input_summary)
        .bind(check.effect)
        .bind(check.allowed)
        .bind(check.elevation_required)
        .bind(check.reason)
        .bind(check.rule)
        .bind(check.confidence)
        .bind(now)
        .execute(&mut *conn)
        .await?; });
    audit::append(
        &mut tx,
        NewEvent {
            org_id: check.org_id,
            kind: "check.decided",
            actor,
            subject_type: "check",
            subject_id: check.id,
            detail: serde_json::json!({
                "agent_id": check.agent_id,
                "session_id": check.session_id,
                "action_name": check.action_name,
                "effect": check.effect,
                "allowed": check.allowed,
                "elevation_required": check.elevation_required,
                "rule": check.rule,
            }),
            created_at: now,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
