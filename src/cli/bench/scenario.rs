//! What each `bench` scenario sends: its endpoint, its request (typed, as the SDKs send it) and
//! that request's body as bytes built once, and a probe: one ordinary typed call made before the
//! load, so that a scenario the gateway would answer wrongly (a check the org's policy denies, a
//! token that does not introspect active) fails at once with a clear message instead of being
//! measured.

use std::fmt;

use anyhow::Context as _;
use bytes::Bytes;
use serde::Serialize;

use super::fixture::Fixture;
use crate::api::actions::{CheckRequest, Effect};
use crate::api::telemetry::{ReportRequest, ReportedEvent};
use crate::api::tokens::{IntrospectRequest, IssueTokenRequest};
use crate::client::prepared::Endpoint;
use crate::client::{self, Client};

/// The tool every check and telemetry event of a run names: a read, allowed by default.
pub const TOOL_NAME: &str = "read_file";
pub const INPUT_SUMMARY: &str = "/tmp/agenttrust-bench/input.txt";
/// Events in one telemetry report.
pub const EVENTS_PER_REPORT: usize = 10;
/// Lifetime of the tokens the `issue` scenario issues (they die with the agent anyway).
const ISSUED_TOKEN_TTL_SECONDS: i64 = 60;
/// Where a request's sequence number goes in a body template (braces never occur in an id we
/// make, so the marker cannot collide).
const SEQUENCE_MARKER: &str = "{sequence}";

/// One kind of request `bench` repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// POST /api/v1/agenttrust/check: an allowed read in a registered session, recorded
    Check,
    /// POST /api/v1/agent-tokens/introspect of the run's token
    Introspect,
    /// POST /api/v1/agent-tokens/issue: a new token each time
    Issue,
    /// POST /api/v1/telemetry/report with 10 events, each with its own event id
    Telemetry,
    /// GET /health: the baseline every scenario is compared with
    Health,
}

