//! Every environment variable the binary reads, in one place. Names match the official SDKs;
//! an empty value means unset, as in every SDK.

pub const PROFILE: &str = "AGENTTRUST_PROFILE";
/// The gateway base URL (first choice, as in every SDK).
pub const URL: &str = "AGENTTRUST_URL";
/// The gateway base URL (fallback, as in every SDK).
pub const BASE_URL: &str = "AGENTTRUST_BASE_URL";
pub const API_KEY: &str = "AGENTTRUST_API_KEY";
pub const AUTH_URL: &str = "AGENTTRUST_AUTH_URL";
pub const AUDIT_URL: &str = "AGENTTRUST_AUDIT_URL";
pub const CONFIG_DIR: &str = "AGENTTRUST_CONFIG_DIR";
pub const NO_INPUT: &str = "AGENTTRUST_NO_INPUT";
pub const OUTPUT: &str = "AGENTTRUST_OUTPUT";
pub const TIMEOUT: &str = "AGENTTRUST_TIMEOUT";
pub const AGENT_ID: &str = "AGENTTRUST_AGENT_ID";
/// An agent token (`at_…`) for the runtime calls of a shell agent (never a command-line
/// argument; `--agent-token-file` reads one from a file or stdin).
pub const AGENT_TOKEN: &str = "AGENTTRUST_AGENT_TOKEN";
pub const SESSION_ID: &str = "AGENTTRUST_SESSION_ID";
pub const FAIL_OPEN: &str = "AGENTTRUST_FAIL_OPEN";
/// Where `guard` keeps state (the telemetry spool) [default: the platform's state dir].
pub const STATE_DIR: &str = "AGENTTRUST_STATE_DIR";
// The embedded gateway (`agenttrust server`).
pub const DATABASE_URL: &str = "AGENTTRUST_DATABASE_URL";
pub const LISTEN: &str = "AGENTTRUST_LISTEN";
pub const DATA_DIR: &str = "AGENTTRUST_DATA_DIR";
pub const MAX_TOKEN_TTL: &str = "AGENTTRUST_MAX_TOKEN_TTL";
/// The URL clients reach the gateway at; names it as an OIDC issuer.
pub const PUBLIC_URL: &str = "AGENTTRUST_PUBLIC_URL";
/// The file holding the key-encryption key of the gateway's signing keys.
pub const SIGNING_KEY_SECRET_FILE: &str = "AGENTTRUST_SIGNING_KEY_SECRET_FILE";
/// Not ours, but respected: <https://no-color.org>.
pub const NO_COLOR: &str = "NO_COLOR";
/// Not ours, but respected (<https://bixense.com/clicolors/>): `0` turns colour off.
pub const CLICOLOR: &str = "CLICOLOR";
/// Not ours, but respected: set and not `0`, colour even off a terminal.
pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";

/// Reads a variable; an empty value means unset (as in every SDK).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Reads a boolean variable: `1`, `true`, `yes`, `on` (any case) are true.
pub fn flag(name: &str) -> bool {
    var(name).is_some_and(|value| super::parse_bool(&value))
}
