//! The embedded AgentTrust-compatible gateway: ONE route table (below), thin handlers per API
//! group in `gateway/<group>.rs`, the caller's identity in `gateway/auth.rs`, decisions in
//! `guardian`, all SQL in `store`.
//!
//! Start-up is bind-then-serve: [`Gateway::bind`] connects, migrates and binds the listener, so
//! the address is known (and connectable) before [`Gateway::serve`] runs — tests hand the URL out
//! without waiting.

pub mod a2a;
pub mod actions;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod cards;
pub mod check;
pub mod connections;
pub mod delegations;
pub mod dpop;
pub mod error;
pub mod extract;
pub mod federation;
pub mod health;
pub mod keys;
pub mod mcp;
pub mod notices;
pub mod orgs;
pub mod outbound;
pub mod policies;
pub mod policy_cache;
pub mod policy_limits;
pub mod rate_limit;
pub mod secrets;
pub mod sessions;
pub mod signing;
pub mod streaming;
pub mod telemetry;
pub mod tokens;
pub mod validate;
pub mod wimse;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::store::group_commit::GroupCommit;
use crate::store::{self, SqliteSynchronous, Store, StoreOptions};

use connections::ConnectionLimits;
use error::ApiError;
use policy_limits::PolicyLimits;

/// The most a token may live, in seconds, unless configured otherwise.
pub const DEFAULT_MAX_TOKEN_TTL_SECONDS: i64 = 3600;
/// The most a delegation may live, in seconds (30 days), unless configured otherwise.
pub const DEFAULT_MAX_DELEGATION_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;
/// The largest request body accepted, unless configured otherwise.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// How often the audit chains' heads are signed, when they grew.
pub const DEFAULT_AUDIT_CHECKPOINT_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(60);

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://…`.
    pub database_url: String,
    pub listen: SocketAddr,
    pub max_token_ttl_seconds: i64,
    pub max_delegation_ttl_seconds: i64,
    pub body_limit_bytes: usize,
    /// When SQLite syncs commits (ignored on PostgreSQL); durable by default.
    pub sqlite_synchronous: SqliteSynchronous,
    pub policy_limits: PolicyLimits,
    pub connection_limits: ConnectionLimits,
    /// The URL clients reach this gateway at, which names it as an OIDC issuer; `None`: made
    /// from the bound address (`http://127.0.0.1:PORT`).
    pub public_url: Option<String>,
    /// The key-encryption key sealing the signing keys' private halves.
    pub signing_secret: Option<signing::SigningSecret>,
    /// Fetch federation documents over plain http from any host, not only loopback.
    pub federation_allow_http: bool,
    /// Reach MCP upstreams over plain http on any host, not only loopback.
    pub mcp_allow_http: bool,
    /// How long a call to an MCP upstream may take, answer included (keep it below the
    /// request timeout, so the caller hears which upstream failed).
    pub mcp_upstream_timeout: std::time::Duration,
    /// How long an MCP session the proxy holds may go unused before it ends.
    pub mcp_session_idle_timeout: std::time::Duration,
    /// The least time between two fetches of one provider's JWKS.
    pub jwks_min_refresh_interval: std::time::Duration,
    /// How long a replica uses its copy of the signing keys before reading them again.
    pub signing_keys_reload_after: std::time::Duration,
    /// How often the heads of the audit chains that grew are signed; `None`: never (only on
    /// demand, `POST /api/v1/audit/checkpoints`).
    pub audit_checkpoint_interval: Option<std::time::Duration>,
    /// SIEM streaming: plain-http rule and the delivery engine's timing.
    pub streaming: streaming::StreamingOptions,
    /// The most telemetry events per second one agent may report; `None`: no limit.
    pub telemetry_rate_limit: Option<std::num::NonZeroU32>,
    /// The most A2A messages per second one agent may send; `None`: no limit.
    pub a2a_rate_limit: Option<std::num::NonZeroU32>,
}

