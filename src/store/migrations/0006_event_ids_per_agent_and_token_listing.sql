-- A reporter's event id is unique per agent, not per org: two agents that happen to name an event
-- alike (spools, SDK counters) both keep their events. A retried report of the same agent is
-- still stored once.
DROP INDEX telemetry_by_client_event;
CREATE UNIQUE INDEX telemetry_by_agent_client_event
    ON telemetry_events (org_id, agent_id, client_event_id);

-- An org's tokens listed page by page in id order (`GET /api/v1/agent-tokens`).
CREATE INDEX agent_tokens_by_org ON agent_tokens (org_id, id);
