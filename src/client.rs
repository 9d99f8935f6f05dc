//! The typed async HTTP client of the gateway: one module per API group (`client::tokens::revoke`
//! is the call behind `agenttrust tokens revoke`). It owns the transport (reqwest, TLS options,
//! timeout, `X-API-Key`), URL building with percent-encoded path segments, and turning every
//! failure into one [`Error`]. Every call returns the typed value *and* the raw JSON the gateway
//! sent, so `-o json` prints exactly what came over the wire.

pub mod a2a;
pub mod actions;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod cards;
pub mod delegations;
pub mod federation;
pub mod health;
pub mod keys;
pub mod mcp;
pub mod orgs;
pub mod policies;
pub mod prepared;
pub mod raw;
pub mod sessions;
pub mod streaming;
pub mod telemetry;
pub mod tokens;
pub mod wimse;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Everything that can go wrong talking to the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway answered with a non-2xx status; `message` is its human text.
    #[error("{message}")]
    Gateway {
        status: u16,
        code: String,
        message: String,
    },
    /// Nothing listens there (connection refused, no route) or DNS failed: no byte reached a
    /// gateway. The only connection failure `guard --fail-open` may turn into an allow.
    #[error("cannot reach the gateway at {url}: {detail}")]
    Connect {
        url: String,
        detail: String,
        /// Why: the hint differs (start a gateway, fix a host name, check the network).
        why: Unreachable,
    },
    /// A connection was made but TLS failed: a certificate the client does not trust,
    /// `https://` against a plain-HTTP server, a handshake someone interfered with. Never
    /// fail-open: it may be an attacker answering in the gateway's place.
    #[error("TLS with the gateway at {url} failed: {detail}")]
    Tls {
        url: String,
        detail: String,
        /// The server answered the TLS handshake in plain HTTP: the URL says `https://` for
        /// a server that speaks `http://` (rustls: "received corrupt message of type
        /// InvalidContentType"; OpenSSL: "wrong version number").
        plain_http_peer: bool,
    },
    #[error("the gateway at {url} did not answer within {}s", timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },
    /// The connection broke mid-request, the answer was not HTTP, or another transport failure.
    #[error("transport error talking to {url}: {detail}")]
    Transport { url: String, detail: String },
    /// A 2xx answer that is not the JSON we expect.
    #[error("unexpected answer from {url}: {detail}")]
    Decode { url: String, detail: String },
    /// A bad URL, CA certificate or other setting: nothing was sent.
    #[error("{0}")]
    Config(String),
    /// A gateway URL that cannot be right, with the fix: nothing was sent.
    #[error("{message}")]
    InvalidUrl { message: String, hint: String },
}

/// Why no gateway could be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// The host answered that nothing listens on that port.
    Refused,
    /// The host name did not resolve.
    UnknownHost,
    /// No route, no network, or the connection attempt timed out.
    NoRoute,
}

impl Error {
    /// The HTTP status of a gateway error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Gateway { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The machine code: the gateway's own, or the SDKs' names for client-side failures.
    pub fn code(&self) -> &str {
        match self {
            Error::Gateway { code, .. } => code,
            Error::Connect { .. } | Error::Transport { .. } => "NETWORK_ERROR",
            Error::Tls { .. } => "TLS_ERROR",
            Error::Timeout { .. } => "TIMEOUT",
            Error::Decode { .. } => "PARSE_ERROR",
            Error::Config(_) | Error::InvalidUrl { .. } => "CONFIG_ERROR",
        }
    }

    /// Whether `--fail-open` may allow a call despite this error: only when no gateway could
    /// be reached at all (refused, no route, DNS) or it did not answer in time. TLS, protocol
    /// and mid-request failures fail closed: someone answered, and it was not a gateway we trust.
    pub fn allows_fail_open(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Timeout { .. })
    }
}

/// A gateway answer: the typed value and the JSON exactly as received (`Null` for an empty body).
#[derive(Debug, Clone)]
pub struct Response<T> {
    pub value: T,
    pub raw: serde_json::Value,
}

