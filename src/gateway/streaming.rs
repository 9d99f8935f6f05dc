//! SIEM streaming over HTTP (wire-api §3.13): an org's destinations (admin keys only), their
//! delivery logs and test deliveries; the delivery engine itself is in [`delivery`], the wire
//! formats of each product in [`format`].
//!
//! A destination's `auth_token` is sent on to the destination, so it is stored reversibly:
//! sealed with the operator's key-encryption key (the one that seals the signing keys, bound
//! to the destination's id) when one is configured, as is otherwise. It is never shown (reads
//! mask it), never logged and never audited.

pub mod delivery;
pub mod format;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::audit::AuditEvent;
use crate::api::streaming::{
    CreateDestinationRequest, DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL_SECONDS,
    DEFAULT_LOG_LIMIT, DeletedDestination, DeliveryLog, DeliveryLogQuery, Destination,
    DestinationList, DestinationType, EVENT_SCHEMA, MAX_BATCH_SIZE, MAX_FLUSH_INTERVAL_SECONDS,
    MAX_LOG_LIMIT, TestResult, UpdateDestinationRequest,
};
use crate::api::time;
use crate::store::audit::EventRow;
use crate::store::streaming::{DestinationFields, DestinationRow};
use crate::store::{self};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::outbound::Outbound;
use super::signing::SigningSecret;
use super::validate;

pub use delivery::StreamingOptions;

/// `auth_token_sealed_with` of a token stored as is.
const NOT_SEALED: &str = "none";
const MAX_URL_CHARACTERS: usize = 2048;
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What streaming needs beyond the store: its outbound client (with its own plain-http rule),
/// the engine's options, the name this gateway gives itself as an event's host, and the
/// key-encryption key sealing auth tokens.
#[derive(Debug, Clone)]
pub struct Streaming {
    pub outbound: Outbound,
    pub options: StreamingOptions,
    pub host: String,
    pub secret: Option<SigningSecret>,
}

impl Default for Streaming {
    fn default() -> Streaming {
        Streaming {
            outbound: Outbound::new(false),
            options: StreamingOptions::default(),
            host: "agenttrust".to_string(),
            secret: None,
        }
    }
}

/// An audit event as streamed: the audit API's shape plus `schema`.
pub fn wire_event(row: EventRow) -> serde_json::Value {
    let mut value = serde_json::to_value(super::audit::to_wire(row))
        .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("schema".to_string(), EVENT_SCHEMA.into());
    }
    value
}

/// The destination's token in clear, to send on; an error names why it cannot be opened.
pub fn open_token(streaming: &Streaming, row: &DestinationRow) -> Result<Option<String>, String> {
    let Some(stored) = &row.auth_token else {
        return Ok(None);
    };
    if row.auth_token_sealed_with == NOT_SEALED {
        return Ok(Some(stored.clone()));
    }
    let secret = streaming
        .secret
        .as_ref()
        .filter(|secret| secret.sealed_with() == row.auth_token_sealed_with)
        .ok_or_else(|| {
            format!(
                "the auth token is sealed with the key-encryption key {:?}, which this gateway \
                 was not started with (--signing-key-secret-file)",
                row.auth_token_sealed_with
            )
        })?;
    let plain = secret
        .open(&row.id, stored)
        .ok_or_else(|| "the auth token does not open with the key-encryption key".to_string())?;
    String::from_utf8(plain)
        .map(Some)
        .map_err(|_| "the auth token is not UTF-8".to_string())
}

/// The stored form of a token for destination `id`, and how it was sealed.
fn seal_token(state: &AppState, id: &str, token: &str) -> ApiResult<(String, String)> {
    match state.federation.signing.secret() {
        Some(secret) => {
            let sealed = secret.seal(id, token.as_bytes()).map_err(|error| {
                tracing::error!(%error, "cannot seal a SIEM auth token");
                ApiError::internal()
            })?;
            Ok((sealed, secret.sealed_with()))
        }
        None => Ok((token.to_string(), NOT_SEALED.to_string())),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("SIEM destination {id} not found"))
}

fn validate_endpoint(state: &AppState, value: &str) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::validation("endpoint_url is required"));
    }
    if value.len() > MAX_URL_CHARACTERS || value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "endpoint_url must be a URL of at most {MAX_URL_CHARACTERS} characters"
        )));
    }
    let url = state
        .streaming
        .outbound
        .check_url(value)
        .map_err(|error| match error {
            super::outbound::FetchError::PlainHttp { .. } => ApiError::validation(format!(
                "endpoint_url {value} uses plain http: events are sent over https only (http \
                 is allowed to a loopback address, or to any host when the gateway runs with \
                 --streaming-allow-http)"
            )),
            _ => ApiError::validation(format!(
                "endpoint_url {value:?} must be an http(s) URL with a host and no user or \
                 password"
            )),
        })?;
    if url.fragment().is_some() {
        return Err(ApiError::validation(
            "endpoint_url must not have a fragment (#…)",
        ));
    }
    Ok(value.to_string())
}

