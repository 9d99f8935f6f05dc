//! The test harness: a real gateway in-process on `127.0.0.1:0` (temp SQLite file, or a fresh
//! PostgreSQL database per test when `AGENTTRUST_TEST_DATABASE_URL` is set), a temp config dir,
//! and the real `agenttrust` binary run against it with an environment scrubbed of
//! `AGENTTRUST_*`. The gateway is bound before its URL is handed out, so nothing waits or sleeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use agenttrust::api::keys::Role;
use agenttrust::gateway::cache::Caches;
use agenttrust::gateway::{Gateway, GatewayConfig, bootstrap};
use agenttrust::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// The environment variable naming an admin URL of a PostgreSQL server to run the suite on.
pub const POSTGRES_URL_VARIABLE: &str = "AGENTTRUST_TEST_DATABASE_URL";

/// Generates one `#[test]` per backend for each listed `fn name(h: &Harness)`: `name::sqlite`
/// always runs, `name::postgres` runs when `AGENTTRUST_TEST_DATABASE_URL` is set. Without it the
/// PostgreSQL half fails under `CI=true` (CI must never pass on half the backends) and is
/// skipped locally, saying so once on stderr (see [`postgres_unavailable`]).
/// [`on_both_backends`] for gateways configured by `fn configure(&mut GatewayConfig)`, a
/// function of the calling module.
#[macro_export]
macro_rules! on_both_backends_with {
    ($configure:ident; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    let harness = $crate::harness::Harness::sqlite_with(super::$configure);
                    super::$name(&harness);
                }

                #[test]
                fn postgres() {
                    match $crate::harness::Harness::postgres_with(super::$configure) {
                        Some(harness) => super::$name(&harness),
                        None => $crate::harness::postgres_unavailable(),
                    }
                }
            }
        )*
    };
}

#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    let harness = $crate::harness::Harness::sqlite();
                    super::$name(&harness);
                }

                #[test]
                fn postgres() {
                    match $crate::harness::Harness::postgres() {
                        Some(harness) => super::$name(&harness),
                        None => $crate::harness::postgres_unavailable(),
                    }
                }
            }
        )*
    };
}

/// Generates one `#[test]` for each listed `fn name(h: &Harness)` that only applies to
/// PostgreSQL (several replicas on one database; SQLite is one process's file). The CI rule of
/// [`on_both_backends`] holds: without `AGENTTRUST_TEST_DATABASE_URL` the test fails under
/// `CI=true` and is skipped locally.
#[macro_export]
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn postgres() {
                    match $crate::harness::Harness::postgres() {
                        Some(harness) => super::$name(&harness),
                        None => $crate::harness::postgres_unavailable(),
                    }
                }
            }
        )*
    };
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`, as CI services do).
pub fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false" | "FALSE"))
}

/// What a PostgreSQL test does when no server is configured: under CI it fails the test; locally
/// it passes and says, once per test binary, that the PostgreSQL half was skipped. The note goes
/// straight to the process's stderr, past libtest's capture, so a passing run shows it.
pub fn postgres_unavailable() {
    if running_in_ci() {
        panic!(
            "CI is set but {POSTGRES_URL_VARIABLE} is not: the PostgreSQL half of the suite must \
             run in CI (scripts/test starts a throwaway cluster when PostgreSQL is installed)"
        );
    }
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {POSTGRES_URL_VARIABLE} is not set: the PostgreSQL half of the suite was \
             skipped (every `…::postgres` test passed without running)"
        );
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL database made for one test, dropped with it.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

pub struct Harness {
    pub backend: Backend,
    /// What the gateway was given: `sqlite://…?mode=rwc` or `postgres://…/t_<uuid>`.
    pub database_url: String,
    /// `http://127.0.0.1:PORT`, already listening.
    pub url: String,
    pub store: Store,
    /// The gateway's caches (to see whether they answer).
    pub caches: Arc<Caches>,
    /// The org every test starts with, and an admin key of it.
    pub org_id: String,
    pub admin_key: String,
    /// The CLI's config dir (`AGENTTRUST_CONFIG_DIR`) for every command this harness runs.
    pub config_dir: TempDir,
    /// Scratch space for a test (SQLite file, files to import, a fake HOME).
    pub scratch: TempDir,
    runtime: Option<Runtime>,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    postgres: Option<PostgresDatabase>,
}

