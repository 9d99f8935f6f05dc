//! Property tests of delegations: random trees of delegations, revocations and time never yield
//! a delegation wider or longer-lived than what it was built on, and a check in a delegation
//! session never allows a call that its root grant does not cover, that breaks a restriction of
//! the chain, that the policy alone would refuse, or that comes after the delegation ended.

use proptest::prelude::*;

use crate::api::actions::Effect;
use crate::api::delegations::Restrictions;
use crate::api::policies::{PolicyDocument, SessionMode};

use super::delegation::{Delegator, Parent, Request, attenuate};
use super::scope::covering_entry;
use super::*;

const NOW: i64 = 1_000_000;
const CASES: u32 = 256;

/// Every capability the properties draw from.
const UNIVERSE: [&str; 10] = [
    "files:read",
    "files:write",
    "files:delete",
    "email:send",
    "send_email",
    "web:search",
    "deploy:prod",
    "shell:exec",
    "*:read",
    "*:*",
];
const AGENTS: usize = 6;

fn agent(index: usize) -> String {
    format!("agent-{index}")
}

/// The members of `UNIVERSE` selected by a bit mask.
fn subset(mask: u16) -> Vec<String> {
    UNIVERSE
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, capability)| capability.to_string())
        .collect()
}

fn is_subset(part: &[String], whole: &[String]) -> bool {
    part.iter().all(|item| whole.contains(item))
}

// ---------------------------------------------------------------------------------------------
// (a) Attenuation over random trees.

#[derive(Debug, Clone)]
enum Step {
    /// A delegation under node `parent % (nodes + 1)` (the last choice: a root delegation by
    /// agent-0). `from` is the parent's delegate unless `impostor` names another agent.
    Create {
        parent: usize,
        scope: u16,
        ttl: i64,
        to: usize,
        impostor: Option<usize>,
        restrictions: u8,
    },
    Revoke(usize),
    Advance(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (
            any::<usize>(),
            any::<u16>(),
            -10i64..5_000,
            0..AGENTS,
            proptest::option::weighted(0.1, 0..AGENTS),
            0u8..4,
        )
            .prop_map(|(parent, scope, ttl, to, impostor, restrictions)| Step::Create {
                parent,
                scope,
                ttl,
                to,
                impostor,
                restrictions,
            }),
        1 => any::<usize>().prop_map(Step::Revoke),
        1 => (0i64..3_000).prop_map(Step::Advance),
    ]
}

/// Restriction choices: none, a valid one, two invalid ones.
fn restrictions(choice: u8) -> Restrictions {
    let paths = |glob: &str| Some(vec![glob.to_string()]);
    match choice {
        0 => Restrictions::default(),
        1 => Restrictions {
            paths: paths("/tmp/*"),
            max_calls: Some(5),
            ..Restrictions::default()
        },
        2 => Restrictions {
            paths: paths("tmp/*"),
            ..Restrictions::default()
        },
        _ => Restrictions {
            max_calls: Some(0),
            ..Restrictions::default()
        },
    }
}

/// An accepted delegation.
#[derive(Debug, Clone)]
struct Node {
    parent: Option<usize>,
    to: String,
    scope: Vec<String>,
    expires_at: i64,
    depth: i64,
    /// Each link's delegator, then this delegation's delegate.
    agents: Vec<String>,
    revoked: bool,
}

