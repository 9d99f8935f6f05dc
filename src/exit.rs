//! How a run ends, decided in one place (design.md §4; the codes are public API). A verb returns
//! either an [`Outcome`] — what it came to: success, a denial, an elevation waiting for a human,
//! an inactive token, a wrapped command's own status — or an error. `main` hands either to
//! [`finish`], which picks the exit code and prints the one report that goes with it: a human
//! `error: …` line and `hint: …`, or with `-o json` one JSON object on stderr, or nothing.
//!
//! Denied is never 0 and an error is never 77, so `agenttrust actions check … && tool` fails
//! closed. `-o json` changes what is printed, never the exit code.

use crate::cli::guard::child::SpawnError;
use crate::client;
use crate::config::env;
use crate::output;

pub const SUCCESS: u8 = 0;
/// An error reported by the gateway or the CLI (validation, conflict, server error).
pub const FAILURE: u8 = 1;
/// A usage error (clap exits with it on its own).
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
/// Authentication or permission failure: 401/403, missing or invalid API key.
pub const AUTH: u8 = 4;
/// The gateway is unreachable or timed out (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// Elevation required: an approval is pending (EX_TEMPFAIL: retry after approval).
pub const ELEVATION_REQUIRED: u8 = 75;
/// Denied by policy (EX_NOPERM).
pub const DENIED: u8 = 77;

/// The machine codes of reports the CLI makes itself (the gateway's errors carry their own).
/// Scripts read them from `{"error":{"code":…}}` on stderr under `-o json`.
pub mod code {
    pub const ACTION_DENIED: &str = "ACTION_DENIED";
    pub const ELEVATION_REQUIRED: &str = "ELEVATION_REQUIRED";
    pub const APPROVAL_EXPIRED: &str = "APPROVAL_EXPIRED";
    pub const TOKEN_INACTIVE: &str = "TOKEN_INACTIVE";
    pub const DELIVERY_FAILED: &str = "DELIVERY_FAILED";
    pub const USAGE_ERROR: &str = "USAGE_ERROR";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const API_KEY_MISSING: &str = "API_KEY_MISSING";
    pub const ABORTED: &str = "ABORTED";
    pub const SPAWN_FAILED: &str = "SPAWN_FAILED";
    pub const BROKEN_PIPE: &str = "BROKEN_PIPE";
    pub const ERROR: &str = "ERROR";
}

/// What a verb came to when it ran to its end. Only [`Outcome::Success`] exits 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A check answered `allowed: false`: 77.
    Denied {
        tool: String,
        reason: String,
    },
    /// A check answered `elevation_required: true`: a human must approve first; 75.
    ElevationRequired {
        tool: String,
        reason: String,
        approval_id: Option<String>,
        retry: Retry,
    },
    /// A human denied the approval waited for: 77.
    ApprovalDenied {
        approval_id: String,
        decided_by: String,
    },
    /// Nobody decided the approval in the time waited (`status` is what the gateway says:
    /// `pending`, or a status a newer gateway invented): 75.
    ApprovalPending {
        approval_id: String,
        status: String,
        /// How long was waited, as the user wrote it (`5m`).
        waited: String,
    },
    /// The approval expired before anybody decided it: 1.
    ApprovalExpired {
        approval_id: String,
    },
    /// An introspection answered `active: false`: 1.
    TokenInactive {
        reasoning: String,
    },
    /// `streaming test`: the test event did not arrive (the destination refused it or could
    /// not be reached): 1.
    DeliveryFailed {
        destination_id: String,
        reason: String,
    },
    /// `guard run`: the wrapped command's own exit status, passed through silently.
    CommandStatus(u8),
}

