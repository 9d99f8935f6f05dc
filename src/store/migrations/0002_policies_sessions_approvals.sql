-- Org policies (versioned documents), human approvals (elevation), and session lockout.

CREATE TABLE policies (
    org_id     TEXT PRIMARY KEY REFERENCES orgs (id),
    version    BIGINT NOT NULL,
    document   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- `request_key` identifies "the same check" (action, effect, input summary) within a session,
-- so identical checks reuse one pending approval; the partial unique index makes that hold
-- even when two replicas race.
CREATE TABLE approvals (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    session_id       TEXT NOT NULL,
    agent_id         TEXT NOT NULL REFERENCES agents (id),
    action_name      TEXT NOT NULL,
    action_effect    TEXT NOT NULL,
    input_summary    TEXT NOT NULL,
    request_key      TEXT NOT NULL,
    reason           TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    decided_at       BIGINT,
    decided_by       TEXT,
    grant_expires_at BIGINT
);
CREATE UNIQUE INDEX approvals_one_pending ON approvals (org_id, session_id, request_key) WHERE status = 'pending';
CREATE INDEX approvals_by_request ON approvals (org_id, session_id, request_key, created_at);
CREATE INDEX approvals_by_org ON approvals (org_id, id);

-- Denials counted before the last unlock do not count towards the next lockout.
ALTER TABLE sessions ADD COLUMN denials_at_unlock BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN token_id TEXT;
ALTER TABLE checks ADD COLUMN approval_id TEXT;
