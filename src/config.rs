//! Configuration: the one registry of environment variable names, named profiles in the config
//! dir (`config.toml` for settings, `credentials.toml` for API keys), atomic writes, the shared
//! duration parser, and the precedence rule every setting follows: flag > env > profile > default.
//!
//! Nothing here talks to the network or prints data; the CLI decides what to show.
//!
//! `env` is the registry of variable names, `files` reads and writes the config dir, `resolve`
//! applies precedence; this module keeps the defaults and the parsers they share.

use std::time::Duration;

pub mod agent_keys;
pub mod env;
mod files;
mod resolve;

pub use files::{
    ConfigFile, ConfigStore, Credentials, CredentialsFile, ProfileSettings, SdkConfigFile,
    known_profiles, validate_profile_name, write_atomic,
};
pub use resolve::{Flags, Resolved, Source, resolve};

/// The gateway URL when nothing else names one.
pub const DEFAULT_URL: &str = "http://localhost:8080";
/// The profile used when neither `--profile`, the environment, nor `default_profile` names one.
pub const DEFAULT_PROFILE: &str = "default";
/// The request timeout when nothing else names one (every SDK's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `1`, `true`, `yes`, `on` (any case) are true; anything else is false.
pub fn parse_bool(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Parses a duration: `300` (seconds), `300s`, `5m`, `1h`, `1500ms`, `1d`, or parts of those in
/// a row (`1h30m`, `2m30s`; a bare number only alone). The one parser used by `--timeout`,
/// `--ttl`, the profile's `timeout` and `AGENTTRUST_TIMEOUT`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration {text:?}: expected a number with an optional unit (300, 300s, 5m, \
             1h, 1h30m)"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let mut millis: u64 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let split = rest
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(split);
        if digits.is_empty() {
            return Err(expected());
        }
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        let unit_length = after
            .find(|character: char| character.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_length);
        let multiplier_ms: u64 = match unit.trim() {
            "ms" => 1,
            // A bare number is seconds, but only on its own: `1h30` is ambiguous.
            "" if parts == 0 && next.is_empty() => 1_000,
            "" => return Err(expected()),
            "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        millis = amount
            .checked_mul(multiplier_ms)
            .and_then(|part| millis.checked_add(part))
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        parts += 1;
        rest = next;
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2d "), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        for bad in [
            "",
            "s",
            "5x",
            "-5",
            "1.5h",
            "99999999999999999999",
            "1h30",
            "h30m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
