//! `agenttrust server`: run the embedded gateway, and operator tasks that work on its database
//! directly (create an org, mint the first key) — no HTTP, no key needed, like `vault operator`.
//!
//! `--dev` makes a zero-setup gateway: on first start it creates org `dev` and an admin key,
//! prints the key once and saves it as profile `local` (the default when none is set), so the
//! CLI works at once in another terminal. Later starts reuse the profile's key while it works.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::api::keys::Role;
use crate::config::{self, ConfigStore, env};
use crate::gateway::connections::{self, ConnectionLimits};
use crate::gateway::policy_limits::{self, PolicyLimits};
use crate::gateway::{self, Gateway, GatewayConfig, bootstrap, secrets, signing};
use crate::output::{self, Printer, View};
use crate::store::{self, SqliteSynchronous, Store};

/// The profile `--dev` writes.
pub const DEV_PROFILE: &str = "local";
/// The org `--dev` creates.
pub const DEV_ORG: &str = "dev";
const DATABASE_FILE: &str = "agenttrust.db";

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,

    /// Where to listen.
    #[arg(long, env = env::LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Create (once) an org and an admin key and save them as profile `local`.
    #[arg(long)]
    pub dev: bool,

    /// The longest lifetime a token may be issued for (`3600`, `1h`).
    #[arg(long, env = env::MAX_TOKEN_TTL, default_value = "1h", value_parser = config::parse_duration)]
    pub max_token_ttl: Duration,

    /// When SQLite syncs a commit to disk: `full` (every commit survives an OS crash or power
    /// loss) or `normal` (faster; the last commits may be lost when the machine goes down)
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = sqlite_synchronous_parser())]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Most rules an org's policy may have
    #[arg(long, value_name = "N", default_value_t = policy_limits::DEFAULT_MAX_POLICY_RULES)]
    pub max_policy_rules: usize,

    /// Most memory, in bytes, an org's compiled policy may take (its regexes above all)
    #[arg(long, value_name = "BYTES", default_value_t = policy_limits::DEFAULT_MAX_POLICY_COMPILED_BYTES)]
    pub max_policy_compiled_bytes: usize,

    /// Most connections served at once; past it a connection gets a 503
    #[arg(long, value_name = "N", default_value_t = connections::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// How long a client may take to send a request's headers (also ends idle connections)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = config::parse_duration)]
    pub header_read_timeout: Duration,

    /// How long one request, its body included, may take before it is answered with a 503
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = config::parse_duration)]
    pub request_timeout: Duration,

    /// The longest lifetime a delegation may be created for; a longer `ttl_seconds` is refused
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = config::parse_duration)]
    pub max_delegation_ttl: Duration,

    /// How often the head of every audit chain that grew is signed (a checkpoint an export is
    /// verified against offline); 0 signs only on demand (`audit export` asks for one)
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = config::parse_duration)]
    pub audit_checkpoint_interval: Duration,

    /// The URL clients reach this gateway at (behind a load balancer: its URL); the issuer
    /// name of the ID tokens it signs [default: http://<listen address>]
    #[arg(long, env = env::PUBLIC_URL, value_name = "URL")]
    pub public_url: Option<String>,

    /// Fetch federation providers' documents over plain http from any host (by default only
    /// https, or http to a loopback address)
    #[arg(long)]
    pub federation_allow_http: bool,

    /// Stream the audit log to SIEM destinations over plain http on any host (by default only
    /// https, or http to a loopback address)
    #[arg(long)]
    pub streaming_allow_http: bool,

    /// Reach MCP upstreams over plain http on any host (by default only https, or http to a
    /// loopback address)
    #[arg(long)]
    pub mcp_allow_http: bool,

    /// How long a call to an MCP upstream may take, answer included (below --request-timeout)
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = config::parse_duration)]
    pub mcp_upstream_timeout: Duration,

    /// The most telemetry events per second one agent may report (a burst of ten seconds' worth,
    /// at least one full report, passes); more is refused with 429 and Retry-After. Counted per
    /// replica [default: no limit]
    #[arg(long, value_name = "EVENTS_PER_SECOND")]
    pub telemetry_rate_limit: Option<std::num::NonZeroU32>,

    /// The most A2A messages per second one agent may send (a burst of ten seconds' worth
    /// passes); more is refused with 429 and Retry-After, before any check or task is stored.
    /// Counted per replica [default: no limit]
    #[arg(long, value_name = "MESSAGES_PER_SECOND")]
    pub a2a_rate_limit: Option<std::num::NonZeroU32>,

    /// How long an MCP session held by the proxy may go unused before it ends
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = config::parse_duration)]
    pub mcp_session_idle_timeout: Duration,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

