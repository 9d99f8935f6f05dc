-- MCP sessions the gateway minted for its clients. A client holds an id only the gateway
-- knows (stored here as its SHA-256 digest); the gateway forwards with the upstream's own
-- session id, which the client never sees (sealed with the operator's key-encryption key bound
-- to the digest when one is configured: `upstream_sealed_with` names how, `none` when not). A
-- session belongs to the org, server and agent that initialized it; it ends on DELETE, or
-- once idle past the gateway's limit (`last_used_at`).
CREATE TABLE mcp_sessions (
    digest               TEXT PRIMARY KEY,
    id                   TEXT NOT NULL,
    org_id               TEXT NOT NULL REFERENCES orgs (id),
    server_id            TEXT NOT NULL,
    agent_id             TEXT NOT NULL,
    upstream_session_id  TEXT NOT NULL,
    upstream_sealed_with TEXT NOT NULL,
    protocol_version     TEXT,
    created_at           BIGINT NOT NULL,
    last_used_at         BIGINT NOT NULL
);
-- An agent's sessions on a server, least recently used first (the per-agent cap evicts them).
CREATE INDEX mcp_sessions_by_agent ON mcp_sessions (org_id, server_id, agent_id, last_used_at);
-- The idle ones, for the sweep.
CREATE INDEX mcp_sessions_by_use ON mcp_sessions (last_used_at);

-- What each upstream's `tools/list` said of its tools' effects (`readOnlyHint`,
-- `destructiveHint`), shared by every replica. `name_key` is the canonical tool name in lower
-- case, the form rules and classification match, so `Delete_File` and `delete_file ` find the
-- hint of `delete_file`. A hint only ever raises the effect a name classifies as.
CREATE TABLE mcp_tools (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    server_id  TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    effect     TEXT NOT NULL,
    learned_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, server_id, name_key)
);
