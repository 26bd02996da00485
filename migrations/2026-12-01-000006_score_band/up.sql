-- The label of the interpretation band holding the total (outcome instruments: PHQ-9
-- "moderate"), computed at ingest from the pinned version like the rest of the score.
ALTER TABLE responses ADD COLUMN band TEXT;