fn validate_token(value: &str) -> ApiResult<String> {
    if value.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::validation(format!(
            "auth_token must be at most {MAX_TOKEN_BYTES} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "auth_token must not contain control characters (it is sent in an HTTP header)",
        ));
    }
    Ok(value.to_string())
}

fn validate_batch_size(value: i64) -> ApiResult<i64> {
    if !(1..=MAX_BATCH_SIZE).contains(&value) {
        return Err(ApiError::validation(format!(
            "batch_size must be between 1 and {MAX_BATCH_SIZE}, not {value}"
        )));
    }
    Ok(value)
}

fn validate_flush_interval(value: i64) -> ApiResult<i64> {
    if !(1..=MAX_FLUSH_INTERVAL_SECONDS).contains(&value) {
        return Err(ApiError::validation(format!(
            "flush_interval_seconds must be between 1 and {MAX_FLUSH_INTERVAL_SECONDS}, not \
             {value}"
        )));
    }
    Ok(value)
}

/// Event kinds (`check.decided`) or prefixes (`agent.*`, or `*` for all).
fn validate_filter(values: &[String]) -> ApiResult<Vec<String>> {
    let values = validate::scope_list("filter_event_types", values)?;
    for value in &values {
        let stem = value.strip_suffix('*').unwrap_or(value);
        if stem.contains('*') || (value.ends_with('*') && !(stem.is_empty() || stem.ends_with('.')))
        {
            return Err(ApiError::validation(format!(
                "filter_event_types entry {value:?} must be an event kind (check.decided), a \
                 prefix ending in .* (agent.*) or *"
            )));
        }
    }
    Ok(values)
}

