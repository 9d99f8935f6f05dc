//! The delivery engine: one task per gateway replica that streams each active destination's
//! audit events from its durable cursor.
//!
//! Each poll (every [`StreamingOptions::poll_interval`], one indexed query) finds the
//! destinations that are due (backoff over), have events past their cursor and are not leased.
//! For each, a batch is planned without writing anything: the pending batch if one was sent
//! and not acknowledged (same boundaries, same idempotency key), else up to `batch_size`
//! matching events, sent once `batch_size` are waiting or the oldest has waited
//! `flush_interval_seconds`; events the filter does not select move the cursor unsent. Then:
//!
//! 1. claim: one conditional UPDATE takes the lease (free, expired or ours, cursor unchanged)
//!    and records the batch's boundaries as pending;
//! 2. send: the HTTP POST, with no transaction open;
//! 3. finish: one transaction records the attempt and, on success, moves the cursor past the
//!    batch, only while the lease is still ours and the cursor is where the batch started;
//!    on failure it schedules the next attempt (exponential backoff with jitter, or the
//!    destination's `Retry-After` when later), and releases the lease.
//!
//! So in the normal case each event is delivered once: a batch is acknowledged in the same
//! transaction that moves the cursor, and only the lease holder may do it. A replica that dies
//! between send and finish leaves the batch pending: it is resent, with the same idempotency
//! key, once the lease expires (or at once after a clean shutdown, which releases leases).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::Url;

use crate::api::streaming::DestinationType;
use crate::api::time;
use crate::store::audit::EventRow;
use crate::store::streaming::{self as rows, DeliveryRow, DestinationRow, Settlement};
use crate::store::{self, Store};

use super::format::{self, Batch, Verdict};
use super::{Streaming, open_token, wire_event};

/// How a replica's engine runs (tests shorten the times).
#[derive(Debug, Clone)]
pub struct StreamingOptions {
    /// Send to plain `http://` destinations on any host (by default only loopback ones).
    pub allow_http: bool,
    /// Run the engine on this replica.
    pub enabled: bool,
    /// Time between two polls.
    pub poll_interval: Duration,
    /// The first retry's delay, doubled at each failure up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// How long a claimed destination stays this replica's without news from it.
    pub lease: Duration,
}

/// How long delivery records are kept, and how often a replica prunes older ones.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The most a destination's `Retry-After` may delay it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Events read per plan: at most a batch's worth of matches is kept.
const SCAN_LIMIT: u32 = 1000;
/// Destinations handled per poll, and batches per destination per poll (then the others get
/// their turn).
const DESTINATIONS_PER_POLL: u32 = 32;
const BATCHES_PER_TURN: usize = 20;

