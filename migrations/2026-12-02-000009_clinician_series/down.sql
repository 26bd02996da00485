DROP TABLE clinician_series;
