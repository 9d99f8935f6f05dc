//! `POST /mcp/{server_id}`: the MCP proxy (JSON-RPC 2.0 over MCP Streamable HTTP). Every
//! `tools/call`, `resources/read` and `prompts/get` is a check through the one check service
//! ([`crate::gateway::check::check`]: same decision, same recording as `POST /check`) before
//! anything reaches the upstream; `tools/list` answers keep only the tools the agent may call
//! (or may call once a human approves); `tasks/*` reach only the calling agent's tasks
//! ([`super::tasks`]); the other methods of [`super::methods`] pass through. Any other method
//! is answered by the gateway and not forwarded.
//!
//! Who acts: the agent of an agent token (`Authorization: Bearer at_…`), or with an org API key
//! the agent named by `X-Agent-ID`, else the agent of the session named by `X-Session-ID`
//! (the Python SDK 0.3.0 sends no `X-Agent-ID`). The agent must be active.
//!
//! A refused call is an HTTP 403 (the Python and Go SDKs ignore JSON-RPC errors, so the status
//! is what makes them raise), both for a denial and for an elevation: the body has the
//! gateway's `error`/`message`/`code` (`POLICY_DENIED` or `ELEVATION_REQUIRED` with the
//! `approval_id` to wait on), the check, and the JSON-RPC error an MCP client shows. An MCP
//! client (its `Accept` lists `text/event-stream`, which no SDK sends) gets that JSON-RPC error
//! itself as the answer to its request (HTTP 200): an MCP client takes an error status for a
//! broken transport, not for a refused tool.
//!
//! A client's JSON-RPC response (to an upstream's sampling, elicitation or roots request) is
//! forwarded and answered 202, in the caller's MCP session only (outside one, a 400). `GET /mcp/{server_id}` ([`listen`]) relays the upstream's own
//! stream of requests and notifications; `DELETE` ends an MCP session ([`super::sessions`]).
//!
//! Towards the upstream: a POST with `Accept: application/json, text/event-stream`; a JSON
//! answer is relayed, an SSE stream is read until the `message` event carrying the response to
//! this request's id. `MCP-Protocol-Version` is forwarded as the caller states it (every
//! revision the MCP SDKs speak over Streamable HTTP: 2025-03-26, 2025-06-18, 2025-11-25; the
//! upstream answers a 400 to one it does not). `Mcp-Session-Id` is the gateway's own
//! ([`super::sessions`]): the upstream's id is forwarded in its place and never shown. The
//! caller's own credentials never leave (the server's `auth_token`, if any, is sent instead).
//! The upstream is bounded in time and size, and its failures are a 502 naming it.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::actions::{CheckDecision, Effect};
use crate::api::mcp::{
    AGENT_ID_HEADER, CODE_ELEVATION_REQUIRED, CODE_POLICY_DENIED, MCP_PROTOCOL_VERSION_HEADER,
    MCP_SESSION_ID_HEADER, RefusedCall, RpcRequest, SESSION_ID_HEADER, hinted_effect,
};
use crate::api::time;
use crate::store::{self, mcp::ServerRow, telemetry::EventRow};

use super::super::AppState;
use super::super::agents::not_found as agent_not_found;
use super::super::auth::{Caller, Principal};
use super::super::check::{self, CheckParams, params::RawCheck};
use super::super::error::{ApiError, ApiResult};
use super::super::extract::{JsonBody, PathId};
use super::super::outbound::{FetchError, McpResponse};
use super::super::validate;
use super::methods::{self, Read, Route};
use super::{auth_token, find_server, params, sessions, tasks, tools};

/// JSON-RPC error codes of the answers the gateway makes itself.
const RPC_METHOD_NOT_FOUND: i64 = -32601;
const RPC_INVALID_PARAMS: i64 = -32602;
const RPC_INTERNAL_ERROR: i64 = -32603;
/// The JSON-RPC error of a tool call the policy refused (server-defined range).
const RPC_REFUSED_BY_POLICY: i64 = -32001;
/// The longest protocol version accepted (revisions are dates: `2025-11-25`).
const MAX_PROTOCOL_VERSION_BYTES: usize = 32;
/// Where a client resuming a stream names the last event it received.
const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// The request headers of the 2026-07-28 revision mirroring the body's method and name (those
/// mirroring a tool's arguments are [`params`]').
const MCP_METHOD_HEADER: &str = "mcp-method";
const MCP_NAME_HEADER: &str = "mcp-name";
/// The most `Mcp-Param-*` headers a request may carry.
const MAX_PARAM_HEADERS: usize = 64;
/// The protocol revisions negotiated by `initialize`; a later one is stateless (2026-07-28:
/// no sessions, no listening GET, metadata in every request).
const HANDSHAKE_REVISIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

pub async fn proxy(
    State(state): State<AppState>,
    caller: Caller,
    PathId(server_id): PathId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let started = Instant::now();
    let server = find_server(&state, &caller.org_id, &server_id).await?;
    let message = parse_message(&body)?;
    let exchange = Exchange::new(&state, &caller, server, &headers).await?;
    let request = match message {
        // The client's answer to an upstream's request (sampling, elicitation, roots): the
        // upstream's to hear; the client gets the 202 (or the upstream's refusal). Only in the
        // caller's MCP session, whose upstream session is this agent's alone: without one,
        // every agent reaches the upstream with the same credential, and an answer would go to
        // whichever caller's request bears its id.
        Message::Response => {
            if exchange.session.is_none() {
                return Err(ApiError::validation(
                    "a response to the MCP server's request is accepted only in the MCP \
                     session the request came in: send its Mcp-Session-Id",
                ));
            }
            return Ok(exchange.forward(&body, None).await?.respond_accepted());
        }
        Message::Request(request) => request,
    };
    let Some(id) = request.id.clone() else {
        // A notification: the upstream hears it, the caller gets no answer but the 202.
        if !methods::is_client_notification(&request.method) {
            return Err(ApiError::validation(
                if request.method.starts_with("notifications/") {
                    format!(
                        "{} is not a notification a client sends a server: it is not forwarded",
                        request.method
                    )
                } else {
                    format!(
                        "{} without an id: only notifications may be sent without one",
                        request.method
                    )
                },
            ));
        }
        mirrored_headers_match(&headers, &request)?;
        return Ok(exchange.forward(&body, None).await?.respond_accepted());
    };
    mirrored_headers_match(&headers, &request)?;
    let Some(route) = methods::route(&request.method) else {
        // 2026-07-28 answers an unknown method with a 404 (and the JSON-RPC error); earlier
        // revisions with the error alone.
        return Ok(rpc_error(
            if exchange.is_modern() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            },
            &id,
            RPC_METHOD_NOT_FOUND,
            &format!("method {} is not forwarded by the gateway", request.method),
            None,
        ));
    };
    match route {
        Route::ToolsCall => match reserved_tool(&request, &id) {
            Some(refusal) => Ok(refusal),
            None => {
                exchange
                    .mirroring(&request)
                    .await?
                    .tools_call(&request, id, started)
                    .await
            }
        },
        Route::ToolsList => exchange.tools_list(id, &body).await,
        Route::Initialize => exchange.initialize(id, &body).await,
        Route::Read(read) => exchange.read(read, &request, id, started).await,
        Route::Task => exchange.task(&request, id, &body).await,
        Route::TasksList => exchange.tasks_list(id, &body).await,
        Route::Stream => exchange.stream(&body).await,
        Route::Pass => exchange.pass(id, &body).await,
    }
}

/// The answer to a `tools/call` naming a tool in the action names reserved for checked reads
/// ([`methods`]), if it does: such a call would meet the rules written for those reads.
fn reserved_tool(request: &RpcRequest, id: &Value) -> Option<Response> {
    let name = request.params.as_ref()?.get("name")?.as_str()?;
    let key = tools::name_key(name)?;
    methods::is_reserved_tool_name(&key).then(|| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            RPC_INVALID_PARAMS,
            &format!(
                "tool {name:?} is not called through the gateway: names under resources/ and \
                 prompts/ are the actions of resource reads and prompts"
            ),
            None,
        )
    })
}

