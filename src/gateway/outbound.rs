//! The gateway's outbound HTTP: OIDC discovery documents and JWKS of federation providers
//! (`get_json`), and batches of audit events POSTed to SIEM destinations (`post`). Every request
//! has a connect and a total timeout and a cap on the size of the answer read (chunk by chunk,
//! so a huge body is cut off, not buffered). A GET follows redirects only within the same
//! scheme, host and port; a POST follows none (a redirected POST would be replayed as a GET, or
//! carry a credential elsewhere): a 3xx is the destination's answer. Plain `http://` is refused
//! except to a loopback address (a service on this machine) or when the operator allows it.
//! MCP upstreams have their own calls ([`Outbound::send_mcp`]): any method, an answer read
//! chunk by chunk, and for a stream the caller's own time bounds instead of a total timeout.

use std::time::Duration;

use reqwest::Url;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_REDIRECTS: usize = 3;
/// How long a whole POST may take: a SIEM indexing a batch of a thousand events answers slower
/// than an identity provider serving a document.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer to a POST read (an Elasticsearch `_bulk` answer names every item).
pub const MAX_POST_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url} is not a valid URL")]
    BadUrl { url: String },
    #[error(
        "{url} uses plain http; only https is allowed (http is allowed to a loopback \
         address, or everywhere with --federation-allow-http, or --streaming-allow-http for SIEM \
         destinations)"
    )]
    PlainHttp { url: String },
    #[error("cannot fetch {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} did not answer a JSON object: {reason}")]
    NotJson { url: String, reason: String },
}

/// The client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    /// The POST client: no redirects, [`POST_TIMEOUT`].
    poster: reqwest::Client,
    /// The client of MCP streams: no redirects and no total timeout (a listening stream lasts
    /// as long as the client listens; its caller bounds the wait for the answer's head).
    streamer: reqwest::Client,
    allow_http: bool,
}

/// What a POST was answered, whatever its status (the caller judges it).
#[derive(Debug, Clone)]
pub struct Posted {
    pub status: u16,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The answer, up to [`MAX_POST_ANSWER_BYTES`].
    pub body: Vec<u8>,
    /// The answer was longer than what `body` holds.
    pub truncated: bool,
}

