DROP TABLE client_assertion_jtis;
ALTER TABLE api_clients DROP CONSTRAINT api_clients_one_credential;
ALTER TABLE api_clients DROP COLUMN jwks_uri, DROP COLUMN jwks, DROP COLUMN token_endpoint_auth_method;
ALTER TABLE api_clients ALTER COLUMN secret_hash SET NOT NULL;