impl GatewayConfig {
    pub fn new(database_url: impl Into<String>, listen: SocketAddr) -> GatewayConfig {
        GatewayConfig {
            database_url: database_url.into(),
            listen,
            max_token_ttl_seconds: DEFAULT_MAX_TOKEN_TTL_SECONDS,
            max_delegation_ttl_seconds: DEFAULT_MAX_DELEGATION_TTL_SECONDS,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            sqlite_synchronous: SqliteSynchronous::default(),
            policy_limits: PolicyLimits::default(),
            connection_limits: ConnectionLimits::default(),
            public_url: None,
            signing_secret: None,
            federation_allow_http: false,
            mcp_allow_http: false,
            mcp_upstream_timeout: mcp::DEFAULT_UPSTREAM_TIMEOUT,
            mcp_session_idle_timeout: mcp::sessions::DEFAULT_IDLE_TIMEOUT,
            jwks_min_refresh_interval: federation::jwks::MIN_REFRESH_INTERVAL,
            signing_keys_reload_after: signing::RELOAD_AFTER,
            audit_checkpoint_interval: Some(DEFAULT_AUDIT_CHECKPOINT_INTERVAL),
            streaming: streaming::StreamingOptions::default(),
            telemetry_rate_limit: None,
            a2a_rate_limit: None,
        }
    }
}

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_token_ttl_seconds: i64,
    pub max_delegation_ttl_seconds: i64,
    pub policy_limits: PolicyLimits,
    /// The per-agent telemetry limit, when the operator set one.
    pub telemetry_limit: Option<Arc<rate_limit::AgentRateLimit>>,
    /// The per-agent A2A message limit, when the operator set one.
    pub a2a_limit: Option<Arc<rate_limit::AgentRateLimit>>,
}

impl Default for Settings {
    /// The settings of a gateway started with no options.
    fn default() -> Settings {
        Settings {
            max_token_ttl_seconds: DEFAULT_MAX_TOKEN_TTL_SECONDS,
            max_delegation_ttl_seconds: DEFAULT_MAX_DELEGATION_TTL_SECONDS,
            policy_limits: PolicyLimits::default(),
            telemetry_limit: None,
            a2a_limit: None,
        }
    }
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    /// The group-commit writer the hot writes (decisions) are queued on.
    pub writer: GroupCommit,
    pub settings: Arc<Settings>,
    /// This replica's copies of hot rows; a handler that changes one forgets it after the
    /// commit ([`cache::Caches::forget`]).
    pub caches: Arc<cache::Caches>,
    /// This gateway as an OIDC issuer, and its trust in others.
    pub federation: Arc<federation::Federation>,
    /// SIEM streaming: its outbound client and the delivery engine's settings.
    pub streaming: Arc<streaming::Streaming>,
    /// The MCP proxy's outbound client and what it learned of the upstreams' tools.
    pub mcp: Arc<mcp::Mcp>,
    /// A2A: the outbound client that forwards messages to agents' own endpoints.
    pub a2a: Arc<a2a::A2a>,
}

/// A bound, not yet serving, gateway.
pub struct Gateway {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    body_limit_bytes: usize,
    connection_limits: ConnectionLimits,
    /// The connection hearing other replicas' changes (PostgreSQL), listening since bind.
    listening: Option<store::changes::Listener>,
    audit_checkpoint_interval: Option<std::time::Duration>,
}

