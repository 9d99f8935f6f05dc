//! MCP over HTTP (wire-api §3.10): the registry of an org's MCP servers (`/mcp/servers`) and
//! the proxy in front of them ([`proxy`], `POST /mcp/{server_id}`), which checks every
//! `tools/call` with the Guardian before it reaches the upstream.
//!
//! Who may call what: an admin key registers and deletes servers; any org API key (and an
//! agent token: agents need the ids of the servers they reach) lists and reads them. An
//! upstream credential is write-only: sealed with the operator's key-encryption key (bound to
//! the server id) when one is configured, shown masked, never logged nor audited.
//! What the proxy forwards is in [`methods`], its MCP sessions in [`sessions`], the tools'
//! hints in [`tools`], the arguments they mirror in headers in [`params`], the tasks' agents
//! in [`tasks`].

pub mod methods;
pub mod params;
pub mod proxy;
pub mod sessions;
pub mod tasks;
pub mod tools;

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::mcp::{DeletedServer, McpServer, RegisterServerRequest, ServerList};
use crate::store::{self, mcp::ServerRow};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId};
use super::outbound::Outbound;
use super::signing::SigningSecret;
use super::validate;

/// How long a call to an upstream may take, answer included, unless configured otherwise. Below
/// the gateway's own request timeout, so the caller hears a 502 naming the upstream.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest upstream URL accepted.
const MAX_URL_CHARACTERS: usize = 2048;
/// The longest upstream credential accepted.
const MAX_AUTH_TOKEN_BYTES: usize = 8 * 1024;
/// How an unsealed credential (or upstream session id) is marked: no key-encryption key is
/// configured (`--signing-key-secret-file`).
pub(super) const NOT_SEALED: &str = "none";

/// What the proxy needs beyond the store: its outbound client (with its own http rule), its
/// limits, and the signal that ends the streams it relays when the gateway shuts down.
#[derive(Debug)]
pub struct Mcp {
    pub outbound: Outbound,
    /// Plain http to any host, not only loopback (`--mcp-allow-http`).
    pub allow_http: bool,
    pub timeout: Duration,
    /// How long an MCP session may go unused before it ends.
    pub session_idle: Duration,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Mcp {
    pub fn new(allow_http: bool, timeout: Duration, session_idle: Duration) -> Mcp {
        Mcp {
            outbound: Outbound::new(allow_http),
            allow_http,
            timeout,
            session_idle,
            closing: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Ends every relayed stream (a listening client would otherwise hold a graceful shutdown
    /// open for as long as it listens).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// What a relayed stream watches to end with the gateway.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

fn server_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("MCP server {id} not found"))
}

/// An upstream URL the proxy will POST to: absolute http(s) with a host, no credentials in it
/// (they go in `auth_token`), no fragment; https unless loopback or `--mcp-allow-http`.
fn validate_url(mcp: &Mcp, value: &str) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::validation("url is required"));
    }
    if value.len() > MAX_URL_CHARACTERS || value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "url must be a URL of at most {MAX_URL_CHARACTERS} characters"
        )));
    }
    let url = reqwest::Url::parse(value)
        .map_err(|error| ApiError::validation(format!("url {value:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::validation(format!(
            "url must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::validation("url must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::validation(
            "url must not carry credentials; give the upstream's bearer as auth_token",
        ));
    }
    if url.fragment().is_some() {
        return Err(ApiError::validation("url must not have a fragment"));
    }
    if url.scheme() == "http" && !mcp.allow_http && !is_loopback(&url) {
        return Err(ApiError::validation(
            "url uses plain http; MCP upstreams are reached over https (http is allowed to a \
             loopback address, or everywhere when the gateway runs with --mcp-allow-http)",
        ));
    }
    Ok(value.to_string())
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `(sealed, how)`: sealed with `secret` and the row's key (the server id, the session's
/// digest) as associated data, so a sealed value cannot be moved to another row.
pub(super) fn seal(
    secret: Option<&SigningSecret>,
    row_key: &str,
    token: &str,
) -> ApiResult<(String, String)> {
    match secret {
        Some(secret) => {
            let sealed = secret.seal(row_key, token.as_bytes()).map_err(|error| {
                tracing::error!(%error, "cannot seal an MCP upstream secret");
                ApiError::internal()
            })?;
            Ok((sealed, secret.sealed_with()))
        }
        None => Ok((token.to_string(), NOT_SEALED.to_string())),
    }
}

/// The credential to send to `row`'s upstream, if it has one. A credential sealed with another
/// key than the configured one is an operator error: logged, and the call refused (502) rather
/// than sent without it.
pub(crate) fn auth_token(state: &AppState, row: &ServerRow) -> ApiResult<Option<String>> {
    let (Some(stored), Some(sealed_with)) = (&row.auth_token, &row.auth_token_sealed_with) else {
        return Ok(None);
    };
    if sealed_with == NOT_SEALED {
        return Ok(Some(stored.clone()));
    }
    let opened = state
        .federation
        .signing
        .secret()
        .filter(|secret| secret.sealed_with() == *sealed_with)
        .and_then(|secret| secret.open(&row.id, stored))
        .and_then(|plain| String::from_utf8(plain).ok());
    match opened {
        Some(token) => Ok(Some(token)),
        None => {
            tracing::error!(
                server = %row.id,
                %sealed_with,
                "the MCP server's upstream credential cannot be opened with the configured \
                 key-encryption key"
            );
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_CREDENTIAL",
                format!(
                    "the credential of MCP server {} cannot be opened (it was sealed with another \
                     key-encryption key); register the server again",
                    row.id
                ),
            ))
        }
    }
}

