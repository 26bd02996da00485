DROP TABLE issuer_directory;
DROP TABLE identity_providers;
