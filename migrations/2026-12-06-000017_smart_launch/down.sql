DROP TABLE launch_codes;
DROP TABLE launch_states;
DROP TABLE ehr_issuer_directory;
DROP TABLE ehr_connections;