fn sqlite_synchronous_parser() -> impl clap::builder::TypedValueParser<Value = SqliteSynchronous> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["full", "normal"])
        .try_map(|text: String| text.parse::<SqliteSynchronous>())
}

/// Which database: shared by serving and the operator subcommands.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]
    #[arg(long, env = env::DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the default SQLite file [default: the platform's data dir]
    #[arg(long, env = env::DATA_DIR, global = true)]
    pub data_dir: Option<PathBuf>,

    /// A file holding the key-encryption key that seals the private halves of the gateway's
    /// signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one).
    /// Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made
    /// on first start; with PostgreSQL: none, the keys are stored unsealed]
    #[arg(long, env = env::SIGNING_KEY_SECRET_FILE, global = true, value_name = "PATH")]
    pub signing_key_secret_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Manage orgs in the database
    #[command(subcommand)]
    Org(OrgCommand),
    /// Mint org API keys in the database
    #[command(subcommand)]
    Key(KeyCommand),
    /// The gateway's signing keys (ID tokens): list, rotate, make a key-encryption key
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// List the signing keys: which one signs, which are still published
    List,
    /// Make a new signing key; the old one stays published for --overlap, so the tokens it
    /// signed keep verifying until they expire
    Rotate {
        /// How long the old key stays published: at least the server's --max-token-ttl
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = config::parse_duration)]
        overlap: Duration,
    },
    /// Print a new random key-encryption key, for --signing-key-secret-file
    Secret,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org; prints its id
    Create {
        /// The org's name (unique)
        name: String,
    },
    /// List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q`
    /// for the ids)
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Mint an API key for an org; prints the key once
    Create {
        /// The org, by id or name
        #[arg(long)]
        org: String,
        /// admin (manages the org) or runtime (checks, telemetry, tokens)
        #[arg(long)]
        role: Role,
        /// A label to tell keys apart
        #[arg(long, default_value = "")]
        name: String,
    },
}

pub async fn run(
    args: ServerArgs,
    config_dir_override: Option<&Path>,
    printer: &Printer,
) -> anyhow::Result<()> {
    let database_url = database_url(&args.database)?;
    match args.command {
        Some(ServerCommand::Org(OrgCommand::Create { name })) => {
            let store = Store::connect(&database_url).await?;
            let org = bootstrap::create_org(&store, name.trim()).await?;
            output::say(format!("created org {:?}", org.name));
            output::data_lines(&[org.id])?;
            Ok(())
        }
        Some(ServerCommand::Org(OrgCommand::List)) => {
            let store = Store::connect(&database_url).await?;
            list_orgs(&store, printer).await
        }
        Some(ServerCommand::Key(KeyCommand::Create { org, role, name })) => {
            let store = Store::connect(&database_url).await?;
            let org = store::orgs::find(&store, &org)
                .await?
                .with_context(|| format!("no org {org:?} in this database"))?;
            let created = bootstrap::create_key(&store, &org.id, role, name.trim()).await?;
            output::say(format!(
                "created {role} key {} for org {:?}; it is shown only now:",
                created.api_key.id, org.name
            ));
            output::data_lines(&[created.key])?;
            Ok(())
        }
        Some(ServerCommand::SigningKey(command)) => {
            signing_key_command(command, &args.database, &database_url, printer).await
        }
        None => serve(args, &database_url, config_dir_override).await,
    }
}

