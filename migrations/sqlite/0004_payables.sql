-- C8: a checkout session pays payables — a bill today; a deposit order and an insured patient's
-- share next — each with its amount frozen. Every existing session row and payment is kept: a
-- session's bills become its payables of kind 'bill', each payment names the payable it paid.
-- The kinds still to come are accepted already, so adding them needs no table rebuild. For a
-- bill, `bill_id` repeats the payable id and keeps the foreign key to `bills`.
-- Same tables and columns as migrations/postgres/0004_payables.sql.

CREATE TABLE session_payables (
    session_id   TEXT NOT NULL REFERENCES checkout_sessions (id),
    payable_kind TEXT NOT NULL CHECK (payable_kind IN ('bill', 'deposit', 'insured_share')),
    payable_id   TEXT NOT NULL,
    bill_id      TEXT REFERENCES bills (id),
    amount_fen   BIGINT NOT NULL CHECK (amount_fen > 0),
    active       BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, payable_kind, payable_id),
    CHECK ((payable_kind = 'bill') = (bill_id IS NOT NULL AND bill_id = payable_id))
);
INSERT INTO session_payables (session_id, payable_kind, payable_id, bill_id, amount_fen, active)
    SELECT session_id, 'bill', bill_id, bill_id, amount_fen, active FROM session_bills;
DROP TABLE session_bills;
-- C2: a payable is in at most one active session.
CREATE UNIQUE INDEX session_payables_one_active ON session_payables (payable_kind, payable_id) WHERE active;
CREATE INDEX session_payables_bill ON session_payables (bill_id);

-- C3: one payment per payable, ever (and so per bill).
CREATE TABLE payments_v4 (
    id               TEXT PRIMARY KEY,
    session_id       TEXT NOT NULL REFERENCES checkout_sessions (id),
    payable_kind     TEXT NOT NULL CHECK (payable_kind IN ('bill', 'deposit', 'insured_share')),
    payable_id       TEXT NOT NULL,
    bill_id          TEXT UNIQUE REFERENCES bills (id),
    amount_fen       BIGINT NOT NULL CHECK (amount_fen > 0),
    provider         TEXT NOT NULL,
    provider_txn_id  TEXT NOT NULL,
    journal_entry_id TEXT NOT NULL REFERENCES journal_entries (id),
    receipt_no       TEXT NOT NULL UNIQUE,
    paid_at          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    UNIQUE (payable_kind, payable_id),
    CHECK ((payable_kind = 'bill') = (bill_id IS NOT NULL AND bill_id = payable_id))
);
INSERT INTO payments_v4 (id, session_id, payable_kind, payable_id, bill_id, amount_fen, provider, provider_txn_id,
                         journal_entry_id, receipt_no, paid_at, created_at)
    SELECT id, session_id, 'bill', bill_id, bill_id, amount_fen, provider, provider_txn_id,
           journal_entry_id, receipt_no, paid_at, created_at FROM payments;
DROP TABLE payments;
ALTER TABLE payments_v4 RENAME TO payments;
CREATE INDEX payments_paid_at ON payments (paid_at);
CREATE INDEX payments_session ON payments (session_id);