/// Active: neither it nor an ancestor revoked (the store's cascade), and not expired.
fn active(nodes: &[Node], index: usize, now: i64) -> bool {
    let mut cursor = Some(index);
    while let Some(at) = cursor {
        if nodes[at].revoked {
            return false;
        }
        cursor = nodes[at].parent;
    }
    now < nodes[index].expires_at
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn attenuation_never_widens_a_root_grant(
        root_mask in 1u16..(1 << UNIVERSE.len()),
        max_depth in 1i64..6,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let root = subset(root_mask);
        // Every other agent holds every capability of its own: a re-delegation must still be
        // bounded by its parent, not by its delegator's own capabilities.
        let everything = subset(u16::MAX);
        let mut nodes: Vec<Node> = Vec::new();
        let mut now = NOW;
        for step in steps {
            match step {
                Step::Advance(seconds) => now += seconds,
                Step::Revoke(index) => {
                    if !nodes.is_empty() {
                        let index = index % nodes.len();
                        nodes[index].revoked = true;
                    }
                }
                Step::Create { parent, scope, ttl, to, impostor, restrictions: choice } => {
                    let parent = parent % (nodes.len() + 1);
                    let parent = (parent < nodes.len()).then_some(parent);
                    let from = match (parent, impostor) {
                        (_, Some(impostor)) => agent(impostor),
                        (Some(parent), None) => nodes[parent].to.clone(),
                        (None, None) => agent(0),
                    };
                    let to = agent(to);
                    let scope = subset(scope);
                    let restrictions = restrictions(choice);
                    let delegator = Delegator {
                        agent_id: &from,
                        active: true,
                        capabilities: if from == agent(0) { &root } else { &everything },
                    };
                    let parent_facts = parent.map(|index| {
                        let node = &nodes[index];
                        Parent {
                            id: "parent",
                            active: active(&nodes, index, now),
                            to_agent_id: &node.to,
                            scope: &node.scope,
                            expires_at: node.expires_at,
                            depth: node.depth,
                            chain_agents: &node.agents,
                        }
                    });
                    let request = Request {
                        from_agent_id: &from,
                        to_agent_id: &to,
                        to_agent_active: true,
                        scope: &scope,
                        ttl_seconds: ttl,
                        restrictions: &restrictions,
                    };
                    let Ok(granted) =
                        attenuate(&request, &delegator, parent_facts.as_ref(), max_depth, now)
                    else {
                        continue;
                    };
                    // Only root delegations by the root agent start a chain here.
                    if parent.is_none() && from != agent(0) {
                        continue;
                    }
                    prop_assert!(choice < 2, "invalid restrictions accepted: {restrictions:?}");
                    prop_assert!(!scope.is_empty());
                    prop_assert_ne!(&from, &to);
                    prop_assert!(is_subset(&scope, &root), "{scope:?} is wider than {root:?}");
                    prop_assert_eq!(granted.expires_at, now + ttl);
                    prop_assert!(granted.depth >= 1 && granted.depth <= max_depth);
                    let agents = match parent {
                        None => {
                            prop_assert_eq!(granted.depth, 1);
                            vec![from.clone(), to.clone()]
                        }
                        Some(index) => {
                            let parent = &nodes[index];
                            prop_assert!(active(&nodes, index, now), "built on an inactive parent");
                            prop_assert_eq!(&from, &parent.to);
                            prop_assert!(is_subset(&scope, &parent.scope));
                            prop_assert!(granted.expires_at <= parent.expires_at);
                            prop_assert_eq!(granted.depth, parent.depth + 1);
                            prop_assert!(!parent.agents.contains(&to), "cycle through {to}");
                            let mut agents = parent.agents.clone();
                            agents.push(to.clone());
                            agents
                        }
                    };
                    nodes.push(Node {
                        parent,
                        to,
                        scope,
                        expires_at: granted.expires_at,
                        depth: granted.depth,
                        agents,
                        revoked: false,
                    });
                }
            }
            // Whatever happened, no active delegation hangs below an inactive one (revocation
            // cascades; expiry never exceeds the parent's), and none is wider than the root.
            for (index, node) in nodes.iter().enumerate() {
                prop_assert!(is_subset(&node.scope, &root));
                if let Some(parent) = node.parent {
                    prop_assert!(node.expires_at <= nodes[parent].expires_at);
                    prop_assert!(
                        !active(&nodes, index, now) || active(&nodes, parent, now),
                        "active delegation {index} under inactive {parent}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Enforcement in `decide`.

const ACTIONS: [&str; 12] = [
    "files_read",
    "readFile",
    "FILES_READ",
    "files_write",
    "files_delete",
    "send_email",
    "web_search",
    "deploy_prod",
    "shell",
    "shell_exec",
    "grant_role",
    "list_processes",
];

/// Summaries and the normalized absolute paths in them (the oracle's own reading).
const SUMMARIES: [(&str, &[&str]); 8] = [
    ("", &[]),
    ("notes.txt", &[]),
    ("cat /tmp/x", &["/tmp/x"]),
    ("/tmp/a/b", &["/tmp/a/b"]),
    ("/etc/passwd", &["/etc/passwd"]),
    ("/tmp/../etc/passwd", &["/etc/passwd"]),
    ("rm -rf /tmp/x", &["/tmp/x"]),
    ("diff /tmp/a /srv/b", &["/tmp/a", "/srv/b"]),
];

const TOOL_GLOBS: [&str; 4] = ["files_*", "*", "web_*", "send_email"];
const PATH_GLOBS: [&str; 3] = ["/tmp/*", "/tmp/**", "/srv/*"];

/// Independent readings of the restriction globs used here.
fn tool_glob_matches(glob: &str, action: &str) -> bool {
    let action = action.to_lowercase();
    match glob.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => action == glob,
    }
}

fn path_glob_matches(glob: &str, path: &str) -> bool {
    if let Some(prefix) = glob.strip_suffix("**") {
        path.starts_with(prefix) && path.len() > prefix.len()
    } else if let Some(prefix) = glob.strip_suffix('*') {
        path.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    } else {
        path == glob
    }
}

/// An independent reading of scope coverage for the entries and actions used here.
fn oracle_covers(entry: &str, action: &str, effect: Effect) -> bool {
    let Some((resource, verb)) = entry.split_once(':') else {
        return effect <= Effect::Mutating && entry.eq_ignore_ascii_case(action);
    };
    let most = match verb {
        "send" | "exec" | "write" => Effect::Mutating,
        "delete" => Effect::Destructive,
        "*" => Effect::Admin,
        _ => Effect::Read,
    };
    if effect > most {
        return false;
    }
    if resource == "*" {
        return true;
    }
    let mut words = vec![String::new()];
    let mut previous_lower = false;
    for character in action.chars() {
        if character == '_' || (character.is_uppercase() && previous_lower) {
            words.push(String::new());
        }
        previous_lower = character.is_lowercase();
        if character != '_' {
            words
                .last_mut()
                .expect("one word")
                .extend(character.to_lowercase());
        }
    }
    words.iter().any(|word| {
        word == resource || format!("{word}s") == resource || format!("{resource}s") == *word
    })
}

fn pick<T: Clone>(items: &[T], mask: u8) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, item)| item.clone())
        .collect()
}

fn restriction() -> impl Strategy<Value = Restrictions> {
    // Dense masks (three bits in four) so that many calls pass and the allowed ones are many.
    let dense = || (any::<u8>(), any::<u8>()).prop_map(|(a, b)| a | b);
    (
        proptest::option::weighted(0.3, dense()),
        proptest::option::weighted(0.3, dense()),
        proptest::option::weighted(0.3, 1u64..10),
        proptest::option::weighted(0.5, any::<u8>()),
    )
        .prop_map(|(tools, effects, max_calls, paths)| Restrictions {
            tools: tools.map(|mask| {
                pick(&TOOL_GLOBS, mask)
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            }),
            effects: effects.map(|mask| pick(&Effect::ALL, mask)),
            max_calls,
            paths: paths.map(|mask| {
                pick(&PATH_GLOBS, mask)
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            }),
            ..Restrictions::default()
        })
}

/// A policy that allows admin calls (so only the delegation stands in their way), denies
/// anything touching `/etc`, and otherwise keeps the defaults.
fn policies() -> [CompiledPolicy; 2] {
    let document: PolicyDocument = serde_json::from_str(
        r#"{"rules": [
            {"id": "no-etc", "input": {"contains": ["/etc"]}, "decision": "deny"},
            {"id": "admin-ok", "effects": ["admin"], "decision": "allow"}]}"#,
    )
    .expect("parses");
    [
        CompiledPolicy::default(),
        compile(&document).expect("compiles"),
    ]
}

