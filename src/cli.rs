//! The command line: clap definitions of the global flags and every subcommand, the shared
//! [`Context`] (resolved settings, printer, client, confirmation prompts) and the dispatch from a
//! parsed command to its verb function (`cli::tokens::revoke` → `client::tokens::revoke`).
//!
//! Settings are resolved by `config::resolve` (flag > env > profile > default) rather than by
//! clap's `env` attribute, because clap treats an empty variable as a value and the SDKs treat it
//! as unset.

pub mod a2a;
pub mod actions;
pub mod agent_credentials;
pub mod agents;
pub mod api;
pub mod approvals;
pub mod audit;
pub mod bench;
pub mod cards;
pub mod common;
pub mod completions;
pub mod delegations;
pub mod federation;
pub mod guard;
pub mod health;
pub mod keys;
pub mod login;
pub mod man;
pub mod mcp;
pub mod orgs;
pub mod paging;
pub mod policies;
pub mod profile;
#[cfg(feature = "server")]
pub mod server;
pub mod sessions;
pub mod status;
pub mod streaming;
pub mod telemetry;
pub mod tokens;
pub mod version;
pub mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::client::{self, Client};
use crate::config::{self, ConfigStore, Resolved, Source, env};
use crate::exit::{Failure, Outcome};
use crate::output::{self, Format, Printer};
use crate::render::{self, ColorChoice};

// The shared helpers, where every verb group has always found them (`super::agent_or_env`).
pub use common::{
    agent_or_env, clean_list, effect_parser, parse_json_object, parse_seconds,
    read_secret_argument, resolve_agent, resolve_agent_filter, session_or_env,
};

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 error, 2 usage error, 3 not found, 4 authentication or permission \
failure, 69 gateway unreachable or timed out, 75 elevation required, 77 denied by policy.

The API key is read from AGENTTRUST_API_KEY or from the profile (`agenttrust login`), never from \
the command line.";

#[derive(Debug, Parser)]
#[command(
    name = "agenttrust",
    version,
    about = "Administer an AgentTrust ID gateway, or run one",
    propagate_version = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts (listed in `--help` after the command's own).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Output format [env: AGENTTRUST_OUTPUT] [default: table]
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Filter the JSON output through a jq expression; implies `-o json` (strings print raw)
    #[arg(long, global = true, value_name = "EXPR", conflicts_with = "quiet")]
    pub jq: Option<String>,
    /// Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = config::parse_duration)]
    pub timeout: Option<Duration>,
    /// Skip TLS certificate verification (unsafe; warns)
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Trust this PEM CA certificate in addition to the system roots
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform's, e.g. ~/.config/agenttrust]
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]
    #[arg(long, global = true)]
    pub no_input: bool,
    /// Print only the primary value (an id, a token, a key)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More logging on stderr (-v debug, -vv everything)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Tables: every column whole (ids not shortened, not fitted to the terminal's width)
    #[arg(long, global = true)]
    pub wide: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate an API key against the gateway and save it in a profile
    Login(login::LoginArgs),
    /// Manage profiles (list, show, use, delete, import)
    Profile(profile::ProfileArgs),
    /// Show the profile in use, the gateway's health and whether the API key works
    Status(status::StatusArgs),
    /// Check the gateway's health
    Health(health::HealthArgs),
    /// Print this CLI's version and the gateway's (when it answers; never fails)
    Version(version::VersionArgs),
    /// Register, list, inspect and revoke agents
    Agents(agents::AgentsArgs),
    /// Issue, introspect and revoke agent tokens
    Tokens(tokens::TokensArgs),
    /// Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)
    Actions(actions::ActionsArgs),
    /// Report and list telemetry events
    Telemetry(telemetry::TelemetryArgs),
    /// Open, inspect, list, re-mode and unlock agent sessions
    Sessions(sessions::SessionsArgs),
    /// List, approve, deny and wait for approvals (elevation)
    Approvals(approvals::ApprovalsArgs),
    /// The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)
    Guard(guard::GuardArgs),
    /// Get, set, validate (offline) and test the org's policy
    Policies(policies::PoliciesArgs),
    /// Delegate capabilities between agents: create, list, get, revoke, open a session, tree
    Delegations(delegations::DelegationsArgs),
    /// Federation: trust external OIDC issuers (providers, subject links), verify and issue ID
    /// tokens, open sessions from them
    Federation(federation::FederationArgs),
    /// Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks):
    /// destinations, delivery logs, test deliveries
    Streaming(streaming::StreamingArgs),
    /// MCP: register MCP servers, list the tools an agent may call there, call one through the
    /// gateway (checked by the Guardian)
    Mcp(mcp::McpArgs),
    /// Agent cards (A2A): generate, get, publish and unpublish an agent's signed card; verify
    /// any card against its issuer's keys
    Cards(cards::CardsArgs),
    /// Agent-to-agent messages through the gateway (checked by the Guardian): send, and the
    /// tasks waiting for their target
    A2a(a2a::A2aArgs),
    /// Manage org API keys
    Keys(keys::KeysArgs),
    /// The org's security settings: proof of possession, sender-constrained tokens
    Orgs(orgs::OrgsArgs),
    /// Read the org's audit log and verify its hash chain
    Audit(audit::AuditArgs),
    /// Send a raw request to the gateway with the profile's URL and key (like `gh api`)
    Api(api::ApiArgs),
    /// Measure the gateway under load: checks, introspections, token issues, telemetry, each
    /// beside /health (like pgbench)
    Bench(bench::BenchArgs),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
    /// Print a man page (`agenttrust man agents list | man -l -`)
    Man(man::ManArgs),
    /// Run the embedded AgentTrust-compatible gateway
    #[cfg(feature = "server")]
    Server(server::ServerArgs),
}

