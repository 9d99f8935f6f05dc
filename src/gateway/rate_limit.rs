//! Per-agent rate limits on what an agent can make the gateway store at its own pace: its
//! telemetry (`--telemetry-rate-limit`, events) and its A2A messages (`--a2a-rate-limit`,
//! messages). A governed agent picks how often it reports or sends, and every event is a row
//! and an audit-log entry, every message a recorded check, a task and possibly a forward; an
//! operator can cap each per agent, so one misbehaving or hostile agent cannot fill the
//! database, drown the audit log (and the SIEMs it streams to) or flood its peers.
//!
//! Each limit is a GCRA bucket per (org, agent) (`governor`): a sustained rate, and a burst of
//! ten seconds' worth (never less than the largest batch one request may carry), so a client
//! that batches and flushes every few seconds is never refused. The buckets are per replica:
//! with N replicas behind a load balancer an agent may reach N times the rate. A refused
//! request stores nothing and answers 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// How many seconds' worth of events a burst may carry.
const BURST_SECONDS: u32 = 10;
/// The buckets are pruned of agents that have been idle long enough to be full again once the
/// map holds this many.
const PRUNE_ABOVE: usize = 10_000;

/// Why an agent's request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the rate: retry after this long.
    Wait(Duration),
    /// More in one request than a burst allows: it can never pass as is.
    TooLarge { burst: u32 },
}

/// One per-agent limit of one gateway replica.
pub struct AgentRateLimit {
    per_second: NonZeroU32,
    burst: NonZeroU32,
    limiter: RateLimiter<(String, String), DefaultKeyedStateStore<(String, String)>, DefaultClock>,
}

impl std::fmt::Debug for AgentRateLimit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AgentRateLimit")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl AgentRateLimit {
    /// A limit of `per_second` per agent; a burst holds at least `largest_batch`.
    pub fn new(per_second: NonZeroU32, largest_batch: u32) -> AgentRateLimit {
        let burst = per_second
            .saturating_mul(NonZeroU32::MIN.saturating_add(BURST_SECONDS - 1))
            .max(NonZeroU32::new(largest_batch).unwrap_or(NonZeroU32::MIN));
        AgentRateLimit {
            per_second,
            burst,
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// The sustained rate, per second per agent.
    pub fn per_second(&self) -> NonZeroU32 {
        self.per_second
    }

    /// Takes `count` from the agent's bucket, or says why not (and takes nothing).
    pub fn take(&self, org_id: &str, agent_id: &str, count: usize) -> Result<(), Refusal> {
        let Some(cells) = u32::try_from(count).ok().and_then(NonZeroU32::new) else {
            return Ok(());
        };
        if self.limiter.len() > PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        let key = (org_id.to_string(), agent_id.to_string());
        match self.limiter.check_key_n(&key, cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::Wait(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(Refusal::TooLarge {
                burst: self.burst.get(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_agent() {
        let limit = AgentRateLimit::new(NonZeroU32::new(5).unwrap(), 10);
        // Ten seconds' worth at once, then nothing more for this agent…
        assert_eq!(limit.take("org", "a", 50), Ok(()));
        match limit.take("org", "a", 1) {
            Err(Refusal::Wait(wait)) => assert!(wait <= Duration::from_millis(200), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        // …while another agent, or the same id in another org, has its own bucket.
        assert_eq!(limit.take("org", "b", 50), Ok(()));
        assert_eq!(limit.take("other", "a", 50), Ok(()));
    }

    #[test]
    fn a_report_larger_than_a_burst_can_never_pass() {
        let limit = AgentRateLimit::new(NonZeroU32::new(1).unwrap(), 100);
        assert_eq!(limit.take("org", "a", 100), Ok(()));
        assert_eq!(
            limit.take("org", "b", 101),
            Err(Refusal::TooLarge { burst: 100 })
        );
        assert_eq!(limit.take("org", "a", 0), Ok(()));
    }
}
