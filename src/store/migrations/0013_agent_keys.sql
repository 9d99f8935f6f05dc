-- Agent keys, proof of possession, WIMSE workload tokens and DPoP.
--
-- An agent's current key stays in `agents.public_key` (SPKI PEM); its RFC 7638 thumbprint is
-- what sender-constrained tokens bind (`cnf.jkt`). After a rotation the previous key keeps
-- working until `previous_key_valid_until` (unix seconds), so a fleet can roll over.
ALTER TABLE agents ADD COLUMN public_key_thumbprint TEXT;
ALTER TABLE agents ADD COLUMN previous_public_key TEXT;
ALTER TABLE agents ADD COLUMN previous_key_thumbprint TEXT;
ALTER TABLE agents ADD COLUMN previous_key_valid_until BIGINT;

-- Proof-of-possession challenges: single use, short-lived, bound to one agent. Only the
-- SHA-256 digest of the nonce is kept; redeeming one deletes its row, so of two concurrent
-- redemptions exactly one succeeds.
CREATE TABLE pop_challenges (
    nonce_digest TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    agent_id     TEXT NOT NULL REFERENCES agents (id),
    expires_at   BIGINT NOT NULL
);
CREATE INDEX pop_challenges_by_expiry ON pop_challenges (expires_at);

-- DPoP proofs already seen (RFC 9449 `jti`, per key), shared by every replica; a row is kept
-- until the proof's `iat` falls out of the accepted window, then pruned.
CREATE TABLE dpop_proofs_seen (
    proof_digest TEXT PRIMARY KEY,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_seen_by_expiry ON dpop_proofs_seen (expires_at);

-- What an org enforces. No row: nothing (both flags off).
CREATE TABLE org_security_settings (
    org_id                            TEXT PRIMARY KEY REFERENCES orgs (id),
    require_proof_of_possession       BOOLEAN NOT NULL,
    require_sender_constrained_tokens BOOLEAN NOT NULL,
    updated_at                        BIGINT NOT NULL
);
