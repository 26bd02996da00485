-- Responses (administrations): one completion of one instrument version, with its score
-- computed at ingest from the pinned version.
CREATE TABLE responses (
    org_id              UUID NOT NULL REFERENCES organizations (id),
    id                  UUID NOT NULL,
    -- Insert order, for keyset pagination that no concurrent insert can disturb.
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY,
    instrument_key      TEXT NOT NULL,
    instrument_version  INTEGER NOT NULL,
    patient             TEXT NOT NULL,
    clinician           TEXT,
    episode             TEXT,
    rater               TEXT NOT NULL CHECK (rater IN ('patient', 'clinician', 'observer')),
    administered_at     TIMESTAMPTZ NOT NULL,
    session             INTEGER CHECK (session >= 1),
    answers             JSONB NOT NULL,
    external_id         TEXT,
    payload_hash        BYTEA NOT NULL,
    source              TEXT NOT NULL CHECK (source IN ('api', 'fhir')),
    status              TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'voided')),
    void_reason         TEXT,
    voided_at           TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by          TEXT NOT NULL,
    total               DOUBLE PRECISION,
    mean                DOUBLE PRECISION,
    pomp                DOUBLE PRECISION,
    subscales           JSONB,
    answered            INTEGER,
    missing             INTEGER,
    prorated            BOOLEAN,
    flags               TEXT[],
    score_error         TEXT,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, external_id)
);

-- One patient's series for one instrument and rater, in time order (ties by insert order),
-- covering what trends read so the scan is index-only.
CREATE INDEX responses_patient_series ON responses
    (org_id, patient, instrument_key, rater, administered_at, seq)
    INCLUDE (id, status, total, session, clinician, episode);

-- One clinician's responses.
CREATE INDEX responses_clinician ON responses
    (org_id, clinician, instrument_key, rater, administered_at, seq)
    INCLUDE (id, status, total, patient, session)
    WHERE clinician IS NOT NULL;

-- The paged list.
CREATE INDEX responses_by_seq ON responses (org_id, seq);