/// How to reach the gateway.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// Token and check calls go here when set (the SDKs' service split); else `url`.
    pub auth_url: Option<String>,
    /// Telemetry reports go here when set; else `url`.
    pub audit_url: Option<String>,
    pub api_key: Option<String>,
    /// An agent token (`at_…`), sent as `Authorization: Bearer` on the runtime calls an agent
    /// makes (check, telemetry report): the gateway then takes the agent from the token.
    pub agent_token: Option<String>,
    pub timeout: Duration,
    /// Skip TLS certificate verification (the CLI warns).
    pub insecure: bool,
    /// An extra trusted root certificate (PEM).
    pub ca_cert: Option<PathBuf>,
    /// Most idle connections kept open per host for reuse (`bench` keeps one per worker);
    /// `None` keeps every one (reqwest's default).
    pub idle_connections_per_host: Option<usize>,
}

/// Which base URL a path is served from (the SDKs' service split; one gateway serves all).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Service {
    Base,
    Auth,
    Audit,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Url,
    audit: Url,
    api_key: Option<String>,
    agent_token: Option<String>,
    /// The agent's own key: every request made with the agent token carries a DPoP proof
    /// signed by it (the token is then useless without the key).
    proof_key: Option<std::sync::Arc<crate::agent_key::AgentPrivateKey>>,
    timeout: Duration,
}

fn parse_base(text: &str, what: &str) -> Result<Url, Error> {
    let trimmed = text.trim();
    // `localhost:8080` parses as scheme `localhost`, `gateway.example` not at all: both are a
    // host written without its scheme.
    if !trimmed.contains("://") {
        return Err(Error::InvalidUrl {
            message: format!("invalid {what} {text:?}: it has no scheme"),
            hint: format!("write it with its scheme: http://{trimmed} (or https://…)"),
        });
    }
    let url = Url::parse(trimmed)
        .map_err(|error| Error::Config(format!("invalid {what} {text:?}: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config(format!(
            "invalid {what} {text:?}: expected http:// or https://"
        )));
    }
    // The API paths are appended to the base: `…/api/v1` as the base would ask for
    // `…/api/v1/api/v1/agents`. (Another path is kept: a proxy may serve the gateway under one.)
    if let Some(segments) = url.path_segments() {
        let segments: Vec<&str> = segments.collect();
        if let Some(api) = segments.iter().position(|segment| *segment == "api") {
            let mut base = url.clone();
            base.set_path(&segments[..api].join("/"));
            base.set_query(None);
            return Err(Error::InvalidUrl {
                message: format!(
                    "invalid {what} {text:?}: it must be the gateway's base URL, without the API \
                     path"
                ),
                hint: format!("use {}", base.as_str().trim_end_matches('/')),
            });
        }
    }
    Ok(url)
}