/// How to retry a call once its approval is granted (the hint of an elevation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Approvals are granted per session: retry with the same `--session`.
    SameSession,
    /// `guard`: retry in the same session or block with `--wait`; `Some` names the session id
    /// made up for this call, which the retry must then pass. `waited`: `--wait` was given
    /// already, so it is not suggested again.
    Guard {
        fresh_session: Option<String>,
        waited: bool,
    },
    /// `policies test`: nothing was recorded and no approval exists, so there is no retry.
    Hypothetical,
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Success => SUCCESS,
            Outcome::Denied { .. } | Outcome::ApprovalDenied { .. } => DENIED,
            Outcome::ElevationRequired { .. } | Outcome::ApprovalPending { .. } => {
                ELEVATION_REQUIRED
            }
            Outcome::ApprovalExpired { .. }
            | Outcome::TokenInactive { .. }
            | Outcome::DeliveryFailed { .. } => FAILURE,
            Outcome::CommandStatus(code) => *code,
        }
    }

    /// What to print on stderr about this outcome; `None` when nothing is (success, a wrapped
    /// command's status: the command spoke for itself).
    pub fn report(&self) -> Option<Report> {
        let report = |code: &str, message: String, hint: Option<String>| {
            Some(Report {
                exit_code: self.exit_code(),
                code: code.to_string(),
                message,
                status: None,
                hint,
                approval_id: None,
                silent: false,
            })
        };
        match self {
            Outcome::Success | Outcome::CommandStatus(_) => None,
            Outcome::Denied { tool, reason } => report(
                code::ACTION_DENIED,
                format!("action denied: `{tool}`: {}", reason_or_default(reason)),
                None,
            ),
            Outcome::ElevationRequired {
                tool,
                reason,
                approval_id,
                retry,
            } => {
                let hint = retry.hint(approval_id.as_deref());
                report(
                    code::ELEVATION_REQUIRED,
                    format!(
                        "elevation required: `{tool}`: {}",
                        reason_or_default(reason)
                    ),
                    hint,
                )
                .map(|report| Report {
                    approval_id: approval_id.clone(),
                    ..report
                })
            }
            Outcome::ApprovalDenied {
                approval_id,
                decided_by,
            } => report(
                code::ACTION_DENIED,
                format!("approval {approval_id} was denied by {decided_by}"),
                None,
            )
            .map(|report| Report {
                approval_id: Some(approval_id.clone()),
                ..report
            }),
            Outcome::ApprovalPending {
                approval_id,
                status,
                waited,
            } => report(
                code::ELEVATION_REQUIRED,
                format!("approval {approval_id} is {status} after waiting {waited}"),
                Some(format!(
                    "approve it with `agenttrust approvals approve {approval_id}`, or wait longer \
                     with --wait-timeout"
                )),
            )
            .map(|report| Report {
                approval_id: Some(approval_id.clone()),
                ..report
            }),
            Outcome::ApprovalExpired { approval_id } => report(
                code::APPROVAL_EXPIRED,
                format!("approval {approval_id} expired before anyone decided it"),
                Some("retry the call to request a new approval".to_string()),
            )
            .map(|report| Report {
                approval_id: Some(approval_id.clone()),
                ..report
            }),
            Outcome::TokenInactive { reasoning } => report(
                code::TOKEN_INACTIVE,
                format!("token inactive: {}", reason_or_default(reasoning)),
                None,
            ),
            Outcome::DeliveryFailed {
                destination_id,
                reason,
            } => report(
                code::DELIVERY_FAILED,
                format!(
                    "the test event did not reach destination {destination_id}: {}",
                    reason_or_default(reason)
                ),
                Some(format!(
                    "check its endpoint and token; `agenttrust streaming logs {destination_id}` \
                     shows every attempt"
                )),
            ),
        }
    }
}

impl Retry {
    /// What to do about an elevation: approve the approval, then retry as this says.
    fn hint(&self, approval_id: Option<&str>) -> Option<String> {
        let retry = match self {
            // Nothing was recorded and no approval exists: there is nothing to approve.
            Retry::Hypothetical => return None,
            Retry::SameSession => "retry with the same --session".to_string(),
            Retry::Guard {
                fresh_session: Some(session),
                waited,
            } => format!(
                "retry with --session {session}{}",
                if *waited { "" } else { " (or pass --wait)" }
            ),
            Retry::Guard {
                fresh_session: None,
                waited,
            } => format!(
                "retry in the same session{}",
                if *waited { "" } else { " (or pass --wait)" }
            ),
        };
        Some(match approval_id {
            Some(id) => format!(
                "approval {id} is pending; approve it with `agenttrust approvals approve {id}`, \
                 then {retry}"
            ),
            None => "an operator must allow this call".to_string(),
        })
    }
}

fn reason_or_default(reason: &str) -> &str {
    if reason.trim().is_empty() {
        "no reason given"
    } else {
        reason
    }
}

