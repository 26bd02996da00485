-- SMART App Launch (EHR launch): the organisation's EHR connections, the global directory
-- that finds a connection from its issuer or id (a Citus reference table), the pending
-- authorization states (10 minutes, single use, bound to a browser) and the one-time codes
-- that hand a finished launch to the console (60 s, single use).
CREATE TABLE ehr_connections (
    org_id         UUID NOT NULL REFERENCES organizations (id),
    id             UUID NOT NULL,
    issuer         TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_auth    TEXT NOT NULL CHECK (client_auth IN ('client_secret_basic', 'private_key_jwt')),
    -- What rapport sends to the EHR, so kept as given (like a webhook's signing secret);
    -- never shown again by the API.
    client_secret  TEXT,
    -- The private half of the key pair rapport made (PKCS#8 DER), its algorithm and the
    -- public JWK published at /launch/jwks/{id}.
    signing_key    BYTEA,
    signing_alg    TEXT,
    public_jwk     JSONB,
    frame_origins  TEXT[] NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, issuer),
    CHECK ((client_auth = 'client_secret_basic') = (client_secret IS NOT NULL)),
    CHECK ((client_auth = 'private_key_jwt') = (signing_key IS NOT NULL))
);

CREATE TABLE ehr_issuer_directory (
    issuer         TEXT PRIMARY KEY,
    org_id         UUID NOT NULL,
    connection_id  UUID NOT NULL UNIQUE
);

CREATE TABLE launch_states (
    org_id          UUID NOT NULL REFERENCES organizations (id),
    state_hash      BYTEA NOT NULL,
    connection_id   UUID NOT NULL,
    browser_hash    BYTEA NOT NULL,
    code_verifier   TEXT NOT NULL,
    token_endpoint  TEXT NOT NULL,
    oidc_issuer     TEXT NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, state_hash)
);
CREATE INDEX launch_states_by_connection ON launch_states (org_id, connection_id);
CREATE INDEX launch_states_expiry ON launch_states (org_id, expires_at);

CREATE TABLE launch_codes (
    org_id          UUID NOT NULL REFERENCES organizations (id),
    code_hash       BYTEA NOT NULL,
    connection_id   UUID NOT NULL,
    patient         TEXT NOT NULL,
    fhir_user       TEXT NOT NULL,
    user_name       TEXT,
    token_seconds   BIGINT NOT NULL,
    alert_id        UUID,
    instrument      TEXT,
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, code_hash)
);
CREATE INDEX launch_codes_by_connection ON launch_codes (org_id, connection_id);
CREATE INDEX launch_codes_by_patient ON launch_codes (org_id, patient);
