//! Request extractors whose failures are our JSON errors (axum's own answer in plain text).
//! `JsonBody` also forgives what the SDKs do: any or no `Content-Type`, and an empty body on
//! POST/PUT meaning `{}`.
//!
//! One rule for all text a request carries: no NUL character. PostgreSQL cannot store one in
//! text, so a NUL that reached the store would be a 500 — and, in a group-committed batch, a
//! rollback of every other request's write in it. `JsonBody` refuses the JSON escape `\u0000`
//! and [`refuse_nul_in_uri`] a `%00` in the path or the query string, before any handler runs.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        "request body is larger than this gateway accepts",
                    )
                } else {
                    ApiError::validation(format!("could not read the request body: {rejection}"))
                }
            })?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if has_escaped_nul(body) {
            return Err(nul_refused("the request body"));
        }
        serde_json::from_slice(body)
            .map(JsonBody)
            .map_err(|error| ApiError::validation(format!("invalid request body: {error}")))
    }
}

/// Whether JSON text holds the escape `\u0000` (a NUL in a string: JSON has no other way to
/// write one). An escaped backslash before `u0000` is text, not an escape: only an odd run of
/// backslashes starts one.
fn has_escaped_nul(json: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"\\u0000";
    json.windows(ESCAPE.len())
        .enumerate()
        .filter(|(_, window)| *window == ESCAPE)
        .any(|(at, _)| {
            let backslashes = json[..=at]
                .iter()
                .rev()
                .take_while(|byte| **byte == b'\\')
                .count();
            backslashes % 2 == 1
        })
}

fn nul_refused(place: &str) -> ApiError {
    ApiError::validation(format!(
        "{place} contains a NUL character (\\u0000), which no field accepts"
    ))
}

/// Middleware: a path or query string with a NUL (`%00`, the only way a URI carries one) is a
/// 400 before routing.
pub async fn refuse_nul_in_uri(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|query| query.contains("%00")) {
        return axum::response::IntoResponse::into_response(nul_refused("the URL"));
    }
    next.run(request).await
}

/// One path parameter (an id).
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| PathId(id))
            .map_err(|rejection| ApiError::validation(format!("invalid path: {rejection}")))
    }
}

/// A query string.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::validation(format!("invalid query: {rejection}")))
    }
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn only_a_real_escape_is_a_nul() {
        assert!(has_escaped_nul(br#"{"a":"x\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"C:\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"u0000"}"#));
    }
}
