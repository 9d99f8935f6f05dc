//! The Guardian's Fast Guard: a pure decision function. Given who asks (the agent as the store
//! knows it), what it wants to do (action, input summary, effect), the session it acts in, the
//! latest human approval and the org's compiled policy, it answers allowed, denied or "ask a
//! human" (elevation), with a reason, a confidence and the rule that decided. No I/O here, and no
//! dependency beyond `crate::api`: the gateway loads the inputs, calls [`decide`], and records
//! the result; the CLI can [`compile`] (validate) a policy offline.

pub mod canonical;
pub mod classify;
pub mod decide;
pub mod delegation;
pub mod policy;
pub mod refusal;
pub mod scope;

pub use classify::{Classification, classify};
pub use decide::{
    AgentFacts, ApprovalAction, ApprovalState, CheckInput, Decision, DelegationFacts,
    FederationFacts, SessionFacts, decide, trust_ceiling,
};
pub use policy::{CompiledPolicy, PolicyError, RuleProblem, compile};

/// The tier that answers every check today (the SDKs know `fast`, `spot` and `deep`).
pub const GUARD_TIER_FAST: &str = "fast";

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