impl Cli {
    /// The gateway and the load generator need every core; the CLI starts faster on one
    /// thread.
    pub fn needs_multi_thread_runtime(&self) -> bool {
        self.runs_the_gateway() || matches!(self.command, Command::Bench(_))
    }

    /// `agenttrust server …`.
    #[cfg(feature = "server")]
    pub fn runs_the_gateway(&self) -> bool {
        matches!(self.command, Command::Server(_))
    }

    /// `agenttrust server …` (not in a client-only build).
    #[cfg(not(feature = "server"))]
    pub fn runs_the_gateway(&self) -> bool {
        false
    }

    /// Builds the tokio runtime for this command.
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let mut builder = if self.needs_multi_thread_runtime() {
            tokio::runtime::Builder::new_multi_thread()
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        builder
            .enable_all()
            .build()
            .context("cannot start the async runtime")
    }
}

/// Logs go to stderr only. `RUST_LOG` wins; else `-v` turns on debug for this crate, `-vv` for
/// everything; the gateway logs at info by default, the CLI only warnings. `--color` is
/// recorded here, before anything is printed.
pub fn init_logging(cli: &Cli) {
    render::set_color_choice(cli.globals.color);
    let default = match cli.globals.verbose {
        0 if cli.runs_the_gateway() => "info",
        0 => "warn",
        1 => "warn,agenttrust=debug",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(render::color_enabled(std::io::stderr().is_terminal()))
        .try_init();
}

/// Whether errors are printed as JSON (`-o json` from the flag, env or profile, `--jq`, or the
/// agent/CI mode).
pub fn json_errors(globals: &GlobalArgs) -> bool {
    // The agent/CI mode (`--no-input`, AGENTTRUST_NO_INPUT): whoever reads stderr is a program.
    if globals.jq.is_some() || globals.no_input || env::flag(env::NO_INPUT) {
        return true;
    }
    if let Some(format) = globals.output {
        return format == Format::Json;
    }
    if let Some(text) = env::var(env::OUTPUT) {
        return text.parse::<Format>() == Ok(Format::Json);
    }
    // The profile's setting: best effort, an unreadable config just means "table".
    Context::load(globals)
        .map(|context| context.printer.is_json())
        .unwrap_or(false)
}

/// `--config-dir`, else `AGENTTRUST_CONFIG_DIR`, else None (the platform's dir).
pub fn config_dir_override(globals: &GlobalArgs) -> Option<PathBuf> {
    globals
        .config_dir
        .clone()
        .or_else(|| env::var(env::CONFIG_DIR).map(PathBuf::from))
}

/// Runs the parsed command to its [`Outcome`] (`exit::finish` turns it into the exit status).
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let globals = cli.globals;
    let done = |result: anyhow::Result<()>| result.map(|()| Outcome::Success);
    match cli.command {
        Command::Completions(args) => done(completions::run(args)),
        Command::Man(args) => done(man::run(args)),
        #[cfg(feature = "server")]
        Command::Server(args) => {
            let dir = config_dir_override(&globals);
            // The server reads no profile: `-o`, else AGENTTRUST_OUTPUT, shapes `server org list`.
            let format = match globals.output {
                Some(format) => format,
                None => env::var(env::OUTPUT)
                    .map(|text| text.parse::<Format>().map_err(anyhow::Error::msg))
                    .transpose()?
                    .unwrap_or_default(),
            };
            let printer = Printer::new(format, globals.quiet).with_wide(globals.wide);
            done(server::run(args, dir.as_deref(), &printer).await)
        }
        command => {
            let context = Context::load(&globals)?;
            match command {
                Command::Login(args) => done(login::run(&context, args).await),
                Command::Profile(args) => done(profile::run(&context, args)),
                Command::Status(args) => done(status::run(&context, args).await),
                Command::Health(args) => done(health::run(&context, args).await),
                Command::Version(args) => done(version::run(&context, args).await),
                Command::Agents(args) => done(agents::run(&context, args).await),
                Command::Tokens(args) => tokens::run(&context, args).await,
                Command::Actions(args) => actions::run(&context, args).await,
                Command::Telemetry(args) => done(telemetry::run(&context, args).await),
                Command::Sessions(args) => done(sessions::run(&context, args).await),
                Command::Approvals(args) => approvals::run(&context, args).await,
                Command::Guard(args) => guard::run(&context, args).await,
                Command::Policies(args) => policies::run(&context, args).await,
                Command::Delegations(args) => done(delegations::run(&context, args).await),
                Command::Federation(args) => federation::run(&context, args).await,
                Command::Streaming(args) => streaming::run(&context, args).await,
                Command::Mcp(args) => mcp::run(&context, args).await,
                Command::Cards(args) => cards::run(&context, args).await,
                Command::A2a(args) => a2a::run(&context, args).await,
                Command::Keys(args) => done(keys::run(&context, args).await),
                Command::Orgs(args) => done(orgs::run(&context, args).await),
                Command::Audit(args) => done(audit::run(&context, args).await),
                Command::Api(args) => done(api::run(&context, args).await),
                Command::Bench(args) => bench::run(&context, args).await,
                Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
                #[cfg(feature = "server")]
                Command::Server(_) => unreachable!("handled above"),
            }
        }
    }
}

