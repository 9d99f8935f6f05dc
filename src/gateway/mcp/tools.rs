//! What each upstream's `tools/list` said about its tools' effects (the `readOnlyHint` and
//! `destructiveHint` annotations) and the arguments they mirror in headers ([`params`]), kept in the database ([`crate::store::mcp::tools`]) so every
//! replica decides with the same hints and a restart forgets none. Each answer updates the
//! hints of the tools it lists (a paginated list updates page by page), only upwards: a lower
//! hint or none leaves the stored one, since the calling agent shapes the list it gets (protocol
//! version, cursor). Re-registering the server starts afresh. Bounded: so many tools per server.
//!
//! A tool is known by its name key: the canonical action name in lower case, the form policy
//! rules and classification match. A call naming `"Delete_File"` or `"delete_file "` finds the
//! hint of `delete_file`, and two listed names that differ only in case keep the higher effect.
//! A hint is only ever *stated* to the check, which can raise the effect the tool's name
//! classifies as, never lower it: an upstream claiming `readOnlyHint` for `delete_repo` does not
//! make it a read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::actions::Effect;
use crate::api::mcp::hinted_effect;
use crate::guardian::canonical;
use crate::store::{
    self,
    mcp::tools::{Learned, LearnedParams},
};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::ApiResult;
use super::params;

/// The most tools whose hints are kept for one server.
pub const MAX_TOOLS_PER_SERVER: usize = 1024;

/// The key a tool's hint is stored under; `None` for a name no check accepts.
pub fn name_key(name: &str) -> Option<String> {
    canonical::action_name(name)
        .ok()
        .map(|name| name.to_lowercase())
}

/// The hints `tools` (a `tools/list` result's `tools`) state, by name key: `None` for a tool
/// listed without one. Names differing only in case or spacing share a key and its highest
/// effect.
fn stated(tools: &[Value]) -> BTreeMap<String, Option<Effect>> {
    let mut stated: BTreeMap<String, Option<Effect>> = BTreeMap::new();
    for tool in tools {
        let Some(key) = tool.get("name").and_then(Value::as_str).and_then(name_key) else {
            continue;
        };
        let hint = hinted_effect(tool);
        let entry = stated.entry(key).or_insert(hint);
        *entry = (*entry).max(hint);
    }
    stated
}

/// What `stated` changes of the `known` hints, within [`MAX_TOOLS_PER_SERVER`].
fn changes(known: &BTreeMap<String, String>, stated: BTreeMap<String, Option<Effect>>) -> Learned {
    let mut learned = Learned::default();
    let mut room = MAX_TOOLS_PER_SERVER.saturating_sub(known.len());
    for (key, hint) in stated {
        match (known.get(&key), hint) {
            (Some(old), Some(new)) if old == new.as_str() => {}
            // Only upwards: the list is one the calling agent shapes (protocol version, cursor,
            // page), so a later list must not lower what an earlier one said.
            (Some(old), Some(new)) => {
                if old.parse::<Effect>().is_ok_and(|old| new > old) {
                    learned.set.insert(key, new.as_str().to_string());
                }
            }
            (None, Some(new)) if room > 0 => {
                room -= 1;
                learned.set.insert(key, new.as_str().to_string());
            }
            // Full: the tool keeps the effect its name classifies as.
            (None, Some(_)) => {}
            // A list that omits a hint keeps it, for the same reason.
            (Some(_), None) | (None, None) => {}
        }
    }
    learned
}

/// Learns the hints of `tools` (a `tools/list` answer of the org's server `server_id`). Only
/// what changed is written (a list that says what the database already holds writes nothing).
pub async fn learn(
    state: &AppState,
    caller: &Caller,
    server_id: &str,
    tools: &[Value],
) -> ApiResult<()> {
    let known = store::mcp::tools::hints(&state.store, &caller.org_id, server_id).await?;
    let learned = changes(&known, stated(tools));
    store::mcp::tools::learn(
        &state.store,
        &caller.org_id,
        server_id,
        &learned,
        &caller.actor(),
    )
    .await?;
    let known =
        store::mcp::tools::params_of_server(&state.store, &caller.org_id, server_id).await?;
    let learned = params_changes(&known, tools);
    store::mcp::tools::learn_params(&state.store, &caller.org_id, server_id, &learned).await?;
    Ok(())
}

