//! `agenttrust delegations tree`: delegations arranged as trees by `parent_delegation_id`,
//! rendered as an indented tree or as nested JSON.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::api::delegations::{Delegation, Restrictions};
use crate::api::status::DelegationStatus;
use crate::output::or_dash;

/// A delegation (by its index in the list) and the delegations built on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub index: usize,
    pub children: Vec<Node>,
}

/// Arranges delegations as trees via `parent_delegation_id`: roots are delegations without a
/// parent, or whose parent is not in the list. Roots and siblings are ordered by creation time,
/// then id. A (corrupt) cycle is broken rather than followed.
pub fn forest<'a>(delegations: impl IntoIterator<Item = &'a Delegation>) -> Vec<Node> {
    let delegations: Vec<&Delegation> = delegations.into_iter().collect();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (index, delegation) in delegations.iter().enumerate() {
        // The first occurrence of an id wins.
        by_id.entry(delegation.id.as_str()).or_insert(index);
    }
    let mut children: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut roots = Vec::new();
    for (index, delegation) in delegations.iter().enumerate() {
        if by_id.get(delegation.id.as_str()) != Some(&index) {
            continue; // a duplicate
        }
        match delegation
            .parent_delegation_id
            .as_deref()
            .filter(|parent| !parent.is_empty() && *parent != delegation.id)
            .and_then(|parent| by_id.get(parent))
        {
            Some(&parent) => children.entry(parent).or_default().push(index),
            None => roots.push(index),
        }
    }
    let order = |indices: &mut Vec<usize>| {
        indices.sort_by(|&a, &b| {
            let (a, b) = (delegations[a], delegations[b]);
            (a.created_at.as_str(), a.id.as_str()).cmp(&(b.created_at.as_str(), b.id.as_str()))
        });
    };
    let mut visited = HashSet::new();
    fn build(
        index: usize,
        children: &BTreeMap<usize, Vec<usize>>,
        visited: &mut HashSet<usize>,
        order: &dyn Fn(&mut Vec<usize>),
    ) -> Node {
        visited.insert(index);
        let mut below: Vec<usize> = children
            .get(&index)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|child| !visited.contains(child))
            .collect();
        order(&mut below);
        let mut nodes = Vec::new();
        for child in below {
            if !visited.contains(&child) {
                nodes.push(build(child, children, visited, order));
            }
        }
        Node {
            index,
            children: nodes,
        }
    }
    order(&mut roots);
    let mut trees: Vec<Node> = roots
        .into_iter()
        .map(|root| build(root, &children, &mut visited, &order))
        .collect();
    // Delegations caught in a parent cycle reach no root: show each cycle from one member.
    let mut stranded: Vec<usize> = by_id
        .values()
        .copied()
        .filter(|index| !visited.contains(index))
        .collect();
    order(&mut stranded);
    for index in stranded {
        if !visited.contains(&index) {
            trees.push(build(index, &children, &mut visited, &order));
        }
    }
    trees
}

/// The tree whose root is `root_id` if it contains `target_id`, else whichever tree does.
pub fn tree_containing(
    trees: Vec<Node>,
    delegations: &[&Delegation],
    root_id: &str,
    target_id: &str,
) -> Option<Node> {
    let target = delegations
        .iter()
        .position(|delegation| delegation.id == target_id)?;
    let is_root = |node: &Node| delegations[node.index].id == root_id;
    if let Some(position) = trees
        .iter()
        .position(|tree| is_root(tree) && contains(tree, target))
    {
        return trees.into_iter().nth(position);
    }
    trees.into_iter().find(|tree| contains(tree, target))
}

pub(super) fn contains(node: &Node, index: usize) -> bool {
    node.index == index || node.children.iter().any(|child| contains(child, index))
}

/// Pre-order walk (a parent before its children).
pub(super) fn walk(trees: &[Node], visit: &mut dyn FnMut(&Node)) {
    for node in trees {
        visit(node);
        walk(&node.children, visit);
    }
}