/// The name a request's `Mcp-Name` header mirrors (2026-07-28): `params.name` of `tools/call`
/// and `prompts/get`, `params.uri` of `resources/read`.
fn mirrored_name<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params?.get(field)?.as_str()
}

/// Refuses a request whose `Mcp-Method` or `Mcp-Name` header (2026-07-28 mirrors them so that
/// intermediaries can route without the body) says something else than its body: what the
/// gateway checks is the body, and no component behind it may act on another name.
fn mirrored_headers_match(headers: &HeaderMap, request: &RpcRequest) -> ApiResult<()> {
    let mismatch = |header: &str, stated: &str, body: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "HEADER_MISMATCH",
            format!("the {header} header says {stated:?} but the body says {body:?}"),
        )
    };
    if let Some(stated) = header_text(headers, MCP_METHOD_HEADER)?
        && stated != request.method
    {
        return Err(mismatch("Mcp-Method", stated, &request.method));
    }
    if let Some(stated) = header_text(headers, MCP_NAME_HEADER)? {
        let body = mirrored_name(&request.method, request.params.as_ref()).unwrap_or("");
        // Header values lose their surrounding white space on the wire; the body's name does
        // not, and is compared as the header could carry it.
        if stated != body.trim() {
            return Err(mismatch("Mcp-Name", stated, body));
        }
    }
    Ok(())
}

/// `GET /mcp/{server_id}`: the stream on which the upstream sends its own requests and
/// notifications, relayed as it comes (405 when the upstream offers none). The stream ends when
/// the upstream ends it, the client leaves, an event grows past the size limit, or the gateway
/// shuts down.
pub async fn listen(
    State(state): State<AppState>,
    caller: Caller,
    PathId(server_id): PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let server = find_server(&state, &caller.org_id, &server_id).await?;
    let exchange = Exchange::new(&state, &caller, server, &headers).await?;
    let mut outgoing = exchange.upstream_headers()?;
    if let Some(last_event_id) = header_text(&headers, LAST_EVENT_ID_HEADER)? {
        if !sessions::well_formed(last_event_id) {
            return Err(ApiError::validation(format!(
                "the {LAST_EVENT_ID_HEADER} header must be visible ASCII"
            )));
        }
        if let Ok(value) = reqwest::header::HeaderValue::from_str(last_event_id) {
            outgoing.insert(LAST_EVENT_ID_HEADER, value);
        }
    }
    let mcp = &state.mcp;
    let response = tokio::time::timeout(
        mcp.timeout,
        mcp.outbound
            .send_mcp(reqwest::Method::GET, &exchange.server.url, outgoing, None),
    )
    .await
    .map_err(|_| exchange.unavailable("did not answer within the upstream timeout"))?
    .map_err(|error| exchange.unavailable(&error.to_string()))?;
    match StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY) {
        StatusCode::METHOD_NOT_ALLOWED => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!(
                "MCP server {} offers no stream to listen on",
                exchange.server.id
            ),
        )),
        StatusCode::NOT_FOUND if exchange.session.is_some() => {
            Err(exchange.session_ended_upstream().await)
        }
        status if status.is_success() && is_event_stream(&response.headers) => {
            Ok(event_stream(response, mcp.closing()))
        }
        status => Err(exchange.unavailable(&format!(
            "answered HTTP {} to a request to listen",
            status.as_u16()
        ))),
    }
}

/// What a client POSTs: a request or notification, or its response to an upstream's request.
enum Message {
    Request(RpcRequest),
    Response,
}

fn parse_message(value: &Value) -> ApiResult<Message> {
    if value.is_array() {
        return Err(ApiError::validation(
            "JSON-RPC batches are not accepted: send one message per POST",
        ));
    }
    let Some(object) = value.as_object() else {
        return Err(ApiError::validation("the body is not a JSON-RPC message"));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(ApiError::validation("jsonrpc must be \"2.0\""));
    }
    if !object.contains_key("method") {
        // A response: an id (null only for an error about an unreadable request) and exactly
        // one of result and error.
        let answers = object.contains_key("result") != object.contains_key("error");
        if answers && object.contains_key("id") {
            return Ok(Message::Response);
        }
        return Err(ApiError::validation(
            "the body is not a JSON-RPC message: a request needs a method, a response an id \
             and a result or an error",
        ));
    }
    let request: RpcRequest = serde_json::from_value(value.clone()).map_err(|error| {
        ApiError::validation(format!("the body is not a JSON-RPC request: {error}"))
    })?;
    if request.method.is_empty() {
        return Err(ApiError::validation("method is required"));
    }
    Ok(Message::Request(request))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim()).filter(|text| !text.is_empty()))
            .map_err(|_| ApiError::validation(format!("the {name} header is not valid text"))),
    }
}

/// The MCP protocol version the caller states, if any: a revision date (`2025-06-18`) or
/// another short token; the upstream judges whether it speaks it.
fn protocol_version(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(version) = header_text(headers, MCP_PROTOCOL_VERSION_HEADER)? else {
        return Ok(None);
    };
    let token = version.len() <= MAX_PROTOCOL_VERSION_BYTES
        && version
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'));
    if !token {
        return Err(ApiError::validation(format!(
            "the {MCP_PROTOCOL_VERSION_HEADER} header must be a protocol revision such as \
             2025-06-18"
        )));
    }
    Ok(Some(version.to_string()))
}

/// The agent the call is made for (see the module docs), which must exist in the caller's org
/// and be active.
async fn acting_agent(state: &AppState, caller: &Caller, headers: &HeaderMap) -> ApiResult<String> {
    let named = header_text(headers, AGENT_ID_HEADER)?;
    let agent_id = match (&caller.principal, named) {
        // A token's own agent (a header naming another is refused), or the agent an API key
        // names — only where the org does not require sender-constrained tokens.
        (Principal::Agent { .. } | Principal::Workload { .. }, named)
        | (Principal::Key { .. }, named @ Some(_)) => caller.acting_agent(named)?,
        (Principal::Key { .. }, None) => match header_text(headers, SESSION_ID_HEADER)? {
            Some(session_id) => {
                // The session names the agent: the key acts as it, so it is judged alike.
                caller.require_may_act_as_agent()?;
                validate::identifier("X-Session-ID", session_id)?;
                store::sessions::get(&state.store, &caller.org_id, session_id)
                    .await?
                    .map(|session| session.agent_id)
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "no X-Agent-ID header, and session {session_id} (X-Session-ID) is \
                             not a session of this org: name the acting agent in X-Agent-ID"
                        ))
                    })?
            }
            None => {
                return Err(ApiError::validation(
                    "the acting agent is unknown: send X-Agent-ID (or an agent token as \
                     Authorization: Bearer, or X-Session-ID of the agent's session)",
                ));
            }
        },
    };
    validate::identifier("X-Agent-ID", &agent_id)?;
    let agent = store::agents::get(&state.store, &caller.org_id, &agent_id)
        .await?
        .ok_or_else(|| agent_not_found(&agent_id))?;
    if !agent.is_active() {
        return Err(ApiError::forbidden(format!(
            "agent {} is {}; it cannot call tools",
            agent.id, agent.status
        )));
    }
    Ok(agent.id)
}

/// One exchange with an upstream on an agent's behalf: who, to which server, in which MCP
/// session. Owned, so the work it starts (ending an evicted session) may outlive the request.
#[derive(Clone)]
pub struct Exchange {
    state: AppState,
    caller: Caller,
    pub server: ServerRow,
    pub agent_id: String,
    /// The AgentTrust session (`X-Session-ID`) checks count in.
    session_id: Option<String>,
    protocol_version: Option<String>,
    /// The caller's MCP session, when it presented one.
    pub session: Option<sessions::Session>,
    /// The upstream's session id to forward with.
    upstream_session: Option<String>,
    /// The caller is an MCP client (its `Accept` lists `text/event-stream`, as MCP Streamable
    /// HTTP requires): a refusal is a JSON-RPC error it can show, where the AgentTrust SDKs
    /// (which never ask for event streams) need an HTTP 403 to raise.
    mcp_client: bool,
    /// The caller's `Mcp-Param-*` headers (2026-07-28): name after the prefix, value. Never
    /// forwarded as such ([`params`]).
    presented_params: Vec<(String, String)>,
    /// The `Mcp-Param-*` headers the upstream is sent, made from the checked arguments.
    mirrored_params: Vec<(String, String)>,
}

