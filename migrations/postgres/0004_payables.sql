-- C8: a checkout session pays payables — a bill today; a deposit order and an insured patient's
-- share next — each with its amount frozen. Every existing session row and payment is kept: a
-- session's bills become its payables of kind 'bill', each payment names the payable it paid.
-- The kinds still to come are accepted already. For a bill, `bill_id` repeats the payable id
-- and keeps the foreign key to `bills`.
-- Same tables and columns as migrations/sqlite/0004_payables.sql.

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

-- C3: one payment per payable, ever (bill_id keeps its UNIQUE: one payment per bill).
ALTER TABLE payments ADD COLUMN payable_kind TEXT;
ALTER TABLE payments ADD COLUMN payable_id TEXT;
UPDATE payments SET payable_kind = 'bill', payable_id = bill_id;
ALTER TABLE payments ALTER COLUMN payable_kind SET NOT NULL;
ALTER TABLE payments ALTER COLUMN payable_id SET NOT NULL;
ALTER TABLE payments ALTER COLUMN bill_id DROP NOT NULL;
ALTER TABLE payments ADD CONSTRAINT payments_payable_kind CHECK (payable_kind IN ('bill', 'deposit', 'insured_share'));
ALTER TABLE payments ADD CONSTRAINT payments_bill_is_payable
    CHECK ((payable_kind = 'bill') = (bill_id IS NOT NULL AND bill_id = payable_id));
ALTER TABLE payments ADD CONSTRAINT payments_one_per_payable UNIQUE (payable_kind, payable_id);