/// Filters the result of printing a decision's answer: a reader that went away does not change
/// the outcome — a denial must never become exit 0 because `| head -c1` closed the pipe — while
/// any other write error still fails the run.
pub fn answer_printed(printed: std::io::Result<()>) -> std::io::Result<()> {
    match printed {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Failures the CLI itself decides on (the gateway's errors are `client::Error`).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Misuse the parser cannot see (e.g. a destructive verb without `--yes` off a TTY).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// Something named on the command line does not exist (e.g. no agent has that name): 3,
    /// like the gateway's 404.
    #[error("{message}")]
    NotFound {
        message: String,
        hint: Option<String>,
    },
    #[error("no API key configured for profile `{profile}`")]
    MissingApiKey { profile: String },
    /// The user said no at a confirmation prompt.
    #[error("aborted")]
    Aborted,
}

/// What to print about how a run ended, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub exit_code: u8,
    /// A machine code (one of [`code`], or the gateway's own).
    pub code: String,
    pub message: String,
    /// The HTTP status when the gateway answered.
    pub status: Option<u16>,
    pub hint: Option<String>,
    /// The approval an elevation or a wait is about (scripts pass it to `approvals wait`).
    pub approval_id: Option<String>,
    /// Print nothing (a broken pipe is not worth a word).
    pub silent: bool,
}

/// An error whose next step the verb knows better than its status does (e.g. a 401 about the
/// agent token given to `sessions init-api`, not about the API key): the exit code and machine
/// code stay the gateway's, the hint is this one. Displays as the error itself.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Rehinted {
    pub error: client::Error,
    pub hint: String,
}

/// Where the API key of this run came from, so that a rejected key (401) names what to fix:
/// the environment variable overrides every profile, so `login` would not help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Environment,
    Profile(String),
}

static KEY_ORIGIN: std::sync::OnceLock<KeyOrigin> = std::sync::OnceLock::new();

/// Records where the run's API key comes from (once, when the settings are resolved): the
/// report is decided after the verb and its context are gone.
pub fn note_key_origin(origin: KeyOrigin) {
    // A second call (a verb resolving settings again) keeps the first: the same run, same key.
    let _ = KEY_ORIGIN.set(origin);
}

fn rejected_key_hint() -> String {
    match KEY_ORIGIN.get() {
        Some(KeyOrigin::Environment) => format!(
            "the key comes from {} (which overrides any profile's key): correct or unset it",
            env::API_KEY
        ),
        Some(KeyOrigin::Profile(profile)) => {
            format!("log in again: `agenttrust login --profile {profile}`")
        }
        None => format!("run `agenttrust login` (or set {})", env::API_KEY),
    }
}

/// The next step after a failed connection, by what failed and where: only refused on this
/// machine suggests starting a local gateway.
fn transport_hint(error: &client::Error) -> Option<String> {
    let host_of = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_default()
    };
    let local = |url: &str| {
        let host = host_of(url);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback() || address.is_unspecified())
    };
    const CHECK_URL: &str = "check --url (or AGENTTRUST_URL, or the profile's url)";
    Some(match error {
        client::Error::Connect {
            url,
            why: client::Unreachable::Refused,
            ..
        } if local(url) => {
            "is the gateway running? start one with `agenttrust server --dev`".to_string()
        }
        client::Error::Connect {
            url,
            why: client::Unreachable::Refused,
            ..
        } => format!(
            "nothing listens there: is the gateway running on {}? {CHECK_URL}",
            host_of(url)
        ),
        client::Error::Connect {
            url,
            why: client::Unreachable::UnknownHost,
            ..
        } => format!(
            "the host name `{}` does not resolve: {CHECK_URL}",
            host_of(url)
        ),
        client::Error::Connect {
            url,
            why: client::Unreachable::NoRoute,
            ..
        } => format!(
            "no route to `{}`: check the network, or {CHECK_URL}",
            host_of(url)
        ),
        client::Error::Tls {
            url,
            plain_http_peer: true,
            ..
        } => format!(
            "the server speaks plain HTTP: use {}",
            url_with_scheme(url, "http")
        ),
        client::Error::Tls { .. } => "check the URL's scheme (http:// or https://) and that \
                                      the gateway's certificate is trusted (--ca-cert)"
            .to_string(),
        client::Error::Timeout { .. } => {
            "the gateway is slow or overloaded; allow more time with --timeout".to_string()
        }
        client::Error::Transport { .. } => {
            format!("the connection broke or the answer was not HTTP: {CHECK_URL}")
        }
        _ => return None,
    })
}

