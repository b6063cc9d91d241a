-- Receipt numbers (F4): every payment's receipt is numbered per year without gaps
-- (R2026-00000001), every refund paid back gets its negative (red, 冲红) receipt in its own
-- series (H2026-00000001) linked to the original payment. A number is taken in the same
-- transaction that books the money, so a rolled-back booking gives its number back and a
-- committed one never loses it. Keep in step with migrations/postgres/0012_receipts.sql.
CREATE TABLE receipt_counters (
    series  TEXT NOT NULL CHECK (series IN ('R', 'H')),
    year    BIGINT NOT NULL CHECK (year BETWEEN 1970 AND 9999),
    last_no BIGINT NOT NULL CHECK (last_no > 0),
    PRIMARY KEY (series, year)
);
-- A counter only grows, and is never removed: a number once given is never given again.
CREATE TRIGGER receipt_counters_grow_only BEFORE UPDATE ON receipt_counters
WHEN NEW.last_no < OLD.last_no OR NEW.series <> OLD.series OR NEW.year <> OLD.year
BEGIN
    SELECT RAISE(ABORT, 'receipt counters only grow');
END;
CREATE TRIGGER receipt_counters_no_delete BEFORE DELETE ON receipt_counters
BEGIN
    SELECT RAISE(ABORT, 'receipt counters are never deleted');
END;

-- The red receipt of a refund that went back (succeeded, or paid back by hand).
ALTER TABLE bill_refunds ADD COLUMN red_receipt_no TEXT
    CHECK (red_receipt_no IS NULL OR status IN ('succeeded', 'manual'));
CREATE UNIQUE INDEX bill_refunds_red_receipt ON bill_refunds (red_receipt_no) WHERE red_receipt_no IS NOT NULL;
CREATE TRIGGER bill_refunds_red_receipt_fixed BEFORE UPDATE OF red_receipt_no ON bill_refunds
WHEN OLD.red_receipt_no IS NOT NULL AND (NEW.red_receipt_no IS NULL OR NEW.red_receipt_no <> OLD.red_receipt_no)
BEGIN
    SELECT RAISE(ABORT, 'a red receipt number never changes');
END;
-- A payment's receipt number never changes either.
CREATE TRIGGER payments_receipt_fixed BEFORE UPDATE OF receipt_no ON payments
WHEN NEW.receipt_no <> OLD.receipt_no
BEGIN
    SELECT RAISE(ABORT, 'a receipt number never changes');
END;
