ALTER TABLE clinician_series DROP COLUMN versions;
