//! Raw requests for `agenttrust api METHOD PATH`: any method and path on the profile's gateway,
//! with the profile's API key, and the answer as bytes (status and headers kept).
//!
//! The path is always joined to the gateway's base URL, never resolved as a URL of its own:
//! `//evil.example/x` or `https://evil.example/` cannot send the API key to another host.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::{Client, Error};

/// One request as the user wrote it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: Method,
    /// `/api/v1/agents?limit=5`, relative to the gateway's base URL.
    pub path: String,
    /// Extra headers; one named like a default (`Content-Type`, `X-API-Key`) replaces it.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Vec<u8>>,
}

/// The answer, whatever its status.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The error other verbs would report for this answer (`None` on a 2xx).
    pub fn error(&self) -> Option<Error> {
        (!self.status.is_success()).then(|| super::gateway_error(self.status.as_u16(), &self.body))
    }
}

/// Why a path cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error(
        "{0:?} is a URL: give a path on the gateway, e.g. /api/v1/agents (the URL comes from the profile or --url)"
    )]
    Absolute(String),
    #[error(
        "{0:?} is not a path on the gateway: it must not start with // or contain a fragment (#)"
    )]
    Invalid(String),
}

/// The gateway's base URL with `path` (and its query) appended under the base's own path.
pub fn join(base: &Url, path: &str) -> Result<Url, PathError> {
    let path = path.trim();
    if path.contains("://") && !path.starts_with('/') {
        return Err(PathError::Absolute(path.to_string()));
    }
    if path.starts_with("//") || path.contains('#') || path.chars().any(char::is_whitespace) {
        return Err(PathError::Invalid(path.to_string()));
    }
    let (path_part, query) = match path.split_once('?') {
        Some((path_part, query)) => (path_part, Some(query)),
        None => (path, None),
    };
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path_part.trim_start_matches('/')
    );
    url.set_path(&joined);
    url.set_query(query.filter(|query| !query.is_empty()));
    url.set_fragment(None);
    if url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return Err(PathError::Invalid(path.to_string()));
    }
    Ok(url)
}

/// Sends the request to the gateway; any status is an answer, only transport failures are
/// errors.
pub async fn send(client: &Client, request: RawRequest) -> Result<RawResponse, Error> {
    let url =
        join(&client.base, &request.path).map_err(|error| Error::Config(error.to_string()))?;
    let shown_url = url.to_string();
    tracing::debug!(method = %request.method, url = %shown_url, "raw request");
    let mut builder = client.http.request(request.method, url);
    if let Some(key) = &client.api_key {
        let mut value = HeaderValue::from_str(key)
            .map_err(|_| Error::Config("the API key is not a valid header value".to_string()))?;
        // Kept out of any debug output of the HTTP stack.
        value.set_sensitive(true);
        builder = builder.header("X-API-Key", value);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in request.headers {
        headers.insert(name, value);
    }
    // After the key: a header given on the command line replaces the default of its name.
    builder = builder.headers(headers);
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let response = builder
        .send()
        .await
        .map_err(|error| client.transport_error(&shown_url, error))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|error| client.transport_error(&shown_url, error))?
        .to_vec();
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn paths_join_under_the_base() {
        let root = base("http://localhost:8080");
        assert_eq!(
            join(&root, "/api/v1/agents").unwrap().as_str(),
            "http://localhost:8080/api/v1/agents"
        );
        assert_eq!(
            join(&root, "api/v1/agents?limit=5&cursor=a")
                .unwrap()
                .as_str(),
            "http://localhost:8080/api/v1/agents?limit=5&cursor=a"
        );
        let prefixed = base("https://host/gateway/");
        assert_eq!(
            join(&prefixed, "/health").unwrap().as_str(),
            "https://host/gateway/health"
        );
    }

    #[test]
    fn the_key_never_leaves_the_gateway_host() {
        let root = base("http://localhost:8080");
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "/x#frag",
            "/a b",
        ] {
            assert!(join(&root, bad).is_err(), "{bad}");
        }
        // `..` stays on the same host (the URL parser normalises it).
        let url = join(&root, "/../../etc").unwrap();
        assert_eq!(url.host_str(), Some("localhost"));
    }
}