fn parse_type(text: &str) -> ApiResult<DestinationType> {
    if text.trim().is_empty() {
        return Err(ApiError::validation(
            "destination_type is required: splunk, datadog, elastic or webhook",
        ));
    }
    text.parse().map_err(ApiError::validation)
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<DestinationRow> {
    store::streaming::get(&state.store, &caller.org_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// `POST /api/v1/siem/destinations`: a bare destination, 201.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateDestinationRequest>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    caller.require_admin()?;
    let name = validate::name("name", &request.name)?;
    let destination_type = parse_type(&request.destination_type)?;
    let endpoint_url = validate_endpoint(&state, &request.endpoint_url)?;
    let batch_size = validate_batch_size(request.batch_size.unwrap_or(DEFAULT_BATCH_SIZE))?;
    let flush_interval_seconds = validate_flush_interval(
        request
            .flush_interval_seconds
            .unwrap_or(DEFAULT_FLUSH_INTERVAL_SECONDS),
    )?;
    let filter_event_types = validate_filter(&request.filter_event_types.unwrap_or_default())?;
    let token = request
        .auth_token
        .as_deref()
        .map(validate_token)
        .transpose()?;
    let id = store::new_id();
    let (auth_token, auth_token_sealed_with) = match &token {
        Some(token) => {
            let (sealed, with) = seal_token(&state, &id, token)?;
            (Some(sealed), with)
        }
        None => (None, NOT_SEALED.to_string()),
    };
    let row = store::streaming::create(
        &state.store,
        &caller.org_id,
        &id,
        DestinationFields {
            name,
            destination_type: destination_type.as_str().to_string(),
            endpoint_url,
            auth_token,
            auth_token_sealed_with,
            is_active: request.is_active.unwrap_or(true),
            batch_size,
            flush_interval_seconds,
            filter_event_types,
            skip_rejected_batches: request.skip_rejected_batches.unwrap_or(false),
        },
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row.into_api())))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<DestinationList>> {
    caller.require_admin()?;
    let rows = store::streaming::list(&state.store, &caller.org_id).await?;
    let destinations: Vec<Destination> = rows.into_iter().map(DestinationRow::into_api).collect();
    Ok(Json(DestinationList {
        total: destinations.len() as u64,
        destinations,
        extra: Default::default(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Destination>> {
    caller.require_admin()?;
    Ok(Json(find(&state, &caller, &id).await?.into_api()))
}

/// `PUT /api/v1/siem/destinations/{id}`: partial; every field is validated before anything
/// changes.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<UpdateDestinationRequest>,
) -> ApiResult<Json<Destination>> {
    caller.require_admin()?;
    if request.destination_type.is_some() {
        return Err(ApiError::validation(
            "destination_type cannot change: create a new destination (and delete this one)",
        ));
    }
    let row = find(&state, &caller, &id).await?;
    let filter = match &request.filter_event_types {
        Some(filter) => validate_filter(filter)?,
        None => row.filter(),
    };
    let filter_changed = filter != row.filter();
    let (auth_token, auth_token_sealed_with, token_changed) = match &request.auth_token {
        Some(token) => {
            let token = validate_token(token)?;
            let (sealed, with) = seal_token(&state, &row.id, &token)?;
            (Some(sealed), with, true)
        }
        None => (
            row.auth_token.clone(),
            row.auth_token_sealed_with.clone(),
            false,
        ),
    };
    let fields = DestinationFields {
        name: match &request.name {
            Some(name) => validate::name("name", name)?,
            None => row.name.clone(),
        },
        destination_type: row.destination_type.clone(),
        endpoint_url: match &request.endpoint_url {
            Some(url) => validate_endpoint(&state, url)?,
            None => row.endpoint_url.clone(),
        },
        auth_token,
        auth_token_sealed_with,
        is_active: request.is_active.unwrap_or(row.is_active),
        batch_size: match request.batch_size {
            Some(size) => validate_batch_size(size)?,
            None => row.batch_size,
        },
        flush_interval_seconds: match request.flush_interval_seconds {
            Some(seconds) => validate_flush_interval(seconds)?,
            None => row.flush_interval_seconds,
        },
        filter_event_types: filter,
        skip_rejected_batches: request
            .skip_rejected_batches
            .unwrap_or(row.skip_rejected_batches),
    };
    let row = store::streaming::update(
        &state.store,
        &caller.org_id,
        &id,
        fields,
        filter_changed,
        token_changed,
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| not_found(&id))?;
    Ok(Json(row.into_api()))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<DeletedDestination>> {
    caller.require_admin()?;
    if !store::streaming::delete(&state.store, &caller.org_id, &id, &caller.actor()).await? {
        return Err(not_found(&id));
    }
    Ok(Json(DeletedDestination {
        status: "deleted".to_string(),
        id,
        extra: Default::default(),
    }))
}

/// `GET …/{id}/logs?limit=N`: newest first.
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    QueryParams(query): QueryParams<DeliveryLogQuery>,
) -> ApiResult<Json<DeliveryLog>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT)?;
    find(&state, &caller, &id).await?;
    let (rows, total) =
        store::streaming::deliveries(&state.store, &caller.org_id, &id, limit).await?;
    Ok(Json(DeliveryLog {
        logs: rows
            .into_iter()
            .map(store::streaming::DeliveryRow::into_api)
            .collect(),
        total,
        extra: Default::default(),
    }))
}

/// `POST …/{id}/test`: sends one test event (kind `siem.test`, not in the audit log) now,
/// whether the destination is active or not, records the attempt, and answers how it went
/// (HTTP 200 either way: the answer is the outcome).
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<TestResult>> {
    caller.require_admin()?;
    let row = find(&state, &caller, &id).await?;
    let now = time::now();
    let event = AuditEvent {
        id: store::new_id(),
        org_id: row.org_id.clone(),
        seq: 0,
        kind: "siem.test".to_string(),
        actor: caller.actor().0,
        subject_type: "siem_destination".to_string(),
        subject_id: row.id.clone(),
        detail: serde_json::json!({
            "message": "AgentTrust test event: this destination receives the audit log",
        }),
        created_at: time::format(now),
        prev_hash: String::new(),
        hash: String::new(),
        extra: Default::default(),
    };
    let mut event = serde_json::to_value(event).unwrap_or_default();
    event["schema"] = EVENT_SCHEMA.into();
    let idempotency_key = format!("{}:test-{}", row.id, store::new_id());
    let batch = format::Batch {
        destination_id: row.id.clone(),
        range: None,
        idempotency_key: idempotency_key.clone(),
        events: vec![event],
    };
    let attempt = delivery::send(&state.streaming, &row, &batch).await;
    let record = attempt.record(&row, "test", 1, None, &idempotency_key);
    store::streaming::record_test(&state.store, &record).await?;
    Ok(Json(TestResult {
        success: record.status == "success",
        status_code: attempt.status_code,
        error_message: record.error_message.clone(),
        delivery_id: record.id,
        extra: Default::default(),
    }))
}
