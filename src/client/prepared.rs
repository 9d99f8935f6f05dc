//! Requests built once and sent many times: the load `agenttrust bench` puts on a gateway.
//!
//! An [`Endpoint`] is addressed exactly where its typed call sends it (`client::actions::check`,
//! `client::tokens::introspect`, …, the auth and audit URLs included) with the same headers
//! (`Content-Type`, `X-API-Key`); the body is bytes the caller built once. An answer is read to
//! its end, so its connection goes back to the pool, and is otherwise not decoded: only a non-2xx
//! answer is turned into the [`Error`] the typed call would have returned.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use super::{Client, Error};

/// The calls `bench` can repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /health`.
    Health,
    /// `POST /api/v1/agenttrust/check`.
    Check,
    /// `POST /api/v1/agent-tokens/introspect`.
    Introspect,
    /// `POST /api/v1/agent-tokens/issue`.
    Issue,
    /// `POST /api/v1/telemetry/report`.
    TelemetryReport,
}

impl Endpoint {
    pub fn method(self) -> Method {
        match self {
            Endpoint::Health => Method::GET,
            Endpoint::Check
            | Endpoint::Introspect
            | Endpoint::Issue
            | Endpoint::TelemetryReport => Method::POST,
        }
    }

    /// The URL its typed call uses.
    pub fn url(self, client: &Client) -> Result<Url, Error> {
        match self {
            Endpoint::Health => super::health::url(client),
            Endpoint::Check => super::actions::check_url(client),
            Endpoint::Introspect => super::tokens::introspect_url(client),
            Endpoint::Issue => super::tokens::issue_url(client),
            Endpoint::TelemetryReport => super::telemetry::report_url(client),
        }
    }
}

/// One endpoint with its method, URL and headers resolved, ready to be sent any number of times
/// (concurrently too: it is shared by reference, and the client's connection pool is shared).
#[derive(Debug, Clone)]
pub struct Prepared {
    client: Client,
    method: Method,
    url: Url,
    headers: HeaderMap,
}

impl Prepared {
    pub fn new(client: &Client, endpoint: Endpoint) -> Result<Prepared, Error> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &client.api_key {
            let mut value = HeaderValue::from_str(key).map_err(|_| {
                Error::Config("the API key is not a valid header value".to_string())
            })?;
            // Kept out of any debug output of the HTTP stack.
            value.set_sensitive(true);
            headers.insert("X-API-Key", value);
        }
        Ok(Prepared {
            client: client.clone(),
            method: endpoint.method(),
            url: endpoint.url(client)?,
            headers,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends the request once with `body` (none for a GET) and reads the answer to its end:
    /// `Ok` on a 2xx, else the gateway's error or the transport failure.
    pub async fn send(&self, body: Option<Bytes>) -> Result<(), Error> {
        let mut request = self
            .client
            .http
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.client.transport_error(self.url.as_str(), error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.client.transport_error(self.url.as_str(), error))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(super::gateway_error(status.as_u16(), &body))
        }
    }
}
