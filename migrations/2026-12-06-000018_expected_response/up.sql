-- The expected-response model per organisation, instrument key and rater (Finch, Lambert &
-- Schaalje 2001, fitted on the organisation's own courses): the last fit, what it was fitted
-- on, and since when new, voided or erased responses wait for a refit.
CREATE TABLE expected_models (
    org_id              UUID NOT NULL REFERENCES organizations (id),
    instrument_key      TEXT NOT NULL,
    rater               TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('fitted', 'insufficient_data', 'degenerate')),
    n_courses           BIGINT NOT NULL,
    n_points            BIGINT NOT NULL,
    intercept           DOUBLE PRECISION,
    intake              DOUBLE PRECISION,
    log_t               DOUBLE PRECISION,
    intake_log_t        DOUBLE PRECISION,
    residual_sd         DOUBLE PRECISION,
    intake_p10          DOUBLE PRECISION,
    intake_p50          DOUBLE PRECISION,
    intake_p90          DOUBLE PRECISION,
    fitted_at           TIMESTAMPTZ,
    -- Set by the first new, voided or erased response after the last fit.
    dirty_since         TIMESTAMPTZ,
    PRIMARY KEY (org_id, instrument_key, rater),
    CHECK ((status = 'fitted') = (residual_sd IS NOT NULL))
);
CREATE INDEX expected_models_dirty ON expected_models (dirty_since) WHERE dirty_since IS NOT NULL;

-- The alert kind the model raises.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('rupture', 'below_cutoff', 'deterioration', 'item_flag', 'not_on_track'));

-- Responses stored before this migration count: every series' instrument and rater waits
-- for its first look by the refit worker.
INSERT INTO expected_models (org_id, instrument_key, rater, status, n_courses, n_points, dirty_since)
SELECT DISTINCT org_id, instrument_key, rater, 'insufficient_data', 0, 0, now() FROM responses;
