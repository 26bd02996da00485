-- Asymmetric clients (SMART Backend Services): a public key set instead of a secret.
ALTER TABLE api_clients ALTER COLUMN secret_hash DROP NOT NULL;
ALTER TABLE api_clients
    ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic'
        CHECK (token_endpoint_auth_method IN ('client_secret_basic', 'private_key_jwt')),
    ADD COLUMN jwks JSONB,
    ADD COLUMN jwks_uri TEXT,
    ADD CONSTRAINT api_clients_one_credential CHECK (
        CASE token_endpoint_auth_method
            WHEN 'client_secret_basic' THEN secret_hash IS NOT NULL AND jwks IS NULL AND jwks_uri IS NULL
            ELSE secret_hash IS NULL AND ((jwks IS NULL) <> (jwks_uri IS NULL))
        END);

-- Client assertion ids already used, kept until the assertion expires, so that no instance
-- accepts one twice (RFC 7523 section 3, SMART Backend Services).
CREATE TABLE client_assertion_jtis (
    org_id      UUID NOT NULL REFERENCES organizations (id),
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, client_id, jti)
);
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (org_id, expires_at);