impl Harness {
    /// A gateway on a fresh SQLite file.
    pub fn sqlite() -> Harness {
        Harness::sqlite_with(|_| {})
    }

    /// A gateway on a fresh SQLite file, its configuration changed by `configure` (limits,
    /// timeouts) before it starts.
    pub fn sqlite_with(configure: impl FnOnce(&mut GatewayConfig)) -> Harness {
        let scratch = tempfile::tempdir().expect("temp dir");
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            scratch.path().join("gateway.db").display()
        );
        Harness::start(Backend::Sqlite, database_url, scratch, None, configure)
    }

    /// A gateway on a fresh PostgreSQL database, or `None` when no server is configured.
    pub fn postgres() -> Option<Harness> {
        Harness::postgres_with(|_| {})
    }

    /// [`Harness::postgres`] with its configuration changed by `configure`.
    pub fn postgres_with(configure: impl FnOnce(&mut GatewayConfig)) -> Option<Harness> {
        let admin_url = std::env::var(POSTGRES_URL_VARIABLE)
            .ok()
            .filter(|url| !url.is_empty())?;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let runtime = new_runtime();
        runtime.block_on(async {
            let mut connection = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|error| panic!("connect to {POSTGRES_URL_VARIABLE}: {error}"));
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut connection)
                .await
                .expect("create test database");
            connection.close().await.ok();
        });
        drop(runtime);
        let mut database_url = reqwest::Url::parse(&admin_url).expect("database url");
        database_url.set_path(&format!("/{name}"));
        let scratch = tempfile::tempdir().expect("temp dir");
        Some(Harness::start(
            Backend::Postgres,
            database_url.to_string(),
            scratch,
            Some(PostgresDatabase { admin_url, name }),
            configure,
        ))
    }

    fn start(
        backend: Backend,
        database_url: String,
        scratch: TempDir,
        postgres: Option<PostgresDatabase>,
        configure: impl FnOnce(&mut GatewayConfig),
    ) -> Harness {
        Harness::start_gateway(backend, database_url, scratch, postgres, configure, None)
    }

    /// A second gateway, in-process with its own runtime and port, on this harness's PostgreSQL
    /// database: another replica behind the same load balancer. It shares the org and the admin
    /// key, has its own config dir, and leaves the database to this harness (drop it first:
    /// a test's locals are dropped before the harness it borrows).
    pub fn replica(&self) -> Harness {
        self.replica_with(|_| {})
    }

    /// [`Harness::replica`] with its configuration changed by `configure`.
    pub fn replica_with(&self, configure: impl FnOnce(&mut GatewayConfig)) -> Harness {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "replicas share a PostgreSQL database; a SQLite file belongs to one process"
        );
        Harness::start_gateway(
            Backend::Postgres,
            self.database_url.clone(),
            tempfile::tempdir().expect("temp dir"),
            None,
            configure,
            Some((self.org_id.clone(), self.admin_key.clone())),
        )
    }

    /// Stops this harness's gateway (a clean shutdown) and starts a new one on the same
    /// database, configured by `configure`: a restart. The org, keys and files stay; the URL
    /// changes.
    pub fn restart_with(&mut self, configure: impl FnOnce(&mut GatewayConfig)) {
        let runtime = self.runtime.as_ref().expect("a running harness");
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), served).await })
                .expect("the gateway shuts down within 10 s")
                .expect("the gateway task ends")
                .expect("the gateway stops cleanly");
        }
        let mut config =
            GatewayConfig::new(self.database_url.clone(), "127.0.0.1:0".parse().unwrap());
        configure(&mut config);
        let gateway = runtime
            .block_on(Gateway::bind(config))
            .expect("the gateway binds again");
        self.url = format!("http://{}", gateway.local_addr());
        self.store = gateway.store().clone();
        self.caches = gateway.caches();
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        self.served = Some(runtime.spawn(gateway.serve(async move {
            let _ = shutdown_signal.await;
        })));
        self.shutdown = Some(shutdown);
    }

    /// Starts a gateway; with `org` it joins that org (a replica) instead of creating one.
    fn start_gateway(
        backend: Backend,
        database_url: String,
        scratch: TempDir,
        postgres: Option<PostgresDatabase>,
        configure: impl FnOnce(&mut GatewayConfig),
        org: Option<(String, String)>,
    ) -> Harness {
        let runtime = new_runtime();
        let mut config = GatewayConfig::new(database_url.clone(), "127.0.0.1:0".parse().unwrap());
        configure(&mut config);
        let gateway = runtime
            .block_on(Gateway::bind(config))
            .expect("the gateway binds");
        let url = format!("http://{}", gateway.local_addr());
        let store: Store = gateway.store().clone();
        let caches = gateway.caches();
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let served = runtime.spawn(gateway.serve(async move {
            let _ = shutdown_signal.await;
        }));
        let (org_id, admin_key) = match org {
            Some(org) => org,
            None => runtime.block_on(async {
                let org = bootstrap::create_org(&store, "acme").await.expect("org");
                let key = bootstrap::create_key(&store, &org.id, Role::Admin, "ci")
                    .await
                    .expect("admin key");
                (org.id.clone(), key.key)
            }),
        };
        Harness {
            backend,
            database_url,
            url,
            store,
            caches,
            org_id,
            admin_key,
            config_dir: tempfile::tempdir().expect("temp dir"),
            scratch,
            runtime: Some(runtime),
            shutdown: Some(shutdown),
            served: Some(served),
            postgres,
        }
    }

    /// Runs a future on the gateway's runtime (from a plain test thread).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(future)
    }

    // ----- org, keys and stored state -----

    /// A second org with an admin key, to prove org scoping.
    pub fn other_org(&self, name: &str) -> (String, String) {
        self.block_on(async {
            let org = bootstrap::create_org(&self.store, name).await.expect("org");
            let key = bootstrap::create_key(&self.store, &org.id, Role::Admin, "other")
                .await
                .expect("key");
            (org.id.clone(), key.key)
        })
    }

    /// A new key of the harness org: `(secret, key id)`.
    pub fn new_key(&self, role: Role) -> (String, String) {
        self.block_on(async {
            let key = bootstrap::create_key(&self.store, &self.org_id, role, "test")
                .await
                .expect("key");
            (key.key.clone(), key.api_key.id.clone())
        })
    }

    /// Rows per table: compared before and after a rejected request to prove nothing changed.
    pub fn row_counts(&self) -> BTreeMap<String, i64> {
        self.block_on(self.store.row_counts()).expect("row counts")
    }

    /// Runs one statement on the gateway's database through a separate connection (to set up
    /// states no API reaches, such as an expired token).
    pub fn sql_execute(&self, statement: &str) -> u64 {
        self.block_on(async {
            match self.backend {
                Backend::Sqlite => {
                    let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                        .await
                        .expect("connect to SQLite");
                    sqlx::query(statement)
                        .execute(&mut connection)
                        .await
                        .expect(statement)
                        .rows_affected()
                }
                Backend::Postgres => {
                    let mut connection = sqlx::PgConnection::connect(&self.database_url)
                        .await
                        .expect("connect to PostgreSQL");
                    sqlx::query(statement)
                        .execute(&mut connection)
                        .await
                        .expect(statement)
                        .rows_affected()
                }
            }
        })
    }

    /// Reads one row of integer columns (each `CAST(… AS BIGINT)` in the query) from the
    /// gateway's database; `None` when there is no row.
    pub fn sql_integers(&self, query: &str) -> Option<Vec<i64>> {
        use sqlx::Row;
        self.block_on(async {
            match self.backend {
                Backend::Sqlite => {
                    let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                        .await
                        .expect("connect to SQLite");
                    let row = sqlx::query(query)
                        .fetch_optional(&mut connection)
                        .await
                        .expect(query)?;
                    Some(
                        (0..row.len())
                            .map(|index| row.get::<i64, _>(index))
                            .collect(),
                    )
                }
                Backend::Postgres => {
                    let mut connection = sqlx::PgConnection::connect(&self.database_url)
                        .await
                        .expect("connect to PostgreSQL");
                    let row = sqlx::query(query)
                        .fetch_optional(&mut connection)
                        .await
                        .expect(query)?;
                    Some(
                        (0..row.len())
                            .map(|index| row.get::<i64, _>(index))
                            .collect(),
                    )
                }
            }
        })
    }

    // ----- HTTP straight to the gateway -----

    /// Sends a request with the admin key and returns the status and the JSON body (`Null` when
    /// empty; a non-JSON body fails the test: the gateway never answers anything else).
    pub fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.request_as(&self.admin_key, method, path, body)
    }

    pub fn request_as(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut headers = vec![("X-API-Key", key.to_string())];
        let body = body.map(|value| value.to_string().into_bytes());
        if body.is_some() {
            headers.push(("Content-Type", "application/json".to_string()));
        }
        self.raw(method, path, &headers, body)
    }

    pub fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None)
    }

    /// Any request: raw bytes in, status and JSON out.
    pub fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let url = format!("{}{}", self.url, path);
        self.block_on(async {
            let client = reqwest::Client::new();
            let mut request = client.request(method.clone(), &url);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(body) = body {
                request = request.body(body);
            }
            let response = request.send().await.expect("the gateway answers");
            Reply::read(&format!("{method} {path}"), response).await
        })
    }

    /// Creates an agent over HTTP and returns its JSON.
    pub fn create_agent(&self, name: &str, capabilities: &[&str]) -> Value {
        let reply = self.post(
            "/api/v1/agents",
            serde_json::json!({"name": name, "capabilities": capabilities}),
        );
        reply.expect_status(StatusCode::OK.as_u16()..=StatusCode::CREATED.as_u16());
        reply.agent()
    }

    /// Registers an MCP server (at a loopback URL nothing needs to answer) and returns its id:
    /// `/mcp/sessions/init` names a registered server.
    pub fn register_mcp_server(&self, name: &str) -> String {
        let reply = self.post(
            "/mcp/servers",
            serde_json::json!({"name": name, "url": "http://127.0.0.1:9/mcp"}),
        );
        reply.expect_status(201..=201);
        reply.body["id"].as_str().expect("a server id").to_string()
    }

    /// Issues a token over HTTP and returns its JSON.
    pub fn issue_token(&self, agent_id: &str, scopes: &[&str], ttl: i64) -> Value {
        let reply = self.post(
            "/api/v1/agent-tokens/issue",
            serde_json::json!({"agent_id": agent_id, "scopes": scopes, "ttl": ttl}),
        );
        reply.expect_status(200..=201);
        reply.body
    }

    // ----- the real binary -----

    /// `agenttrust` with `AGENTTRUST_*` scrubbed, the config dir, the URL and the admin key set.
    pub fn cli(&self) -> assert_cmd::Command {
        let mut command = self.cli_bare();
        command
            .env("AGENTTRUST_URL", &self.url)
            .env("AGENTTRUST_API_KEY", &self.admin_key);
        command
    }

    /// `agenttrust` with `AGENTTRUST_*` scrubbed and only the config dir set: no URL, no key.
    pub fn cli_bare(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AGENTTRUST_") {
                command.env_remove(name);
            }
        }
        command
            .env("AGENTTRUST_CONFIG_DIR", self.config_dir.path())
            .env("HOME", self.scratch.path())
            .env("XDG_CONFIG_HOME", self.scratch.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.scratch.path().join("xdg-data"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .write_stdin("")
            .timeout(Duration::from_secs(60));
        command
    }

    /// Runs `agenttrust ARGS…` (admin key, harness URL) with empty stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cli().args(args).output().expect("run"))
    }

    /// Runs `agenttrust ARGS…` with only the config dir set (profiles decide URL and key).
    pub fn run_bare(&self, args: &[&str]) -> Run {
        Run::from(self.cli_bare().args(args).output().expect("run"))
    }

    pub fn config_path(&self, file: &str) -> PathBuf {
        self.config_dir.path().join(file)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            let outcome = runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), served).await });
            if !std::thread::panicking() {
                match outcome {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(error))) => panic!("the gateway stopped with an error: {error:#}"),
                    Ok(Err(join_error)) => panic!("the gateway task failed: {join_error}"),
                    Err(_) => panic!("the gateway did not shut down within 10 s"),
                }
            }
        }
        if let Some(database) = self.postgres.take() {
            runtime.block_on(async {
                if let Ok(mut connection) = sqlx::PgConnection::connect(&database.admin_url).await {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        database.name
                    ))
                    .execute(&mut connection)
                    .await;
                    connection.close().await.ok();
                }
            });
        }
        runtime.shutdown_timeout(Duration::from_secs(5));
    }
}

