-- When a response was last replaced by a FHIR `amended` resource (null: never). The stored
-- QuestionnaireResponse reads back with status `amended` then.
ALTER TABLE responses ADD COLUMN amended_at TIMESTAMPTZ;
