-- Checkout sessions over 1..N bills, payments per bill, exceptions, provider refunds, outbox,
-- idempotency keys and API tokens (C1–C5, G5).

CREATE TABLE checkout_sessions (
    id                   TEXT PRIMARY KEY,
    patient_id           TEXT NOT NULL REFERENCES patients (id),
    channel_id           TEXT NOT NULL REFERENCES channel_configs (id),
    provider             TEXT NOT NULL CHECK (provider IN ('alipay', 'wechatpay', 'bank')),
    method               TEXT NOT NULL,
    out_trade_no         TEXT NOT NULL UNIQUE,
    total_fen            BIGINT NOT NULL CHECK (total_fen > 0),
    status               TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled', 'closed', 'failed')),
    expires_at           BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    created_by           TEXT NOT NULL,
    updated_at           BIGINT NOT NULL,
    -- what the payer is given: 'qr' | 'redirect' | 'form' | 'jsapi', and its content
    pay_kind             TEXT,
    pay_content          TEXT,
    provider_txn_id      TEXT UNIQUE,
    paid_at              BIGINT,
    paid_fen             BIGINT,
    closed_at            BIGINT,
    close_reason         TEXT,
    -- closing the trade at the provider after expiry/cancel: 'none' | 'pending' | 'done'
    provider_close       TEXT NOT NULL DEFAULT 'none' CHECK (provider_close IN ('none', 'pending', 'done')),
    sync_next_at         BIGINT,
    sync_attempts        BIGINT NOT NULL DEFAULT 0,
    lease_until          BIGINT NOT NULL DEFAULT 0,
    replaced_by          TEXT,
    version              BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX checkout_sessions_pending ON checkout_sessions (status, expires_at);
CREATE INDEX checkout_sessions_sync ON checkout_sessions (status, sync_next_at);
CREATE INDEX checkout_sessions_close ON checkout_sessions (provider_close);
CREATE INDEX checkout_sessions_patient ON checkout_sessions (patient_id, created_at);
-- the latest payments (dashboard): by status, newest first
CREATE INDEX checkout_sessions_paid ON checkout_sessions (status, paid_at);

-- C1/C2: the bills of a session with their amounts frozen at creation. `active` while the
-- session is pending: the partial unique index keeps a bill in at most one active session.
CREATE TABLE session_bills (
    session_id TEXT NOT NULL REFERENCES checkout_sessions (id),
    bill_id    TEXT NOT NULL REFERENCES bills (id),
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    active     BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, bill_id)
);
CREATE UNIQUE INDEX session_bills_one_active ON session_bills (bill_id) WHERE active;

-- C3: one payment per bill, ever.
CREATE TABLE payments (
    id               TEXT PRIMARY KEY,
    session_id       TEXT NOT NULL REFERENCES checkout_sessions (id),
    bill_id          TEXT NOT NULL UNIQUE REFERENCES bills (id),
    amount_fen       BIGINT NOT NULL CHECK (amount_fen > 0),
    provider         TEXT NOT NULL,
    provider_txn_id  TEXT NOT NULL,
    journal_entry_id TEXT NOT NULL REFERENCES journal_entries (id),
    receipt_no       TEXT NOT NULL UNIQUE,
    paid_at          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX payments_paid_at ON payments (paid_at);
CREATE INDEX payments_session ON payments (session_id);

-- Every provider transaction we ever accounted for, allocated or not: a transaction id is
-- booked once.
CREATE TABLE provider_transactions (
    provider        TEXT NOT NULL,
    provider_txn_id TEXT NOT NULL,
    out_trade_no    TEXT NOT NULL,
    session_id      TEXT,
    amount_fen      BIGINT NOT NULL,
    disposition     TEXT NOT NULL CHECK (disposition IN ('allocated', 'unallocated')),
    journal_entry_id TEXT NOT NULL REFERENCES journal_entries (id),
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (provider, provider_txn_id)
);

-- C4: payments that could not be applied as asked, and what became of them.
CREATE TABLE payment_exceptions (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('amount_mismatch', 'late_payment', 'bills_unavailable', 'refund_failed')),
    session_id      TEXT,
    provider        TEXT NOT NULL,
    channel_id      TEXT,
    out_trade_no    TEXT NOT NULL,
    provider_txn_id TEXT NOT NULL,
    amount_fen      BIGINT NOT NULL,
    expected_fen    BIGINT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'held', 'refund_pending', 'refunded', 'resolved')),
    detail          TEXT NOT NULL,
    resolution      TEXT,
    resolved_by     TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX payment_exceptions_once ON payment_exceptions (kind, provider, provider_txn_id);
CREATE INDEX payment_exceptions_status ON payment_exceptions (status, created_at);

-- Refunds we asked a provider for, driven by a worker until the provider confirms.
CREATE TABLE provider_refunds (
    id                 TEXT PRIMARY KEY,
    out_refund_no      TEXT NOT NULL UNIQUE,
    provider           TEXT NOT NULL,
    channel_id         TEXT NOT NULL,
    out_trade_no       TEXT NOT NULL,
    total_fen          BIGINT NOT NULL,
    amount_fen         BIGINT NOT NULL CHECK (amount_fen > 0),
    reason             TEXT NOT NULL,
    exception_id       TEXT,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    provider_refund_id TEXT,
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT NOT NULL,
    lease_until        BIGINT NOT NULL DEFAULT 0,
    last_error         TEXT,
    journal_entry_id   TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX provider_refunds_due ON provider_refunds (status, next_attempt_at);

-- Events for later consumers, written in the same transaction as the change they describe.
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    topic        TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'published')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (status, created_at);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('cashier', 'finance', 'admin')),
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    last_used_at BIGINT
);