/// What every verb needs: the global flags, the config store, the resolved settings and the
/// printer.
pub struct Context {
    pub globals: GlobalArgs,
    pub store: ConfigStore,
    pub settings: Resolved,
    pub printer: Printer,
}

impl Context {
    pub fn load(globals: &GlobalArgs) -> anyhow::Result<Context> {
        let store = ConfigStore::open(config_dir_override(globals).as_deref())?;
        let config = store.load_config()?;
        let credentials = store.load_credentials()?;
        let flags = config::Flags {
            profile: globals.profile.clone(),
            url: globals.url.clone(),
            output: globals.output.map(|format| format.to_string()),
            timeout: globals.timeout,
            insecure: globals.insecure,
            ca_cert: globals.ca_cert.clone(),
        };
        let settings = config::resolve(&flags, &env::var, &config, &credentials)?;
        match &settings.api_key_source {
            Source::Env(_) => crate::exit::note_key_origin(crate::exit::KeyOrigin::Environment),
            Source::Profile(profile) if settings.api_key.is_some() => {
                crate::exit::note_key_origin(crate::exit::KeyOrigin::Profile(profile.clone()));
            }
            _ => {}
        }
        let format = match &settings.output {
            Some(text) => text
                .parse::<Format>()
                .map_err(|error| anyhow::anyhow!("{error} (from {})", output_source(globals)))?,
            None => Format::Table,
        };
        let mut printer = Printer::new(format, globals.quiet).with_wide(globals.wide);
        if let Some(expression) = &globals.jq {
            // Checked before any request: a typo must not leave an operation half done.
            crate::jq::check(expression).map_err(|error| Failure::Usage {
                message: error.to_string(),
                hint: Some("see https://jqlang.org/manual/ for the jq language".to_string()),
            })?;
            printer = printer.with_jq(expression.clone());
        }
        Ok(Context {
            globals: globals.clone(),
            store,
            printer,
            settings,
        })
    }

