DROP INDEX responses_external_key;
UPDATE responses SET external_id = external_system || '|' || external_id WHERE external_system IS NOT NULL;
ALTER TABLE responses DROP COLUMN external_system;
ALTER TABLE responses ADD CONSTRAINT responses_org_id_external_id_key UNIQUE (org_id, external_id);