/// Each delegation as the gateway sent it, with its `children` nested.
pub(super) fn nested_json(trees: &[Node], raws: &[&serde_json::Value]) -> Vec<serde_json::Value> {
    trees
        .iter()
        .map(|node| {
            let mut value = raws[node.index].clone();
            let children = serde_json::Value::Array(nested_json(&node.children, raws));
            match &mut value {
                serde_json::Value::Object(map) => {
                    map.insert("children".to_string(), children);
                }
                other => {
                    *other =
                        serde_json::json!({ "delegation": other.clone(), "children": children });
                }
            }
            value
        })
        .collect()
}

/// The trees as indented text, one delegation a line:
/// `ID  FROM → TO  SCOPE  STATUS  EXPIRY  RESTRICTIONS`, children under `├──`/`└──`.
pub fn render_forest(
    trees: &[Node],
    delegations: &[&Delegation],
    names: &HashMap<String, String>,
) -> String {
    fn render(
        node: &Node,
        prefix: &str,
        connector: &str,
        child_prefix: &str,
        delegations: &[&Delegation],
        names: &HashMap<String, String>,
        text: &mut String,
    ) {
        text.push_str(prefix);
        text.push_str(connector);
        text.push_str(&describe_line(delegations[node.index], names));
        text.push('\n');
        let count = node.children.len();
        for (position, child) in node.children.iter().enumerate() {
            let last = position + 1 == count;
            let next_prefix = format!("{prefix}{child_prefix}");
            let (connector, below) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            render(
                child,
                &next_prefix,
                connector,
                below,
                delegations,
                names,
                text,
            );
        }
    }
    let mut text = String::new();
    for tree in trees {
        render(tree, "", "", "", delegations, names, &mut text);
    }
    text
}

/// One line of the tree for a delegation.
pub(super) fn describe_line(delegation: &Delegation, names: &HashMap<String, String>) -> String {
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| or_dash(Some(id)));
    let scope = if delegation.scope.is_empty() {
        "-".to_string()
    } else {
        delegation.scope.join(",")
    };
    let mut parts = vec![
        delegation.id.clone(),
        format!(
            "{} → {}",
            name(&delegation.from_agent_id),
            name(&delegation.to_agent_id)
        ),
        scope,
        delegation.status.to_string(),
    ];
    match delegation.status {
        DelegationStatus::Revoked => parts.push(match delegation.revoked_at.as_deref() {
            Some(at) if !at.is_empty() => format!("(revoked {at})"),
            _ => "(revoked)".to_string(),
        }),
        DelegationStatus::Expired if !delegation.expires_at.is_empty() => {
            parts.push(format!("(expired {})", delegation.expires_at));
        }
        _ if !delegation.expires_at.is_empty() => {
            parts.push(format!("expires {}", delegation.expires_at));
        }
        _ => {}
    }
    let restrictions = restrictions_summary(&delegation.restrictions);
    if !restrictions.is_empty() {
        parts.push(restrictions);
    }
    parts.join("  ")
}

/// `paths=/tmp/* tools=fs_* effects=read max_calls=10 other={…}`; empty when unrestricted.
pub fn restrictions_summary(restrictions: &Restrictions) -> String {
    let mut parts = Vec::new();
    if let Some(paths) = &restrictions.paths {
        parts.push(format!("paths={}", paths.join(",")));
    }
    if let Some(tools) = &restrictions.tools {
        parts.push(format!("tools={}", tools.join(",")));
    }
    if let Some(effects) = &restrictions.effects {
        let effects: Vec<&str> = effects.iter().map(|effect| effect.as_str()).collect();
        parts.push(format!("effects={}", effects.join(",")));
    }
    if let Some(max_calls) = restrictions.max_calls {
        parts.push(format!("max_calls={max_calls}"));
    }
    for (key, value) in &restrictions.extra {
        match value {
            serde_json::Value::String(text) => parts.push(format!("{key}={text}")),
            other => parts.push(format!("{key}={other}")),
        }
    }
    parts.join(" ")
}

