//! Input rules shared by the handlers, each failing with a 400 that names the field and why.

use super::error::ApiError;

/// Longest name, capability, scope or id we accept.
pub const MAX_NAME_CHARACTERS: usize = 200;
/// Most capabilities or scopes in one list.
pub const MAX_LIST_ENTRIES: usize = 256;

/// A required, printable, bounded string (names).
pub fn name(field: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::validation(format!("{field} must not be empty")));
    }
    bounded_printable(field, trimmed)?;
    Ok(trimmed.to_string())
}

/// An optional identifier-like string (ids, session ids): printable, bounded, no spaces.
pub fn identifier(field: &str, value: &str) -> Result<(), ApiError> {
    bounded_printable(field, value)?;
    if value.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(format!(
            "{field} must not contain spaces"
        )));
    }
    Ok(())
}

/// A list of capability or scope names: each an identifier; duplicates dropped, order kept.
pub fn scope_list(field: &str, values: &[String]) -> Result<Vec<String>, ApiError> {
    if values.len() > MAX_LIST_ENTRIES {
        return Err(ApiError::validation(format!(
            "{field} has {} entries; at most {MAX_LIST_ENTRIES} are allowed",
            values.len()
        )));
    }
    let mut unique: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if value.is_empty() {
            return Err(ApiError::validation(format!(
                "{field} must not contain empty entries"
            )));
        }
        identifier(field, value)?;
        if value.contains(',') {
            return Err(ApiError::validation(format!(
                "{field} entry {value:?} must not contain commas"
            )));
        }
        if !unique.contains(value) {
            unique.push(value.clone());
        }
    }
    Ok(unique)
}

fn bounded_printable(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_NAME_CHARACTERS {
        return Err(ApiError::validation(format!(
            "{field} is longer than {MAX_NAME_CHARACTERS} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// A page size: the default when none is asked for, else 1 to `max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

/// The earliest and latest instants a timestamp may name (1970-01-01T00:00:00Z and
/// 9999-12-31T23:59:59Z): every one of them renders as itself in RFC 3339, so nothing stored
/// reads back as another time.
pub const MIN_TIMESTAMP: i64 = 0;
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// An RFC 3339 timestamp within [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`], as unix seconds.
pub fn timestamp(field: &str, text: &str) -> Result<i64, ApiError> {
    let seconds = crate::api::time::parse(text).ok_or_else(|| {
        ApiError::validation(format!("{field} {text:?} is not an RFC 3339 timestamp"))
    })?;
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&seconds) {
        return Err(ApiError::validation(format!(
            "{field} {text:?} is out of range: timestamps must lie between \
             1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
        )));
    }
    Ok(seconds)
}

/// `now + ttl_seconds` as a timestamp within range, or a 400 naming the field: never an
/// overflow, never a time that renders as another.
pub fn expiry(field: &str, now: i64, ttl_seconds: i64) -> Result<i64, ApiError> {
    now.checked_add(ttl_seconds)
        .filter(|expires_at| (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(expires_at))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{field} {ttl_seconds} puts the expiry out of range (after 9999-12-31T23:59:59Z)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_out_of_range_are_refused() {
        assert_eq!(
            timestamp("t", "2026-03-01T10:00:00Z").ok(),
            Some(1_772_359_200)
        );
        assert_eq!(
            timestamp("t", "9999-12-31T23:59:59Z").ok(),
            Some(MAX_TIMESTAMP)
        );
        assert_eq!(timestamp("t", "1970-01-01T00:00:00Z").ok(), Some(0));
        for text in [
            "1969-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
        ] {
            let error = timestamp("t", text).unwrap_err();
            assert!(
                error.message.contains("out of range"),
                "{text}: {}",
                error.message
            );
        }
        assert!(timestamp("t", "tomorrow").is_err());
    }

    #[test]
    fn expiries_never_overflow() {
        assert_eq!(expiry("ttl", 100, 60).ok(), Some(160));
        assert!(expiry("ttl", 100, i64::MAX).is_err());
        assert!(expiry("ttl", MAX_TIMESTAMP, 1).is_err());
    }
}
