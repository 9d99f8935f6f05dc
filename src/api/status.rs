//! The statuses of the wire objects as types: one name for each value through every layer, and
//! a lenient `Other` for what a newer or hosted gateway may send, so the CLI reads it, shows it
//! and keeps it in `-o json` instead of failing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a wire enum of unit values with a lenient `Other(String)`: `as_str`, `Display`,
/// `From<&str>` and serde as the plain string.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
            /// A value this version does not know, kept as sent.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> $name {
                match text {
                    $($text => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok($name::from(text.as_str()))
            }
        }
    };
}

wire_enum! {
    /// An agent's status: it may act, or never again.
    AgentStatus {
        Active => "active",
        Revoked => "revoked",
    }
}

impl Default for AgentStatus {
    /// What the SDKs assume when a gateway omits it.
    fn default() -> AgentStatus {
        AgentStatus::Active
    }
}

/// Absent on the wire: said as such rather than guessed.
fn unknown() -> String {
    "unknown".to_string()
}

impl Default for DelegationStatus {
    fn default() -> DelegationStatus {
        DelegationStatus::Other(unknown())
    }
}

impl Default for ApprovalStatus {
    fn default() -> ApprovalStatus {
        ApprovalStatus::Other(unknown())
    }
}

wire_enum! {
    /// A delegation's status as of now: revoked (itself or through an ancestor) and expired
    /// end it.
    DelegationStatus {
        Active => "active",
        Revoked => "revoked",
        Expired => "expired",
    }
}

wire_enum! {
    /// A human approval's status: pending until decided or past its expiry.
    ApprovalStatus {
        Pending => "pending",
        Approved => "approved",
        Denied => "denied",
        Expired => "expired",
    }
}

wire_enum! {
    /// An A2A task's status in the legacy (`tasks/*`) shape: waiting for the target, being
    /// worked on by it, or ended one of three ways.
    TaskStatus {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl TaskStatus {
    /// Whether the task has ended (nothing can change it any more).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// The A2A v1.0 task state of this status (`message/send` answers).
    pub fn v1_state(&self) -> &str {
        match self {
            TaskStatus::Pending => "submitted",
            TaskStatus::Running => "working",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "canceled",
            TaskStatus::Other(text) => text,
        }
    }
}

impl Default for TaskStatus {
    fn default() -> TaskStatus {
        TaskStatus::Other(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip_and_unknown_ones_are_kept() {
        let status: ApprovalStatus = serde_json::from_str("\"approved\"").unwrap();
        assert_eq!(status, ApprovalStatus::Approved);
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"approved\"");
        let newer: AgentStatus = serde_json::from_str("\"suspended\"").unwrap();
        assert_eq!(newer, AgentStatus::Other("suspended".to_string()));
        assert_eq!(newer.to_string(), "suspended");
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"suspended\"");
    }
}