impl Client {
    pub fn new(options: &Options) -> Result<Client, Error> {
        let base = parse_base(&options.url, "gateway URL")?;
        let auth = match &options.auth_url {
            Some(url) => parse_base(url, "auth URL")?,
            None => base.clone(),
        };
        let audit = match &options.audit_url {
            Some(url) => parse_base(url, "audit URL")?,
            None => base.clone(),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        // Every SDK sends it on every request, GET and DELETE included.
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("agenttrust-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(options.timeout)
            .connect_timeout(options.timeout);
        if options.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(idle) = options.idle_connections_per_host {
            builder = builder.pool_max_idle_per_host(idle);
        }
        // Loading the system root store costs tens of milliseconds of CPU per process (most of
        // a `guard check`); plain http:// never needs it.
        let plain_http = [&base, &auth, &audit]
            .iter()
            .all(|url| url.scheme() == "http");
        if plain_http && options.ca_cert.is_none() {
            builder = builder.tls_built_in_root_certs(false);
        }
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path).map_err(|error| {
                Error::Config(format!(
                    "cannot read CA certificate {}: {error}",
                    path.display()
                ))
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem).map_err(|error| {
                Error::Config(format!(
                    "{} is not a PEM certificate: {error}",
                    path.display()
                ))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|error| Error::Config(format!("cannot set up HTTP: {error}")))?;
        Ok(Client {
            http,
            base,
            auth,
            audit,
            api_key: options.api_key.clone().filter(|key| !key.is_empty()),
            agent_token: options
                .agent_token
                .clone()
                .filter(|token| !token.is_empty()),
            proof_key: None,
            timeout: options.timeout,
        })
    }

    /// The same client with another API key (used by `login` to try a key before saving it).
    pub fn with_api_key(&self, api_key: Option<String>) -> Client {
        Client {
            api_key,
            ..self.clone()
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Where telemetry reports go (the audit URL, else the base URL).
    pub fn audit_url(&self) -> &Url {
        &self.audit
    }

    /// Builds `base + /segment/segment…`, each segment percent-encoded (an id never turns
    /// into a path separator or a query).
    pub(crate) fn url(&self, service: Service, segments: &[&str]) -> Result<Url, Error> {
        let mut url = match service {
            Service::Base => self.base.clone(),
            Service::Auth => self.auth.clone(),
            Service::Audit => self.audit.clone(),
        };
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::Config(format!("invalid gateway URL {}", self.base)))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<Response<T>, Error> {
        self.send::<T, ()>(Method::GET, url, None, false).await
    }

    pub(crate) async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<Response<T>, Error> {
        self.send(Method::POST, url, Some(body), false).await
    }

    /// A runtime call an agent makes (check, telemetry report): carries the agent token as
    /// `Authorization: Bearer` when there is one, so the gateway acts for the token's agent.
    pub(crate) async fn post_as_agent<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<Response<T>, Error> {
        self.send(Method::POST, url, Some(body), true).await
    }

    /// [`Client::post_as_agent`] with extra request headers (the MCP proxy's `X-Agent-ID`),
    /// answering the status and the body whatever the status: the proxy's refusals carry a body
    /// the caller reads (the check, the approval to wait on).
    pub(crate) async fn post_as_agent_with<B: Serialize>(
        &self,
        url: Url,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<(u16, bytes::Bytes), Error> {
        self.exchange(Method::POST, url, Some(body), true, headers)
            .await
    }

    /// A POST with extra request headers (a DPoP proof, a WIMSE bearer); `as_agent` adds the
    /// client's agent token as the bearer, as [`Client::post_as_agent`] does.
    pub(crate) async fn post_with_headers<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: &B,
        as_agent: bool,
        headers: &[(&str, &str)],
    ) -> Result<Response<T>, Error> {
        self.send_with(Method::POST, url, Some(body), as_agent, headers)
            .await
    }

    /// The same client signing a DPoP proof with `key` for every request it makes with its
    /// agent token.
    pub fn with_proof_key(&self, key: crate::agent_key::AgentPrivateKey) -> Client {
        Client {
            proof_key: Some(std::sync::Arc::new(key)),
            ..self.clone()
        }
    }

    /// Whether requests made with the agent token carry DPoP proofs.
    pub fn signs_agent_requests(&self) -> bool {
        self.proof_key.is_some() && self.agent_token.is_some()
    }

    /// The agent token the client acts with, if any.
    pub fn agent_token(&self) -> Option<&str> {
        self.agent_token.as_deref()
    }

    pub(crate) async fn put<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<Response<T>, Error> {
        self.send(Method::PUT, url, Some(body), false).await
    }

    pub(crate) async fn patch<T: DeserializeOwned, B: Serialize>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<Response<T>, Error> {
        self.send(Method::PATCH, url, Some(body), false).await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(&self, url: Url) -> Result<Response<T>, Error> {
        self.send::<T, ()>(Method::DELETE, url, None, false).await
    }

    /// Opens a Server-Sent Events stream at `url` (resuming after `last_event_id`) and answers
    /// the response whose body is the stream. The client's timeout bounds connecting and the
    /// answer's headers only: a stream lasts as long as it is followed.
    pub(crate) async fn open_event_stream(
        &self,
        url: Url,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, Error> {
        let shown_url = url.to_string();
        tracing::debug!(url = %shown_url, last_event_id, "opening an event stream");
        let mut request = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // No total timeout for the stream itself (a year stands for none).
            .timeout(Duration::from_secs(365 * 24 * 3600));
        if let Some(key) = &self.api_key {
            request = request.header("X-API-Key", key);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| Error::Timeout {
                url: shown_url.clone(),
                timeout: self.timeout,
            })?
            .map_err(|error| self.transport_error(&shown_url, error))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(gateway_error(status.as_u16(), &bytes));
        }
        Ok(response)
    }

    async fn send<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        as_agent: bool,
    ) -> Result<Response<T>, Error> {
        self.send_with(method, url, body, as_agent, &[]).await
    }

    async fn send_with<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        as_agent: bool,
        headers: &[(&str, &str)],
    ) -> Result<Response<T>, Error> {
        let shown_url = url.to_string();
        let (status, bytes) = self.exchange(method, url, body, as_agent, headers).await?;
        if !(200..300).contains(&status) {
            return Err(gateway_error(status, &bytes));
        }
        let raw: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|error| Error::Decode {
                url: shown_url.clone(),
                detail: format!("not JSON: {error}"),
            })?
        };
        let value = decode(&raw, &shown_url)?;
        Ok(Response { value, raw })
    }

    /// Sends a request; the status and the body, whatever the status.
    async fn exchange<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        as_agent: bool,
        headers: &[(&str, &str)],
    ) -> Result<(u16, bytes::Bytes), Error> {
        let shown_url = url.to_string();
        tracing::debug!(%method, url = %shown_url, "request");
        // RFC 9449: the proof names the method and the URL without query and fragment.
        let proof = match (&self.proof_key, &self.agent_token) {
            (Some(key), Some(token)) if as_agent => {
                let mut target = url.clone();
                target.set_query(None);
                target.set_fragment(None);
                Some(key.dpop_proof(
                    method.as_str(),
                    target.as_str(),
                    token,
                    crate::api::time::now(),
                    &uuid::Uuid::new_v4().to_string(),
                ))
            }
            _ => None,
        };
        let mut request = self.http.request(method, url);
        if let Some(proof) = &proof {
            request = request.header("DPoP", proof);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(key) = &self.api_key {
            request = request.header("X-API-Key", key);
        }
        if as_agent && let Some(token) = &self.agent_token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|error| Error::Config(format!("cannot encode the request: {error}")))?;
            request = request.body(bytes);
        }
        let started = std::time::Instant::now();
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&shown_url, error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(&shown_url, error))?;
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "response"
        );
        Ok((status.as_u16(), bytes))
    }

    fn transport_error(&self, url: &str, error: reqwest::Error) -> Error {
        let url = url.to_string();
        if error.is_timeout() {
            Error::Timeout {
                url,
                timeout: self.timeout,
            }
        } else if error.is_connect() {
            // "Connection refused", "certificate verify failed": the root cause says it all.
            let detail = root_cause(&error);
            match never_connected(&error) {
                Some(why) => Error::Connect { url, detail, why },
                None => Error::Tls {
                    // rustls and OpenSSL say it in their own words.
                    plain_http_peer: detail.contains("InvalidContentType")
                        || detail.contains("wrong version number"),
                    url,
                    detail,
                },
            }
        } else {
            Error::Transport {
                url,
                detail: error_chain(&error),
            }
        }
    }
}

