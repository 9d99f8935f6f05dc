//! `agenttrust delegations tree`: delegations arranged as trees by `parent_delegation_id`,
//! rendered as an indented tree or as nested JSON.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::api::delegations::{Delegation, Restrictions};
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
        or_dash(Some(&delegation.status)),
    ];
    match delegation.status.as_str() {
        "revoked" => parts.push(match delegation.revoked_at.as_deref() {
            Some(at) if !at.is_empty() => format!("(revoked {at})"),
            _ => "(revoked)".to_string(),
        }),
        "expired" if !delegation.expires_at.is_empty() => {
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
                if delegation.status == "active" {
                    count += 1;
                }
            }
        }
        if !grew {
            return count;
        }
    }
}
