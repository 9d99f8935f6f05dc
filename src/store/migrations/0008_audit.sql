-- The audit log, readable and provable: the agent each event concerns (derived from the
-- event's hashed fields, so verification can recompute it; filled in for older events at
-- start-up), its index for listings by agent, and the chain heads the gateway signed
-- (checkpoints), which let anyone holding its public key prove that no event up to a checkpoint
-- was changed since.
ALTER TABLE audit_events ADD COLUMN agent_id TEXT;
CREATE INDEX audit_events_by_agent ON audit_events (org_id, agent_id, seq);
CREATE INDEX audit_events_unindexed ON audit_events (agent_id) WHERE agent_id IS NULL;

CREATE TABLE audit_checkpoints (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
