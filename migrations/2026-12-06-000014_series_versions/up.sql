-- The instrument versions of each kept (clinician, patient) series: a series whose versions
-- are not all on the latest version's scale is recomputed from `responses` with the
-- compatible versions only (one scale per series).
ALTER TABLE clinician_series ADD COLUMN versions INTEGER[];
UPDATE clinician_series c SET versions = (
    SELECT array_agg(DISTINCT r.instrument_version ORDER BY r.instrument_version)
    FROM responses r
    WHERE r.org_id = c.org_id AND r.instrument_key = c.instrument_key AND r.rater = c.rater
      AND r.clinician = c.clinician AND r.patient = c.patient
      AND r.status = 'active' AND r.total IS NOT NULL);
UPDATE clinician_series SET versions = ARRAY[instrument_version] WHERE versions IS NULL;
ALTER TABLE clinician_series ALTER COLUMN versions SET NOT NULL;