/// The base of a request URL under another scheme (`https://h:8080/api/…` → `http://h:8080`).
fn url_with_scheme(url: &str, scheme: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let port = parsed
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            format!("{scheme}://{}{port}", parsed.host_str().unwrap_or_default())
        }
        Err(_) => format!("{scheme}://…"),
    }
}

/// Maps an error to its report: exit code, machine code, message and hint.
pub fn classify(error: &anyhow::Error) -> Report {
    let message = format!("{error:#}");
    let report = |exit_code: u8, code: &str, hint: Option<String>| Report {
        exit_code,
        code: code.to_string(),
        message: message.clone(),
        status: None,
        hint,
        approval_id: None,
        silent: false,
    };

    // A reader that went away (`agenttrust agents list | head -1`) is not an error.
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return Report {
            silent: true,
            ..report(SUCCESS, code::BROKEN_PIPE, None)
        };
    }

    for cause in error.chain() {
        if let Some(rehinted) = cause.downcast_ref::<Rehinted>() {
            return Report {
                hint: Some(rehinted.hint.clone()),
                ..classify_client(&rehinted.error, &message)
            };
        }
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return match failure {
                Failure::Usage { hint, .. } => report(USAGE, code::USAGE_ERROR, hint.clone()),
                Failure::NotFound { hint, .. } => report(NOT_FOUND, code::NOT_FOUND, hint.clone()),
                Failure::MissingApiKey { profile } => report(
                    AUTH,
                    code::API_KEY_MISSING,
                    Some(format!(
                        "run `agenttrust login --profile {profile}` or set {}",
                        env::API_KEY
                    )),
                ),
                Failure::Aborted => report(FAILURE, code::ABORTED, None),
            };
        }
        if let Some(spawn) = cause.downcast_ref::<SpawnError>() {
            return report(spawn.exit_code(), code::SPAWN_FAILED, None);
        }
        if let Some(client_error) = cause.downcast_ref::<client::Error>() {
            return classify_client(client_error, &message);
        }
    }
    report(FAILURE, code::ERROR, None)
}

/// The report of a client error (`message` is the whole chain, as printed).
fn classify_client(client_error: &client::Error, message: &str) -> Report {
    let (exit_code, hint) = match client_error {
        client::Error::Gateway {
            status, message, ..
        } => match status {
            401 => (AUTH, Some(rejected_key_hint())),
            403 => (
                AUTH,
                Some(
                    "the API key's role does not allow this (admin keys manage the org)"
                        .to_string(),
                ),
            ),
            // The gateway knows no such route: the URL carries a path it does not serve under.
            404 if message.starts_with("no such endpoint") => (
                NOT_FOUND,
                Some(
                    "the URL must be the gateway's base (http://host:port): check --url (or \
                     AGENTTRUST_URL, or the profile's url)"
                        .to_string(),
                ),
            ),
            404 => (NOT_FOUND, None),
            _ => (FAILURE, None),
        },
        client::Error::Connect { .. }
        | client::Error::Transport { .. }
        | client::Error::Tls { .. }
        | client::Error::Timeout { .. } => (UNAVAILABLE, transport_hint(client_error)),
        client::Error::Decode { .. } => (
            FAILURE,
            Some("is --url pointing at an AgentTrust gateway?".to_string()),
        ),
        client::Error::InvalidUrl { hint, .. } => (FAILURE, Some(hint.clone())),
        client::Error::Config(_) => (FAILURE, None),
    };
    Report {
        exit_code,
        code: client_error.code().to_string(),
        message: message.to_string(),
        status: client_error.status(),
        hint,
        approval_id: None,
        silent: false,
    }
}

