-- Shift handover (L3, 交班): a cashier's shift from opening (with the cash float) to closing
-- (the drawer counted, the sheet frozen), confirmed by someone else. Keep in step with the
-- other backend's 0013_shifts.sql.
CREATE TABLE shifts (
    id                TEXT PRIMARY KEY,
    cashier_id        TEXT NOT NULL,
    cashier_name      TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('open', 'closed', 'confirmed')),
    opened_at         BIGINT NOT NULL,
    float_fen         BIGINT NOT NULL CHECK (float_fen >= 0),
    closed_at         BIGINT,
    -- the sheet's lines by channel as handed over (JSON), frozen at the close
    lines             TEXT,
    expected_cash_fen BIGINT,
    counted_cash_fen  BIGINT CHECK (counted_cash_fen IS NULL OR counted_cash_fen >= 0),
    difference_fen    BIGINT,
    note              TEXT NOT NULL DEFAULT '',
    confirmed_by      TEXT,
    confirmed_by_name TEXT,
    confirmed_at      BIGINT,
    CHECK (status = 'open' OR (closed_at IS NOT NULL AND closed_at >= opened_at AND lines IS NOT NULL
        AND expected_cash_fen IS NOT NULL AND counted_cash_fen IS NOT NULL
        AND difference_fen = counted_cash_fen - expected_cash_fen)),
    -- a difference is explained
    CHECK (difference_fen IS NULL OR difference_fen = 0 OR note <> ''),
    -- the one who closed it never confirms it
    CHECK ((status = 'confirmed') = (confirmed_by IS NOT NULL)),
    CHECK (confirmed_by IS NULL OR (confirmed_by <> cashier_id AND confirmed_at IS NOT NULL))
);
-- one open shift per cashier
CREATE UNIQUE INDEX shifts_one_open ON shifts (cashier_id) WHERE status = 'open';
CREATE INDEX shifts_by_status ON shifts (status, opened_at);
