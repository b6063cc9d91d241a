-- Counter payments (C9): cash and a POS bank-card slip recorded by the cashier. A counter payment
-- is a checkout session on one of the two built-in counter channels, opened and paid in the same
-- transaction through the same payment rules as a QR payment (C3); `counter_payments` keeps what
-- the cashier recorded (cash tendered and change, or the POS slip). Keep in step with
-- migrations/postgres/0014_counter_payments.sql.
--
-- The providers' CHECKs on `channel_configs` and `checkout_sessions` must also allow 'cash' and
-- 'pos'. SQLite cannot change a CHECK in place, and the table rebuild needs foreign keys off,
-- which only works outside a transaction — and sqlx runs every SQLite migration inside one. So
-- the rebuild, and the two built-in counter channels, are done right after the migrations by
-- `server/src/db/counter.rs` (`widen_sqlite_provider_checks`), once, on its own connection.
INSERT OR IGNORE INTO ledger_accounts (code, name_zh, name_en, kind) VALUES
    ('1012.04', 'POS 刷卡待清算', 'POS card clearing', 'asset');

-- What the cashier recorded, once, never changed.
CREATE TABLE IF NOT EXISTS counter_payments (
    session_id    TEXT PRIMARY KEY REFERENCES checkout_sessions (id),
    kind          TEXT NOT NULL CHECK (kind IN ('cash', 'pos')),
    amount_fen    BIGINT NOT NULL CHECK (amount_fen > 0),
    tendered_fen  BIGINT,
    change_fen    BIGINT,
    pos_terminal  TEXT,
    pos_reference TEXT,
    card_last4    TEXT,
    cashier_id    TEXT NOT NULL,
    cashier_name  TEXT NOT NULL,
    shift_id      TEXT REFERENCES shifts (id),
    created_at    BIGINT NOT NULL,
    CHECK (kind <> 'cash' OR (tendered_fen >= amount_fen AND change_fen = tendered_fen - amount_fen
        AND pos_terminal IS NULL AND pos_reference IS NULL AND card_last4 IS NULL)),
    CHECK (kind <> 'pos' OR (tendered_fen IS NULL AND change_fen IS NULL AND length(pos_reference) BETWEEN 6 AND 32
        AND (pos_terminal IS NULL OR length(pos_terminal) BETWEEN 1 AND 16)
        AND (card_last4 IS NULL OR length(card_last4) = 4)))
);
CREATE INDEX IF NOT EXISTS counter_payments_shift ON counter_payments (shift_id);
CREATE TRIGGER IF NOT EXISTS counter_payments_fixed BEFORE UPDATE ON counter_payments
BEGIN
    SELECT RAISE(ABORT, 'a counter payment never changes');
END;
CREATE TRIGGER IF NOT EXISTS counter_payments_no_delete BEFORE DELETE ON counter_payments
BEGIN
    SELECT RAISE(ABORT, 'a counter payment is never deleted');
END;

