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
