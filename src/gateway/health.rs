//! `GET /health`: no credentials needed; says whether the database answers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::health::Health;

use super::AppState;

pub const SERVICE_NAME: &str = "agenttrust-gateway";

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database_ok = state.store.ping().await;
    let mut extra = crate::api::Extra::new();
    extra.insert("database".into(), state.store.backend_name().into());
    let (status, text) = if database_ok {
        (StatusCode::OK, "healthy")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    (
        status,
        Json(Health {
            status: text.to_string(),
            service: SERVICE_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extra,
        }),
    )
}
