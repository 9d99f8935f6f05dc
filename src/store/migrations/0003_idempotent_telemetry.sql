-- Reporters may name their events; a named event is stored once per org, so a report retried
-- after a lost answer does not store it twice.
ALTER TABLE telemetry_events ADD COLUMN client_event_id TEXT;
CREATE UNIQUE INDEX telemetry_by_client_event ON telemetry_events (org_id, client_event_id);
