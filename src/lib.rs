//! agenttrust: the command-line administration tool for AgentTrust ID and the embedded,
//! AgentTrust-compatible gateway behind it.
//!
//! Layers (one name through all of them): `cli` → `client` → wire types in `api` → `gateway` →
//! `store`. `client` never imports `gateway` or `store`; `gateway` never imports `cli` or `client`.

// Unit tests assert with `unwrap()`: a panic there is the failure report (Cargo.toml `[lints]`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent_key;
pub mod api;
pub mod audit_proof;
pub mod cli;
pub mod client;
pub mod config;
pub mod exit;
#[cfg(feature = "server")]
pub mod gateway;
pub mod guardian;
pub mod jq;
pub mod output;
pub mod render;
#[cfg(feature = "server")]
pub mod store;
