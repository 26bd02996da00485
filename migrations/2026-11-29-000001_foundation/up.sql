-- Foundation: tenants, API clients and the audit trail.
-- Scale-out rule (SPEC "Scale-out"): every tenant-owned table carries org_id, and every
-- primary key, unique constraint and foreign key between tenant tables includes it.

-- Global, process-independent secrets (the generated JWT signing key). Would be a Citus
-- reference table.
CREATE TABLE service_secrets (
    name        TEXT PRIMARY KEY,
    value       BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_clients (
    org_id       UUID NOT NULL REFERENCES organizations (id),
    id           UUID NOT NULL,
    client_id    TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    name         TEXT NOT NULL,
    scopes       TEXT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, client_id)
);

-- The token endpoint knows only a client_id, not its organisation. This small global
-- directory (a Citus reference table) maps one to the other; it holds no secret.
CREATE TABLE client_directory (
    client_id   TEXT PRIMARY KEY,
    org_id      UUID NOT NULL
);

CREATE TABLE audit_events (
    org_id         UUID NOT NULL REFERENCES organizations (id),
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    id             UUID NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    detail         JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (org_id, seq),
    UNIQUE (org_id, id)
);