/// Decides how a run ends: prints the report of an outcome or an error (a human line and hint,
/// or with `json` one JSON object, on stderr) and returns the exit code.
pub fn finish(result: anyhow::Result<Outcome>, json: bool) -> u8 {
    let (exit_code, report) = match result {
        Ok(outcome) => (outcome.exit_code(), outcome.report()),
        Err(error) => {
            let report = classify(&error);
            (report.exit_code, Some(report))
        }
    };
    if let Some(report) = report.filter(|report| !report.silent) {
        output::print_error(&report, json);
    }
    exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(status: u16) -> anyhow::Error {
        client::Error::Gateway {
            status,
            code: "X".to_string(),
            message: "m".to_string(),
        }
        .into()
    }

    #[test]
    fn statuses_map_to_codes() {
        assert_eq!(classify(&gateway(400)).exit_code, FAILURE);
        assert_eq!(classify(&gateway(401)).exit_code, AUTH);
        assert_eq!(classify(&gateway(403)).exit_code, AUTH);
        assert_eq!(classify(&gateway(404)).exit_code, NOT_FOUND);
        assert_eq!(classify(&gateway(409)).exit_code, FAILURE);
        assert_eq!(classify(&gateway(500)).exit_code, FAILURE);
        let unreachable = anyhow::Error::from(client::Error::Connect {
            url: "u".to_string(),
            detail: "refused".to_string(),
            why: client::Unreachable::Refused,
        });
        assert_eq!(classify(&unreachable).exit_code, UNAVAILABLE);
    }

    #[test]
    fn context_does_not_hide_the_cause() {
        let error = gateway(404).context("cannot get agent a1");
        let report = classify(&error);
        assert_eq!(report.exit_code, NOT_FOUND);
        assert_eq!(report.message, "cannot get agent a1: m");
        assert_eq!(report.status, Some(404));
    }

    #[test]
    fn decisions_never_exit_zero() {
        let denied = Outcome::Denied {
            tool: "rm".to_string(),
            reason: "no".to_string(),
        };
        assert_eq!(denied.exit_code(), DENIED);
        let report = denied.report().unwrap();
        assert_eq!(report.code, code::ACTION_DENIED);
        assert_eq!(report.message, "action denied: `rm`: no");
        let elevation = Outcome::ElevationRequired {
            tool: "deploy".to_string(),
            reason: String::new(),
            approval_id: Some("apr-1".to_string()),
            retry: Retry::SameSession,
        };
        assert_eq!(elevation.exit_code(), ELEVATION_REQUIRED);
        let report = elevation.report().unwrap();
        assert_eq!(
            report.message,
            "elevation required: `deploy`: no reason given"
        );
        assert_eq!(report.approval_id.as_deref(), Some("apr-1"));
        assert!(
            report.hint.unwrap().contains(
                "`agenttrust approvals approve apr-1`, then retry with the same --session"
            )
        );
        let approval_denied = Outcome::ApprovalDenied {
            approval_id: "apr-1".to_string(),
            decided_by: "alice".to_string(),
        };
        assert_eq!(approval_denied.exit_code(), DENIED);
        let pending = Outcome::ApprovalPending {
            approval_id: "apr-1".to_string(),
            status: "pending".to_string(),
            waited: "5m".to_string(),
        };
        assert_eq!(pending.exit_code(), ELEVATION_REQUIRED);
        assert_eq!(
            Outcome::ApprovalExpired {
                approval_id: "apr-1".to_string()
            }
            .exit_code(),
            FAILURE
        );
        assert_eq!(
            Outcome::TokenInactive {
                reasoning: "expired".to_string()
            }
            .exit_code(),
            FAILURE
        );
        assert_eq!(
            classify(&anyhow::anyhow!("anything else")).exit_code,
            FAILURE
        );
    }

    #[test]
    fn success_and_a_command_status_print_nothing() {
        assert_eq!(Outcome::Success.exit_code(), SUCCESS);
        assert_eq!(Outcome::Success.report(), None);
        assert_eq!(Outcome::CommandStatus(3).exit_code(), 3);
        assert_eq!(Outcome::CommandStatus(3).report(), None);
    }

    #[test]
    fn a_fresh_guard_session_is_named_in_the_hint() {
        let elevation = Outcome::ElevationRequired {
            tool: "deploy".to_string(),
            reason: "r".to_string(),
            approval_id: Some("apr-2".to_string()),
            retry: Retry::Guard {
                fresh_session: Some("s-9".to_string()),
                waited: false,
            },
        };
        let hint = elevation.report().unwrap().hint.unwrap();
        assert!(
            hint.ends_with("retry with --session s-9 (or pass --wait)"),
            "{hint}"
        );
    }

    #[test]
    fn broken_pipe_is_success() {
        let error = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let report = classify(&error);
        assert_eq!(report.exit_code, SUCCESS);
        assert!(report.silent);
    }
}
