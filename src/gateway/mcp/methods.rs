//! The MCP methods the proxy forwards, by name: the client-to-server requests and notifications
//! of the revisions it speaks (2025-03-26, 2025-06-18, 2025-11-25, 2026-07-28), each with what
//! the gateway does with it. The set is explicit: a method outside it — a made-up one under a
//! known prefix too — is answered by the gateway and never reaches the upstream.
//!
//! Reads that make the upstream reveal data on the agent's behalf (`resources/read`,
//! `prompts/get`) are checked like a tool call, under an action name that is the method itself:
//! it carries a `/`, which MCP tool names may not (2025-11-25: letters, digits, `_`, `-`, `.`),
//! and a tool named under `resources/` or `prompts/` (an older upstream's, or an agent's
//! invention) is neither listed nor called, so a rule for one (`resources/*` too) can never be
//! met by the other.

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Checked, forwarded, recorded.
    ToolsCall,
    /// Forwarded; the answer keeps the tools the agent may call.
    ToolsList,
    /// Forwarded; a session the upstream assigns is replaced by the gateway's.
    Initialize,
    /// Checked like a tool call, as the given read.
    Read(Read),
    /// A follow-up of a task (2025-11-25): only the agent that created it may send it.
    Task,
    /// Forwarded; the answer keeps the tasks of the calling agent.
    TasksList,
    /// A long-lived stream of notifications (2026-07-28 `subscriptions/listen`).
    Stream,
    /// Forwarded, the answer relayed as is: handshakes, listings, settings.
    Pass,
}

/// A read checked like a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `resources/read`: the input is the resource's URI.
    Resource,
    /// `prompts/get`: the input is the prompt's name and arguments.
    Prompt,
}

impl Read {
    /// The action name the check sees (and rules target).
    pub fn action_name(self) -> &'static str {
        match self {
            Read::Resource => "resources/read",
            Read::Prompt => "prompts/get",
        }
    }
}

/// The route of the request `method`; `None` for a method the gateway does not forward.
pub fn route(method: &str) -> Option<Route> {
    Some(match method {
        "tools/call" => Route::ToolsCall,
        "tools/list" => Route::ToolsList,
        "initialize" => Route::Initialize,
        "resources/read" => Route::Read(Read::Resource),
        "prompts/get" => Route::Read(Read::Prompt),
        "tasks/get" | "tasks/result" | "tasks/cancel" => Route::Task,
        "tasks/list" => Route::TasksList,
        "subscriptions/listen" => Route::Stream,
        // Listings reveal what exists, not what it holds; a subscription only that a resource
        // changed (reading it is checked); `server/discover` is the 2026-07-28 probe.
        "ping"
        | "server/discover"
        | "completion/complete"
        | "logging/setLevel"
        | "resources/list"
        | "resources/templates/list"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "prompts/list" => Route::Pass,
        _ => return None,
    })
}

/// Whether `method` is a notification a client may send a server (2025-11-25 adds the status
/// of the client's own tasks).
pub fn is_client_notification(method: &str) -> bool {
    matches!(
        method,
        "notifications/initialized"
            | "notifications/cancelled"
            | "notifications/progress"
            | "notifications/roots/list_changed"
            | "notifications/tasks/status"
    )
}

/// Whether a tool name falls in the action names the gateway reserves for checked reads (see
/// the module docs): `name_key` is the canonical name in lower case, the form rules match.
pub fn is_reserved_tool_name(name_key: &str) -> bool {
    name_key.starts_with("resources/") || name_key.starts_with("prompts/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_methods_are_forwarded() {
        assert_eq!(route("tools/call"), Some(Route::ToolsCall));
        assert_eq!(route("resources/read"), Some(Route::Read(Read::Resource)));
        assert_eq!(route("prompts/get"), Some(Route::Read(Read::Prompt)));
        assert_eq!(route("tasks/result"), Some(Route::Task));
        assert_eq!(route("resources/list"), Some(Route::Pass));
        for made_up in [
            "resources/delete",
            "prompts/run",
            "tasks/purge",
            "tools/call/",
            "sampling/createMessage",
            "Tools/Call",
        ] {
            assert_eq!(route(made_up), None, "{made_up}");
        }
        assert!(is_client_notification("notifications/cancelled"));
        assert!(!is_client_notification("notifications/made_up"));
        assert!(is_reserved_tool_name("resources/read"));
        assert!(is_reserved_tool_name("prompts/anything"));
        assert!(!is_reserved_tool_name("github/create_issue"));
        assert!(!is_reserved_tool_name("read_file"));
    }
}
