-- Events out to the hospital's systems (issue 15 #2, PRODUCT.md I5). Keep in step with
-- migrations/postgres/0008_webhooks.sql.

-- Where events go: an address, the event types it wants, and the signing secret sealed under
-- the master key (AES-256-GCM, bound to the endpoint's id). Changed by compare-and-set on version.
CREATE TABLE webhook_endpoints (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    url                TEXT NOT NULL,
    topics             TEXT NOT NULL CHECK (topics <> ''),
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    secret_key_version BIGINT NOT NULL,
    secret_ciphertext  TEXT NOT NULL,
    secret_hint        TEXT NOT NULL,
    version            BIGINT NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- An event, fixed when it is made: the same id, type and body on every attempt to every endpoint.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    topic        TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX webhook_events_aggregate ON webhook_events (aggregate_id);
CREATE TRIGGER webhook_events_fixed BEFORE UPDATE ON webhook_events
BEGIN
    SELECT RAISE(ABORT, 'an event never changes');
END;

-- One event to one endpoint: retried on a schedule until delivered or failed; re-sent by hand.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Attempts since it was last queued (created or re-sent by hand): the retry schedule's step.
    round_attempts   BIGINT NOT NULL DEFAULT 0 CHECK (round_attempts >= 0 AND round_attempts <= attempts),
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_id),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (created_at);

-- Every attempt, as it went: what the endpoint answered (the first 500 characters), or why not.
CREATE TABLE webhook_attempts (
    delivery_id      TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt          BIGINT NOT NULL CHECK (attempt >= 1),
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      BIGINT,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