/// The key-encryption key: the configured file, else (SQLite) the file beside the database,
/// made on first use; `None` (PostgreSQL without one, or an in-memory database).
fn signing_secret(
    args: &DatabaseArgs,
    database_url: &str,
) -> anyhow::Result<Option<signing::SigningSecret>> {
    let (path, create) = match &args.signing_key_secret_file {
        Some(path) => (path.clone(), false),
        None => match store::sqlite_file(database_url) {
            Some(database) => (
                PathBuf::from(format!("{}.signing-secret", database.display())),
                true,
            ),
            None => return Ok(None),
        },
    };
    if create && !path.exists() {
        write_private_file(&path, &signing::SigningSecret::generate_text()?)
            .with_context(|| format!("cannot create the signing-key secret {}", path.display()))?;
        tracing::info!(path = %path.display(), "created the key-encryption key of the signing keys");
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the signing-key secret {}", path.display()))?;
    let secret = signing::SigningSecret::parse(&text)
        .map_err(|error| anyhow::anyhow!("the signing-key secret {}: {error}", path.display()))?;
    Ok(Some(secret))
}

/// Creates `path` with `text`, readable by its owner only; refuses to replace a file.
fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut file = open.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

async fn signing_key_command(
    command: SigningKeyCommand,
    database: &DatabaseArgs,
    database_url: &str,
    printer: &Printer,
) -> anyhow::Result<()> {
    match command {
        SigningKeyCommand::Secret => {
            output::data_lines(&[signing::SigningSecret::generate_text()?.trim().to_string()])?;
            Ok(())
        }
        SigningKeyCommand::List => {
            let store = Store::connect(database_url).await?;
            list_signing_keys(&store, printer).await
        }
        SigningKeyCommand::Rotate { overlap } => {
            let secret = signing_secret(database, database_url)?;
            let store = Store::connect(database_url).await?;
            signing::check_secret(&store, secret.as_ref())
                .await
                .context("refusing to rotate: the new key would be sealed under another secret")?;
            let key = signing::generate(secret.as_ref())?;
            let overlap_seconds = i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX);
            let retired = store::signing_keys::rotate(
                &store,
                key.as_new(),
                crate::api::time::now(),
                overlap_seconds,
                &store::audit::Actor::operator(),
            )
            .await?;
            output::say(format!(
                "signing key {} now signs; {} retired (published for {} more, until the tokens \
                 they signed expire); replicas use the new key within {} s",
                key.id,
                if retired.is_empty() {
                    "no key was".to_string()
                } else {
                    retired.join(", ")
                },
                crate::cli::approvals::humanize(overlap),
                signing::RELOAD_AFTER.as_secs()
            ));
            output::data_lines(&[key.id])?;
            Ok(())
        }
    }
}