impl Gateway {
    /// Connects to the database (applying migrations) and binds the listener.
    pub async fn bind(config: GatewayConfig) -> anyhow::Result<Gateway> {
        if config.mcp_upstream_timeout.is_zero() {
            anyhow::bail!("the MCP upstream timeout must be positive");
        }
        if config.mcp_session_idle_timeout.is_zero() {
            anyhow::bail!("the MCP session idle timeout must be positive");
        }
        if config.max_token_ttl_seconds <= 0 || config.max_delegation_ttl_seconds <= 0 {
            anyhow::bail!("the maximum token and delegation TTLs must be positive");
        }
        config
            .connection_limits
            .validate()
            .map_err(anyhow::Error::msg)?;
        let options = StoreOptions {
            sqlite_synchronous: config.sqlite_synchronous,
        };
        let store = Store::connect_with(&config.database_url, options)
            .await
            .with_context(|| {
                format!("opening the database {}", redact_url(&config.database_url))
            })?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let issuer = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => local_url(local_addr),
        };
        let signing = signing::SigningKeys::start_with(
            &store,
            config.signing_secret.clone(),
            config.signing_keys_reload_after,
        )
        .await
        .context("loading the gateway's signing keys")?;
        if !signing.seals() {
            tracing::warn!(
                "no --signing-key-secret-file: the private halves of the gateway's signing keys \
                 are stored unsealed in the database"
            );
        }
        let streaming = Arc::new(streaming::Streaming {
            outbound: outbound::Outbound::new(config.streaming.allow_http),
            host: reqwest::Url::parse(&issuer)
                .ok()
                .and_then(|url| url.host_str().map(str::to_string))
                .unwrap_or_else(|| "agenttrust".to_string()),
            secret: signing.secret().cloned(),
            options: config.streaming.clone(),
        });
        let federation = Arc::new(federation::Federation {
            issuer,
            signing,
            outbound: outbound::Outbound::new(config.federation_allow_http),
            jwks: federation::jwks::JwksCache::new(config.jwks_min_refresh_interval),
        });
        let caches = Arc::new(cache::Caches::for_store(&store));
        let listening = notices::connect(&store, &caches).await;
        Ok(Gateway {
            listener,
            local_addr,
            state: AppState {
                writer: GroupCommit::start(&store),
                store,
                settings: Arc::new(Settings {
                    max_token_ttl_seconds: config.max_token_ttl_seconds,
                    max_delegation_ttl_seconds: config.max_delegation_ttl_seconds,
                    policy_limits: config.policy_limits,
                    telemetry_limit: config.telemetry_rate_limit.map(|per_second| {
                        Arc::new(rate_limit::AgentRateLimit::new(
                            per_second,
                            u32::try_from(crate::api::telemetry::MAX_EVENTS_PER_REPORT)
                                .unwrap_or(u32::MAX),
                        ))
                    }),
                    // One message a request.
                    a2a_limit: config
                        .a2a_rate_limit
                        .map(|per_second| Arc::new(rate_limit::AgentRateLimit::new(per_second, 1))),
                }),
                caches,
                federation,
                streaming,
                mcp: Arc::new(mcp::Mcp::new(
                    config.mcp_allow_http,
                    config.mcp_upstream_timeout,
                    config.mcp_session_idle_timeout,
                )),
                a2a: Arc::default(),
            },
            body_limit_bytes: config.body_limit_bytes,
            connection_limits: config.connection_limits,
            listening,
            audit_checkpoint_interval: config.audit_checkpoint_interval,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// This gateway's caches (whether they answer: tests of several replicas look).
    pub fn caches(&self) -> Arc<cache::Caches> {
        Arc::clone(&self.state.caches)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the
    /// database.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        // Hears other replicas' changes for as long as this gateway serves, and switches the
        // caches off whenever it cannot (PostgreSQL); on SQLite it ends at once.
        let notices = tokio::spawn(notices::listen(
            store.clone(),
            Arc::clone(&self.state.caches),
            self.listening,
        ));
        // Forgets spent challenges and the DPoP proofs whose window has passed.
        let pruning = tokio::spawn(wimse::prune(store.clone()));
        let checkpoints = self
            .audit_checkpoint_interval
            .filter(|interval| !interval.is_zero())
            .map(|interval| tokio::spawn(audit::sign_checkpoints(self.state.clone(), interval)));
        // Streams the audit log to the org's SIEM destinations (several replicas share the work
        // through leases); its leases are given back when it stops.
        let streaming_owner = uuid::Uuid::new_v4().to_string();
        let streaming = self.state.streaming.options.enabled.then(|| {
            tokio::spawn(streaming::delivery::run(
                store.clone(),
                Arc::clone(&self.state.streaming),
                streaming_owner.clone(),
            ))
        });
        // The MCP streams a client listens on end with the gateway, not with the client.
        let mcp = Arc::clone(&self.state.mcp);
        let shutdown = async move {
            shutdown.await;
            mcp.close_streams();
        };
        let limits = self.connection_limits;
        let app =
            router(self.state, self.body_limit_bytes).layer(axum::middleware::from_fn_with_state(
                limits.request_timeout,
                connections::request_timeout,
            ));
        connections::serve(self.listener, app, limits, shutdown).await;
        // The listener holds a pooled connection: give it back before closing the pool.
        notices.abort();
        let _ = notices.await;
        pruning.abort();
        let _ = pruning.await;
        if let Some(checkpoints) = checkpoints {
            checkpoints.abort();
            let _ = checkpoints.await;
        }
        if let Some(streaming) = streaming {
            streaming.abort();
            let _ = streaming.await;
            if let Err(error) = store::streaming::release_all(&store, &streaming_owner).await {
                tracing::warn!(%error, "could not give back the SIEM delivery leases");
            }
        }
        store.close().await;
        Ok(())
    }
}

/// The route table: every path the official SDKs use, and our extensions under `/api/v1/`.
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route(
            "/.well-known/openid-configuration",
            get(federation::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(federation::jwks))
        .route(
            "/api/v1/federation/providers",
            post(federation::register_provider).get(federation::list_providers),
        )
        .route(
            "/api/v1/federation/providers/{provider_id}",
            get(federation::get_provider)
                .patch(federation::update_provider)
                .delete(federation::delete_provider),
        )
        .route(
            "/api/v1/federation/providers/{provider_id}/subjects",
            post(federation::link_subject).get(federation::list_subjects),
        )
        .route(
            "/api/v1/federation/providers/{provider_id}/subjects/{subject}",
            delete(federation::unlink_subject),
        )
        .route(
            "/api/v1/federation/tokens/verify",
            post(federation::verify_token),
        )
        .route(
            "/api/v1/federation/tokens/introspect",
            post(federation::verify_token),
        )
        .route(
            "/api/v1/federation/tokens/issue",
            post(federation::issue_token),
        )
        .route(
            "/api/v1/federation/tokens/revoke",
            post(federation::revoke_token),
        )
        .route(
            "/api/v1/federation/sessions/init",
            post(federation::init_session),
        )
        .route("/api/v1/agents", post(agents::create).get(agents::list))
        .route("/api/v1/agents/{agent_id}", get(agents::get))
        .route("/api/v1/agents/{agent_id}/revoke", post(agents::revoke))
        .route("/api/v1/agents/{agent_id}/mode", put(agents::set_mode))
        .route("/api/v1/agents/{agent_id}/unlock", post(agents::unlock))
        .route(
            "/api/v1/agents/{agent_id}/keys/rotate",
            post(agents::rotate_key),
        )
        .route(
            "/api/v1/agents/{agent_id}/challenge",
            post(wimse::challenge),
        )
        .route("/api/v1/wimse/token", post(wimse::issue_token))
        .route("/api/v1/wimse/verify", post(wimse::verify))
        .route(
            "/api/v1/orgs/security-settings",
            get(orgs::get_security_settings).put(orgs::set_security_settings),
        )
        .route(
            "/api/v1/agents/{agent_id}/card",
            post(cards::generate).get(cards::get),
        )
        .route(
            "/api/v1/agents/{agent_id}/card/publish",
            put(cards::publish),
        )
        .route(
            "/api/v1/agents/{agent_id}/card/unpublish",
            put(cards::unpublish),
        )
        .route("/a2a", post(a2a::rpc))
        .route("/a2a/agents/{agent_id}", post(a2a::agent_rpc))
        .route("/a2a/agents/{agent_id}/agent.json", get(cards::public))
        .route("/api/v1/agent-tokens/issue", post(tokens::issue))
        .route("/api/v1/agent-tokens/introspect", post(tokens::introspect))
        .route("/api/v1/agent-tokens/revoke", post(tokens::revoke))
        .route("/api/v1/agent-tokens", get(tokens::list))
        .route(
            "/api/v1/agent-tokens/{token_id}/revoke",
            post(tokens::revoke_by_id),
        )
        .route("/api/v1/agenttrust/check", post(actions::check))
        .route("/api/v1/actions/check", post(actions::check))
        .route("/api/v1/telemetry/report", post(telemetry::report))
        .route("/api/v1/telemetry/events", get(telemetry::list))
        .route("/api/v1/keys", post(keys::create).get(keys::list))
        .route("/api/v1/keys/{key_id}", get(keys::get).delete(keys::revoke))
        .route(
            "/api/v1/policies",
            get(policies::get).put(policies::replace),
        )
        .route("/api/v1/policies/test", post(policies::test))
        .route("/api/v1/audit/events", get(audit::events))
        .route("/api/v1/audit/events/{event_id}", get(audit::event))
        .route("/api/v1/audit/stream", get(audit::stream))
        .route(
            "/api/v1/siem/destinations",
            post(streaming::create).get(streaming::list),
        )
        .route(
            "/api/v1/siem/destinations/{destination_id}",
            get(streaming::get)
                .put(streaming::update)
                .delete(streaming::delete),
        )
        .route(
            "/api/v1/siem/destinations/{destination_id}/logs",
            get(streaming::logs),
        )
        .route(
            "/api/v1/siem/destinations/{destination_id}/test",
            post(streaming::test),
        )
        .route("/api/v1/audit/verify", get(audit::verify))
        .route(
            "/api/v1/audit/checkpoints",
            get(audit::checkpoints).post(audit::create_checkpoint),
        )
        .route("/api/v1/audit/keys", get(audit::keys))
        // The literal `/mcp/servers`, `/mcp/sessions/…` and `/mcp/approvals/…` win over the
        // proxy's `/mcp/{server_id}` (the router prefers static segments).
        .route(
            "/mcp/servers",
            post(mcp::register_server).get(mcp::list_servers),
        )
        .route(
            "/mcp/servers/{server_id}",
            get(mcp::get_server).delete(mcp::delete_server),
        )
        .route(
            "/mcp/{server_id}",
            post(mcp::proxy::proxy)
                .get(mcp::proxy::listen)
                .delete(mcp::sessions::delete),
        )
        .route("/mcp/sessions/init", post(sessions::init))
        .route("/mcp/sessions/{session_id}", get(sessions::get))
        .route(
            "/api/v1/agenttrust/api-sessions/init",
            post(sessions::init_api),
        )
        .route("/api/v1/sessions", get(sessions::list).post(sessions::open))
        .route("/api/v1/sessions/{session_id}", get(sessions::get))
        .route(
            "/api/v1/sessions/{session_id}/mode",
            put(sessions::set_mode),
        )
        .route(
            "/api/v1/sessions/{session_id}/unlock",
            post(sessions::unlock),
        )
        .route("/mcp/approvals/{approval_id}", get(approvals::get))
        .route(
            "/mcp/approvals/{approval_id}/approve",
            post(approvals::approve),
        )
        .route("/mcp/approvals/{approval_id}/deny", post(approvals::deny))
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/approvals/{approval_id}", get(approvals::get))
        .route(
            "/api/v1/delegations",
            post(delegations::create).get(delegations::list),
        )
        .route(
            "/api/v1/delegations/{delegation_id}",
            get(delegations::get).delete(delegations::revoke),
        )
        .route(
            "/api/v1/delegations/{delegation_id}/session",
            post(delegations::session),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(extract::refuse_nul_in_uri))
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal())
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The URL a client on this machine reaches `address` at: a wildcard address becomes loopback.
pub fn local_url(address: SocketAddr) -> String {
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", address.port())
}

/// A database URL fit for logs: the password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..scheme_end], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{local_url, redact_url};

    #[test]
    fn wildcard_addresses_become_loopback() {
        assert_eq!(
            local_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            local_url("127.0.0.1:9000".parse().unwrap()),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            local_url("[::1]:9000".parse().unwrap()),
            "http://[::1]:9000"
        );
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/agenttrust"),
            "postgres://app:***@db:5432/agenttrust"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
