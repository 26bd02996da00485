ALTER TABLE responses DROP COLUMN band;