fn new_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs a prepared command (stdin is empty unless the command was given some).
pub fn run(command: &mut assert_cmd::Command) -> Run {
    Run::from(command.output().expect("run"))
}

/// The `agenttrust` binary cargo built for this test run.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agenttrust"))
}

/// A gateway answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub what: String,
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Reply {
    async fn read(what: &str, response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let text = response.text().await.expect("read the body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|error| {
                panic!("{what}: {status} body is not JSON ({error}): {text}")
            })
        };
        Reply {
            what: what.to_string(),
            status,
            body,
            text,
        }
    }

    pub fn expect_status(&self, expected: std::ops::RangeInclusive<u16>) -> &Reply {
        assert!(
            expected.contains(&self.status),
            "{}: expected status {expected:?}, got {} with {}",
            self.what,
            self.status,
            self.text
        );
        self
    }

    /// Asserts a 2xx and returns the body.
    pub fn ok(&self) -> &Value {
        self.expect_status(200..=299);
        &self.body
    }

    /// Asserts the status and the error body shape
    /// `{"error": <string>, "message": <non-empty string>, "code": <string>}`, and returns `code`.
    pub fn expect_error(&self, status: u16) -> String {
        assert_eq!(
            self.status, status,
            "{}: expected status {status}, got {} with {}",
            self.what, self.status, self.text
        );
        let body = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("{}: error body is not an object: {}", self.what, self.text));
        assert!(
            body.get("error").is_some_and(Value::is_string),
            "{}: `error` is not a string: {}",
            self.what,
            self.text
        );
        let message = body.get("message").and_then(Value::as_str).unwrap_or("");
        assert!(
            !message.trim().is_empty(),
            "{}: `message` is missing or empty: {}",
            self.what,
            self.text
        );
        body.get("code")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: `code` is not a string: {}", self.what, self.text))
            .to_string()
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }

    /// The agent in a create/get answer (bare, or wrapped in `{"agent": …}`).
    pub fn agent(&self) -> Value {
        match self.body.get("agent") {
            Some(agent) if agent.is_object() && self.body.get("id").is_none() => agent.clone(),
            _ => self.body.clone(),
        }
    }
}