/// What `tools` (a `tools/list` answer) changes of the `known` mirrored arguments (name key →
/// JSON text): a listed tool's declarations replace what was known of it (the last list says
/// how the server reads its headers; one that drops them leaves the gateway sending none,
/// which a server reading them refuses rather than misroutes), within
/// [`MAX_TOOLS_PER_SERVER`].
fn params_changes(known: &BTreeMap<String, String>, tools: &[Value]) -> LearnedParams {
    let mut learned = LearnedParams::default();
    let mut room = MAX_TOOLS_PER_SERVER.saturating_sub(known.len());
    for tool in tools {
        let Some(key) = tool.get("name").and_then(Value::as_str).and_then(name_key) else {
            continue;
        };
        let declared = params::declared(tool).unwrap_or_default();
        if declared.is_empty() {
            if known.contains_key(&key) && !learned.cleared.contains(&key) {
                learned.cleared.push(key);
            }
            continue;
        }
        let Ok(text) = serde_json::to_string(&declared) else {
            continue;
        };
        if known.get(&key) == Some(&text) {
            continue;
        }
        if !known.contains_key(&key) && !learned.set.contains_key(&key) {
            if room == 0 {
                continue;
            }
            room -= 1;
        }
        learned.set.insert(key, text);
    }
    learned
}

/// The arguments the tool `name_key` of the org's server mirrors in `Mcp-Param-*` headers, as
/// its last `tools/list` declared them (none when it never did).
pub async fn declared_params(
    state: &AppState,
    org_id: &str,
    server_id: &str,
    name_key: &str,
) -> ApiResult<params::Declared> {
    let stored = store::mcp::tools::params(&state.store, org_id, server_id, name_key).await?;
    // Text this gateway did not write declares nothing: no header is made from it.
    Ok(stored
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// The effect the org's server `server_id` stated for `tool` (as the caller named it), if any.
pub async fn hint(
    state: &AppState,
    org_id: &str,
    server_id: &str,
    tool: &str,
) -> ApiResult<Option<Effect>> {
    let Some(key) = name_key(tool) else {
        return Ok(None);
    };
    let stored = store::mcp::tools::hint(&state.store, org_id, server_id, &key).await?;
    // A value this gateway did not write counts as no hint: the name's own classification.
    Ok(stored.and_then(|effect| effect.parse().ok()))
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
    fn names_differing_in_case_or_spacing_share_a_key_and_the_higher_effect() {
        assert_eq!(name_key(" Delete_File "), Some("delete_file".to_string()));
        assert_eq!(name_key("delete\u{200B}_file"), None);
        let tools = [
            json!({"name": "wipe", "annotations": {"readOnlyHint": true}}),
            json!({"name": " WIPE", "annotations": {"destructiveHint": true}}),
            json!({"name": "plain"}),
        ];
        let stated = stated(&tools);
        assert_eq!(stated["wipe"], Some(Effect::Destructive));
        assert_eq!(stated["plain"], None);
    }

    #[test]
    fn only_changes_are_written_and_the_bound_holds() {
        let known: BTreeMap<String, String> = [
            ("same".to_string(), "read".to_string()),
            ("changed".to_string(), "read".to_string()),
            ("dropped".to_string(), "destructive".to_string()),
        ]
        .into();
        let learned = changes(
            &known,
            [
                ("same".to_string(), Some(Effect::Read)),
                ("changed".to_string(), Some(Effect::Destructive)),
                ("dropped".to_string(), None),
                ("new".to_string(), Some(Effect::Mutating)),
            ]
            .into(),
        );
        assert_eq!(
            learned.set,
            BTreeMap::from([
                ("changed".to_string(), "destructive".to_string()),
                ("new".to_string(), "mutating".to_string()),
            ])
        );
        // A lower hint or none at all changes nothing.
        let learned = changes(
            &BTreeMap::from([("wipe".to_string(), "destructive".to_string())]),
            [("wipe".to_string(), Some(Effect::Read))].into(),
        );
        assert!(learned.is_empty());

        let full: BTreeMap<String, String> = (0..MAX_TOOLS_PER_SERVER)
            .map(|index| (format!("t{index}"), "read".to_string()))
            .collect();
        let learned = changes(&full, [("extra".to_string(), Some(Effect::Read))].into());
        assert!(learned.is_empty());
    }
}