#[derive(Debug, Clone)]
struct Call {
    root: Vec<String>,
    scope: Vec<String>,
    chain: Vec<Restrictions>,
    action: &'static str,
    summary: usize,
    stated: Option<Effect>,
    mode: SessionMode,
    total_calls: i64,
    approved: bool,
    policy: usize,
}

fn call() -> impl Strategy<Value = Call> {
    (
        (1u16..(1 << UNIVERSE.len()), any::<u16>(), any::<u16>()),
        proptest::collection::vec(restriction(), 0..4),
        proptest::sample::select(ACTIONS.to_vec()),
        0..SUMMARIES.len(),
        proptest::option::of(proptest::sample::select(Effect::ALL.to_vec())),
        prop_oneof![
            4 => Just(SessionMode::Standard),
            1 => Just(SessionMode::ReadOnly),
            1 => Just(SessionMode::Elevated),
            1 => Just(SessionMode::Locked),
        ],
        (0i64..6, any::<bool>(), 0usize..2),
    )
        .prop_map(
            |(
                (root, keep, also_keep),
                chain,
                action,
                summary,
                stated,
                mode,
                (total_calls, approved, policy),
            )| {
                Call {
                    root: subset(root),
                    // The delegation's scope is part of its root grant (most of it).
                    scope: subset(root & (keep | also_keep)),
                    chain,
                    action,
                    summary,
                    stated,
                    mode,
                    total_calls,
                    approved,
                    policy,
                }
            },
        )
}