/// What a run of the binary did.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, printing both streams when it differs.
    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code, expected,
            "expected exit code {expected}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn success(&self) -> &Run {
        self.code(0)
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// stderr parsed as JSON (errors under `-o json`).
    pub fn stderr_json(&self) -> Value {
        let start = self
            .stderr
            .find('{')
            .unwrap_or_else(|| panic!("no JSON object on stderr:\n{}", self.stderr));
        serde_json::Deserializer::from_str(&self.stderr[start..])
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("stderr holds no JSON object:\n{}", self.stderr))
    }

    /// stdout without the trailing newline (the `-q` value).
    pub fn value(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }
}

// ----- Guardian helpers shared by the policy, session and approval tests -----

impl Harness {
    /// `POST /api/v1/agenttrust/check` with the admin key; asserts a 200 and returns the decision.
    pub fn check(&self, body: Value) -> Value {
        self.post("/api/v1/agenttrust/check", body).ok().clone()
    }

    /// A check sent with an agent token (no API key), as a shell agent holding only its token
    /// does.
    pub fn check_with_token(&self, token: &str, body: Value) -> Reply {
        self.raw(
            Method::POST,
            "/api/v1/agenttrust/check",
            &[
                ("Authorization", format!("Bearer {token}")),
                ("Content-Type", "application/json".to_string()),
            ],
            Some(body.to_string().into_bytes()),
        )
    }

    /// Replaces the org policy (`PUT /api/v1/policies`) and returns the stored document.
    pub fn put_policy(&self, document: Value) -> Value {
        self.request(Method::PUT, "/api/v1/policies", Some(document))
            .ok()
            .clone()
    }

    /// Audit events of this org of one kind.
    pub fn audit_count(&self, kind: &str) -> i64 {
        self.sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events WHERE org_id = '{}' AND kind = '{kind}'",
            self.org_id
        ))
        .expect("a count")[0]
    }

    /// Moves an approval's expiry into the past (no API reaches that state quickly).
    pub fn expire_approval(&self, approval_id: &str) {
        let moved = self.sql_execute(&format!(
            "UPDATE approvals SET expires_at = expires_at - 100000 WHERE id = '{approval_id}'"
        ));
        assert_eq!(moved, 1, "approval {approval_id} exists");
    }
}
