-- SIEM streaming: the destinations an org streams its audit log to, and every delivery attempt.
--
-- Delivery is an outbox over `audit_events`: `cursor_seq` is the last `seq` of the org's chain
-- that was delivered (or skipped by the filter) for the destination, and it only moves in the
-- transaction that records the successful delivery. A batch that was sent and not yet
-- acknowledged keeps its boundaries in `pending_first_seq`/`pending_last_seq`, so the resend
-- after a failure or a restart carries the same events and the same idempotency key.
--
-- The scheduling columns are in unix milliseconds (`_ms`): backoff and leases are sub-second
-- decisions. Every other time is unix seconds, like the rest of the schema.

CREATE TABLE siem_destinations (
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    destination_type       TEXT NOT NULL,
    endpoint_url           TEXT NOT NULL,
    -- The credential sent to the destination: sealed with the operator's key-encryption key
    -- (`auth_token_sealed_with` names it, `none` when stored as is); NULL when there is none.
    auth_token             TEXT,
    auth_token_sealed_with TEXT NOT NULL,
    is_active              BOOLEAN NOT NULL,
    batch_size             BIGINT NOT NULL,
    flush_interval_seconds BIGINT NOT NULL,
    -- A JSON list of kinds (`check.decided`) and prefixes (`agent.*`); empty: every event.
    filter_event_types     TEXT NOT NULL,
    skip_rejected_batches  BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    cursor_seq             BIGINT NOT NULL,
    pending_first_seq      BIGINT,
    pending_last_seq       BIGINT,
    consecutive_failures   BIGINT NOT NULL,
    next_attempt_at_ms     BIGINT NOT NULL,
    -- The replica delivering for the destination, until `lease_expires_at_ms`.
    lease_owner            TEXT,
    lease_expires_at_ms    BIGINT,
    last_delivered_at      BIGINT,
    last_error             TEXT
);
CREATE INDEX siem_destinations_by_org ON siem_destinations (org_id, id);
-- The delivery workers' poll: active destinations whose next attempt is due.
CREATE INDEX siem_destinations_due ON siem_destinations (next_attempt_at_ms) WHERE is_active;

-- One row per attempt (a batch or a test event), successful or not.
CREATE TABLE siem_deliveries (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    destination_id  TEXT NOT NULL REFERENCES siem_destinations (id) ON DELETE CASCADE,
    -- `batch` (audit events) or `test` (`POST …/test`).
    purpose         TEXT NOT NULL,
    batch_size      BIGINT NOT NULL,
    first_seq       BIGINT,
    last_seq        BIGINT,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL,
    status_code     BIGINT,
    error_message   TEXT,
    delivered_at    BIGINT NOT NULL
);
CREATE INDEX siem_deliveries_by_destination ON siem_deliveries (destination_id, id);
-- Records older than the retention period are pruned by time.
CREATE INDEX siem_deliveries_by_time ON siem_deliveries (delivered_at);
