-- Every event announced to an organisation that has webhook endpoints, kept
-- RAPPORT_EVENT_RETENTION_DAYS so that `POST /v1/webhooks/{id}/replay` can send an endpoint
-- what it missed (a 410 disabled it, a receiver lost data) with the same event ids and the
-- payload as it was. Erasure deletes a patient's kept events.
CREATE TABLE webhook_events (
    org_id        UUID NOT NULL REFERENCES organizations (id),
    id            UUID NOT NULL,
    event_type    TEXT NOT NULL,
    patient       TEXT,
    occurred_at   TIMESTAMPTZ NOT NULL,
    full_data     TEXT NOT NULL,
    id_only_data  TEXT NOT NULL,
    kept_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE INDEX webhook_events_by_time ON webhook_events (org_id, occurred_at);
CREATE INDEX webhook_events_by_patient ON webhook_events (org_id, patient);
CREATE INDEX webhook_events_kept ON webhook_events (kept_at);
