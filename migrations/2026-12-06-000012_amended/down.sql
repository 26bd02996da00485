ALTER TABLE responses DROP COLUMN amended_at;
