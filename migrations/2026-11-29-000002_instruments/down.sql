DROP TABLE instrument_versions;
DROP TABLE builtin_instrument_versions;
