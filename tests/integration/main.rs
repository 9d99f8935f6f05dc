//! The integration suite, one binary: the real `agenttrust` binary and raw HTTP against a real
//! gateway started in-process (see `harness`), on SQLite and, when
//! `AGENTTRUST_TEST_DATABASE_URL` is set, on PostgreSQL; and the official SDKs against it.

// Tests assert with `unwrap()` and talk on stderr directly: the crate's `[lints]` guard the
// binary's conventions, not the test harness's.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

mod harness;

mod a2a;
mod a2a_peer;
mod agent_keys;
mod api_auth;
mod api_errors;
mod api_resources;
mod api_tokens;
mod approvals;
mod audit;
mod audit_log;
mod bench;
mod bounds;
mod cli_api;
mod cli_basics;
mod cli_checks;
mod cli_consistency;
mod cli_elevation;
mod cli_help;
mod cli_hints;
mod cli_jq;
mod cli_man;
mod cli_names;
mod cli_paging;
mod cli_profiles;
mod cli_scripting;
mod cli_terminal;
mod cli_usage;
mod cli_version;
mod cli_workflow;
mod delegations;
mod durability;
mod federation;
mod federation_idp;
mod guard;
mod guardian;
mod limits;
mod mcp;
mod operator_safety;
mod policies;
mod python_venv;
mod readme_tour;
mod replicas;
mod sdk_mcp;
mod sdk_python;
mod sdk_rust;
mod server_dev;
mod sessions;
mod streaming;
mod trust;
