//! What each upstream's `tools/list` said about its tools' effects (the `readOnlyHint` and
//! `destructiveHint` annotations), kept in memory per (org, server) and replaced by every
//! `tools/list` answer. Bounded: so many servers and so many tools per server, no more.
//!
//! A hint is only ever *stated* to the check, which can raise the effect the tool's name
//! classifies as, never lower it: an upstream claiming `readOnlyHint` for `delete_repo` does not
//! make it a read.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::actions::Effect;
use crate::api::mcp::hinted_effect;
use crate::guardian::canonical;

/// The most servers whose tools are remembered (per replica).
const MAX_SERVERS: usize = 4096;
/// The most tools remembered of one server.
const MAX_TOOLS_PER_SERVER: usize = 1024;

#[derive(Debug, Default)]
pub struct ToolCache {
    servers: Mutex<HashMap<(String, String), HashMap<String, Effect>>>,
}

impl ToolCache {
    /// Remembers the hints of `tools` (a `tools/list` result's `tools`), replacing what was
    /// known of this server.
    pub fn learn(&self, org_id: &str, server_id: &str, tools: &[serde_json::Value]) {
        let hints: HashMap<String, Effect> = tools
            .iter()
            .filter_map(|tool| {
                let name = tool.get("name")?.as_str()?;
                let name = canonical::action_name(name).ok()?;
                Some((name, hinted_effect(tool)?))
            })
            .take(MAX_TOOLS_PER_SERVER)
            .collect();
        let Ok(mut servers) = self.servers.lock() else {
            return;
        };
        let key = (org_id.to_string(), server_id.to_string());
        if servers.len() >= MAX_SERVERS && !servers.contains_key(&key) {
            // Full: start over rather than grow. Forgetting a hint costs only the name's own
            // classification until the next tools/list, never an allow the name would not get.
            servers.clear();
        }
        servers.insert(key, hints);
    }

    /// The hinted effect of `tool` (canonical name) on this server, when known.
    pub fn hint(&self, org_id: &str, server_id: &str, tool: &str) -> Option<Effect> {
        let servers = self.servers.lock().ok()?;
        servers
            .get(&(org_id.to_string(), server_id.to_string()))?
            .get(tool)
            .copied()
    }

    pub fn forget(&self, org_id: &str, server_id: &str) {
        if let Ok(mut servers) = self.servers.lock() {
            servers.remove(&(org_id.to_string(), server_id.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hints_map_to_effects_and_contradictions_take_the_higher() {
        let tool =
            |annotations: serde_json::Value| json!({"name": "t", "annotations": annotations});
        assert_eq!(hinted_effect(&json!({"name": "t"})), None);
        assert_eq!(
            hinted_effect(&tool(json!({"readOnlyHint": true}))),
            Some(Effect::Read)
        );
        assert_eq!(
            hinted_effect(&tool(json!({"destructiveHint": true}))),
            Some(Effect::Destructive)
        );
        assert_eq!(
            hinted_effect(&tool(
                json!({"readOnlyHint": true, "destructiveHint": true})
            )),
            Some(Effect::Destructive)
        );
        assert_eq!(
            hinted_effect(&tool(
                json!({"readOnlyHint": false, "destructiveHint": false})
            )),
            Some(Effect::Mutating)
        );
    }

    #[test]
    fn servers_are_kept_apart_by_org() {
        let cache = ToolCache::default();
        let tools = [json!({"name": " wipe ", "annotations": {"destructiveHint": true}})];
        cache.learn("org-a", "s", &tools);
        assert_eq!(cache.hint("org-a", "s", "wipe"), Some(Effect::Destructive));
        assert_eq!(cache.hint("org-b", "s", "wipe"), None);
        cache.forget("org-a", "s");
        assert_eq!(cache.hint("org-a", "s", "wipe"), None);
    }
}
