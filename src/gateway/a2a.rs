//! A2A over HTTP (wire-api §3.9): JSON-RPC 2.0 at `POST /a2a` (`tasks/send`, `tasks/get`,
//! `tasks/cancel`, `tasks/list`, and our `tasks/complete`) and `POST /a2a/agents/{id}`
//! (`message/send` to agent `id`, answered with an A2A v1.0 Task).
//!
//! Every message is a check through the one check service ([`send`]): the sending agent asks
//! the Guardian for the action `a2a:send:<target agent id>` (effect `mutating`), so an org
//! decides who may message whom with ordinary policy rules (`tools` globs over the target,
//! `agents` naming the sender, `require_capabilities` such as `a2a:send`), a presented token's
//! scopes and delegations bound it, and the decision is recorded before the task exists.
//!
//! Who sends: the agent of an agent token (a `source_agent_id` naming another agent is a 403);
//! with an org API key, the agent named by `source_agent_id` (`tasks/send`) or by the
//! `X-Agent-ID` header (`message/send`). Who sees a task: with an agent token, only its source
//! or its target (any other task is "not found"); with an org key, the org's tasks.
//!
//! Answers: JSON-RPC errors at HTTP 200 (`error{code,message}`, the request's `id` echoed with
//! its type), except a refusal (a Guardian denial, an agent token acting as another agent),
//! which is an HTTP 403 whose body is the JSON-RPC error plus the gateway's `message` and
//! `code`: the Python SDK ignores JSON-RPC errors, and every SDK raises on a 403.

mod forward;
mod limits;
mod send;
mod tasks;
mod wire;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::a2a::{
    RPC_INVALID_PARAMS, RPC_INVALID_REQUEST, RPC_METHOD_NOT_FOUND, RPC_REFUSED_BY_POLICY,
    RpcRequest,
};
use crate::api::mcp::AGENT_ID_HEADER;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathId};
use super::outbound::Outbound;

/// What A2A needs beyond the store: the outbound client that forwards messages to agents' own
/// endpoints (https, or http to a loopback address; no redirects; answers bounded in size and
/// time).
#[derive(Debug, Clone)]
pub struct A2a {
    pub outbound: Outbound,
}

impl Default for A2a {
    fn default() -> A2a {
        A2a {
            outbound: Outbound::new(false),
        }
    }
}

/// Why a call failed, and how that is answered (see the module docs).
#[derive(Debug)]
enum Failure {
    /// A JSON-RPC error at HTTP 200.
    Rpc { code: i64, message: String },
    /// A refusal: an HTTP error whose body is also the JSON-RPC error.
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
        data: Option<Value>,
    },
    /// The gateway's own failure (the database), answered as any endpoint answers it.
    Gateway(ApiError),
}

impl Failure {
    fn rpc(code: i64, message: impl Into<String>) -> Failure {
        Failure::Rpc {
            code,
            message: message.into(),
        }
    }

    fn invalid_params(message: impl Into<String>) -> Failure {
        Failure::rpc(RPC_INVALID_PARAMS, message)
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Failure {
        match error.status {
            StatusCode::BAD_REQUEST => Failure::invalid_params(error.message),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Failure::Refused {
                status: error.status,
                code: error.code,
                message: error.message,
                data: None,
            },
            StatusCode::NOT_FOUND => Failure::rpc(RPC_METHOD_NOT_FOUND, error.message),
            _ => Failure::Gateway(error),
        }
    }
}

impl From<crate::store::Error> for Failure {
    fn from(error: crate::store::Error) -> Failure {
        Failure::Gateway(error.into())
    }
}

type Outcome = Result<Value, Failure>;

/// `POST /a2a`.
pub async fn rpc(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err((id, failure)) => return answer(&id, Err(failure)),
    };
    let id = request.id.clone().unwrap_or(Value::Null);
    let params = request.params.unwrap_or_else(|| json!({}));
    let outcome = match request.method.as_str() {
        "tasks/send" => send::tasks_send(&state, &caller, &params).await,
        "tasks/get" => tasks::get(&state, &caller, &params).await,
        "tasks/cancel" => tasks::cancel(&state, &caller, &params).await,
        "tasks/list" => tasks::list(&state, &caller, &params).await,
        "tasks/complete" => tasks::complete(&state, &caller, &params).await,
        "message/send" => Err(Failure::rpc(
            RPC_METHOD_NOT_FOUND,
            "message/send is served at POST /a2a/agents/{agent_id}, the target agent's endpoint",
        )),
        method => Err(Failure::rpc(
            RPC_METHOD_NOT_FOUND,
            format!(
                "method {method} is not served at /a2a: tasks/send, tasks/get, tasks/cancel, \
                 tasks/list, tasks/complete"
            ),
        )),
    };
    answer(&id, outcome)
}

/// `POST /a2a/agents/{agent_id}`.
pub async fn agent_rpc(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent_id): PathId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err((id, failure)) => return answer(&id, Err(failure)),
    };
    let id = request.id.clone().unwrap_or(Value::Null);
    let params = request.params.unwrap_or_else(|| json!({}));
    let outcome = match request.method.as_str() {
        "message/send" => match header_text(&headers, AGENT_ID_HEADER) {
            Ok(source) => send::message_send(&state, &caller, &agent_id, source, &params).await,
            Err(failure) => Err(failure),
        },
        method => Err(Failure::rpc(
            RPC_METHOD_NOT_FOUND,
            format!("method {method} is not served at an agent's endpoint: message/send"),
        )),
    };
    answer(&id, outcome)
}

/// The request in `body`, or the id to answer with and why it is not one.
fn parse(body: &Value) -> Result<RpcRequest, (Value, Failure)> {
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    if body.is_array() {
        return Err((
            Value::Null,
            Failure::rpc(
                RPC_INVALID_REQUEST,
                "JSON-RPC batches are not accepted: send one request per POST",
            ),
        ));
    }
    let request: RpcRequest = serde_json::from_value(body.clone()).map_err(|error| {
        (
            id.clone(),
            Failure::rpc(
                RPC_INVALID_REQUEST,
                format!("the body is not a JSON-RPC request: {error}"),
            ),
        )
    })?;
    if request.jsonrpc != "2.0" {
        return Err((
            id,
            Failure::rpc(RPC_INVALID_REQUEST, "jsonrpc must be \"2.0\""),
        ));
    }
    if request.method.is_empty() {
        return Err((id, Failure::rpc(RPC_INVALID_REQUEST, "method is required")));
    }
    if request
        .params
        .as_ref()
        .is_some_and(|params| !params.is_object() && !params.is_null())
    {
        return Err((id, Failure::invalid_params("params must be an object")));
    }
    Ok(request)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Failure> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim()).filter(|text| !text.is_empty()))
            .map_err(|_| Failure::invalid_params(format!("the {name} header is not valid text"))),
    }
}

/// The JSON-RPC answer to request `id`.
fn answer(id: &Value, outcome: Outcome) -> Response {
    match outcome {
        Ok(result) => Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response(),
        Err(Failure::Rpc { code, message }) => Json(json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message},
        }))
        .into_response(),
        Err(Failure::Refused {
            status,
            code,
            message,
            data,
        }) => {
            let mut error = json!({"code": RPC_REFUSED_BY_POLICY, "message": message});
            if let Some(data) = data {
                error["data"] = data;
            }
            (
                status,
                Json(json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": error,
                    "message": message,
                    "code": code,
                })),
            )
                .into_response()
        }
        Err(Failure::Gateway(error)) => error.into_response(),
    }
}