    /// Prompts are allowed: stdin and stderr are terminals and `--no-input` is off.
    pub fn interactive(&self) -> bool {
        !self.globals.no_input
            && !env::flag(env::NO_INPUT)
            && std::io::stdin().is_terminal()
            && std::io::stderr().is_terminal()
    }

    /// A client with the profile's API key; fails (exit 4) when there is none.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.require_api_key()?;
        self.client_without_key_check()
    }

    /// [`Context::client`] keeping up to `connections` idle connections open for reuse (the
    /// load of `bench`: one connection per worker, none opened twice).
    pub fn pooled_client(&self, connections: usize) -> anyhow::Result<Client> {
        self.require_api_key()?;
        self.build_client(None, Some(connections))
    }

    /// Fails (exit 4) when the profile has no API key.
    fn require_api_key(&self) -> anyhow::Result<()> {
        if self.settings.api_key.is_none() {
            self.check_profile_exists()?;
            return Err(Failure::MissingApiKey {
                profile: self.settings.profile.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// A client for the runtime calls an agent makes (check, telemetry report). With an agent
    /// token no API key is needed: the token is sent as `Authorization: Bearer` on those calls
    /// and the gateway takes the agent from it (the key, when there is one, still goes along).
    pub fn runtime_client(&self, agent_token: Option<String>) -> anyhow::Result<Client> {
        match agent_token {
            None => self.client(),
            Some(token) => self.build_client(Some(token), None),
        }
    }

    /// A client that sends the API key only if one is configured (`health`, `status`, `login`).
    pub fn client_without_key_check(&self) -> anyhow::Result<Client> {
        self.build_client(None, None)
    }

    fn build_client(
        &self,
        agent_token: Option<String>,
        idle_connections_per_host: Option<usize>,
    ) -> anyhow::Result<Client> {
        self.check_profile_exists()?;
        if self.settings.insecure {
            output::warn("TLS certificate verification is disabled (--insecure)");
        }
        let options = client::Options {
            url: self.settings.url.clone(),
            auth_url: self.settings.auth_url.clone(),
            audit_url: self.settings.audit_url.clone(),
            api_key: self.settings.api_key.clone(),
            agent_token,
            timeout: self.settings.timeout,
            insecure: self.settings.insecure,
            ca_cert: self.settings.ca_cert.clone(),
            idle_connections_per_host,
        };
        Ok(Client::new(&options)?)
    }

    /// A profile named explicitly (flag or env) must exist, unless the URL and key both come
    /// from elsewhere: a typo in `--profile prod` must not silently hit localhost.
    fn check_profile_exists(&self) -> anyhow::Result<()> {
        let settings = &self.settings;
        let explicit = matches!(settings.profile_source, Source::Flag | Source::Env(_));
        let self_sufficient = !matches!(settings.url_source, Source::Profile(_) | Source::Default)
            && matches!(settings.api_key_source, Source::Env(_));
        if explicit && !settings.profile_exists && !self_sufficient {
            let known =
                config::known_profiles(&self.store.load_config()?, &self.store.load_credentials()?);
            return Err(common::profile_not_found(&settings.profile, &known));
        }
        Ok(())
    }

    /// Confirms a destructive action (see [`common::confirm`]).
    pub fn confirm(&self, yes: bool, action: &str) -> anyhow::Result<()> {
        common::confirm(self.interactive(), yes, action)
    }
}

fn output_source(globals: &GlobalArgs) -> String {
    if globals.output.is_some() {
        "--output".to_string()
    } else if env::var(env::OUTPUT).is_some() {
        env::OUTPUT.to_string()
    } else {
        "the profile's `output`".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn comma_lists_and_repeats_both_work() {
        let cli = Cli::try_parse_from([
            "agenttrust",
            "tokens",
            "issue",
            "--agent",
            "a1",
            "--scopes",
            "a,b",
            "--scopes",
            "c",
            "--ttl",
            "5m",
        ])
        .unwrap();
        match cli.command {
            Command::Tokens(tokens::TokensArgs {
                command: tokens::TokensCommand::Issue(args),
            }) => {
                assert_eq!(args.scopes, ["a", "b", "c"]);
                assert_eq!(args.ttl, Some(300));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["agenttrust", "health", "-o", "json", "--timeout", "2s"]).unwrap();
        assert_eq!(cli.globals.output, Some(Format::Json));
        assert_eq!(cli.globals.timeout, Some(Duration::from_secs(2)));
    }
}