/// An upstream's answer to an MCP client: a stream to relay, or an answer read.
enum Opened {
    Stream(McpResponse),
    Answer(Forwarded),
}

/// What a relayed stream does with the response when it comes.
enum Finish {
    Plain,
    /// Learn the hints and keep the tools the agent may call.
    ToolsList,
    /// Keep the tasks of the agent.
    TasksList,
    /// Record the outcome of the checked call (a tool call, a resource read, a prompt), and
    /// bind a task it created to the agent.
    Checked {
        action: String,
        session_id: Option<String>,
        called: Instant,
    },
}

/// A relayed stream in progress (see [`Exchange::relay`]).
struct RelayState {
    exchange: Exchange,
    /// `None` once the stream is over.
    response: Option<McpResponse>,
    events: sse::Events,
    id: Value,
    /// `None` once the response was relayed.
    finish: Option<Finish>,
    /// An event carried an id: the client may resume the stream.
    resumable: bool,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl RelayState {
    /// The next text to send the client; `None` at the end.
    async fn next(&mut self) -> Option<String> {
        loop {
            let response = self.response.as_mut()?;
            if *self.closing.borrow() {
                self.response = None;
                return None;
            }
            let timeout = self.exchange.state.mcp.timeout;
            let chunk = tokio::select! {
                chunk = tokio::time::timeout(timeout, response.chunk()) => chunk,
                _ = self.closing.changed() => {
                    self.response = None;
                    return None;
                }
            };
            let chunk = match chunk {
                Ok(Ok(Some(chunk))) => chunk,
                // Closed after event ids: the upstream may expect the client to resume.
                Ok(Ok(None)) => {
                    let resumable = self.resumable;
                    return self
                        .ended("ended its stream without the response", resumable)
                        .await;
                }
                Ok(Err(error)) => return self.ended(&error.to_string(), false).await,
                Err(_) => {
                    let why = format!("fell silent for {}s", timeout.as_secs_f64());
                    return self.ended(&why, false).await;
                }
            };
            let events = match self.events.push_events(&chunk) {
                Ok(events) => events,
                // What came before was relayed; the client hears why the rest will not come.
                Err(error) => return self.ended(&error.to_string(), false).await,
            };
            let mut out = String::new();
            for event in events {
                self.resumable |= event.text.lines().any(|line| line.starts_with("id:"));
                let answer = event
                    .message
                    .as_deref()
                    .and_then(|data| serde_json::from_str::<Value>(data).ok())
                    .filter(|message| {
                        (message.get("result").is_some() || message.get("error").is_some())
                            && message.get("id") == Some(&self.id)
                    });
                match answer {
                    Some(mut answer) => {
                        self.finish(&mut answer).await;
                        out.push_str(&format!("event: message\ndata: {answer}\n\n"));
                        self.response = None;
                        return Some(out);
                    }
                    None => out.push_str(&event.text),
                }
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }

    /// Finishes the response as asked; a `tools/list` that cannot be filtered is not relayed
    /// unfiltered (the client gets the error instead).
    async fn finish(&mut self, answer: &mut Value) {
        match self.finish.take() {
            Some(Finish::ToolsList) => {
                if self.exchange.keep_callable(answer).await.is_err() {
                    *answer = json!({"jsonrpc": "2.0", "id": self.id, "error": {
                        "code": RPC_INTERNAL_ERROR,
                        "message": "the gateway could not filter the tool list",
                    }});
                }
            }
            Some(Finish::TasksList) => {
                if self.exchange.keep_own_tasks(answer).await.is_err() {
                    *answer = json!({"jsonrpc": "2.0", "id": self.id, "error": {
                        "code": RPC_INTERNAL_ERROR,
                        "message": "the gateway could not filter the task list",
                    }});
                }
            }
            Some(Finish::Checked {
                action,
                session_id,
                called,
            }) => {
                let forwarded = Forwarded {
                    status: StatusCode::OK,
                    body: Some(answer.clone()),
                    relayed: HeaderMap::new(),
                    upstream_session: None,
                };
                let outcome = outcome(&forwarded);
                self.exchange.remember_task(answer).await;
                self.exchange
                    .report(action, session_id, called, outcome)
                    .await;
            }
            Some(Finish::Plain) | None => {}
        }
    }

    /// The stream ended before the response: the client hears why, as the JSON-RPC error for
    /// its request, unless the upstream closed it to be resumed (`resumable`).
    async fn ended(&mut self, why: &str, resumable: bool) -> Option<String> {
        self.response = None;
        let exchange = &self.exchange;
        if let Some(Finish::Checked {
            action,
            session_id,
            called,
        }) = self.finish.take()
        {
            let error_type = if resumable {
                "upstream_stream_paused"
            } else {
                "upstream_unavailable"
            };
            exchange
                .report(action, session_id, called, Some(error_type))
                .await;
        }
        if resumable {
            return None;
        }
        let error = exchange.unavailable(why);
        let answer = json!({"jsonrpc": "2.0", "id": self.id, "error": {
            "code": RPC_INTERNAL_ERROR,
            "message": error.message,
        }});
        Some(format!("event: message\ndata: {answer}\n\n"))
    }
}

/// What the upstream answered, ready to relay.
struct Forwarded {
    status: StatusCode,
    /// `None` for an accepted notification.
    body: Option<Value>,
    relayed: HeaderMap,
    /// The session id the upstream assigned (on `initialize`); never relayed as is.
    upstream_session: Option<String>,
}

impl Forwarded {
    fn respond(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, Json(body)).into_response(),
            None => self.status.into_response(),
        };
        response.headers_mut().extend(self.relayed);
        response
    }

    fn respond_accepted(self) -> Response {
        let mut response = StatusCode::ACCEPTED.into_response();
        response.headers_mut().extend(self.relayed);
        response
    }
}

impl Exchange {
    /// The exchange a request asks for: its acting agent, its AgentTrust session, its protocol
    /// version and its MCP session (unknown to this org, server and agent: 404).
    pub async fn new(
        state: &AppState,
        caller: &Caller,
        server: ServerRow,
        headers: &HeaderMap,
    ) -> ApiResult<Exchange> {
        let agent_id = acting_agent(state, caller, headers).await?;
        let session_id = header_text(headers, SESSION_ID_HEADER)?;
        if let Some(session_id) = session_id {
            validate::identifier("X-Session-ID", session_id)?;
        }
        let protocol_version = protocol_version(headers)?;
        let session = match header_text(headers, MCP_SESSION_ID_HEADER)? {
            Some(presented) => {
                Some(sessions::resolve(state, caller, &server.id, &agent_id, presented).await?)
            }
            None => None,
        };
        Ok(Exchange {
            state: state.clone(),
            caller: caller.clone(),
            upstream_session: session.as_ref().map(|session| session.upstream_id.clone()),
            server,
            agent_id,
            session_id: session_id.map(str::to_string),
            protocol_version,
            session,
            mcp_client: accepts_event_stream(headers),
            presented_params: parameter_headers(headers)?,
            mirrored_params: Vec::new(),
        })
    }

