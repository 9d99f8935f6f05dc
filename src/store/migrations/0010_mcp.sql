-- MCP: the servers an org registered, which its agents reach through the gateway's proxy
-- (`POST /mcp/{server_id}`). The upstream credential (a bearer the gateway adds when it
-- forwards) is sealed with the operator's key-encryption key bound to the server id when one
-- is configured (`auth_token_sealed_with` names how; `none` when none is), and never served.
CREATE TABLE mcp_servers (
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    id                     TEXT NOT NULL,
    name                   TEXT NOT NULL,
    url                    TEXT NOT NULL,
    capabilities           TEXT NOT NULL,
    auth_token             TEXT,
    auth_token_sealed_with TEXT,
    created_at             BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