impl Outbound {
    pub fn new(allow_http: bool) -> Outbound {
        let redirect = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            let same_origin = attempt.previous().first().is_some_and(|first| {
                first.scheme() == attempt.url().scheme()
                    && first.host_str() == attempt.url().host_str()
                    && first.port_or_known_default() == attempt.url().port_or_known_default()
            });
            if same_origin {
                attempt.follow()
            } else {
                attempt.error("a redirect to another host is not followed")
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .redirect(redirect)
            .user_agent(concat!("agenttrust/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|error| panic!("the outbound HTTP client cannot start: {error}"));
        let poster = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("agenttrust/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|error| panic!("the outbound HTTP client cannot start: {error}"));
        let streamer = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("agenttrust/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|error| panic!("the outbound HTTP client cannot start: {error}"));
        Outbound {
            client,
            poster,
            streamer,
            allow_http,
        }
    }

    /// POSTs `body` to `url` (checked by [`Outbound::check_url`]) with `headers`, and returns
    /// the answer whatever its status; only a failure to get an answer is an error.
    pub async fn post(
        &self,
        url: &str,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    ) -> Result<Posted, FetchError> {
        let parsed = self.check_url(url)?;
        let transport = |error: reqwest::Error| FetchError::Transport {
            url: redact_query(url),
            reason: describe(&error),
        };
        let mut response = self
            .poster
            .post(parsed)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_POST_ANSWER_BYTES {
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Posted {
            status,
            retry_after,
            body,
            truncated,
        })
    }

    /// Refuses what this client will not fetch, before any connection.
    pub fn check_url(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|_| FetchError::BadUrl {
            url: url.to_string(),
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http || is_loopback(&parsed) => {}
            "http" => {
                return Err(FetchError::PlainHttp {
                    url: url.to_string(),
                });
            }
            _ => {
                return Err(FetchError::BadUrl {
                    url: url.to_string(),
                });
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) || !parsed.username().is_empty() {
            return Err(FetchError::BadUrl {
                url: url.to_string(),
            });
        }
        Ok(parsed)
    }

    /// GETs `url` and parses the answer as a JSON object.
    pub async fn get_json(
        &self,
        url: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, FetchError> {
        let parsed = self.check_url(url)?;
        let transport = |error: reqwest::Error| FetchError::Transport {
            url: url.to_string(),
            reason: describe(&error),
        };
        let mut response = self
            .client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: MAX_BODY_BYTES,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit: MAX_BODY_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|error| FetchError::NotJson {
            url: url.to_string(),
            reason: error.to_string(),
        })
    }
}

/// A URL fit for logs and delivery records: without its query string, where some products
/// accept an API key.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((before, _)) => format!("{before}?…"),
        None => url.to_string(),
    }
}

/// The most an MCP upstream's answer may be (a tool result can be large, a document fetch
/// larger than any JWKS).
pub const MCP_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// An MCP upstream's answer whose body is read chunk by chunk (an SSE stream is read only until
/// the response it carries), within the size cap; the request's total timeout bounds the body
/// too.
#[derive(Debug)]
pub struct McpResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    response: reqwest::Response,
    url: String,
    read: usize,
}

impl McpResponse {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        let chunk = self
            .response
            .chunk()
            .await
            .map_err(|error| FetchError::Transport {
                url: self.url.clone(),
                reason: describe(&error),
            })?;
        if let Some(chunk) = &chunk {
            self.read += chunk.len();
            if self.read > MCP_MAX_BODY_BYTES {
                return Err(FetchError::TooLarge {
                    url: self.url.clone(),
                    limit: MCP_MAX_BODY_BYTES,
                });
            }
        }
        Ok(chunk)
    }

    /// The rest of the body as a stream of chunks, unbounded (a listening stream relayed as
    /// it comes; the relay bounds it).
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static
    {
        self.response.bytes_stream()
    }

    /// The whole body (for a JSON answer).
    pub async fn body(&mut self) -> Result<Vec<u8>, FetchError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl Outbound {
    /// POSTs a JSON-RPC message to an MCP upstream (Streamable HTTP): `headers` are the ones
    /// the proxy chose to send, `timeout` bounds the whole exchange, body included. Separate
    /// from any other POST so its limits can differ.
    pub async fn post_mcp(
        &self,
        url: &str,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<McpResponse, FetchError> {
        let parsed = self.check_url(url)?;
        let response = self
            .client
            .post(parsed)
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|error| FetchError::Transport {
                url: url.to_string(),
                reason: describe(&error),
            })?;
        if response
            .content_length()
            .is_some_and(|length| length > MCP_MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: MCP_MAX_BODY_BYTES,
            });
        }
        Ok(McpResponse {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            response,
            url: url.to_string(),
            read: 0,
        })
    }
}

impl Outbound {
    /// Sends `method` to an MCP upstream with `headers`: GET to listen and DELETE to end a
    /// session (no body), POST a JSON `body` whose answer may be a lasting stream. No total
    /// timeout: the caller bounds the wait for the answer's head, and reads (or relays) the
    /// body within its own limits.
    pub async fn send_mcp(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: reqwest::header::HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<McpResponse, FetchError> {
        let parsed = self.check_url(url)?;
        let mut request = self.streamer.request(method, parsed).headers(headers);
        request = match body {
            Some(body) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(
                    reqwest::header::ACCEPT,
                    "application/json, text/event-stream",
                )
                .body(body),
            None => request.header(reqwest::header::ACCEPT, "text/event-stream"),
        };
        let response = request
            .send()
            .await
            .map_err(|error| FetchError::Transport {
                url: url.to_string(),
                reason: describe(&error),
            })?;
        Ok(McpResponse {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            response,
            url: url.to_string(),
            read: 0,
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The error and its causes on one line (reqwest's own text is terse: "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let strict = Outbound::new(false);
        assert!(strict.check_url("https://idp.example.com/x").is_ok());
        assert!(strict.check_url("http://127.0.0.1:9/x").is_ok());
        assert!(strict.check_url("http://localhost:9/x").is_ok());
        assert!(strict.check_url("http://[::1]:9/x").is_ok());
        assert!(matches!(
            strict.check_url("http://idp.example.com/x"),
            Err(FetchError::PlainHttp { .. })
        ));
        assert!(matches!(
            strict.check_url("file:///etc/passwd"),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(matches!(
            strict.check_url("https://user:pw@idp.example.com/"),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(
            Outbound::new(true)
                .check_url("http://idp.example.com/x")
                .is_ok()
        );
    }
}
