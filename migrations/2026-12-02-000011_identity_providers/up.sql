-- An organisation's own OpenID provider: bearer tokens it signs are accepted for the
-- organisation's API.
CREATE TABLE identity_providers (
    org_id       UUID NOT NULL REFERENCES organizations (id),
    id           UUID NOT NULL,
    issuer       TEXT NOT NULL,
    jwks_uri     TEXT NOT NULL,
    audience     TEXT NOT NULL,
    scope_claim  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, issuer)
);

-- A token names only its issuer: this global directory (a Citus reference table, like
-- client_directory) says whose it is, and keeps an issuer to one organisation.
CREATE TABLE issuer_directory (
    issuer       TEXT PRIMARY KEY,
    org_id       UUID NOT NULL,
    provider_id  UUID NOT NULL
);
