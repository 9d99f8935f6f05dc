-- Agent cards and agent-to-agent tasks (A2A).
--
-- `agent_cards`: one card per agent, as last generated and signed by the gateway (`card`, the
-- JSON served), with what the operator set for it (`settings`: description, skills,
-- documentation URL, the agent's own A2A endpoint), kept across regenerations. A card is public
-- (`GET /a2a/agents/{id}/agent.json`) only while `published_at` is set; that route knows no
-- org, so cards are also found by agent id alone (agent ids are unique across orgs).
CREATE TABLE agent_cards (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    agent_id     TEXT NOT NULL REFERENCES agents (id),
    settings     TEXT NOT NULL,
    card         TEXT NOT NULL,
    generated_at BIGINT NOT NULL,
    published_at BIGINT,
    PRIMARY KEY (org_id, agent_id)
);
CREATE UNIQUE INDEX agent_cards_by_agent ON agent_cards (agent_id);

-- `a2a_tasks`: a message one agent sent another through the gateway, once the Guardian
-- allowed it (`check_id` names the recorded check). `message` is the message as sent (a JSON
-- string or object); `reply` the target's answer (a relayed v1.0 message), if any. A task
-- forwarded to the target's own endpoint records it in `forwarded_to`; the others wait here
-- until the target (or an operator) completes or cancels them.
CREATE TABLE a2a_tasks (
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    id              TEXT NOT NULL,
    context_id      TEXT NOT NULL,
    source_agent_id TEXT NOT NULL REFERENCES agents (id),
    target_agent_id TEXT NOT NULL REFERENCES agents (id),
    protocol        TEXT NOT NULL,
    status          TEXT NOT NULL,
    message         TEXT NOT NULL,
    reply           TEXT,
    artifacts       TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    forwarded_to    TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX a2a_tasks_by_source ON a2a_tasks (org_id, source_agent_id, created_at);
CREATE INDEX a2a_tasks_by_target ON a2a_tasks (org_id, target_agent_id, created_at);
