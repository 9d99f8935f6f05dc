//! What one A2A task may store beyond its message (whose cap is `send::MAX_MESSAGE_BYTES`):
//! the sender's metadata, and the answer, whether the target gives it (`tasks/complete`) or its
//! endpoint does (a forwarded message). Agents on both sides pick these, so each is bounded
//! before anything is stored.

/// The largest `metadata` a `tasks/send` may carry, as JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// The most artifacts an answer may carry.
pub const MAX_ARTIFACTS: usize = 64;
/// The most an answer (its reply and its artifacts, as JSON) may take.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Whether an answer of `artifacts` and a reply of `reply_bytes` fits a task.
pub fn answer_fits(artifacts: &[serde_json::Value], reply_bytes: usize) -> bool {
    let artifacts_bytes = serde_json::to_string(artifacts).map_or(usize::MAX, |text| text.len());
    artifacts.len() <= MAX_ARTIFACTS
        && artifacts_bytes.saturating_add(reply_bytes) <= MAX_ANSWER_BYTES
}

/// Why an answer was refused, for the caller or the task's reply.
pub fn answer_too_large() -> String {
    format!(
        "the answer is too large: at most {MAX_ARTIFACTS} artifacts and {MAX_ANSWER_BYTES} bytes"
    )
}
