//! Exit codes, decided in one place (design.md §4; they are public API): which failure maps to
//! which code, which machine code and hint go with it. The CLI returns errors; `main` hands them
//! to [`finish`], which prints the one-line report and picks the code.
//!
//! Denied is never 0 and an error is never 77, so `agenttrust actions check … && tool` fails
//! closed. `-o json` changes what is printed, never the exit code.

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

/// Failures the CLI itself decides on (the gateway's errors are `client::Error`).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Misuse the parser cannot see (e.g. a destructive verb without `--yes` off a TTY).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("no API key configured for profile `{profile}`")]
    MissingApiKey { profile: String },
    /// A check answered `allowed: false`.
    #[error("action denied: {reason}")]
    Denied { reason: String },
    /// A check answered `elevation_required: true`.
    #[error("elevation required: {reason}")]
    ElevationRequired {
        reason: String,
        approval_id: Option<String>,
    },
    /// An introspection answered `active: false`.
    #[error("token inactive: {reasoning}")]
    TokenInactive { reasoning: String },
    /// The user said no at a confirmation prompt.
    #[error("aborted")]
    Aborted,
    /// Exit with this code and print nothing (the answer is already on stdout, e.g. `-o json`).
    #[error("exit status {0}")]
    Silent(u8),
}

/// What to print about an error and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub exit_code: u8,
    /// A machine code (`NOT_FOUND`, `ACTION_DENIED`, the gateway's own code…).
    pub code: String,
    pub message: String,
    /// The HTTP status when the gateway answered.
    pub status: Option<u16>,
    pub hint: Option<String>,
    /// Print nothing (broken pipe, or the answer already said it).
    pub silent: bool,
}

const HINT_LOGIN: &str = "run `agenttrust login` (or set AGENTTRUST_API_KEY)";
const HINT_START: &str = "is the gateway running? start one with `agenttrust server --dev`";

/// Maps an error to its report: exit code, machine code, message and hint.
pub fn classify(error: &anyhow::Error) -> Report {
    let message = format!("{error:#}");
    let report = |exit_code: u8, code: &str, hint: Option<String>| Report {
        exit_code,
        code: code.to_string(),
        message: message.clone(),
        status: None,
        hint,
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
            ..report(SUCCESS, "BROKEN_PIPE", None)
        };
    }

    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return match failure {
                Failure::Usage { hint, .. } => report(USAGE, "USAGE_ERROR", hint.clone()),
                Failure::MissingApiKey { profile } => report(
                    AUTH,
                    "API_KEY_MISSING",
                    Some(format!(
                        "run `agenttrust login --profile {profile}` or set {}",
                        env::API_KEY
                    )),
                ),
                Failure::Denied { .. } => report(DENIED, "ACTION_DENIED", None),
                Failure::ElevationRequired { approval_id, .. } => report(
                    ELEVATION_REQUIRED,
                    "ELEVATION_REQUIRED",
                    Some(match approval_id {
                        Some(id) => format!(
                            "approval {id} is pending; approve it with \
                             `agenttrust approvals approve {id}`, then retry with the same --session"
                        ),
                        None => "retry with the same --session once approved".to_string(),
                    }),
                ),
                Failure::TokenInactive { .. } => report(FAILURE, "TOKEN_INACTIVE", None),
                Failure::Aborted => report(FAILURE, "ABORTED", None),
                Failure::Silent(code) => Report {
                    silent: true,
                    ..report(*code, "SILENT", None)
                },
            };
        }
        if let Some(client_error) = cause.downcast_ref::<client::Error>() {
            let (exit_code, hint) = match client_error {
                client::Error::Gateway { status, .. } => match status {
                    401 => (AUTH, Some(HINT_LOGIN.to_string())),
                    403 => (
                        AUTH,
                        Some(
                            "the API key's role does not allow this (admin keys manage the org)"
                                .to_string(),
                        ),
                    ),
                    404 => (NOT_FOUND, None),
                    _ => (FAILURE, None),
                },
                client::Error::Connect { .. } | client::Error::Transport { .. } => {
                    (UNAVAILABLE, Some(HINT_START.to_string()))
                }
                client::Error::Timeout { .. } => (
                    UNAVAILABLE,
                    Some(format!("{HINT_START}; or allow more time with --timeout")),
                ),
                client::Error::Decode { .. } => (
                    FAILURE,
                    Some("is --url pointing at an AgentTrust gateway?".to_string()),
                ),
                client::Error::Config(_) => (FAILURE, None),
            };
            return Report {
                status: client_error.status(),
                ..report(exit_code, client_error.code(), hint)
            };
        }
    }
    report(FAILURE, "ERROR", None)
}

/// Prints the report of a failed run (human line or, with `json`, also a JSON object on stderr)
/// and returns the exit code.
pub fn finish(result: anyhow::Result<()>, json: bool) -> u8 {
    match result {
        Ok(()) => SUCCESS,
        Err(error) => {
            let report = classify(&error);
            if !report.silent {
                output::print_error(&report, json);
            }
            report.exit_code
        }
    }
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
        let denied = anyhow::Error::from(Failure::Denied {
            reason: "no".to_string(),
        });
        assert_eq!(classify(&denied).exit_code, DENIED);
        let elevation = anyhow::Error::from(Failure::ElevationRequired {
            reason: "read only".to_string(),
            approval_id: Some("apr-1".to_string()),
        });
        assert_eq!(classify(&elevation).exit_code, ELEVATION_REQUIRED);
        assert_eq!(
            classify(&anyhow::anyhow!("anything else")).exit_code,
            FAILURE
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
