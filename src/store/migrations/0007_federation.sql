-- Federation: the gateway's signing keys (it is an OIDC issuer for its agents), the external
-- OIDC issuers an org trusts, which external subject is which agent of the org, the ID tokens
-- this gateway issued (for revocation), and the federation facts of a session.

-- The gateway's one set of signing keys (not per org): the newest key that is not retired
-- signs; a retired key stays in the JWKS until `published_until`, when every token it signed
-- has expired. The private half is a PKCS#8 document, sealed with the operator's key-encryption
-- key when one is configured (`sealed_with` names how), and never served.
CREATE TABLE signing_keys (
    id              TEXT PRIMARY KEY,
    algorithm       TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    private_key     TEXT NOT NULL,
    sealed_with     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT,
    published_until BIGINT
);

CREATE TABLE federation_providers (
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    id                     TEXT NOT NULL,
    issuer                 TEXT NOT NULL,
    name                   TEXT NOT NULL,
    jwks_uri               TEXT NOT NULL,
    authorization_endpoint TEXT,
    token_endpoint         TEXT,
    audience               TEXT,
    subject_claim          TEXT NOT NULL,
    trust_level            TEXT NOT NULL,
    status                 TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX federation_providers_by_issuer ON federation_providers (org_id, issuer);

-- An external subject (the provider's subject claim) acting as an agent of the org. Deleting
-- the provider or revoking the agent ends the link's use; the rows go with the provider.
CREATE TABLE federation_subjects (
    org_id      TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    subject     TEXT NOT NULL,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, provider_id, subject),
    FOREIGN KEY (org_id, provider_id) REFERENCES federation_providers (org_id, id) ON DELETE CASCADE
);
CREATE INDEX federation_subjects_by_agent ON federation_subjects (agent_id);

-- ID tokens this gateway signed: the `jti` is the id. The token itself is not kept.
CREATE TABLE federation_tokens (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    audience    TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX federation_tokens_by_org ON federation_tokens (org_id, id);

-- A federation session: which provider vouched for it, at what trust level, until when (the
-- external token's expiry), and, when this gateway issued the token, which one (its revocation
-- ends the session).
ALTER TABLE sessions ADD COLUMN provider_id TEXT;
ALTER TABLE sessions ADD COLUMN federation_token_id TEXT;
ALTER TABLE sessions ADD COLUMN issuer TEXT;
ALTER TABLE sessions ADD COLUMN trust_level TEXT;
ALTER TABLE sessions ADD COLUMN expires_at BIGINT;
