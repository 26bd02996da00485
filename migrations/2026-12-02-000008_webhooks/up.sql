-- Webhook endpoints of an organisation. The signing secret is kept as issued (HMAC needs
-- it); `previous_secret` signs alongside it until `previous_secret_expires_at` (rotation).
CREATE TABLE webhook_endpoints (
    org_id                     UUID NOT NULL REFERENCES organizations (id),
    id                         UUID NOT NULL,
    url                        TEXT NOT NULL,
    events                     TEXT[] NOT NULL,
    description                TEXT,
    payload                    TEXT NOT NULL CHECK (payload IN ('full', 'id-only')),
    status                     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at                TIMESTAMPTZ,
    PRIMARY KEY (org_id, id)
);

-- One message of one event to one endpoint. `body` is the exact JSON that is signed and
-- sent on every attempt; `event_id` is its `webhook-id`.
CREATE TABLE webhook_deliveries (
    org_id          UUID NOT NULL,
    id              UUID NOT NULL,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    endpoint_id     UUID NOT NULL,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, endpoint_id, event_id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE
);
-- What the delivery workers take: pending and due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (org_id, endpoint_id, seq);
