-- CDS Hooks: the EHRs (CDS clients) that call rapport's services, the JWT ids they used
-- (kept until the token expires, so that no instance accepts one twice), the cards rapport
-- issued (kept 90 days, so that feedback can name them) and the feedback on those cards.
CREATE TABLE cds_clients (
    org_id             UUID NOT NULL REFERENCES organizations (id),
    id                 UUID NOT NULL,
    issuer             TEXT NOT NULL,
    jwks_uri           TEXT,
    jwks               JSONB,
    description        TEXT NOT NULL DEFAULT '',
    ehr_connection_id  UUID,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, issuer),
    CHECK ((jwks_uri IS NULL) <> (jwks IS NULL))
);

-- A CDS client's JWT names only its issuer: this global directory (a Citus reference
-- table, like issuer_directory) says whose it is and keeps an issuer to one organisation.
CREATE TABLE cds_issuer_directory (
    issuer         TEXT PRIMARY KEY,
    org_id         UUID NOT NULL,
    cds_client_id  UUID NOT NULL
);

CREATE TABLE cds_jtis (
    org_id      UUID NOT NULL REFERENCES organizations (id),
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, issuer, jti)
);
CREATE INDEX cds_jtis_expiry ON cds_jtis (org_id, expires_at);

CREATE TABLE cds_cards (
    org_id     UUID NOT NULL REFERENCES organizations (id),
    id         UUID NOT NULL,
    service    TEXT NOT NULL,
    patient    TEXT NOT NULL,
    alert_ids  UUID[] NOT NULL DEFAULT '{}',
    issued_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE INDEX cds_cards_by_time ON cds_cards (org_id, issued_at);
CREATE INDEX cds_cards_by_patient ON cds_cards (org_id, patient);

-- Feedback copies its card's alerts and patient: it outlives the card (an alert shows it)
-- and goes with the patient's erasure.
CREATE TABLE cds_feedback (
    org_id             UUID NOT NULL REFERENCES organizations (id),
    id                 UUID NOT NULL,
    card_id            UUID NOT NULL,
    service            TEXT NOT NULL,
    patient            TEXT NOT NULL,
    alert_ids          UUID[] NOT NULL,
    outcome            TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    outcome_timestamp  TIMESTAMPTZ NOT NULL,
    override_reason    JSONB,
    received_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE INDEX cds_feedback_by_alert ON cds_feedback USING gin (alert_ids);
CREATE INDEX cds_feedback_by_patient ON cds_feedback (org_id, patient);