    /// This exchange for the tool call `request`, sending the upstream the `Mcp-Param-*`
    /// headers made from its arguments as its server declared them; a caller's header saying
    /// otherwise than the arguments is a 400 `HEADER_MISMATCH`, before anything is checked
    /// or sent.
    async fn mirroring(self, request: &RpcRequest) -> ApiResult<Exchange> {
        let params = request.params.as_ref();
        let Some(key) = params
            .and_then(|params| params.get("name"))
            .and_then(Value::as_str)
            .and_then(tools::name_key)
        else {
            return Ok(self);
        };
        let declared =
            tools::declared_params(&self.state, &self.caller.org_id, &self.server.id, &key).await?;
        let arguments = params.and_then(|params| params.get("arguments"));
        let mirrored_params = params::reconcile(&declared, arguments, &self.presented_params)
            .map_err(|mismatch| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "HEADER_MISMATCH",
                    mismatch.to_string(),
                )
            })?;
        Ok(Exchange {
            mirrored_params,
            ..self
        })
    }

    /// Whether the caller speaks a stateless revision (2026-07-28 or later).
    fn is_modern(&self) -> bool {
        self.protocol_version
            .as_deref()
            .is_some_and(|version| !HANDSHAKE_REVISIONS.contains(&version))
    }

    /// This exchange in another upstream session (`None`: in none), with no client session.
    pub fn with_upstream_session(&self, upstream_session: Option<String>) -> Exchange {
        Exchange {
            session: None,
            upstream_session,
            ..self.clone()
        }
    }

    /// `initialize`: forwarded; when the upstream assigns a session, the client is given one
    /// the gateway minted for it instead.
    async fn initialize(&self, id: Value, body: &Value) -> ApiResult<Response> {
        let forwarded = self.forward(body, Some(&id)).await?;
        let Some(upstream_id) = forwarded.upstream_session.clone() else {
            return Ok(forwarded.respond());
        };
        let negotiated = forwarded
            .body
            .as_ref()
            .and_then(|body| body.pointer("/result/protocolVersion"))
            .and_then(Value::as_str)
            .filter(|version| version.len() <= MAX_PROTOCOL_VERSION_BYTES)
            .map(str::to_string);
        let minted =
            sessions::open(&self.state, &self.caller, self, &upstream_id, negotiated).await?;
        let mut response = forwarded.respond();
        let value = HeaderValue::from_str(&minted).map_err(|_| ApiError::internal())?;
        response
            .headers_mut()
            .insert(HeaderName::from_static(MCP_SESSION_ID_HEADER), value);
        Ok(response)
    }

    async fn tools_call(
        &self,
        request: &RpcRequest,
        id: Value,
        started: Instant,
    ) -> ApiResult<Response> {
        let params = request.params.as_ref();
        let Some(tool) = params
            .and_then(|params| params.get("name"))
            .and_then(Value::as_str)
        else {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                RPC_INVALID_PARAMS,
                "tools/call needs params.name, the tool to call",
                None,
            ));
        };
        let arguments = params.and_then(|params| params.get("arguments"));
        let input = call_input(arguments);
        let hint = tools::hint(&self.state, &self.caller.org_id, &self.server.id, tool).await?;
        let params = CheckParams::validate_whole_input(
            Some(&self.caller),
            RawCheck {
                agent_id: &self.agent_id,
                action_name: tool,
                input_summary: &input,
                action_effect: hint.map(|effect| effect.as_str()),
                session_id: self.session_id.as_deref(),
            },
        )?;
        let decision =
            check::decide_and_record(&self.state, &self.caller, &params, started).await?;
        if !decision.allowed {
            return Ok(refused(&id, &decision, self.mcp_client));
        }
        let tool_name = decision
            .action_name
            .clone()
            .unwrap_or_else(|| tool.to_string());
        // The upstream is asked for the tool that was checked: the canonical name, not the
        // caller's spelling (`"delete_file "` is checked, and run, as `delete_file`).
        let mut forwarded_request = request.clone();
        if let Some(params) = forwarded_request
            .params
            .as_mut()
            .and_then(Value::as_object_mut)
        {
            params.insert("name".to_string(), Value::String(tool_name.clone()));
        }
        let body = serde_json::to_value(&forwarded_request).map_err(|_| ApiError::internal())?;
        self.forward_checked(&body, id, tool_name, decision.session_id.clone())
            .await
    }

    /// `resources/read` or `prompts/get`: checked like a tool call, as the action
    /// [`Read::action_name`] with the effect `read` (which the input can still raise), the
    /// resource's URI or the prompt's name and arguments as the input; then forwarded as
    /// asked and recorded like a tool call.
    async fn read(
        &self,
        read: Read,
        request: &RpcRequest,
        id: Value,
        started: Instant,
    ) -> ApiResult<Response> {
        let params = request.params.as_ref();
        let text = |field: &str| {
            params
                .and_then(|params| params.get(field))
                .and_then(Value::as_str)
        };
        let input = match read {
            Read::Resource => {
                let Some(uri) = text("uri") else {
                    return Ok(invalid_params(&id, "resources/read needs params.uri"));
                };
                uri.to_string()
            }
            Read::Prompt => {
                let Some(name) = text("name") else {
                    return Ok(invalid_params(&id, "prompts/get needs params.name"));
                };
                let arguments = params
                    .and_then(|params| params.get("arguments"))
                    .unwrap_or(&Value::Null);
                // By hand, the name first (a JSON map would sort it last), so what is stored
                // of a long input (its beginning) shows it.
                format!(
                    "{{\"name\":{},\"arguments\":{arguments}}}",
                    Value::from(name)
                )
            }
        };
        let action = read.action_name();
        // Decided on the whole URI or arguments, as a tool call is: a cut would let a long
        // beginning hide what is read.
        let params = CheckParams::validate_whole_input(
            Some(&self.caller),
            RawCheck {
                agent_id: &self.agent_id,
                action_name: action,
                input_summary: &input,
                action_effect: Some(Effect::Read.as_str()),
                session_id: self.session_id.as_deref(),
            },
        )?;
        let decision =
            check::decide_and_record(&self.state, &self.caller, &params, started).await?;
        if !decision.allowed {
            return Ok(refused(&id, &decision, self.mcp_client));
        }
        let body = serde_json::to_value(request).map_err(|_| ApiError::internal())?;
        self.forward_checked(&body, id, action.to_string(), decision.session_id.clone())
            .await
    }

    /// Forwards a request the check allowed (`body`, as checked) and records its outcome as
    /// telemetry of `action`; a task its answer creates is bound to the agent.
    async fn forward_checked(
        &self,
        body: &Value,
        id: Value,
        action: String,
        session_id: Option<String>,
    ) -> ApiResult<Response> {
        let called = Instant::now();
        let forwarded = if self.mcp_client {
            match self.open_relay(body, &id).await {
                Ok(Opened::Stream(response)) => {
                    let finish = Finish::Checked {
                        action,
                        session_id,
                        called,
                    };
                    return Ok(self.clone().relay(response, id, finish));
                }
                Ok(Opened::Answer(forwarded)) => Ok(forwarded),
                Err(error) => Err(error),
            }
        } else {
            self.forward(body, Some(&id)).await
        };
        let outcome = match &forwarded {
            Err(_) => Some("upstream_unavailable"),
            Ok(forwarded) => outcome(forwarded),
        };
        if let Ok(Forwarded {
            body: Some(answer), ..
        }) = &forwarded
        {
            self.remember_task(answer).await;
        }
        self.report(action, session_id, called, outcome).await;
        Ok(forwarded?.respond())
    }

    /// Binds the task `answer` created, if any, to the agent ([`tasks`]). The call has
    /// happened: a failure is logged, and leaves the task unreachable through the gateway.
    async fn remember_task(&self, answer: &Value) {
        let remembered = tasks::remember(
            &self.state,
            &self.caller.org_id,
            &self.server.id,
            &self.agent_id,
            answer,
        )
        .await;
        if let Err(error) = remembered {
            tracing::error!(
                server = %self.server.id,
                error = %error.message,
                "cannot remember the task an MCP upstream created"
            );
        }
    }

    /// `tasks/get`, `tasks/result`, `tasks/cancel`: forwarded only for a task the upstream
    /// created for this agent; any other is answered as an unknown task, as the upstream would.
    async fn task(&self, request: &RpcRequest, id: Value, body: &Value) -> ApiResult<Response> {
        let Some(task_id) = tasks::named(request.params.as_ref()) else {
            return Ok(invalid_params(
                &id,
                &format!("{} needs params.taskId", request.method),
            ));
        };
        let owned = tasks::is_agents(
            &self.state,
            &self.caller.org_id,
            &self.server.id,
            &self.agent_id,
            task_id,
        )
        .await?;
        if !owned {
            return Ok(rpc_error(
                StatusCode::OK,
                &id,
                RPC_INVALID_PARAMS,
                &format!("task {task_id:?} not found"),
                None,
            ));
        }
        self.pass(id, body).await
    }

    /// `tasks/list`: forwarded; the answer keeps the tasks of this agent.
    async fn tasks_list(&self, id: Value, body: &Value) -> ApiResult<Response> {
        let mut forwarded = if self.mcp_client {
            match self.open_relay(body, &id).await? {
                Opened::Stream(response) => {
                    return Ok(self.clone().relay(response, id, Finish::TasksList));
                }
                Opened::Answer(forwarded) => forwarded,
            }
        } else {
            self.forward(body, Some(&id)).await?
        };
        if let Some(answer) = forwarded.body.as_mut() {
            self.keep_own_tasks(answer).await?;
        }
        Ok(forwarded.respond())
    }

    async fn keep_own_tasks(&self, answer: &mut Value) -> ApiResult<()> {
        tasks::keep_agents(
            &self.state,
            &self.caller.org_id,
            &self.server.id,
            &self.agent_id,
            answer,
        )
        .await
    }

    /// Records the forwarded call's duration and outcome as telemetry (`tool_end` or
    /// `tool_error`). The call has happened: a failure to record is logged, not answered.
    async fn report(
        &self,
        tool_name: String,
        session_id: Option<String>,
        called: Instant,
        error_type: Option<&str>,
    ) {
        let now = time::now();
        let row = EventRow {
            id: store::new_id(),
            org_id: self.caller.org_id.clone(),
            agent_id: self.agent_id.clone(),
            session_id,
            event_type: if error_type.is_some() {
                "tool_error"
            } else {
                "tool_end"
            }
            .to_string(),
            tool_name: Some(tool_name),
            duration_ms: Some(i64::try_from(called.elapsed().as_millis()).unwrap_or(i64::MAX)),
            success: error_type.is_none(),
            error_type: error_type.map(str::to_string),
            client_event_id: None,
            occurred_at: now,
            received_at: now,
        };
        let written = self
            .state
            .writer
            .write(
                &self.agent_id,
                store::telemetry::ReportJob {
                    events: vec![row],
                    actor: self.caller.actor(),
                },
            )
            .await;
        if let Err(error) = written {
            tracing::error!(%error, "cannot record the telemetry of a proxied MCP tool call");
        }
    }

    /// Forwards `tools/list` and keeps, of its answer, the tools this agent may call: a tool
    /// the policy refuses outright is removed, one needing a human's approval stays. The hints
    /// of every listed tool are learned first.
    async fn tools_list(&self, id: Value, body: &Value) -> ApiResult<Response> {
        let mut forwarded = if self.mcp_client {
            match self.open_relay(body, &id).await? {
                Opened::Stream(response) => {
                    return Ok(self.clone().relay(response, id, Finish::ToolsList));
                }
                Opened::Answer(forwarded) => forwarded,
            }
        } else {
            self.forward(body, Some(&id)).await?
        };
        if let Some(answer) = forwarded.body.as_mut() {
            self.keep_callable(answer).await?;
        }
        Ok(forwarded.respond())
    }

    /// Forwards a request whose answer is relayed as the upstream gives it.
    async fn pass(&self, id: Value, body: &Value) -> ApiResult<Response> {
        if self.mcp_client {
            return match self.open_relay(body, &id).await? {
                Opened::Stream(response) => Ok(self.clone().relay(response, id, Finish::Plain)),
                Opened::Answer(forwarded) => Ok(forwarded.respond()),
            };
        }
        Ok(self.forward(body, Some(&id)).await?.respond())
    }

    /// POSTs `message` to the upstream and reads its answer: the JSON-RPC response to `id`
    /// (from a JSON body or an SSE stream), or nothing for a notification or a response.
    async fn forward(&self, message: &Value, id: Option<&Value>) -> ApiResult<Forwarded> {
        let mcp = &self.state.mcp;
        let outgoing = self.message_headers(message)?;
        // One JSON text, bounded like every body the gateway reads.
        let body = serde_json::to_vec(message).map_err(|_| ApiError::internal())?;
        let exchange = async {
            let mut response = mcp
                .outbound
                .post_mcp(&self.server.url, outgoing, body.to_vec(), mcp.timeout)
                .await?;
            let relayed = relayed_headers(&response.headers);
            let upstream_session = response
                .headers
                .get(MCP_SESSION_ID_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let status = response.status;
            let answer = read_answer(&mut response, id).await?;
            Ok::<_, FetchError>((status, relayed, upstream_session, answer))
        };
        let (status, relayed, upstream_session, answer) =
            tokio::time::timeout(mcp.timeout, exchange)
                .await
                .map_err(|_| {
                    self.unavailable(&format!(
                        "did not answer within {}s",
                        mcp.timeout.as_secs_f64()
                    ))
                })?
                .map_err(|error| self.unavailable(&error.to_string()))?;
        self.judge(status, relayed, upstream_session, answer).await
    }

    /// What an upstream's answer is to the caller: relayed, a 404 ending the session, or a 502.
    async fn judge(
        &self,
        status: u16,
        relayed: HeaderMap,
        upstream_session: Option<String>,
        answer: Option<Value>,
    ) -> ApiResult<Forwarded> {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        if let Some(upstream_session) = &upstream_session
            && !sessions::well_formed(upstream_session)
        {
            return Err(self.unavailable("assigned a session id that is not visible ASCII"));
        }
        match status {
            status if status.is_success() => Ok(Forwarded {
                status: if answer.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                },
                body: answer,
                relayed,
                upstream_session,
            }),
            // The upstream no longer knows the session: neither does the gateway, and the client
            // starts a new one.
            StatusCode::NOT_FOUND if self.session.is_some() => {
                Err(self.session_ended_upstream().await)
            }
            // The upstream refused the request itself: its answer is the caller's to see.
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED
                if answer.is_some() =>
            {
                Ok(Forwarded {
                    status,
                    body: answer,
                    relayed,
                    upstream_session: None,
                })
            }
            status => Err(self.unavailable(&format!("answered HTTP {}", status.as_u16()))),
        }
    }

    /// For an MCP client, POSTs `message` and, when the upstream answers with an event stream,
    /// hands it back to be relayed as it comes (the upstream's own requests and notifications
    /// reach the client before the response, which a sampling or elicitation request needs);
    /// any other answer is read and judged as [`Exchange::forward`] does.
    async fn open_relay(&self, message: &Value, id: &Value) -> ApiResult<Opened> {
        let mcp = &self.state.mcp;
        let deadline = tokio::time::Instant::now() + mcp.timeout;
        let outgoing = self.message_headers(message)?;
        let body = serde_json::to_vec(message).map_err(|_| ApiError::internal())?;
        let too_slow = || {
            self.unavailable(&format!(
                "did not answer within {}s",
                mcp.timeout.as_secs_f64()
            ))
        };
        let mut response = tokio::time::timeout_at(
            deadline,
            mcp.outbound.send_mcp(
                reqwest::Method::POST,
                &self.server.url,
                outgoing,
                Some(body),
            ),
        )
        .await
        .map_err(|_| too_slow())?
        .map_err(|error| self.unavailable(&error.to_string()))?;
        if (200..300).contains(&response.status) && is_event_stream(&response.headers) {
            return Ok(Opened::Stream(response));
        }
        let relayed = relayed_headers(&response.headers);
        let answer = tokio::time::timeout_at(deadline, read_answer(&mut response, Some(id)))
            .await
            .map_err(|_| too_slow())?
            .map_err(|error| self.unavailable(&error.to_string()))?;
        Ok(Opened::Answer(
            self.judge(response.status, relayed, None, answer).await?,
        ))
    }

    /// Relays the upstream's event stream answering `id`: every event as it comes, until the
    /// response, which is finished as `finish` says (a `tools/list` filtered, a `tools/call`
    /// recorded) and ends the stream. A stream that ends without it, or falls silent past the
    /// upstream timeout, ends with a JSON-RPC error for `id` — unless the upstream closed it
    /// after events with ids, when the client may resume it (`GET` with `Last-Event-ID`,
    /// 2025-11-25).
    fn relay(self, response: McpResponse, id: Value, finish: Finish) -> Response {
        let relayed = relayed_headers(&response.headers);
        let closing = self.state.mcp.closing();
        let state = RelayState {
            exchange: self,
            response: Some(response),
            events: sse::Events::default(),
            id,
            finish: Some(finish),
            resumable: false,
            closing,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let text = state.next().await?;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(text)), state))
        });
        let mut answer = Response::new(axum::body::Body::from_stream(stream));
        answer.headers_mut().extend(relayed);
        answer.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        answer.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        answer
    }

    /// Learns the hints of a `tools/list` answer and keeps the tools this agent may call.
    async fn keep_callable(&self, answer: &mut Value) -> ApiResult<()> {
        let Some(tools) = answer
            .get_mut("result")
            .and_then(|result| result.get_mut("tools"))
            .and_then(Value::as_array_mut)
        else {
            return Ok(());
        };
        tools::learn(&self.state, &self.caller, &self.server.id, tools).await?;
        let policy = check::current_policy(&self.state, &self.caller.org_id).await?;
        let mut kept = Vec::with_capacity(tools.len());
        for tool in tools.drain(..) {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            // A tool named like a checked read cannot be called through the gateway.
            if tools::name_key(name).is_some_and(|key| methods::is_reserved_tool_name(&key)) {
                continue;
            }
            let Ok(params) = CheckParams::validate(
                Some(&self.caller),
                RawCheck {
                    agent_id: &self.agent_id,
                    action_name: name,
                    input_summary: "",
                    action_effect: hinted_effect(&tool).map(|effect| effect.as_str()),
                    session_id: self.session_id.as_deref(),
                },
            ) else {
                // A name no check accepts cannot be called through the gateway.
                continue;
            };
            let decision = check::decide_for(&self.state, &self.caller, &params, &policy).await?;
            if decision.allowed || decision.elevation_required {
                kept.push(tool);
            }
        }
        *tools = kept;
        Ok(())
    }

    /// Ends the caller's session, which its upstream no longer knows; the 404 to answer.
    async fn session_ended_upstream(&self) -> ApiError {
        if let Some(session) = &self.session
            && let Err(error) =
                sessions::end(&self.state, &self.caller, session, "upstream_ended").await
        {
            return error;
        }
        sessions::not_found()
    }

    /// Tells the upstream its session ended (`DELETE`, bounded by the upstream timeout). The
    /// gateway's session is over whatever the upstream answers: a failure is only logged.
    pub async fn end_upstream(&self) {
        if self.upstream_session.is_none() {
            return;
        }
        let mcp = &self.state.mcp;
        let Ok(outgoing) = self.upstream_headers() else {
            return;
        };
        let sent = tokio::time::timeout(
            mcp.timeout,
            mcp.outbound
                .send_mcp(reqwest::Method::DELETE, &self.server.url, outgoing, None),
        )
        .await;
        match sent {
            Ok(Ok(response))
                if response.status < 300 || response.status == 404 || response.status == 405 => {}
            Ok(Ok(response)) => tracing::warn!(
                server = %self.server.id,
                status = response.status,
                "the MCP upstream refused to end a session"
            ),
            Ok(Err(error)) => tracing::warn!(
                server = %self.server.id,
                %error,
                "cannot end a session at the MCP upstream"
            ),
            Err(_) => tracing::warn!(
                server = %self.server.id,
                "the MCP upstream did not answer the end of a session in time"
            ),
        }
    }

    /// [`Exchange::upstream_headers`] for a message the upstream is sent: with the headers
    /// mirroring what is sent (its method and name, as forwarded, and the arguments of a tool
    /// call that its server declared mirrored).
    fn message_headers(&self, message: &Value) -> ApiResult<reqwest::header::HeaderMap> {
        let mut outgoing = self.upstream_headers()?;
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            let mut mirror = |name: &'static str, value: &str| {
                if let Ok(value) = reqwest::header::HeaderValue::from_str(value.trim()) {
                    outgoing.insert(name, value);
                }
            };
            mirror(MCP_METHOD_HEADER, method);
            if let Some(name) = mirrored_name(method, message.get("params")) {
                mirror(MCP_NAME_HEADER, name);
            }
        }
        for (name, value) in &self.mirrored_params {
            let name = format!("{}{name}", params::HEADER_PREFIX);
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                outgoing.insert(name, value);
            }
        }
        Ok(outgoing)
    }

    /// Forwards `message` and relays the upstream's answer as it comes: an event stream that
    /// may last (`subscriptions/listen`), or a JSON answer.
    async fn stream(&self, message: &Value) -> ApiResult<Response> {
        let mcp = &self.state.mcp;
        let outgoing = self.message_headers(message)?;
        let body = serde_json::to_vec(message).map_err(|_| ApiError::internal())?;
        let mut response = tokio::time::timeout(
            mcp.timeout,
            mcp.outbound.send_mcp(
                reqwest::Method::POST,
                &self.server.url,
                outgoing,
                Some(body),
            ),
        )
        .await
        .map_err(|_| self.unavailable("did not answer within the upstream timeout"))?
        .map_err(|error| self.unavailable(&error.to_string()))?;
        let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if status.is_success() && is_event_stream(&response.headers) {
            return Ok(event_stream(response, mcp.closing()));
        }
        let answer = tokio::time::timeout(mcp.timeout, read_answer(&mut response, None))
            .await
            .map_err(|_| self.unavailable("did not answer within the upstream timeout"))?
            .map_err(|error| self.unavailable(&error.to_string()))?;
        match (status, answer) {
            (status, Some(answer)) if status.is_success() || status.is_client_error() => {
                Ok((status, Json(answer)).into_response())
            }
            (status, _) => Err(self.unavailable(&format!("answered HTTP {}", status.as_u16()))),
        }
    }

    /// The headers sent to the upstream: the upstream's session id (never the client's), the
    /// protocol version the caller stated, and the server's own credential. Nothing else of
    /// the caller's (its API key, its agent token) leaves the gateway.
    fn upstream_headers(&self) -> ApiResult<reqwest::header::HeaderMap> {
        let mut outgoing = reqwest::header::HeaderMap::new();
        if let Some(session) = &self.upstream_session {
            let mut value = reqwest::header::HeaderValue::from_str(session)
                .map_err(|_| ApiError::internal())?;
            value.set_sensitive(true);
            outgoing.insert(MCP_SESSION_ID_HEADER, value);
        }
        if let Some(version) = &self.protocol_version
            && let Ok(value) = reqwest::header::HeaderValue::from_str(version)
        {
            outgoing.insert(MCP_PROTOCOL_VERSION_HEADER, value);
        }
        if let Some(token) = auth_token(&self.state, &self.server)? {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    self.unavailable("has a credential that is not a valid header value")
                })?;
            value.set_sensitive(true);
            outgoing.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(outgoing)
    }

    fn unavailable(&self, why: &str) -> ApiError {
        tracing::warn!(
            server = %self.server.id,
            url = display_url(&self.server.url),
            why,
            "MCP upstream failed"
        );
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_UNAVAILABLE",
            format!(
                "MCP server {} ({}) {why}",
                self.server.id,
                display_url(&self.server.url)
            ),
        )
    }
}

