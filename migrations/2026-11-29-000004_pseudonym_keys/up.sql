-- Per-organisation secret for export pseudonyms (HMAC-SHA256 key), created on first use.
CREATE TABLE pseudonym_keys (
    org_id      UUID NOT NULL REFERENCES organizations (id),
    secret      BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id)
);