fn to_api(row: ServerRow) -> ApiResult<McpServer> {
    Ok(row.into_api()?)
}

/// `POST /mcp/servers`.
pub async fn register_server(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<RegisterServerRequest>,
) -> ApiResult<(StatusCode, Json<McpServer>)> {
    caller.require_admin()?;
    let name = validate::name("name", &request.name)?;
    let url = validate_url(&state.mcp, &request.url)?;
    let capabilities = validate::scope_list(
        "capabilities",
        request.capabilities.as_deref().unwrap_or(&[]),
    )?;
    let id = store::new_id();
    let auth_token = match request.auth_token.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(token) => {
            if token.len() > MAX_AUTH_TOKEN_BYTES
                || token.chars().any(|character| character.is_control())
            {
                return Err(ApiError::validation(format!(
                    "auth_token must be printable and at most {MAX_AUTH_TOKEN_BYTES} bytes"
                )));
            }
            Some(seal(state.federation.signing.secret(), &id, token)?)
        }
    };
    let row = store::mcp::create_server(
        &state.store,
        store::mcp::NewServer {
            org_id: &caller.org_id,
            id: &id,
            name: &name,
            url: &url,
            capabilities: &capabilities,
            auth_token,
        },
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_api(row)?)))
}

/// `GET /mcp/servers`.
pub async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ServerList>> {
    let rows = store::mcp::list_servers(&state.store, &caller.org_id).await?;
    Ok(Json(ServerList {
        servers: rows.into_iter().map(to_api).collect::<ApiResult<_>>()?,
        extra: Default::default(),
    }))
}

/// The org's server `id` (another org's is a 404).
pub(crate) async fn find_server(state: &AppState, org_id: &str, id: &str) -> ApiResult<ServerRow> {
    validate::identifier("server_id", id)?;
    store::mcp::get_server(&state.store, org_id, id)
        .await?
        .ok_or_else(|| server_not_found(id))
}

/// `GET /mcp/servers/{server_id}`.
pub async fn get_server(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<McpServer>> {
    let row = find_server(&state, &caller.org_id, &id).await?;
    Ok(Json(to_api(row)?))
}

/// `DELETE /mcp/servers/{server_id}`: the server, what the proxy learned of its tools, and its
/// sessions.
pub async fn delete_server(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<DeletedServer>> {
    caller.require_admin()?;
    validate::identifier("server_id", &id)?;
    if !store::mcp::delete_server(&state.store, &caller.org_id, &id, &caller.actor()).await? {
        return Err(server_not_found(&id));
    }
    Ok(Json(DeletedServer {
        status: "deleted".to_string(),
        id,
        extra: Default::default(),
    }))
}
