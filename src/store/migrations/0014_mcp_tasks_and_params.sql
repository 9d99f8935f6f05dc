-- The tasks (MCP 2025-11-25) an upstream created for a `tools/call` the gateway forwarded, and
-- the agent it was for. Every agent of an org reaches a server with the server's one
-- credential, so the upstream cannot tell them apart: the gateway refuses a `tasks/*` request
-- naming a task another agent created, and a `tasks/list` answer keeps only the caller's. The
-- first agent a task id was seen for keeps it; rows go once `expires_at` (unix seconds) passes.
CREATE TABLE mcp_tasks (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    server_id  TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, server_id, task_id)
);
-- An agent's tasks on a server, oldest first (the per-agent cap drops them).
CREATE INDEX mcp_tasks_by_agent ON mcp_tasks (org_id, server_id, agent_id, created_at);
-- The expired ones, for the sweep.
CREATE INDEX mcp_tasks_by_expiry ON mcp_tasks (expires_at);

-- The tool arguments an upstream's `tools/list` asked to see mirrored in `Mcp-Param-*` headers
-- (2026-07-28, `x-mcp-header` in the input schema): `params` is a JSON object from the header's
-- name in lower case to the argument's path (a JSON array of property names). The gateway sends
-- the upstream only the headers it makes from the arguments it checked, so a header can never
-- say another thing than the body. The last list that names the tool sets them.
CREATE TABLE mcp_tool_params (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    server_id  TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    params     TEXT NOT NULL,
    learned_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, server_id, name_key)
);