/// How a forwarded tool call ended, for telemetry: `None` when it succeeded, else the kind of
/// failure (the upstream's JSON-RPC error, or a tool result flagged `isError`).
fn outcome(forwarded: &Forwarded) -> Option<&'static str> {
    let body = forwarded.body.as_ref();
    if !forwarded.status.is_success() {
        Some("upstream_error")
    } else if body.is_some_and(|body| body.get("error").is_some()) {
        Some("jsonrpc_error")
    } else if body
        .and_then(|body| body.get("result"))
        .and_then(|result| result.get("isError"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        Some("tool_error")
    } else {
        None
    }
}

/// The upstream URL as shown in errors: without its query (which may carry a key).
fn display_url(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

/// The MCP headers the upstream set that the caller must see (never its session id: the
/// caller's is the gateway's).
fn relayed_headers(headers: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut relayed = HeaderMap::new();
    if let Some(value) = headers
        .get(MCP_PROTOCOL_VERSION_HEADER)
        .and_then(|value| HeaderValue::from_bytes(value.as_bytes()).ok())
    {
        relayed.insert(HeaderName::from_static(MCP_PROTOCOL_VERSION_HEADER), value);
    }
    relayed
}

/// The JSON-RPC answer to `id` in the upstream's body: the body itself when it is JSON, the
/// `message` event answering `id` when it is an SSE stream (read no further). `None` for an
/// empty body (an accepted notification).
async fn read_answer(
    response: &mut McpResponse,
    id: Option<&Value>,
) -> Result<Option<Value>, FetchError> {
    if !is_event_stream(&response.headers) {
        let body = response.body().await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        return serde_json::from_slice(&body)
            .map(Some)
            .map_err(|error| FetchError::NotJson {
                url: "the upstream".to_string(),
                reason: error.to_string(),
            });
    }
    let mut events = sse::Events::default();
    while let Some(chunk) = response.chunk().await? {
        let messages = events.push(&chunk).map_err(|error| FetchError::NotJson {
            url: "the upstream".to_string(),
            reason: format!("its event stream {error}"),
        })?;
        for data in messages {
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let is_response = message.get("result").is_some() || message.get("error").is_some();
            if is_response && (id.is_none() || message.get("id") == id) {
                return Ok(Some(message));
            }
        }
    }
    Err(FetchError::NotJson {
        url: "the upstream".to_string(),
        reason: "its event stream ended without the response".to_string(),
    })
}

fn is_event_stream(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}

/// The input a tool call is decided on: all of its arguments, as compact JSON. Never a cut: an
/// agent choosing the arguments could lead with a long one and push the path or command that
/// matters past any cut, out of sight of the rules (what is stored is cut by the store, marked
/// as such).
fn call_input(arguments: Option<&Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(arguments) => arguments.to_string(),
    }
}

