-- FHIR identifiers keep system and value apart. v1 stored them as one "system|value"
-- string, so {system: "urn:sys|a", value: "b"} and {system: "urn:sys", value: "a|b"} were
-- one key. The idempotency key is now (org_id, external_system, external_id); REST
-- external_ids have no system (NULL), and NULL systems compare equal to each other.
ALTER TABLE responses ADD COLUMN external_system TEXT;

-- v1's FHIR keys: the first '|' was the separator it wrote.
UPDATE responses
SET external_system = split_part(external_id, '|', 1),
    external_id = substr(external_id, strpos(external_id, '|') + 1)
WHERE source = 'fhir' AND strpos(external_id, '|') > 0;

ALTER TABLE responses DROP CONSTRAINT responses_org_id_external_id_key;
CREATE UNIQUE INDEX responses_external_key ON responses (org_id, external_system, external_id)
    NULLS NOT DISTINCT WHERE external_id IS NOT NULL;