impl Default for StreamingOptions {
    fn default() -> StreamingOptions {
        StreamingOptions {
            allow_http: false,
            enabled: true,
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            lease: Duration::from_secs(60),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Runs the engine until the task is aborted.
pub async fn run(store: Store, streaming: Arc<Streaming>, owner: String) {
    let mut ticker = tokio::time::interval(streaming.options.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        ticker.tick().await;
        if let Err(error) = poll(&store, &streaming, &owner).await {
            tracing::warn!(%error, "SIEM delivery: this poll failed; the next one retries");
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(std::time::Instant::now());
            let before = time::now() - i64::try_from(DELIVERY_RETENTION.as_secs()).unwrap_or(0);
            if let Err(error) = rows::prune_deliveries(&store, before).await {
                tracing::warn!(%error, "SIEM delivery: old delivery records were not pruned");
            }
        }
    }
}

async fn poll(store: &Store, streaming: &Streaming, owner: &str) -> store::Result<()> {
    let due = rows::due(store, now_ms(), DESTINATIONS_PER_POLL).await?;
    for destination in due {
        let id = destination.id.clone();
        if let Err(error) = serve_destination(store, streaming, owner, destination).await {
            tracing::warn!(destination_id = %id, %error, "SIEM delivery failed to record");
        }
    }
    Ok(())
}

/// What to do next for a destination.
enum Plan {
    /// Nothing is ready.
    Wait,
    /// None of the events after the cursor, up to `to`, is selected by the filter.
    PassOver { to: i64 },
    Send {
        first: i64,
        last: i64,
        events: Vec<EventRow>,
    },
}

/// Whether `filter` (empty: everything) selects `kind`: exact kinds, `prefix.*`, or `*`.
pub fn selects(filter: &[String], kind: &str) -> bool {
    filter.is_empty()
        || filter.iter().any(|pattern| {
            if pattern == "*" {
                return true;
            }
            match pattern.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => pattern == kind,
            }
        })
}

async fn plan(store: &Store, row: &DestinationRow, now: i64) -> store::Result<Plan> {
    let filter = row.filter();
    if let (Some(first), Some(last)) = (row.pending_first_seq, row.pending_last_seq) {
        let span = u32::try_from((last - row.cursor_seq).max(1)).unwrap_or(u32::MAX);
        let events = rows::events_after(store, &row.org_id, row.cursor_seq, last, span).await?;
        let events: Vec<EventRow> = events
            .into_iter()
            .filter(|event| selects(&filter, &event.kind))
            .collect();
        return Ok(if events.is_empty() {
            Plan::PassOver { to: last }
        } else {
            Plan::Send {
                first,
                last,
                events,
            }
        });
    }
    let scanned =
        rows::events_after(store, &row.org_id, row.cursor_seq, i64::MAX, SCAN_LIMIT).await?;
    let batch_size = usize::try_from(row.batch_size.max(1)).unwrap_or(1);
    let mut last = row.cursor_seq;
    let mut matching = Vec::new();
    for event in scanned {
        last = event.seq;
        if selects(&filter, &event.kind) {
            matching.push(event);
            if matching.len() == batch_size {
                break;
            }
        }
    }
    let Some(oldest) = matching.first() else {
        return Ok(if last > row.cursor_seq {
            Plan::PassOver { to: last }
        } else {
            Plan::Wait
        });
    };
    let full = matching.len() >= batch_size;
    let waited = now - oldest.created_at >= row.flush_interval_seconds;
    Ok(if full || waited {
        Plan::Send {
            first: row.cursor_seq + 1,
            last,
            events: matching,
        }
    } else {
        Plan::Wait
    })
}

async fn serve_destination(
    store: &Store,
    streaming: &Streaming,
    owner: &str,
    mut row: DestinationRow,
) -> store::Result<()> {
    for _ in 0..BATCHES_PER_TURN {
        let now = now_ms();
        match plan(store, &row, time::now()).await? {
            Plan::Wait => return Ok(()),
            Plan::PassOver { to } => {
                if !rows::pass_over(
                    store,
                    &row.id,
                    owner,
                    now,
                    row.cursor_seq,
                    row.pending_last_seq,
                    to,
                )
                .await?
                {
                    return Ok(());
                }
            }
            Plan::Send {
                first,
                last,
                events,
            } => {
                let lease_until = now.saturating_add(millis(streaming.options.lease));
                let Some(claimed) = rows::claim(
                    store,
                    &row.id,
                    owner,
                    now,
                    lease_until,
                    row.cursor_seq,
                    (first, last),
                )
                .await?
                else {
                    // Another replica holds it, or the cursor moved: its business now.
                    return Ok(());
                };
                if claimed.pending_first_seq != Some(first)
                    || claimed.pending_last_seq != Some(last)
                {
                    // Another replica left a different batch pending in the meantime: that
                    // one goes first, planned afresh at the next poll.
                    rows::release(store, &row.id, owner).await?;
                    return Ok(());
                }
                let delivered =
                    deliver(store, streaming, owner, &claimed, first, last, events).await?;
                if !delivered {
                    return Ok(());
                }
            }
        }
        match rows::get(store, &row.org_id, &row.id).await? {
            Some(fresh) if fresh.is_active => row = fresh,
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Sends one claimed batch and settles it; `true` when the cursor moved past it.
async fn deliver(
    store: &Store,
    streaming: &Streaming,
    owner: &str,
    row: &DestinationRow,
    first: i64,
    last: i64,
    events: Vec<EventRow>,
) -> store::Result<bool> {
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let batch = Batch {
        destination_id: row.id.clone(),
        range: Some((first, last)),
        idempotency_key: format::idempotency_key(&row.id, first, last),
        events: events.into_iter().map(wire_event).collect(),
    };
    let attempt = send(streaming, row, &batch).await;
    let settlement = match &attempt.verdict {
        Verdict::Delivered => Settlement::Advance {
            cursor: last,
            delivered: true,
        },
        Verdict::Rejected {
            skippable: true, ..
        } if row.skip_rejected_batches => Settlement::Advance {
            cursor: last,
            delivered: false,
        },
        Verdict::Rejected { .. } => Settlement::Retry {
            next_attempt_at_ms: now_ms() + millis(streaming.backoff(row.consecutive_failures + 1)),
        },
        Verdict::Retry { retry_after, .. } => {
            let mut delay = streaming.backoff(row.consecutive_failures + 1);
            if let Some(asked) = retry_after {
                delay = delay.max((*asked).min(MAX_RETRY_AFTER));
            }
            Settlement::Retry {
                next_attempt_at_ms: now_ms() + millis(delay),
            }
        }
    };
    let record = attempt.record(
        row,
        "batch",
        count,
        Some((first, last)),
        &batch.idempotency_key,
    );
    if let Verdict::Rejected { reason, .. } | Verdict::Retry { reason, .. } = &attempt.verdict {
        tracing::warn!(
            destination_id = %row.id,
            first_seq = first,
            last_seq = last,
            %reason,
            "SIEM delivery failed"
        );
    }
    let advanced = matches!(settlement, Settlement::Advance { .. });
    let settled = rows::finish(store, &row.id, owner, row.cursor_seq, settlement, &record).await?;
    if !settled {
        tracing::warn!(
            destination_id = %row.id,
            "SIEM delivery: the lease was lost before the batch was settled; its new holder \
             resends it"
        );
    }
    Ok(settled && advanced)
}

/// How one attempt went.
pub struct Attempt {
    pub verdict: Verdict,
    pub status_code: Option<u16>,
}

impl Attempt {
    /// The attempt with `secret` masked in its reason: a destination that echoes the request's
    /// headers in its error answer must not put the token into the delivery log or the logs.
    fn without(mut self, secret: &str) -> Attempt {
        if let Verdict::Retry { reason, .. } | Verdict::Rejected { reason, .. } = &mut self.verdict
            && !secret.is_empty()
            && reason.contains(secret)
        {
            *reason = reason.replace(secret, crate::api::streaming::MASKED_TOKEN);
        }
        self
    }

    /// The delivery record of this attempt.
    pub fn record(
        &self,
        row: &DestinationRow,
        purpose: &str,
        batch_size: i64,
        range: Option<(i64, i64)>,
        idempotency_key: &str,
    ) -> DeliveryRow {
        let (status, error_message) = match &self.verdict {
            Verdict::Delivered => ("success", None),
            Verdict::Retry { reason, .. } | Verdict::Rejected { reason, .. } => {
                ("failure", Some(reason.clone()))
            }
        };
        DeliveryRow {
            id: store::new_id(),
            org_id: row.org_id.clone(),
            destination_id: row.id.clone(),
            purpose: purpose.to_string(),
            batch_size,
            first_seq: range.map(|range| range.0),
            last_seq: range.map(|range| range.1),
            idempotency_key: idempotency_key.to_string(),
            status: status.to_string(),
            status_code: self.status_code.map(i64::from),
            error_message,
            delivered_at: time::now(),
        }
    }
}

/// Formats and POSTs `batch` to the destination; never fails: a failure is a verdict.
pub async fn send(streaming: &Streaming, row: &DestinationRow, batch: &Batch) -> Attempt {
    let refused = |reason: String| Attempt {
        verdict: Verdict::Rejected {
            reason,
            skippable: false,
        },
        status_code: None,
    };
    let kind: DestinationType = match row.destination_type.parse() {
        Ok(kind) => kind,
        Err(error) => return refused(error),
    };
    let endpoint = match Url::parse(&row.endpoint_url) {
        Ok(url) => url,
        Err(error) => return refused(format!("endpoint_url: {error}")),
    };
    let token = match open_token(streaming, row) {
        Ok(token) => token,
        Err(reason) => return refused(reason),
    };
    let prepared = match format::prepare(
        kind,
        &endpoint,
        token.as_deref(),
        &streaming.host,
        batch,
        time::now(),
    ) {
        Ok(prepared) => prepared,
        Err(reason) => return refused(reason),
    };
    let attempt = match streaming
        .outbound
        .post(&prepared.url, prepared.headers, prepared.body)
        .await
    {
        Ok(posted) => Attempt {
            verdict: format::judge(
                kind,
                posted.status,
                posted.retry_after.as_deref(),
                &posted.body,
                posted.truncated,
            ),
            status_code: Some(posted.status),
        },
        Err(error) => Attempt {
            verdict: Verdict::Retry {
                reason: error.to_string(),
                retry_after: None,
            },
            status_code: None,
        },
    };
    match token {
        Some(token) => attempt.without(&token),
        None => attempt,
    }
}

impl Streaming {
    /// The delay before attempt `failures + 1`: `backoff_base` doubled per failure, capped at
    /// `backoff_cap`, with "equal jitter" (a random half of it) so destinations that failed
    /// together do not retry together.
    pub fn backoff(&self, failures: i64) -> Duration {
        let exponent = u32::try_from(failures.clamp(1, 31) - 1).unwrap_or(0);
        let full = self
            .options
            .backoff_base
            .saturating_mul(2_u32.saturating_pow(exponent))
            .min(self.options.backoff_cap);
        let half = full / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_kinds_and_prefixes() {
        let filter = vec!["check.decided".to_string(), "agent.*".to_string()];
        assert!(selects(&filter, "check.decided"));
        assert!(selects(&filter, "agent.created"));
        assert!(!selects(&filter, "agents.created"));
        assert!(!selects(&filter, "check.decided.more"));
        assert!(!selects(&filter, "token.issued"));
        assert!(selects(&[], "anything"));
        assert!(selects(&["*".to_string()], "anything"));
    }

    #[test]
    fn a_token_echoed_by_the_destination_is_masked() {
        let attempt = Attempt {
            verdict: Verdict::Rejected {
                reason: "HTTP 401: bad header Authorization: Splunk hec-secret".to_string(),
                skippable: false,
            },
            status_code: Some(401),
        }
        .without("hec-secret");
        assert!(matches!(
            attempt.verdict,
            Verdict::Rejected { reason, .. } if reason.ends_with("Splunk ********")
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let streaming = Streaming {
            options: StreamingOptions {
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(8),
                ..Default::default()
            },
            ..Default::default()
        };
        for (failures, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8), (1000, 8)] {
            let delay = streaming.backoff(failures);
            let full = Duration::from_secs(full);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
    }
}
