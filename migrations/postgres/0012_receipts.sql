-- Receipt numbers (F4): every payment's receipt is numbered per year without gaps
-- (R2026-00000001), every refund paid back gets its negative (red, 冲红) receipt in its own
-- series (H2026-00000001) linked to the original payment. A number is taken in the same
-- transaction that books the money, so a rolled-back booking gives its number back and a
-- committed one never loses it. Keep in step with migrations/sqlite/0012_receipts.sql.
CREATE TABLE receipt_counters (
    series  TEXT NOT NULL CHECK (series IN ('R', 'H')),
    year    BIGINT NOT NULL CHECK (year BETWEEN 1970 AND 9999),
    last_no BIGINT NOT NULL CHECK (last_no > 0),
    PRIMARY KEY (series, year)
);
-- A counter only grows, and is never removed: a number once given is never given again.
CREATE FUNCTION clinicpay_receipt_counters_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'receipt counters are never deleted';
    END IF;
    IF NEW.last_no < OLD.last_no OR NEW.series <> OLD.series OR NEW.year <> OLD.year THEN
        RAISE EXCEPTION 'receipt counters only grow';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER receipt_counters_guard BEFORE UPDATE OR DELETE ON receipt_counters
    FOR EACH ROW EXECUTE FUNCTION clinicpay_receipt_counters_guard();

-- The red receipt of a refund that went back (succeeded, or paid back by hand).
ALTER TABLE bill_refunds ADD COLUMN red_receipt_no TEXT
    CHECK (red_receipt_no IS NULL OR status IN ('succeeded', 'manual'));
CREATE UNIQUE INDEX bill_refunds_red_receipt ON bill_refunds (red_receipt_no) WHERE red_receipt_no IS NOT NULL;
CREATE FUNCTION clinicpay_receipt_no_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'payments' THEN
        IF NEW.receipt_no IS DISTINCT FROM OLD.receipt_no THEN
            RAISE EXCEPTION 'a receipt number never changes';
        END IF;
    ELSIF OLD.red_receipt_no IS NOT NULL AND NEW.red_receipt_no IS DISTINCT FROM OLD.red_receipt_no THEN
        RAISE EXCEPTION 'a red receipt number never changes';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER bill_refunds_red_receipt_fixed BEFORE UPDATE ON bill_refunds
    FOR EACH ROW EXECUTE FUNCTION clinicpay_receipt_no_fixed();
CREATE TRIGGER payments_receipt_fixed BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION clinicpay_receipt_no_fixed();
