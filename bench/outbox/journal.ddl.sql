-- One append-only table that would serve both the audit log and the
-- outbox: keel_audit's columns plus keel_outbox's, with both tables'
-- indexes. Measured against two tables in docs/benchmarks.md.
CREATE TABLE IF NOT EXISTS keel_journal (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity VARCHAR(64) NOT NULL, entity_id VARCHAR(128) NOT NULL, action VARCHAR(16) NOT NULL,
  actor VARCHAR NOT NULL, tenant VARCHAR, request_id VARCHAR(128) NOT NULL,
  at TIMESTAMPTZ NOT NULL, changes JSONB NOT NULL,
  event_id VARCHAR(36) NOT NULL, topic VARCHAR(255) NOT NULL, payload TEXT NOT NULL,
  created_ms BIGINT NOT NULL, state SMALLINT NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  next_ms BIGINT NOT NULL DEFAULT 0, lease_owner VARCHAR(64), lease_ms BIGINT NOT NULL DEFAULT 0,
  done_ms BIGINT, last_error TEXT);
CREATE INDEX IF NOT EXISTS keel_journal_entity_row ON keel_journal (entity, entity_id, id);
CREATE INDEX IF NOT EXISTS keel_journal_pending ON keel_journal (id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS keel_journal_pending_topic ON keel_journal (topic, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS keel_journal_done ON keel_journal (done_ms) WHERE state <> 0;
