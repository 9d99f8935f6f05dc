//! Change notices between replicas: the channel, the notice each cached kind of row sends when it
//! changes, sending one inside the change's own transaction, and the connection that listens.
//!
//! Every replica keeps per-process caches of hot rows (API keys, agent tokens, agents, sessions,
//! policies: `gateway::cache`). On PostgreSQL a change sends `pg_notify` in the transaction that makes it,
//! so the notice is delivered if and only if the change commits, and only after it is visible;
//! every replica's [`Listener`] hears it (its own included) and forgets the row. On SQLite one
//! process owns the file, so there is nobody to tell: [`announce`] and [`ping`] do nothing and
//! the gateway forgets in-process after the commit.

use std::fmt;

use sqlx::postgres::PgListener;

use super::{Db, Result, Store, Tx, TxConnection};

/// The one channel every replica listens on.
pub const CHANNEL: &str = "agenttrust_changes";

/// The payload of a heartbeat: a replica checks that its listening connection still hears.
const PING: &str = "ping";

/// A change to a row some replica may hold in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An API key was revoked.
    ApiKey { id: String },
    /// An agent token was revoked.
    AgentToken { id: String },
    /// An agent's status or mode changed (revoked, mode set, locked out); revoking it also ends
    /// its tokens, so cached tokens of the agent go with it.
    Agent { id: String },
    /// A session's mode was set by an operator. (A lockout that locks a session is not
    /// announced: the record transaction of every replica re-reads the mode, so a stale
    /// `standard` costs a refusal there, never an allow.)
    Session { org_id: String, id: String },
    /// An org's policy was replaced.
    Policy { org_id: String },
    /// An org's security settings were set.
    SecuritySettings { org_id: String },
}

impl Change {
    /// Reads a payload written by [`Change`]'s `Display`; `None` for anything else.
    pub fn parse(payload: &str) -> Option<Change> {
        let (kind, id) = payload.split_once(':')?;
        let id = id.to_string();
        match kind {
            "key" => Some(Change::ApiKey { id }),
            "token" => Some(Change::AgentToken { id }),
            "agent" => Some(Change::Agent { id }),
            "session" => {
                // Org ids are minted by the gateway and hold no `:`; a session id may.
                let (org_id, id) = id.split_once(':')?;
                Some(Change::Session {
                    org_id: org_id.to_string(),
                    id: id.to_string(),
                })
            }
            "policy" => Some(Change::Policy { org_id: id }),
            "security" => Some(Change::SecuritySettings { org_id: id }),
            _ => None,
        }
    }
}

/// The payload: `kind:id`, short (NOTIFY payloads are capped at 8000 bytes) and free of secrets
/// (ids only, never a digest).
impl fmt::Display for Change {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ApiKey { id } => write!(formatter, "key:{id}"),
            Change::AgentToken { id } => write!(formatter, "token:{id}"),
            Change::Agent { id } => write!(formatter, "agent:{id}"),
            Change::Session { org_id, id } => write!(formatter, "session:{org_id}:{id}"),
            Change::Policy { org_id } => write!(formatter, "policy:{org_id}"),
            Change::SecuritySettings { org_id } => write!(formatter, "security:{org_id}"),
        }
    }
}

/// What a listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Change(Change),
    /// A heartbeat (from any replica).
    Ping,
    /// A payload this version does not know (a newer replica during a rolling upgrade).
    Unknown(String),
}

// PostgreSQL only: SQLite has no notifications and needs none (see the module docs).
const NOTIFY_POSTGRES: &str = "SELECT pg_notify($1, $2)";

/// Inside a change's transaction: tells every replica about it once (and only if) it commits.
pub async fn announce(tx: &mut Tx, change: &Change) -> Result<()> {
    if let TxConnection::Postgres(transaction) = &mut tx.connection {
        sqlx::query(NOTIFY_POSTGRES)
            .bind(CHANNEL)
            .bind(change.to_string())
            .execute(&mut **transaction)
            .await?;
    }
    Ok(())
}

/// Sends a heartbeat on the channel, outside any transaction; every listening replica hears it.
pub async fn ping(store: &Store) -> Result<()> {
    if let Db::Postgres(pool) = store.db() {
        sqlx::query(NOTIFY_POSTGRES)
            .bind(CHANNEL)
            .bind(PING)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// A connection listening on [`CHANNEL`] (PostgreSQL). It holds one connection of the pool for
/// as long as it lives.
pub struct Listener {
    inner: PgListener,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Listener")
    }
}

impl Listener {
    /// Connects and starts listening; `None` on SQLite, where there is nothing to listen to.
    /// Once this returns, every change committed afterwards will be heard.
    pub async fn connect(store: &Store) -> Result<Option<Listener>> {
        let Db::Postgres(pool) = store.db() else {
            return Ok(None);
        };
        let mut inner = PgListener::connect_with(pool).await?;
        // A lost connection is reported, not silently replaced: notices sent meanwhile are gone,
        // so the caller must empty its caches before it trusts them again.
        inner.eager_reconnect(false);
        inner.listen(CHANNEL).await?;
        Ok(Some(Listener { inner }))
    }

    /// The next notice; `None` when the connection was lost (drop this listener and connect a
    /// new one).
    pub async fn next(&mut self) -> Result<Option<Notice>> {
        let Some(notification) = self.inner.try_recv().await? else {
            return Ok(None);
        };
        let payload = notification.payload();
        Ok(Some(if payload == PING {
            Notice::Ping
        } else {
            match Change::parse(payload) {
                Some(change) => Notice::Change(change),
                None => Notice::Unknown(payload.to_string()),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn payloads_read_back_as_the_change() {
        for change in [
            Change::ApiKey { id: "k".into() },
            Change::AgentToken { id: "t".into() },
            Change::Agent { id: "a".into() },
            Change::Policy { org_id: "o".into() },
            Change::Session {
                org_id: "o".into(),
                id: "a:b c".into(),
            },
        ] {
            assert_eq!(Change::parse(&change.to_string()), Some(change));
        }
        assert_eq!(Change::parse("ping"), None);
        assert_eq!(Change::parse("future:x"), None);
    }
}