fn check(
    call: &Call,
    policy: &CompiledPolicy,
    delegation: Option<DelegationFacts<'_>>,
) -> Decision {
    // Without the delegation, the baseline is the agent holding the scope itself: the policy's
    // decision for an agent with those capabilities.
    let capabilities: &[String] = if delegation.is_some() {
        &[]
    } else {
        &call.scope
    };
    let calls_made = vec![call.total_calls; call.chain.len()];
    decide(&CheckInput {
        agent: Some(AgentFacts {
            id: "agent-1",
            name: "delegate",
            framework: "custom",
            capabilities,
            active: true,
            mode: SessionMode::Standard,
        }),
        token_scopes: None,
        action_name: call.action,
        input_summary: SUMMARIES[call.summary].0,
        stated_effect: call.stated,
        session_id: Some("sess-1"),
        session: Some(SessionFacts {
            agent_id: "agent-1",
            mode: call.mode,
            scope_ceiling: None,
            registered: true,
            delegation: delegation.map(|facts| DelegationFacts {
                calls_made: &calls_made,
                ..facts
            }),
            federation: None,
        }),
        approval: if call.approved {
            ApprovalState::Approved {
                id: "ap-1",
                grant_expires_at: NOW + 60,
            }
        } else {
            ApprovalState::None
        },
        policy,
        now: NOW,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn a_delegation_session_never_exceeds_its_grant_its_restrictions_or_the_policy(
        call in call(),
    ) {
        let policies = policies();
        let policy = &policies[call.policy];
        let facts = DelegationFacts {
            id: "del-1",
            active: true,
            inactive_because: "",
            scope: &call.scope,
            restrictions: &call.chain,
            calls_made: &[],
        };
        let decision = check(&call, policy, Some(facts));
        let without = check(&call, policy, None);
        // The delegation only ever takes away: any decision it does not make itself is the
        // policy's decision without it.
        if decision.rule.starts_with("delegation:") {
            prop_assert!(!decision.allowed && !decision.elevation_required);
            prop_assert!(decision.counts_as_denial);
        } else {
            prop_assert_eq!(&decision, &without);
        }
        if decision.allowed {
            let effect = decision.effect;
            prop_assert!(
                call.root.iter().any(|entry| oracle_covers(entry, call.action, effect)),
                "{} ({effect}) allowed outside the root grant {:?}", call.action, call.root
            );
            prop_assert!(covering_entry(&call.scope, call.action, effect).is_some());
            let paths = SUMMARIES[call.summary].1;
            for restriction in &call.chain {
                if let Some(tools) = &restriction.tools {
                    prop_assert!(tools.iter().any(|glob| tool_glob_matches(glob, call.action)));
                }
                if let Some(effects) = &restriction.effects {
                    prop_assert!(effects.contains(&effect));
                }
                if let Some(max_calls) = restriction.max_calls {
                    prop_assert!(call.total_calls < max_calls as i64);
                }
                if let Some(globs) = &restriction.paths {
                    for path in paths {
                        prop_assert!(
                            globs.iter().any(|glob| path_glob_matches(glob, path)),
                            "{path} allowed outside {globs:?}"
                        );
                    }
                }
            }
        }
        // An ended delegation allows nothing, and the ending never counts as a denial.
        for because in ["revoked", "expired"] {
            let ended = check(&call, policy, Some(DelegationFacts {
                active: false,
                inactive_because: because,
                ..facts
            }));
            prop_assert!(!ended.allowed && !ended.elevation_required);
            prop_assert_eq!(ended.rule, format!("delegation:{because}"));
            prop_assert!(!ended.counts_as_denial);
        }
    }
}