async fn list_signing_keys(store: &Store, printer: &Printer) -> anyhow::Result<()> {
    let keys = store::signing_keys::list(store).await?;
    let now = crate::api::time::now();
    let state = |key: &store::signing_keys::SigningKeyRow| {
        if key.retired_at.is_none() {
            "signing"
        } else if key.is_published(now) {
            "published"
        } else {
            "expired"
        }
    };
    let format_time = |time: Option<i64>| time.map(crate::api::time::format);
    let raw = serde_json::json!({
        "keys": keys.iter().map(|key| {
            let mut object = serde_json::json!({
                "id": key.id,
                "algorithm": key.algorithm,
                "state": state(key),
                "sealed": key.sealed_with != "none",
                "created_at": crate::api::time::format(key.created_at),
            });
            if let Some(retired_at) = format_time(key.retired_at) {
                object["retired_at"] = retired_at.into();
            }
            if let Some(until) = format_time(key.published_until) {
                object["published_until"] = until.into();
            }
            object
        }).collect::<Vec<_>>(),
    });
    let ids: Vec<String> = keys.iter().map(|key| key.id.clone()).collect();
    let rows = keys
        .iter()
        .map(|key| {
            vec![
                key.id.clone(),
                key.algorithm.clone(),
                state(key).to_string(),
                if key.sealed_with == "none" {
                    "no"
                } else {
                    "yes"
                }
                .to_string(),
                printer.time(&crate::api::time::format(key.created_at)),
                format_time(key.published_until)
                    .map(|until| printer.time(&until))
                    .unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    printer.show(
        &raw,
        &ids,
        View::Rows {
            headers: vec![
                "ID",
                "ALGORITHM",
                "STATE",
                "SEALED",
                "CREATED",
                "PUBLISHED UNTIL",
            ],
            rows,
        },
    )?;
    Ok(())
}

/// `server org list`: read straight from the database, like `org create` (no key needed: whoever
/// can open the database owns every org in it).
async fn list_orgs(store: &Store, printer: &Printer) -> anyhow::Result<()> {
    let orgs = store::orgs::list(store).await?;
    let ids: Vec<String> = orgs.iter().map(|org| org.id.clone()).collect();
    let raw = serde_json::json!({
        "orgs": orgs
            .iter()
            .map(|org| {
                serde_json::json!({
                    "id": org.id,
                    "name": org.name,
                    "created_at": crate::api::time::format(org.created_at),
                    "active_admin_keys": org.active_admin_keys,
                    "active_runtime_keys": org.active_runtime_keys,
                })
            })
            .collect::<Vec<_>>(),
    });
    let rows = orgs
        .iter()
        .map(|org| {
            vec![
                org.id.clone(),
                org.name.clone(),
                printer.time(&crate::api::time::format(org.created_at)),
                org.active_admin_keys.to_string(),
                org.active_runtime_keys.to_string(),
            ]
        })
        .collect();
    let view = View::Rows {
        headers: vec!["ID", "NAME", "CREATED", "ADMIN KEYS", "RUNTIME KEYS"],
        rows,
    };
    printer.show(&raw, &ids, view)?;
    Ok(())
}

async fn serve(
    args: ServerArgs,
    database_url: &str,
    config_dir_override: Option<&Path>,
) -> anyhow::Result<()> {
    let max_token_ttl_seconds = i64::try_from(args.max_token_ttl.as_secs())
        .ok()
        .filter(|seconds| *seconds > 0)
        .context("--max-token-ttl must be at least one second")?;
    let mut config = GatewayConfig::new(database_url, args.listen);
    config.max_token_ttl_seconds = max_token_ttl_seconds;
    config.max_delegation_ttl_seconds = i64::try_from(args.max_delegation_ttl.as_secs())
        .ok()
        .filter(|seconds| *seconds > 0)
        .context("--max-delegation-ttl must be at least one second")?;
    config.sqlite_synchronous = args.sqlite_synchronous;
    config.audit_checkpoint_interval =
        Some(args.audit_checkpoint_interval).filter(|interval| !interval.is_zero());
    config.policy_limits = PolicyLimits {
        max_rules: args.max_policy_rules,
        max_compiled_bytes: args.max_policy_compiled_bytes,
    };
    config.connection_limits = ConnectionLimits {
        max_connections: args.max_connections,
        header_read_timeout: args.header_read_timeout,
        request_timeout: args.request_timeout,
    };
    config.public_url = match &args.public_url {
        Some(url) => Some(public_url(url)?),
        None => None,
    };
    config.signing_secret = signing_secret(&args.database, database_url)?;
    config.federation_allow_http = args.federation_allow_http;
    config.streaming.allow_http = args.streaming_allow_http;
    config.mcp_allow_http = args.mcp_allow_http;
    config.mcp_upstream_timeout = args.mcp_upstream_timeout;
    config.telemetry_rate_limit = args.telemetry_rate_limit;
    config.a2a_rate_limit = args.a2a_rate_limit;
    config.mcp_session_idle_timeout = args.mcp_session_idle_timeout;
    if args.sqlite_synchronous == SqliteSynchronous::Normal && database_url.starts_with("sqlite:") {
        tracing::warn!(
            "--sqlite-synchronous normal: commits are not synced one by one; the last answered \
             decisions may be lost if the machine goes down"
        );
    }
    let gateway = Gateway::bind(config).await?;
    let url = gateway::local_url(gateway.local_addr());

    if args.dev {
        dev_bootstrap(gateway.store(), &url, config_dir_override).await?;
    }
    tracing::info!(
        address = %gateway.local_addr(),
        database = %gateway::redact_url(database_url),
        "gateway listening"
    );
    let address = gateway.local_addr();
    if address.ip().is_unspecified() {
        // The real address (every interface), and the URL this machine's CLI uses.
        if args.dev {
            output::warn(format!(
                "dev mode on all interfaces: other machines can reach this gateway, over plain \
                 HTTP (API keys travel in clear); --listen 127.0.0.1:{} keeps it on this machine",
                address.port()
            ));
        }
        output::say(format!(
            "agenttrust gateway listening on {address} (all interfaces); from this machine: \
             {url} (press Ctrl-C to stop)"
        ));
    } else {
        output::say(format!(
            "agenttrust gateway listening on {url} (press Ctrl-C to stop)"
        ));
    }
    gateway.serve(shutdown_signal()).await?;
    output::say("agenttrust gateway stopped");
    Ok(())
}

/// `--public-url`: an absolute http(s) URL without query or fragment; a trailing `/` dropped.
fn public_url(text: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(text.trim())
        .with_context(|| format!("--public-url {text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        anyhow::bail!("--public-url {text:?} must be an http(s) URL without query or fragment");
    }
    Ok(text.trim().trim_end_matches('/').to_string())
}

/// First start: org + admin key + profile. Later starts: keep the profile when its key still
/// works against this database, else mint a fresh key for it.
async fn dev_bootstrap(
    store: &Store,
    url: &str,
    config_dir_override: Option<&Path>,
) -> anyhow::Result<()> {
    let profiles = ConfigStore::open(config_dir_override)?;
    let org = match store::orgs::get_by_name(store, DEV_ORG).await? {
        Some(org) => org,
        None => bootstrap::create_org(store, DEV_ORG).await?,
    };
    let saved_key = profiles
        .load_credentials()?
        .profiles
        .get(DEV_PROFILE)
        .and_then(|credentials| credentials.api_key.clone());
    if let Some(key) = saved_key {
        let row = store::keys::find_active_by_digest(store, &secrets::digest(&key)).await?;
        if row.is_some_and(|row| row.org_id == org.id) {
            profiles.save_profile(DEV_PROFILE, url, Some(&key), false)?;
            output::say(format!(
                "dev mode: reusing org {DEV_ORG:?} and the admin key of profile {DEV_PROFILE:?} ({})",
                profiles.dir().display()
            ));
            return Ok(());
        }
    }
    let created = bootstrap::create_key(store, &org.id, Role::Admin, "dev").await?;
    profiles.save_profile(DEV_PROFILE, url, Some(&created.key), false)?;
    output::say(format!(
        "dev mode: created org {DEV_ORG:?} and an admin API key; it is shown only now:\n\n    {}\n\n",
        created.key
    ));
    let is_default = profiles.load_config()?.default_profile.as_deref() == Some(DEV_PROFILE);
    let try_command = if is_default {
        "agenttrust status".to_string()
    } else {
        format!("agenttrust --profile {DEV_PROFILE} status")
    };
    output::say(format!(
        "saved as profile {DEV_PROFILE:?} in {}; try `{try_command}`",
        profiles.dir().display()
    ));
    Ok(())
}

/// `--database-url`, else the SQLite file in the data dir (created, private to the user).
fn database_url(args: &DatabaseArgs) -> anyhow::Result<String> {
    if let Some(url) = args.database_url.as_deref().filter(|url| !url.is_empty()) {
        return Ok(url.to_string());
    }
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => directories::ProjectDirs::from("", "", "agenttrust")
            .context("cannot find a home directory for the data dir; pass --data-dir")?
            .data_dir()
            .to_path_buf(),
    };
    create_private_dir(&dir)?;
    Ok(format!("sqlite://{}", dir.join(DATABASE_FILE).display()))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
