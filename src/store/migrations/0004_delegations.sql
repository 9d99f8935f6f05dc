-- Delegations: attenuated, chained, revocable capabilities between agents. `chain` is the JSON
-- list of ids root-first including the row itself; `path` is the same ids joined with '/', so
-- the descendants of a delegation are the rows whose path starts with its path and a '/'.
CREATE TABLE delegations (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES orgs (id),
    from_agent_id        TEXT NOT NULL REFERENCES agents (id),
    to_agent_id          TEXT NOT NULL REFERENCES agents (id),
    parent_delegation_id TEXT REFERENCES delegations (id),
    scope                TEXT NOT NULL,
    restrictions         TEXT NOT NULL,
    chain                TEXT NOT NULL,
    path                 TEXT NOT NULL,
    depth                BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    revoked_at           BIGINT,
    revoke_reason        TEXT
);
CREATE INDEX delegations_by_org ON delegations (org_id, id);
CREATE INDEX delegations_by_delegate ON delegations (org_id, to_agent_id);
CREATE INDEX delegations_by_delegator ON delegations (org_id, from_agent_id);
CREATE INDEX delegations_by_path ON delegations (org_id, path);

ALTER TABLE sessions ADD COLUMN delegation_id TEXT;
