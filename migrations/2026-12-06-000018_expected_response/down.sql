DELETE FROM alerts WHERE kind = 'not_on_track';
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('rupture', 'below_cutoff', 'deterioration', 'item_flag'));
DROP TABLE expected_models;
