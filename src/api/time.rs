//! Timestamps on the wire: RFC 3339 UTC with `Z` and no fraction when we emit them, any RFC 3339
//! form (0–9 fractional digits, `Z` or an offset) when we read them. Internally a timestamp is
//! unix seconds (`i64`), which is what the store keeps.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time in unix seconds.
pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// Formats unix seconds as `2026-03-01T10:00:00Z`.
pub fn format(unix_seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses any RFC 3339 timestamp into unix seconds (fractions are dropped).
pub fn parse(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|moment| moment.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_without_fraction_and_with_z() {
        assert_eq!(format(1_772_359_200), "2026-03-01T10:00:00Z");
    }

    #[test]
    fn parses_every_sdk_flavour() {
        for text in [
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00.123456+00:00",
            "2026-03-01T10:00:00.123456789+00:00",
            "2026-03-01T10:00:00.123Z",
            "2026-03-01T11:00:00+01:00",
        ] {
            assert_eq!(parse(text), Some(1_772_359_200), "{text}");
        }
        assert_eq!(parse("yesterday"), None);
    }
}
