//! Attenuation: the rules a new delegation must obey, as a pure function. A delegation never
//! widens what the delegator had — its scope is a subset of the delegator's own capabilities
//! (or of the parent delegation's scope, for a re-delegation by the parent's delegate), it never
//! outlives its parent, both agents are active, it closes no cycle, and the chain stays within
//! the org's depth limit. Each violation names the rule it broke.

use globset::Glob;

use crate::api::delegations::Restrictions;

/// The delegating agent as the store knows it.
#[derive(Debug, Clone, Copy)]
pub struct Delegator<'a> {
    pub agent_id: &'a str,
    pub active: bool,
    /// Its own capabilities (what a root delegation may hand over).
    pub capabilities: &'a [String],
}

/// The delegation a re-delegation builds on.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub id: &'a str,
    /// Not revoked and not expired.
    pub active: bool,
    pub to_agent_id: &'a str,
    pub scope: &'a [String],
    pub expires_at: i64,
    /// Its position in the chain (a root is 1).
    pub depth: i64,
    /// Every agent on the chain down to the parent: each link's delegator and the parent's
    /// delegate.
    pub chain_agents: &'a [String],
}

/// What is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub from_agent_id: &'a str,
    pub to_agent_id: &'a str,
    pub to_agent_active: bool,
    pub scope: &'a [String],
    pub ttl_seconds: i64,
    pub restrictions: &'a Restrictions,
}

/// What a valid request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub depth: i64,
    pub expires_at: i64,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("self-delegation: an agent cannot delegate to itself")]
    SelfDelegation,
    #[error("empty scope: a delegation must hand over at least one capability")]
    EmptyScope,
    #[error("ttl_seconds must be positive, not {0}")]
    BadTtl(i64),
    #[error("inactive agent: {0} is not active")]
    InactiveAgent(String),
    #[error("inactive parent: delegation {0} is revoked or expired")]
    InactiveParent(String),
    #[error(
        "not the parent's delegate: delegation {parent} was given to {delegate}, so only that agent may re-delegate it"
    )]
    NotParentsDelegate { parent: String, delegate: String },
    #[error("scope escalation: {extra:?} is not in the delegator's scope ({held})")]
    ScopeEscalation { extra: String, held: String },
    #[error(
        "expiry escalation: the delegation would expire after its parent ({parent_expires_at}); ask for at most {max_ttl} seconds"
    )]
    ExpiryEscalation {
        parent_expires_at: String,
        max_ttl: i64,
    },
    #[error("cycle: {0} is already on this delegation chain")]
    Cycle(String),
    #[error("depth exceeded: the chain would be {depth} long; this org allows {max}")]
    DepthExceeded { depth: i64, max: i64 },
    #[error("invalid restriction: {0}")]
    BadRestriction(String),
}

/// Checks a new delegation against every attenuation rule.
pub fn attenuate(
    request: &Request<'_>,
    delegator: &Delegator<'_>,
    parent: Option<&Parent<'_>>,
    max_depth: i64,
    now: i64,
) -> Result<Granted, Violation> {
    if request.from_agent_id == request.to_agent_id {
        return Err(Violation::SelfDelegation);
    }
    if request.scope.is_empty() {
        return Err(Violation::EmptyScope);
    }
    if request.ttl_seconds <= 0 {
        return Err(Violation::BadTtl(request.ttl_seconds));
    }
    validate_restrictions(request.restrictions)?;
    if !delegator.active {
        return Err(Violation::InactiveAgent(delegator.agent_id.to_string()));
    }
    if !request.to_agent_active {
        return Err(Violation::InactiveAgent(request.to_agent_id.to_string()));
    }
    let expires_at = now.saturating_add(request.ttl_seconds);
    let (held, depth) = match parent {
        None => (delegator.capabilities, 1),
        Some(parent) => {
            if !parent.active {
                return Err(Violation::InactiveParent(parent.id.to_string()));
            }
            if parent.to_agent_id != request.from_agent_id {
                return Err(Violation::NotParentsDelegate {
                    parent: parent.id.to_string(),
                    delegate: parent.to_agent_id.to_string(),
                });
            }
            if expires_at > parent.expires_at {
                return Err(Violation::ExpiryEscalation {
                    parent_expires_at: crate::api::time::format(parent.expires_at),
                    max_ttl: (parent.expires_at - now).max(0),
                });
            }
            if parent
                .chain_agents
                .iter()
                .any(|agent| agent == request.to_agent_id)
            {
                return Err(Violation::Cycle(request.to_agent_id.to_string()));
            }
            (parent.scope, parent.depth + 1)
        }
    };
    if let Some(extra) = request.scope.iter().find(|scope| !held.contains(scope)) {
        return Err(Violation::ScopeEscalation {
            extra: extra.clone(),
            held: if held.is_empty() {
                "nothing".to_string()
            } else {
                held.join(", ")
            },
        });
    }
    if depth > max_depth {
        return Err(Violation::DepthExceeded {
            depth,
            max: max_depth,
        });
    }
    Ok(Granted { depth, expires_at })
}

