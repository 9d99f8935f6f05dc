//! The machinery behind `agenttrust guard`: the telemetry spool (append-only, locked, bounded,
//! delivered in batches) and running a wrapped command (inherited stdio, forwarded signals,
//! exit status passed through). The clap layer and the verbs are in `cli::guard`.

pub mod child;
pub mod spool;