/// Active delegations below `id` (through any depth of `parent_delegation_id`).
pub(super) fn active_descendants(delegations: &[Delegation], id: &str) -> usize {
    let mut below: HashSet<&str> = HashSet::from([id]);
    let mut count = 0;
    // Iterate to a fixed point: the list is not ordered parent-first.
    loop {
        let mut grew = false;
        for delegation in delegations {
            if below.contains(delegation.id.as_str()) {
                continue;
            }
            if let Some(parent) = delegation.parent_delegation_id.as_deref()
                && below.contains(parent)
            {
                below.insert(delegation.id.as_str());
                grew = true;
                if delegation.status == DelegationStatus::Active {
                    count += 1;
                }
            }
        }
        if !grew {
            return count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegation(id: &str, parent: Option<&str>, value: serde_json::Value) -> Delegation {
        let mut base = serde_json::json!({
            "id": id, "from_agent_id": "a", "to_agent_id": "b", "org_id": "o",
            "scope": ["files:read"], "status": "active",
            "expires_at": "2026-11-25T21:00:00Z", "created_at": format!("2026-11-25T20:00:0{}Z", id.len() % 10),
        });
        if let Some(parent) = parent {
            base["parent_delegation_id"] = parent.into();
        }
        if let (Some(base), Some(extra)) = (base.as_object_mut(), value.as_object()) {
            for (key, value) in extra {
                base.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn names() -> HashMap<String, String> {
        [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]
            .into_iter()
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect()
    }

    fn render(delegations: &[Delegation]) -> String {
        let items: Vec<&Delegation> = delegations.iter().collect();
        render_forest(&forest(items.iter().copied()), &items, &names())
    }

    #[test]
    fn a_chain_renders_as_an_indented_tree() {
        let delegations = [
            // Children listed before their parents: the order of the list does not matter.
            delegation(
                "d2",
                Some("d1"),
                serde_json::json!({"from_agent_id": "b", "to_agent_id": "c", "status": "revoked",
                                   "revoked_at": "2026-11-25T20:30:00Z"}),
            ),
            delegation(
                "d1",
                None,
                serde_json::json!({"restrictions": {"paths": ["/tmp/*"]}}),
            ),
            delegation(
                "d3",
                Some("d2"),
                serde_json::json!({"from_agent_id": "c", "to_agent_id": "d", "status": "revoked"}),
            ),
        ];
        assert_eq!(
            render(&delegations),
            "d1  A → B  files:read  active  expires 2026-11-25T21:00:00Z  paths=/tmp/*\n\
             └── d2  B → C  files:read  revoked  (revoked 2026-11-25T20:30:00Z)\n\
             \x20   └── d3  C → D  files:read  revoked  (revoked)\n"
        );
    }

    #[test]
    fn siblings_branch_and_the_last_closes() {
        let delegations = [
            delegation(
                "r",
                None,
                serde_json::json!({"created_at": "2026-01-01T00:00:00Z"}),
            ),
            delegation(
                "x",
                Some("r"),
                serde_json::json!({"created_at": "2026-01-01T00:00:01Z"}),
            ),
            delegation(
                "xx",
                Some("x"),
                serde_json::json!({"created_at": "2026-01-01T00:00:03Z"}),
            ),
            delegation(
                "y",
                Some("r"),
                serde_json::json!({"created_at": "2026-01-01T00:00:02Z",
                                                           "status": "expired"}),
            ),
            delegation(
                "s",
                None,
                serde_json::json!({"created_at": "2026-01-02T00:00:00Z",
                                                      "to_agent_id": "unknown-agent",
                                                      "restrictions": {"max_calls": 3,
                                                      "effects": ["read"], "tools": ["fs_*"],
                                                      "ip": "10.0.0.0/8"}}),
            ),
        ];
        let text = render(&delegations);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("r  A → B"), "{text}");
        assert!(lines[1].starts_with("├── x  "), "{text}");
        assert!(lines[2].starts_with("│   └── xx  "), "{text}");
        assert!(lines[3].starts_with("└── y  "), "{text}");
        assert!(
            lines[3].ends_with("expired  (expired 2026-11-25T21:00:00Z)"),
            "{text}"
        );
        // Unknown agents show their id; every known and unknown restriction is shown.
        assert_eq!(
            lines[4],
            "s  A → unknown-agent  files:read  active  expires 2026-11-25T21:00:00Z  \
             tools=fs_* effects=read max_calls=3 ip=10.0.0.0/8"
        );
    }

    #[test]
    fn orphans_become_roots_and_cycles_do_not_loop() {
        let delegations = [
            delegation("o", Some("gone"), serde_json::json!({})),
            delegation("p", Some("q"), serde_json::json!({})),
            delegation("q", Some("p"), serde_json::json!({})),
            delegation("self", Some("self"), serde_json::json!({})),
        ];
        let items: Vec<&Delegation> = delegations.iter().collect();
        let trees = forest(items.iter().copied());
        let mut seen = Vec::new();
        walk(&trees, &mut |node| seen.push(items[node.index].id.clone()));
        seen.sort();
        assert_eq!(seen, ["o", "p", "q", "self"]);
        assert_eq!(trees.len(), 3, "{trees:?}");
    }

    #[test]
    fn the_tree_of_a_delegation_is_its_roots() {
        let delegations = [
            delegation("r1", None, serde_json::json!({})),
            delegation(
                "c1",
                Some("r1"),
                serde_json::json!({"delegation_chain": ["r1", "c1"]}),
            ),
            delegation("r2", None, serde_json::json!({})),
            delegation("c2", Some("r2"), serde_json::json!({})),
        ];
        let items: Vec<&Delegation> = delegations.iter().collect();
        let trees = forest(items.iter().copied());
        let tree = tree_containing(trees.clone(), &items, "r1", "c1").unwrap();
        assert_eq!(items[tree.index].id, "r1");
        // A chain root that is not there: the tree found through the parent links.
        let tree = tree_containing(trees.clone(), &items, "missing", "c2").unwrap();
        assert_eq!(items[tree.index].id, "r2");
        assert!(tree_containing(trees, &items, "r1", "nope").is_none());
    }

    #[test]
    fn json_nests_children_and_keeps_every_field() {
        let raws = [
            serde_json::json!({"id": "r", "custom": 1}),
            serde_json::json!({"id": "c", "parent_delegation_id": "r"}),
        ];
        let delegations = [
            delegation("r", None, serde_json::json!({})),
            delegation("c", Some("r"), serde_json::json!({})),
        ];
        let items: Vec<&Delegation> = delegations.iter().collect();
        let trees = forest(items.iter().copied());
        let raw_refs: Vec<&serde_json::Value> = raws.iter().collect();
        let nested = nested_json(&trees, &raw_refs);
        assert_eq!(
            serde_json::Value::Array(nested),
            serde_json::json!([{"id": "r", "custom": 1, "children": [
                {"id": "c", "parent_delegation_id": "r", "children": []}
            ]}])
        );
    }

    #[test]
    fn active_descendants_are_counted_at_any_depth() {
        let delegations = [
            delegation("gc", Some("c"), serde_json::json!({})),
            delegation("r", None, serde_json::json!({})),
            delegation("c", Some("r"), serde_json::json!({})),
            delegation("dead", Some("r"), serde_json::json!({"status": "revoked"})),
            delegation("other", None, serde_json::json!({})),
        ];
        assert_eq!(active_descendants(&delegations, "r"), 2);
        assert_eq!(active_descendants(&delegations, "c"), 1);
        assert_eq!(active_descendants(&delegations, "other"), 0);
    }
}