/// The gateway's answer to a request whose params it cannot forward (HTTP 400).
fn invalid_params(id: &Value, message: &str) -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        id,
        RPC_INVALID_PARAMS,
        message,
        None,
    )
}

/// A JSON-RPC error answered by the gateway itself.
fn rpc_error(
    status: StatusCode,
    id: &Value,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    (
        status,
        Json(json!({"jsonrpc": "2.0", "id": id, "error": error})),
    )
        .into_response()
}

/// An upstream's event stream relayed to the client (see [`relay`]).
fn event_stream(response: McpResponse, closing: tokio::sync::watch::Receiver<bool>) -> Response {
    let relayed = relayed_headers(&response.headers);
    let mut answer = Response::new(relay::body(response.into_stream(), closing));
    answer.headers_mut().extend(relayed);
    answer.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    answer.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    // Proxies in front of the gateway must not hold the events back.
    answer.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    answer
}

/// The caller's `Mcp-Param-*` headers: the name after the prefix (lower case), the value (at
/// most [`MAX_PARAM_HEADERS`], each printable ASCII as the revision requires; else a 400).
fn parameter_headers(headers: &HeaderMap) -> ApiResult<Vec<(String, String)>> {
    let mut parameters = Vec::new();
    for (name, value) in headers {
        let Some(parameter) = name.as_str().strip_prefix(params::HEADER_PREFIX) else {
            continue;
        };
        if parameters.len() == MAX_PARAM_HEADERS {
            return Err(ApiError::validation(format!(
                "at most {MAX_PARAM_HEADERS} Mcp-Param-* headers are accepted"
            )));
        }
        let printable = value
            .as_bytes()
            .iter()
            .all(|byte| matches!(byte, b'\t' | 0x20..=0x7e));
        let Some(value) = value.to_str().ok().filter(|_| printable) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "HEADER_MISMATCH",
                format!(
                    "the {name} header must be printable ASCII (other values are sent as \
                     =?base64?…?=)"
                ),
            ));
        };
        parameters.push((parameter.to_string(), value.trim().to_string()));
    }
    Ok(parameters)
}

