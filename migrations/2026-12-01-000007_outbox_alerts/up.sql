-- Transactional outbox: one row per change to a response, written in the change's own
-- transaction; workers in every instance take rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbox_events (
    org_id          UUID NOT NULL REFERENCES organizations (id),
    id              UUID NOT NULL,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    kind            TEXT NOT NULL CHECK (kind IN ('response.created', 'response.voided', 'response.rescored')),
    response_id     UUID NOT NULL,
    patient         TEXT NOT NULL,
    instrument_key  TEXT NOT NULL,
    rater           TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at    TIMESTAMPTZ,
    -- How many times a worker committed its processing (1 unless an instance died mid-way).
    attempts        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX outbox_events_pending ON outbox_events (seq) WHERE processed_at IS NULL;
-- The pending events of one series (a worker takes them all: one evaluation serves them).
CREATE INDEX outbox_events_pending_series ON outbox_events (org_id, patient, instrument_key, rater)
    WHERE processed_at IS NULL;

-- Alerts derived from a series (organisation, patient, instrument, rater): `fingerprint`
-- names the fact (a rupture at a response, a below-cut-off run from a response, ...), so
-- re-evaluating a series upserts the same rows and changes nothing.
CREATE TABLE alerts (
    org_id                  UUID NOT NULL REFERENCES organizations (id),
    id                      UUID NOT NULL,
    seq                     BIGINT GENERATED ALWAYS AS IDENTITY,
    kind                    TEXT NOT NULL CHECK (kind IN ('rupture', 'below_cutoff', 'deterioration', 'item_flag')),
    status                  TEXT NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'acknowledged', 'resolved', 'withdrawn')),
    patient                 TEXT NOT NULL,
    clinician               TEXT,
    episode                 TEXT,
    instrument_key          TEXT NOT NULL,
    instrument_version      INTEGER NOT NULL,
    rater                   TEXT NOT NULL,
    response_id             UUID NOT NULL,
    fingerprint             TEXT NOT NULL,
    detail                  JSONB NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    acknowledged_at         TIMESTAMPTZ,
    acknowledged_by         TEXT,
    note                    TEXT,
    resolved_at             TIMESTAMPTZ,
    resolved_by_response_id UUID,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, fingerprint)
);
CREATE INDEX alerts_series ON alerts (org_id, patient, instrument_key, rater);
CREATE INDEX alerts_by_seq ON alerts (org_id, seq);
