-- Instruments: built-ins are global and read-only (a Citus reference table); an
-- organisation's own versions are tenant data keyed by org_id.
CREATE TABLE builtin_instrument_versions (
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    status      TEXT NOT NULL CHECK (status IN ('draft', 'published', 'retired')),
    definition  JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (key, version)
);

CREATE TABLE instrument_versions (
    org_id        UUID NOT NULL REFERENCES organizations (id),
    key           TEXT NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    status        TEXT NOT NULL CHECK (status IN ('draft', 'published', 'retired')),
    definition    JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ,
    retired_at    TIMESTAMPTZ,
    PRIMARY KEY (org_id, key, version)
);
