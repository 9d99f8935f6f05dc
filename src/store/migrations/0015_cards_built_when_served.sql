-- Cards are built from the agent's record whenever they are served, so a key rotation, a lock
-- or a denial shows in the next card: `agent_cards` keeps only what the operator set
-- (`settings`) and whether the card is published. The card as it was built when generated,
-- with the trust score and key of that moment, is no longer kept.
ALTER TABLE agent_cards DROP COLUMN card;