/// The known restriction keys must be well formed; unknown keys are kept as they are.
pub fn validate_restrictions(restrictions: &Restrictions) -> Result<(), Violation> {
    for tool in restrictions.tools.iter().flatten() {
        Glob::new(tool)
            .map_err(|error| Violation::BadRestriction(format!("tools: {tool:?}: {error}")))?;
    }
    for path in restrictions.paths.iter().flatten() {
        if !path.starts_with('/') {
            return Err(Violation::BadRestriction(format!(
                "paths: {path:?} must be an absolute path glob"
            )));
        }
        Glob::new(path)
            .map_err(|error| Violation::BadRestriction(format!("paths: {path:?}: {error}")))?;
    }
    if restrictions.max_calls == Some(0) {
        return Err(Violation::BadRestriction(
            "max_calls must be at least 1".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    fn request<'a>(scope: &'a [String], restrictions: &'a Restrictions) -> Request<'a> {
        Request {
            from_agent_id: "a",
            to_agent_id: "b",
            to_agent_active: true,
            scope,
            ttl_seconds: 3600,
            restrictions,
        }
    }

    #[test]
    fn a_root_delegation_hands_over_part_of_the_delegators_capabilities() {
        let capabilities = strings(&["files:read", "files:write"]);
        let delegator = Delegator {
            agent_id: "a",
            active: true,
            capabilities: &capabilities,
        };
        let scope = strings(&["files:read"]);
        let none = Restrictions::default();
        assert_eq!(
            attenuate(&request(&scope, &none), &delegator, None, 5, NOW),
            Ok(Granted {
                depth: 1,
                expires_at: NOW + 3600
            })
        );
        let wider = strings(&["files:read", "shell:exec"]);
        assert!(matches!(
            attenuate(&request(&wider, &none), &delegator, None, 5, NOW),
            Err(Violation::ScopeEscalation { extra, .. }) if extra == "shell:exec"
        ));
    }

    #[test]
    fn every_rule_is_named() {
        let capabilities = strings(&["files:read"]);
        let delegator = Delegator {
            agent_id: "a",
            active: true,
            capabilities: &capabilities,
        };
        let scope = strings(&["files:read"]);
        let none = Restrictions::default();
        let chain = strings(&["root", "a"]);
        let parent = Parent {
            id: "p",
            active: true,
            to_agent_id: "a",
            scope: &scope,
            expires_at: NOW + 600,
            depth: 2,
            chain_agents: &chain,
        };
        let base = request(&scope, &none);
        let cases: Vec<(Request<'_>, Option<Parent<'_>>, &str)> = vec![
            (
                Request {
                    to_agent_id: "a",
                    ..base
                },
                None,
                "self-delegation",
            ),
            (Request { scope: &[], ..base }, None, "empty scope"),
            (
                Request {
                    ttl_seconds: 0,
                    ..base
                },
                None,
                "ttl_seconds",
            ),
            (
                Request {
                    to_agent_active: false,
                    ..base
                },
                None,
                "inactive agent",
            ),
            (
                base,
                Some(Parent {
                    active: false,
                    ..parent
                }),
                "inactive parent",
            ),
            (
                base,
                Some(Parent {
                    to_agent_id: "z",
                    ..parent
                }),
                "not the parent's delegate",
            ),
            (base, Some(parent), "expiry escalation"),
            (
                Request {
                    ttl_seconds: 60,
                    to_agent_id: "root",
                    ..base
                },
                Some(parent),
                "cycle",
            ),
            (
                Request {
                    ttl_seconds: 60,
                    ..base
                },
                Some(Parent { depth: 5, ..parent }),
                "depth exceeded",
            ),
        ];
        for (request, parent, rule) in cases {
            let violation = attenuate(&request, &delegator, parent.as_ref(), 5, NOW)
                .expect_err(rule)
                .to_string();
            assert!(violation.starts_with(rule), "{violation}");
        }
        let within = Request {
            ttl_seconds: 600,
            ..base
        };
        assert_eq!(
            attenuate(&within, &delegator, Some(&parent), 5, NOW),
            Ok(Granted {
                depth: 3,
                expires_at: NOW + 600
            })
        );
    }

    #[test]
    fn restrictions_are_checked_and_unknown_keys_allowed() {
        let mut restrictions = Restrictions {
            paths: Some(strings(&["/tmp/*"])),
            tools: Some(strings(&["files_*"])),
            max_calls: Some(3),
            ..Restrictions::default()
        };
        restrictions
            .extra
            .insert("max_file_size".into(), 1024.into());
        assert_eq!(validate_restrictions(&restrictions), Ok(()));
        for bad in [
            Restrictions {
                paths: Some(strings(&["tmp/*"])),
                ..Restrictions::default()
            },
            Restrictions {
                tools: Some(strings(&["[x"])),
                ..Restrictions::default()
            },
            Restrictions {
                max_calls: Some(0),
                ..Restrictions::default()
            },
        ] {
            assert!(matches!(
                validate_restrictions(&bad),
                Err(Violation::BadRestriction(_))
            ));
        }
    }
}
