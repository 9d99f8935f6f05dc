//! Action checks (the Guardian pre-flight): `POST /api/v1/agenttrust/check` on the auth URL.
//! A denial is a successful answer with `allowed: false`, not an error.

use reqwest::Url;

use super::{Client, Error, Response, Service};
use crate::api::actions::{CheckDecision, CheckRequest};

/// The SDKs cut input summaries to this many characters before sending.
pub const MAX_INPUT_SUMMARY_CHARS: usize = 200;

pub async fn check(
    client: &Client,
    request: &CheckRequest,
) -> Result<Response<CheckDecision>, Error> {
    client.post_as_agent(check_url(client)?, request).await
}

/// [`check`] sender-constrained: with a DPoP proof made for [`check_url`], and `bearer` (a
/// WIMSE token) as the credential, or the client's own agent token when `bearer` is `None`.
pub async fn check_with_proof(
    client: &Client,
    request: &CheckRequest,
    bearer: Option<&str>,
    proof: &str,
) -> Result<Response<CheckDecision>, Error> {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("DPoP", proof)];
    if let Some(authorization) = &authorization {
        headers.push(("Authorization", authorization.as_str()));
    }
    client
        .post_with_headers(check_url(client)?, request, bearer.is_none(), &headers)
        .await
}

/// Where [`check`] posts.
pub(crate) fn check_url(client: &Client) -> Result<Url, Error> {
    client.url(Service::Auth, &["api", "v1", "agenttrust", "check"])
}

/// The first `max_chars` characters of `text`, cut on a char boundary (never mid-UTF-8, which is
/// where the Rust SDK panics and the Go SDK splits a code point).
pub fn truncate_summary(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => &text[..byte_index],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(truncate_summary("hello", 200), "hello");
        assert_eq!(truncate_summary("hello", 3), "hel");
        assert_eq!(truncate_summary("héllo wörld", 2), "hé");
        let emoji = "🦀".repeat(300);
        let cut = truncate_summary(&emoji, MAX_INPUT_SUMMARY_CHARS);
        assert_eq!(cut.chars().count(), 200);
        assert_eq!(cut.len(), 800);
        assert_eq!(truncate_summary("", 5), "");
    }
}
