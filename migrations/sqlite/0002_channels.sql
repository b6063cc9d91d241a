-- Payment channel configurations (G6, S4) and raw provider notifications (G4).

CREATE TABLE channel_configs (
    id                 TEXT PRIMARY KEY,
    provider           TEXT NOT NULL CHECK (provider IN ('alipay', 'wechatpay', 'bank')),
    name               TEXT NOT NULL,
    -- app_id (Alipay), mchid (WeChat Pay), merchant_id (bank gateway)
    account_id         TEXT NOT NULL,
    is_default         BOOLEAN NOT NULL DEFAULT FALSE,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    sandbox            BOOLEAN NOT NULL DEFAULT FALSE,
    -- JSON of the non-secret settings (gateway URL, public keys, serial numbers, app id …)
    settings           TEXT NOT NULL,
    -- AES-256-GCM under master key `secret_key_version`: base64(nonce || ciphertext || tag)
    secret_ciphertext  TEXT NOT NULL,
    secret_key_version BIGINT NOT NULL,
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX channel_configs_one_default ON channel_configs (provider) WHERE is_default;
CREATE UNIQUE INDEX channel_configs_account ON channel_configs (provider, account_id);

-- Every notification as received, stored before anything else is done with it.
CREATE TABLE notifications (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    remote_addr  TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers      TEXT NOT NULL,
    body         BLOB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('received', 'applied', 'duplicate', 'rejected', 'failed', 'ignored')),
    reason       TEXT,
    channel_id   TEXT,
    event_id     TEXT,
    out_trade_no TEXT,
    processed_at BIGINT
);
CREATE INDEX notifications_status ON notifications (status, received_at);
CREATE INDEX notifications_trade ON notifications (out_trade_no);

-- One row per provider event ever applied: the duplicate detector.
CREATE TABLE provider_events (
    provider        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);
