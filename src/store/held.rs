//! The rows a PostgreSQL write transaction holds locked, as it read them: what a check re-reads
//! before it is recorded ([`super::checks::live_rows`]), the agent's row (`FOR NO KEY UPDATE`)
//! and the session's (`FOR UPDATE`).
//!
//! The group-commit writer puts many checks of one agent, often in one session, into one
//! transaction. Once the first of them has locked those rows, no other transaction can change
//! them until this one ends, so the checks after it need not read them again: a round trip
//! each saved on the writer's lane, which is what one agent's checks queue on. Only this
//! transaction's own statements can change them meanwhile, and each that may
//! ([`super::agents::count_denial`], [`super::sessions::count_call`]) updates or forgets what is
//! held here. A row that does not exist is never held (nothing is locked then: another
//! transaction may create it). Each transaction starts with nothing held, a batch run again
//! after a rollback too.

use std::collections::HashMap;

/// The rows one transaction holds, by (org, id).
#[derive(Debug, Default)]
pub struct Held {
    /// An agent's `(status, mode)`.
    agents: HashMap<(String, String), (String, String)>,
    /// A session's mode.
    sessions: HashMap<(String, String), String>,
}

fn key(org_id: &str, id: &str) -> (String, String) {
    (org_id.to_string(), id.to_string())
}

impl Held {
    pub fn agent(&self, org_id: &str, id: &str) -> Option<&(String, String)> {
        self.agents.get(&key(org_id, id))
    }

    /// The agent's row as this transaction locked (or changed) it.
    pub fn hold_agent(&mut self, org_id: &str, id: &str, row: (String, String)) {
        self.agents.insert(key(org_id, id), row);
    }

    pub fn forget_agent(&mut self, org_id: &str, id: &str) {
        self.agents.remove(&key(org_id, id));
    }

    pub fn session(&self, org_id: &str, id: &str) -> Option<&String> {
        self.sessions.get(&key(org_id, id))
    }

    /// The session's mode as this transaction locked it.
    pub fn hold_session(&mut self, org_id: &str, id: &str, mode: String) {
        self.sessions.insert(key(org_id, id), mode);
    }

    pub fn forget_session(&mut self, org_id: &str, id: &str) {
        self.sessions.remove(&key(org_id, id));
    }
}

#[cfg(test)]
mod tests {
    use super::Held;

    #[test]
    fn rows_are_held_per_org_until_forgotten() {
        let mut held = Held::default();
        held.hold_agent("o1", "a", ("active".into(), "standard".into()));
        held.hold_session("o1", "s", "standard".into());
        assert_eq!(
            held.agent("o1", "a"),
            Some(&("active".to_string(), "standard".to_string()))
        );
        assert_eq!(held.agent("o2", "a"), None);
        assert_eq!(held.session("o2", "s"), None);
        held.forget_agent("o1", "a");
        held.forget_session("o1", "s");
        assert_eq!(held.agent("o1", "a"), None);
        assert_eq!(held.session("o1", "s"), None);
    }
}