/// Whether a request's `Accept` lists `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The answer to a tool call the check refused (see the module docs): for an MCP client, the
/// JSON-RPC error (HTTP 200, the answer to its request); for the SDKs, the 403.
fn refused(id: &Value, decision: &CheckDecision, mcp_client: bool) -> Response {
    let tool = decision.action_name.as_deref().unwrap_or("the tool");
    let rule = decision.rule.clone();
    let rule_text = rule
        .as_deref()
        .map(|rule| format!(" (rule {rule})"))
        .unwrap_or_default();
    let (code, message) = match (&decision.approval_id, decision.elevation_required) {
        (Some(approval_id), true) => (
            CODE_ELEVATION_REQUIRED,
            format!(
                "calling {tool} needs a human's approval: {}{rule_text}; approval {approval_id} \
                 is pending: once it is approved, call again in the same session",
                decision.reason
            ),
        ),
        _ => (
            CODE_POLICY_DENIED,
            format!(
                "calling {tool} is denied by policy: {}{rule_text}",
                decision.reason
            ),
        ),
    };
    let data = json!({
        "check_id": decision.check_id,
        "rule": rule,
        "reason": decision.reason,
        "elevation_required": decision.elevation_required,
        "approval_id": decision.approval_id,
    });
    let jsonrpc_error = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": RPC_REFUSED_BY_POLICY, "message": message, "data": data},
    });
    if mcp_client {
        return (StatusCode::OK, Json(jsonrpc_error)).into_response();
    }
    let body = RefusedCall {
        error: "forbidden".to_string(),
        message: message.clone(),
        code: code.to_string(),
        check_id: decision.check_id.clone(),
        rule,
        reason: decision.reason.clone(),
        elevation_required: decision.elevation_required,
        approval_id: decision.approval_id.clone(),
        effect: decision.effect.map(|effect| effect.as_str().to_string()),
        jsonrpc_error,
        extra: Default::default(),
    };
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// An upstream's stream relayed to the client as it comes, within bounds: it ends when the
/// upstream ends it or fails, when one event grows past [`MCP_MAX_BODY_BYTES`] (a stream that
/// never completes an event would otherwise be held forever), when it sends bytes that are not
/// UTF-8 (logged, as the other two), or when the gateway shuts down.
mod relay {
    use axum::body::Body;
    use bytes::Bytes;
    use futures_util::{Stream, StreamExt};

    use super::super::super::outbound::MCP_MAX_BODY_BYTES;

    struct Relay<S> {
        upstream: std::pin::Pin<Box<S>>,
        closing: tokio::sync::watch::Receiver<bool>,
        /// Bytes since the last blank line (the end of an event).
        in_event: usize,
        /// The last bytes seen, to find an event's end split across chunks.
        tail: Vec<u8>,
        /// The start of a UTF-8 sequence the last chunk cut, completed by the next one.
        unfinished: Vec<u8>,
    }

    pub fn body<S>(upstream: S, closing: tokio::sync::watch::Receiver<bool>) -> Body
    where
        S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    {
        let relay = Relay {
            upstream: Box::pin(upstream),
            closing,
            in_event: 0,
            tail: Vec::new(),
            unfinished: Vec::new(),
        };
        let stream = futures_util::stream::unfold(relay, |mut relay| async move {
            if *relay.closing.borrow() {
                return None;
            }
            let chunk = tokio::select! {
                chunk = relay.upstream.next() => chunk?.ok()?,
                _ = relay.closing.changed() => return None,
            };
            relay.in_event = bytes_in_event(&relay.tail, &chunk, relay.in_event);
            if relay.in_event > MCP_MAX_BODY_BYTES {
                tracing::warn!("an MCP upstream's stream sent an event past the size limit");
                return None;
            }
            match unfinished_utf8(&relay.unfinished, &chunk) {
                Some(unfinished) => relay.unfinished = unfinished,
                None => {
                    // Event streams are UTF-8: the client is not sent what it cannot read.
                    tracing::warn!("an MCP upstream's stream sent bytes that are not UTF-8");
                    return None;
                }
            }
            let keep = chunk.len().min(3);
            relay.tail = [&relay.tail[..], &chunk[chunk.len() - keep..]].concat();
            let excess = relay.tail.len().saturating_sub(3);
            relay.tail.drain(..excess);
            Some((Ok::<_, std::io::Error>(chunk), relay))
        });
        Body::from_stream(stream)
    }

