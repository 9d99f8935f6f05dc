//! The error body every gateway error uses: `{"error", "message", "code"}`. `error` is a short
//! string (Go's SDK fails on anything else), `message` is never empty (the Rust and Java SDKs read
//! only `message`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub code: String,
}
