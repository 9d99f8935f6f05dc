-- Controls that bind the agent, not a label it picks: an agent's own mode (an admin's setting,
-- or `locked` by the agent-level lockout) with its hard denials counted in a fixed window; a
-- delegation's calls counted across every session made from it (and its descendants), for its
-- `max_calls`; pending approvals counted per agent for their cap.
ALTER TABLE agents ADD COLUMN mode TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE agents ADD COLUMN denial_window_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN denials_in_window BIGINT NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN calls_made BIGINT NOT NULL DEFAULT 0;
CREATE INDEX approvals_pending_by_agent ON approvals (org_id, agent_id) WHERE status = 'pending';
CREATE INDEX approvals_pending_by_session ON approvals (org_id, session_id) WHERE status = 'pending';
