-- `seq` columns become bigint columns with a sequence default instead of identity columns:
-- Citus refuses to distribute a table with an identity column, and a sequence default is
-- evaluated on the coordinator for every insert routed through it, so `seq` keeps its order
-- there. Nothing writes `seq` itself. Right on plain Postgres as well.

ALTER TABLE audit_events ALTER COLUMN seq DROP IDENTITY;
CREATE SEQUENCE audit_events_seq_seq AS bigint OWNED BY audit_events.seq;
SELECT setval('audit_events_seq_seq', COALESCE((SELECT max(seq) FROM audit_events), 0) + 1, false);
ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('audit_events_seq_seq');

ALTER TABLE responses ALTER COLUMN seq DROP IDENTITY;
CREATE SEQUENCE responses_seq_seq AS bigint OWNED BY responses.seq;
SELECT setval('responses_seq_seq', COALESCE((SELECT max(seq) FROM responses), 0) + 1, false);
ALTER TABLE responses ALTER COLUMN seq SET DEFAULT nextval('responses_seq_seq');

ALTER TABLE outbox_events ALTER COLUMN seq DROP IDENTITY;
CREATE SEQUENCE outbox_events_seq_seq AS bigint OWNED BY outbox_events.seq;
SELECT setval('outbox_events_seq_seq', COALESCE((SELECT max(seq) FROM outbox_events), 0) + 1, false);
ALTER TABLE outbox_events ALTER COLUMN seq SET DEFAULT nextval('outbox_events_seq_seq');

ALTER TABLE alerts ALTER COLUMN seq DROP IDENTITY;
CREATE SEQUENCE alerts_seq_seq AS bigint OWNED BY alerts.seq;
SELECT setval('alerts_seq_seq', COALESCE((SELECT max(seq) FROM alerts), 0) + 1, false);
ALTER TABLE alerts ALTER COLUMN seq SET DEFAULT nextval('alerts_seq_seq');

ALTER TABLE webhook_deliveries ALTER COLUMN seq DROP IDENTITY;
CREATE SEQUENCE webhook_deliveries_seq_seq AS bigint OWNED BY webhook_deliveries.seq;
SELECT setval('webhook_deliveries_seq_seq', COALESCE((SELECT max(seq) FROM webhook_deliveries), 0) + 1, false);
ALTER TABLE webhook_deliveries ALTER COLUMN seq SET DEFAULT nextval('webhook_deliveries_seq_seq');
