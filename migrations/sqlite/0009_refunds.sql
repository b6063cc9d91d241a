-- Refunds of paid bills with maker-checker approval (issue 9, PRODUCT.md R1–R3). Keep in step
-- with migrations/postgres/0009_refunds.sql.

-- R1: what every refund that is not rejected holds of a bill. The refund's own transaction
-- raises it by compare-and-set, and this CHECK is the last word: concurrent requests can never
-- hold more than the bill's total. `refunded_fen` (0001) counts what actually went back.
ALTER TABLE bills ADD COLUMN refund_held_fen BIGINT NOT NULL DEFAULT 0
    CHECK (refund_held_fen >= 0 AND refund_held_fen <= total_fen);

-- A refund of (part of) one paid bill. Its id is also the id of the provider refund that pays
-- it (`provider_refunds.bill_refund_id`), and `refund_no` is the number the provider knows.
CREATE TABLE bill_refunds (
    id                 TEXT PRIMARY KEY,
    refund_no          TEXT NOT NULL UNIQUE,
    bill_id            TEXT NOT NULL REFERENCES bills (id),
    payment_id         TEXT NOT NULL REFERENCES payments (id),
    amount_fen         BIGINT NOT NULL CHECK (amount_fen > 0),
    reason_code        TEXT NOT NULL CHECK (reason_code IN ('drug_returned', 'exam_cancelled', 'duplicate_payment', 'price_correction', 'other')),
    reason_text        TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'submitted', 'succeeded', 'failed', 'manual')),
    approvals_needed   INTEGER NOT NULL CHECK (approvals_needed BETWEEN 0 AND 2),
    requested_by       TEXT NOT NULL,
    requested_by_name  TEXT NOT NULL,
    approved_by        TEXT,
    approved_by_name   TEXT,
    second_approved_by TEXT,
    second_approved_by_name TEXT,
    decision_note      TEXT,
    -- who rejected it, sent it again or recorded it as paid by hand (the last such step)
    decided_by         TEXT,
    decided_by_name    TEXT,
    journal_entry_id   TEXT REFERENCES journal_entries (id),
    idem_scope         TEXT,
    idem_key           TEXT,
    request_hash       TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    refunded_at        BIGINT,
    -- R2: the requester never approves their own refund, and two approvers are two people
    CHECK (approved_by IS NULL OR approved_by <> requested_by),
    CHECK (second_approved_by IS NULL OR (approved_by IS NOT NULL AND second_approved_by <> requested_by AND second_approved_by <> approved_by)),
    UNIQUE (idem_scope, idem_key)
);
CREATE INDEX bill_refunds_bill ON bill_refunds (bill_id, created_at);
CREATE INDEX bill_refunds_status ON bill_refunds (status, created_at);
-- R2: one request per bill waits for approval at a time (a second is refused).
CREATE UNIQUE INDEX bill_refunds_one_waiting ON bill_refunds (bill_id) WHERE status IN ('requested', 'approved');

-- Item lines refunded whole: a line is in at most one refund that is not rejected.
CREATE TABLE bill_refund_lines (
    refund_id  TEXT NOT NULL REFERENCES bill_refunds (id),
    bill_id    TEXT NOT NULL,
    line_no    INTEGER NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    active     BOOLEAN NOT NULL,
    PRIMARY KEY (refund_id, line_no),
    FOREIGN KEY (bill_id, line_no) REFERENCES bill_items (bill_id, line_no)
);
CREATE UNIQUE INDEX bill_refund_lines_once ON bill_refund_lines (bill_id, line_no) WHERE active;

ALTER TABLE provider_refunds ADD COLUMN bill_refund_id TEXT REFERENCES bill_refunds (id);