impl Scenario {
    /// Every scenario, in the order a run without a list takes them (the baseline first).
    pub const ALL: [Scenario; 5] = [
        Scenario::Health,
        Scenario::Check,
        Scenario::Introspect,
        Scenario::Issue,
        Scenario::Telemetry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Check => "check",
            Scenario::Introspect => "introspect",
            Scenario::Issue => "issue",
            Scenario::Telemetry => "telemetry",
            Scenario::Health => "health",
        }
    }

    pub fn endpoint(self) -> Endpoint {
        match self {
            Scenario::Check => Endpoint::Check,
            Scenario::Introspect => Endpoint::Introspect,
            Scenario::Issue => Endpoint::Issue,
            Scenario::Telemetry => Endpoint::TelemetryReport,
            Scenario::Health => Endpoint::Health,
        }
    }

    /// Whether the scenario needs the run's agent, token and session.
    pub fn needs_fixture(self) -> bool {
        self != Scenario::Health
    }

    /// The body template of this scenario's requests (each but `health` needs the fixture);
    /// `event_id_prefix` makes the telemetry event ids of this run unique.
    pub fn body(
        self,
        fixture: Option<&Fixture>,
        event_id_prefix: &str,
    ) -> anyhow::Result<BodyTemplate> {
        if self == Scenario::Health {
            return Ok(BodyTemplate::none());
        }
        let fixture = fixture.with_context(|| format!("the {self} scenario needs an agent"))?;
        match self {
            Scenario::Health => Ok(BodyTemplate::none()),
            Scenario::Check => BodyTemplate::constant(&check_request(fixture)),
            Scenario::Introspect => BodyTemplate::constant(&introspect_request(fixture)),
            Scenario::Issue => BodyTemplate::constant(&issue_request(fixture)),
            Scenario::Telemetry => BodyTemplate::with_sequence(&telemetry_request(
                fixture,
                &format!("{event_id_prefix}-{SEQUENCE_MARKER}"),
            )),
        }
    }

    /// One ordinary call of the scenario, checked for the answer the load expects.
    pub async fn probe(
        self,
        client: &Client,
        fixture: &Fixture,
        event_id_prefix: &str,
    ) -> anyhow::Result<()> {
        let context = || format!("the {self} scenario's first request failed");
        match self {
            // The run starts by reading /health: nothing more to learn here.
            Scenario::Health => {}
            Scenario::Check => {
                let decision = client::actions::check(client, &check_request(fixture))
                    .await
                    .with_context(context)?
                    .value;
                if !decision.allowed {
                    anyhow::bail!(
                        "the check scenario measures an allowed read (`{TOOL_NAME}`), and the \
                         org's policy does not allow it: {} (rule {}); allow reads of the agents \
                         named agenttrust-bench-…, or run the other scenarios",
                        decision.reason,
                        decision.rule.as_deref().unwrap_or("unknown")
                    );
                }
            }
            Scenario::Introspect => {
                let introspection =
                    client::tokens::introspect(client, &introspect_request(fixture))
                        .await
                        .with_context(context)?
                        .value;
                if !introspection.active {
                    anyhow::bail!(
                        "the run's token does not introspect active: {}",
                        introspection.reasoning
                    );
                }
            }
            Scenario::Issue => {
                client::tokens::issue(client, &issue_request(fixture))
                    .await
                    .with_context(context)?;
            }
            Scenario::Telemetry => {
                let request = telemetry_request(fixture, &format!("{event_id_prefix}-probe"));
                client::telemetry::report(client, &request)
                    .await
                    .with_context(context)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

fn check_request(fixture: &Fixture) -> CheckRequest {
    CheckRequest {
        agent_id: Some(fixture.agent_id.clone()),
        action_name: Some(TOOL_NAME.to_string()),
        action_input_summary: Some(INPUT_SUMMARY.to_string()),
        session_id: Some(fixture.session_id.clone()),
        action_effect: Some(Effect::Read.as_str().to_string()),
        ..CheckRequest::default()
    }
}

fn introspect_request(fixture: &Fixture) -> IntrospectRequest {
    IntrospectRequest {
        token: fixture.token.clone(),
        target: None,
        required_scopes: Vec::new(),
    }
}

fn issue_request(fixture: &Fixture) -> IssueTokenRequest {
    IssueTokenRequest {
        agent_id: fixture.agent_id.clone(),
        scopes: fixture.scopes.clone(),
        ttl: Some(ISSUED_TOKEN_TTL_SECONDS),
        session_id: None,
    }
}

/// A report of `EVENTS_PER_REPORT` events (starts and ends of the bench tool), their ids
/// `{event_id_base}-{index}`.
fn telemetry_request(fixture: &Fixture, event_id_base: &str) -> ReportRequest {
    let events = (0..EVENTS_PER_REPORT)
        .map(|index| {
            let end = index % 2 == 1;
            ReportedEvent {
                event_type: if end { "tool_end" } else { "tool_start" }.to_string(),
                tool_name: Some(TOOL_NAME.to_string()),
                duration_ms: end.then_some(3),
                success: end.then_some(true),
                event_id: Some(format!("{event_id_base}-{index}")),
                ..ReportedEvent::default()
            }
        })
        .collect();
    ReportRequest {
        agent_id: Some(fixture.agent_id.clone()),
        session_id: Some(fixture.session_id.clone()),
        events,
    }
}

/// A request body built once: constant pieces with a request's sequence number between them
/// (one piece: the same bytes every time, shared, never copied).
#[derive(Debug, Clone)]
pub struct BodyTemplate {
    pieces: Vec<Bytes>,
}

impl BodyTemplate {
    /// No body (a GET).
    pub fn none() -> BodyTemplate {
        BodyTemplate { pieces: Vec::new() }
    }

    fn constant(request: &impl Serialize) -> anyhow::Result<BodyTemplate> {
        let bytes = serde_json::to_vec(request).context("cannot encode a bench request")?;
        Ok(BodyTemplate {
            pieces: vec![Bytes::from(bytes)],
        })
    }

    /// A body with [`SEQUENCE_MARKER`] wherever the sequence number goes.
    fn with_sequence(request: &impl Serialize) -> anyhow::Result<BodyTemplate> {
        let text = serde_json::to_string(request).context("cannot encode a bench request")?;
        Ok(BodyTemplate {
            pieces: text
                .split(SEQUENCE_MARKER)
                .map(|piece| Bytes::copy_from_slice(piece.as_bytes()))
                .collect(),
        })
    }

    /// The body of the request numbered `sequence`.
    pub fn render(&self, sequence: u64) -> Option<Bytes> {
        match self.pieces.as_slice() {
            [] => None,
            [constant] => Some(constant.clone()),
            [first, rest @ ..] => {
                let number = sequence.to_string();
                let length =
                    self.pieces.iter().map(Bytes::len).sum::<usize>() + number.len() * rest.len();
                let mut body = Vec::with_capacity(length);
                body.extend_from_slice(first);
                for piece in rest {
                    body.extend_from_slice(number.as_bytes());
                    body.extend_from_slice(piece);
                }
                Some(Bytes::from(body))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Fixture {
        Fixture {
            agent_id: "a1".to_string(),
            token: "at_x".to_string(),
            session_id: "s1".to_string(),
            scopes: vec!["bench:read".to_string()],
        }
    }

    #[test]
    fn telemetry_bodies_carry_unique_event_ids() {
        let template = Scenario::Telemetry
            .body(Some(&fixture()), "bench-r1")
            .unwrap();
        let first: serde_json::Value =
            serde_json::from_slice(&template.render(7).unwrap()).unwrap();
        let second: serde_json::Value =
            serde_json::from_slice(&template.render(8).unwrap()).unwrap();
        let ids = |body: &serde_json::Value| {
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| event["event_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first).len(), EVENTS_PER_REPORT);
        assert_eq!(ids(&first)[0], "bench-r1-7-0");
        assert_eq!(ids(&second)[9], "bench-r1-8-9");
        assert_eq!(first["session_id"], "s1");
    }

    #[test]
    fn constant_bodies_are_shared_and_health_has_none() {
        let template = Scenario::Check.body(Some(&fixture()), "p").unwrap();
        assert_eq!(template.render(1), template.render(2));
        let body: serde_json::Value = serde_json::from_slice(&template.render(1).unwrap()).unwrap();
        assert_eq!(body["action_name"], TOOL_NAME);
        assert_eq!(body["action_effect"], "read");
        assert_eq!(body["session_id"], "s1");
        assert!(
            Scenario::Health
                .body(None, "p")
                .unwrap()
                .render(1)
                .is_none()
        );
    }
}
