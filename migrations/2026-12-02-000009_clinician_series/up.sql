-- Every (clinician, patient) series of one instrument and rater, kept by the outbox worker
-- in the transaction that marks the series' events processed: the all-clinicians list reads
-- one row per series instead of every response. Only norm-free facts are kept (the totals
-- in series order and counts); ruptures and reliable change are computed when read, with
-- the norms of that moment. A series with pending outbox events is read from `responses`.
CREATE TABLE clinician_series (
    org_id              UUID NOT NULL REFERENCES organizations (id),
    instrument_key      TEXT NOT NULL,
    rater               TEXT NOT NULL,
    clinician           TEXT NOT NULL,
    patient             TEXT NOT NULL,
    -- Active, scored totals in series order (administered_at, then insertion).
    totals              DOUBLE PRECISION[] NOT NULL,
    -- The series' latest instrument version.
    instrument_version  INTEGER NOT NULL,
    below_cutoff        BIGINT NOT NULL,
    session3_sum        DOUBLE PRECISION,
    session3_count      BIGINT NOT NULL,
    PRIMARY KEY (org_id, instrument_key, rater, clinician, patient)
);
-- The outbox worker refreshes a patient's series: found by patient, not by clinician (the
-- primary key alone would scan every series of the instrument).
CREATE INDEX clinician_series_by_patient ON clinician_series (org_id, patient, instrument_key, rater);

INSERT INTO clinician_series
SELECT org_id, instrument_key, rater, clinician, patient,
       array_agg(total ORDER BY administered_at, seq),
       max(instrument_version),
       count(*) FILTER (WHERE 'below_cutoff' = ANY(flags)),
       sum(total) FILTER (WHERE session = 3),
       count(*) FILTER (WHERE session = 3)
FROM responses
WHERE status = 'active' AND total IS NOT NULL AND clinician IS NOT NULL
GROUP BY org_id, instrument_key, rater, clinician, patient;