/// Appends the given query parameters (skipping `None`s) and drops a bare `?`.
pub(crate) fn with_query(mut url: Url, pairs: &[(&str, Option<String>)]) -> Url {
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

/// One JSON shape per object: a gateway may wrap an object (`{"delegation": {...}}` on create,
/// as the Go SDK requires) where a get answers it bare. The CLI prints the object itself either
/// way, so `create -o json` and `get -o json` agree. Members beside the wrapper key are kept
/// (merged into the object where it has no member of that name), so nothing is dropped.
pub(crate) fn unwrapped<T: DeserializeOwned>(
    response: Response<serde_json::Value>,
    key: &str,
    url: &Url,
) -> Result<Response<T>, Error> {
    let raw = match response.raw {
        serde_json::Value::Object(mut wrapper)
            if wrapper.get(key).is_some_and(serde_json::Value::is_object) =>
        {
            match wrapper.remove(key) {
                Some(serde_json::Value::Object(mut object)) => {
                    for (name, member) in wrapper {
                        object.entry(name).or_insert(member);
                    }
                    serde_json::Value::Object(object)
                }
                // Checked just above: the member is an object.
                _ => serde_json::Value::Object(wrapper),
            }
        }
        bare => bare,
    };
    let value = decode(&raw, url)?;
    Ok(Response { value, raw })
}

/// Decodes a typed value out of raw JSON, naming the URL when it does not fit.
pub(crate) fn decode<T: DeserializeOwned>(
    raw: &serde_json::Value,
    url: impl std::fmt::Display,
) -> Result<T, Error> {
    T::deserialize(raw).map_err(|error| Error::Decode {
        url: url.to_string(),
        detail: error.to_string(),
    })
}

/// A connect failure where no peer answered, and why: refused, unreachable, or the name did not
/// resolve. Anything else during connect (TLS above all) is not this, whatever it turns out to
/// be: the list is of what is known to be harmless, so an unknown failure fails closed.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> Option<Unreachable> {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return Some(Unreachable::Refused),
                ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
                | ErrorKind::TimedOut => return Some(Unreachable::NoRoute),
                _ => {}
            }
        }
        // hyper-util's connector names a resolver failure "dns error".
        if current.to_string().starts_with("dns error") {
            return Some(Unreachable::UnknownHost);
        }
        cause = current.source();
    }
    None
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// reqwest's top-level message is vague ("error sending request"); the cause says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads `{"error", "message", "code"}` leniently (as the SDKs do): `message`, else `error`,
/// else the raw text, else `HTTP <n> error`; the code defaults to the SDKs' names by status.
fn gateway_error(status: u16, body: &[u8]) -> Error {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(|value| value.as_str())
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    let raw_text = String::from_utf8_lossy(body).trim().to_string();
    let message = field("message")
        .or_else(|| field("error"))
        .or_else(|| {
            (parsed.is_none() && !raw_text.is_empty() && raw_text.len() <= 200)
                .then(|| raw_text.clone())
        })
        .unwrap_or_else(|| format!("HTTP {status} error"));
    let code = field("code").unwrap_or_else(|| match status {
        400 => "VALIDATION_ERROR".to_string(),
        401 => "AUTH_FAILED".to_string(),
        403 => "AUTH_DENIED".to_string(),
        404 => "NOT_FOUND".to_string(),
        other => format!("HTTP_{other}"),
    });
    Error::Gateway {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Client {
        Client::new(&Options {
            url: url.to_string(),
            auth_url: None,
            audit_url: None,
            api_key: None,
            agent_token: None,
            timeout: Duration::from_secs(1),
            insecure: false,
            ca_cert: None,
            idle_connections_per_host: None,
        })
        .unwrap()
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        let client = client("http://localhost:8080/");
        let url = client
            .url(Service::Base, &["api", "v1", "agents", "a/b?c d"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://localhost:8080/api/v1/agents/a%2Fb%3Fc%20d"
        );
        let prefixed = self::client("https://host/gateway/");
        let url = prefixed.url(Service::Auth, &["health"]).unwrap();
        assert_eq!(url.as_str(), "https://host/gateway/health");
    }

    #[test]
    fn rejects_non_http_urls() {
        for bad in ["localhost:8080", "ftp://x", "not a url"] {
            assert!(
                Client::new(&Options {
                    url: bad.to_string(),
                    auth_url: None,
                    audit_url: None,
                    api_key: None,
                    agent_token: None,
                    timeout: Duration::from_secs(1),
                    insecure: false,
                    ca_cert: None,
                    idle_connections_per_host: None,
                })
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn wrapped_objects_are_printed_bare() {
        let url = Url::parse("http://localhost/x").unwrap();
        let wrapped = Response {
            value: serde_json::Value::Null,
            raw: serde_json::json!({"delegation": {"id": "d1"}, "note": "n", "id": "ignored"}),
        };
        let bared: Response<serde_json::Value> = unwrapped(wrapped, "delegation", &url).unwrap();
        assert_eq!(bared.raw, serde_json::json!({"id": "d1", "note": "n"}));
        let bare = Response {
            value: serde_json::Value::Null,
            raw: serde_json::json!({"id": "d1", "delegation": "not an object"}),
        };
        let kept: Response<serde_json::Value> = unwrapped(bare, "delegation", &url).unwrap();
        assert_eq!(
            kept.raw,
            serde_json::json!({"id": "d1", "delegation": "not an object"})
        );
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        let error = gateway_error(
            404,
            br#"{"error":"not_found","message":"agent x not found","code":"AGENT_NOT_FOUND"}"#,
        );
        assert_eq!(error.status(), Some(404));
        assert_eq!(error.code(), "AGENT_NOT_FOUND");
        assert_eq!(error.to_string(), "agent x not found");

        let error = gateway_error(401, br#"{"error":"bad key"}"#);
        assert_eq!(error.code(), "AUTH_FAILED");
        assert_eq!(error.to_string(), "bad key");

        let error = gateway_error(502, b"Bad Gateway");
        assert_eq!(error.code(), "HTTP_502");
        assert_eq!(error.to_string(), "Bad Gateway");

        let error = gateway_error(500, b"");
        assert_eq!(error.to_string(), "HTTP 500 error");
    }
}