    /// The bytes of a UTF-8 sequence cut at the end of `chunk` (given those cut at the end of
    /// the chunk before it), to be completed by the next chunk; `None` when the bytes are not
    /// UTF-8.
    fn unfinished_utf8(unfinished: &[u8], chunk: &[u8]) -> Option<Vec<u8>> {
        let joined = [unfinished, chunk].concat();
        match std::str::from_utf8(&joined) {
            Ok(_) => Some(Vec::new()),
            Err(error) if error.error_len().is_none() => {
                Some(joined[error.valid_up_to()..].to_vec())
            }
            Err(_) => None,
        }
    }

    /// The bytes of the event still open after `chunk`, given the `tail` before it and the
    /// `open` count: reset at every blank line (`\n\n`, `\r\n\r\n`, `\r\r`).
    fn bytes_in_event(tail: &[u8], chunk: &[u8], open: usize) -> usize {
        let joined = [tail, chunk].concat();
        let end = [&b"\n\n"[..], b"\r\r", b"\r\n\r\n"]
            .iter()
            .filter_map(|blank| {
                joined
                    .windows(blank.len())
                    .rposition(|window| window == *blank)
                    .map(|at| at + blank.len())
            })
            .max();
        match end {
            Some(end) if end > tail.len() => joined.len() - end,
            _ => open + chunk.len(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::{bytes_in_event, unfinished_utf8};

        #[test]
        fn utf8_cut_across_chunks_is_carried_and_bytes_that_are_not_utf8_are_caught() {
            let e_acute = "\u{e9}".as_bytes();
            assert_eq!(unfinished_utf8(b"", b"data: x"), Some(Vec::new()));
            assert_eq!(
                unfinished_utf8(b"", &[b"data: ", &e_acute[..1]].concat()),
                Some(e_acute[..1].to_vec())
            );
            assert_eq!(
                unfinished_utf8(&e_acute[..1], &e_acute[1..]),
                Some(Vec::new())
            );
            assert_eq!(unfinished_utf8(b"", b"data: \xff\n\n"), None);
        }

        #[test]
        fn events_end_at_blank_lines_even_across_chunks() {
            assert_eq!(bytes_in_event(b"", b"data: 1\n\ndata", 0), 4);
            assert_eq!(bytes_in_event(b"ata", b": 2", 4), 7);
            assert_eq!(bytes_in_event(b": 2\n", b"\nx", 7), 1);
            assert_eq!(bytes_in_event(b"", b"\r\n\r\n", 9), 0);
        }
    }
}

/// Server-Sent Events, as much as an MCP response stream needs: events split at blank lines,
/// `data:` lines joined, events of a type other than `message` skipped. An upstream's stream is
/// not trusted to be well formed: bytes that are not UTF-8 (which would otherwise hold every
/// later event back, the response included) and an event growing past [`MAX_EVENT_BYTES`]
/// (which would otherwise be held for as long as the upstream keeps sending) end it with an
/// [`SseError`].
mod sse {
    use super::super::super::outbound::MCP_MAX_BODY_BYTES;

    /// The most one event may hold before its blank line.
    pub const MAX_EVENT_BYTES: usize = MCP_MAX_BODY_BYTES;

    /// Why an upstream's event stream cannot be read on.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum SseError {
        #[error("sent an event that is not UTF-8 text")]
        NotUtf8,
        #[error("sent an event larger than {MAX_EVENT_BYTES} bytes")]
        EventTooLarge,
    }

    #[derive(Default)]
    pub struct Events {
        pending: String,
        undecoded: Vec<u8>,
    }

    /// One complete event: its text as received (line ends made `\n`, the blank line
    /// included), and its data when it is a `message` event.
    pub struct Event {
        pub text: String,
        pub message: Option<String>,
    }

    impl Events {
        /// Feeds a chunk; the data of every `message` event it completes.
        pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, SseError> {
            Ok(self
                .push_events(chunk)?
                .into_iter()
                .filter_map(|event| event.message)
                .collect())
        }

        /// Feeds a chunk; every event it completes.
        pub fn push_events(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
            self.undecoded.extend_from_slice(chunk);
            // A chunk may end inside a UTF-8 sequence: decode what is complete, keep the rest
            // for the next chunk. A sequence that is wrong, not just cut, never completes.
            let valid = match std::str::from_utf8(&self.undecoded) {
                Ok(text) => text.len(),
                Err(error) if error.error_len().is_some() => return Err(SseError::NotUtf8),
                Err(error) => error.valid_up_to(),
            };
            let text: Vec<u8> = self.undecoded.drain(..valid).collect();
            let text = String::from_utf8(text).map_err(|_| SseError::NotUtf8)?;
            self.pending
                .push_str(&text.replace("\r\n", "\n").replace('\r', "\n"));
            let mut complete = Vec::new();
            while let Some(end) = self.pending.find("\n\n") {
                let text: String = self.pending.drain(..end + 2).collect();
                complete.push(Event {
                    message: message_data(&text),
                    text,
                });
            }
            if self.pending.len() + self.undecoded.len() > MAX_EVENT_BYTES {
                return Err(SseError::EventTooLarge);
            }
            Ok(complete)
        }
    }

    fn message_data(event: &str) -> Option<String> {
        let mut kind = "message";
        let mut data: Vec<&str> = Vec::new();
        for line in event.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => kind = value,
                "data" => data.push(value),
                _ => {}
            }
        }
        (kind == "message" && !data.is_empty()).then(|| data.join("\n"))
    }

    #[cfg(test)]
    mod tests {
        use super::{Events, MAX_EVENT_BYTES, SseError};

        #[test]
        fn events_split_across_chunks_and_other_kinds_are_skipped() {
            let mut events = Events::default();
            assert!(
                events
                    .push(b"event: ping\ndata: x\n\nda")
                    .unwrap()
                    .is_empty()
            );
            assert!(events.push(b"ta: {\"a\":\r\n").unwrap().is_empty());
            assert_eq!(
                events.push(b"data: 1}\r\n\r\n").unwrap(),
                vec!["{\"a\":\n1}".to_string()]
            );
            let e_acute = "event: message\ndata: \u{e9}\n\n".as_bytes();
            // Cut inside the two bytes of the é: held, then completed.
            assert!(events.push(&e_acute[..23]).unwrap().is_empty());
            assert_eq!(
                events.push(&e_acute[23..]).unwrap(),
                vec!["\u{e9}".to_string()]
            );
        }

        #[test]
        fn bytes_that_are_not_utf8_and_endless_events_end_the_stream() {
            let mut events = Events::default();
            assert_eq!(
                events.push(b"data: \xff\xfe\n\ndata: {}\n\n").err(),
                Some(SseError::NotUtf8)
            );
            let mut events = Events::default();
            assert!(events.push(b"data: ").is_ok());
            let chunk = vec![b'x'; 64 * 1024];
            let mut fed = 0;
            let error = loop {
                match events.push(&chunk) {
                    Ok(complete) => assert!(complete.is_empty()),
                    Err(error) => break error,
                }
                fed += chunk.len();
                assert!(fed <= MAX_EVENT_BYTES, "never cut off");
            };
            assert_eq!(error, SseError::EventTooLarge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_decided_on_all_of_its_arguments() {
        assert_eq!(call_input(None), "");
        assert_eq!(call_input(Some(&Value::Null)), "");
        assert_eq!(call_input(Some(&json!({"path": "/a"}))), r#"{"path":"/a"}"#);
        // A long first argument does not hide the one after it.
        let padded = json!({"_": "x".repeat(5000), "path": "/etc/shadow"});
        assert!(call_input(Some(&padded)).ends_with(r#""path":"/etc/shadow"}"#));
    }
}
