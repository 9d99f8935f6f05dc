-- Orgs, API keys, agents, agent tokens, sessions, checks, telemetry and the audit chain.
-- Timestamps are unix seconds; lists and objects are JSON text; secrets are SHA-256 hex digests.

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    key_digest TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (org_id, id);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    name          TEXT NOT NULL,
    framework     TEXT NOT NULL,
    capabilities  TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    public_key    TEXT,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT,
    UNIQUE (org_id, name)
);
CREATE INDEX agents_by_org ON agents (org_id, id);

CREATE TABLE agent_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    agent_id      TEXT NOT NULL REFERENCES agents (id),
    token_digest  TEXT NOT NULL UNIQUE,
    scopes        TEXT NOT NULL,
    session_id    TEXT,
    issued_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT
);
CREATE INDEX agent_tokens_by_agent ON agent_tokens (agent_id);

CREATE TABLE sessions (
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    id               TEXT NOT NULL,
    agent_id         TEXT NOT NULL REFERENCES agents (id),
    source           TEXT NOT NULL,
    server_id        TEXT,
    mode             TEXT NOT NULL,
    scope_ceiling    TEXT NOT NULL,
    total_calls      BIGINT NOT NULL DEFAULT 0,
    read_calls       BIGINT NOT NULL DEFAULT 0,
    write_calls      BIGINT NOT NULL DEFAULT 0,
    denied_calls     BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX sessions_by_agent ON sessions (org_id, agent_id);

CREATE TABLE checks (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs (id),
    agent_id           TEXT NOT NULL,
    session_id         TEXT,
    action_name        TEXT NOT NULL,
    input_summary      TEXT NOT NULL,
    effect             TEXT NOT NULL,
    allowed            BOOLEAN NOT NULL,
    elevation_required BOOLEAN NOT NULL,
    reason             TEXT NOT NULL,
    rule               TEXT NOT NULL,
    confidence         DOUBLE PRECISION NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX checks_by_org ON checks (org_id, id);

CREATE TABLE telemetry_events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    agent_id    TEXT NOT NULL,
    session_id  TEXT,
    event_type  TEXT NOT NULL,
    tool_name   TEXT,
    duration_ms BIGINT,
    success     BOOLEAN NOT NULL,
    error_type  TEXT,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX telemetry_by_org ON telemetry_events (org_id, id);
CREATE INDEX telemetry_by_agent ON telemetry_events (org_id, agent_id, id);
CREATE INDEX telemetry_by_session ON telemetry_events (org_id, session_id, id);

-- Append-only, hash-chained per org: hash = sha256(prev_hash | seq | kind | actor | subject | detail | created_at).
CREATE TABLE audit_events (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    seq          BIGINT NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    detail       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- The head of each org's chain: updating it serialises appenders of one org (a row lock on
-- PostgreSQL, the single writer on SQLite).
CREATE TABLE audit_heads (
    org_id    TEXT PRIMARY KEY REFERENCES orgs (id),
    last_seq  BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
