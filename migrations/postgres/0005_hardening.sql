-- Issue 13 (hardening). Same tables and columns as migrations/sqlite/0005_hardening.sql.

-- L1: a journal entry is committed sealed or not at all. An entry is written with `unsealed`
-- naming a row of `journal_unsealed`, which never has any: the deferred foreign key fails the
-- COMMIT of any transaction that leaves an entry unsealed. Sealing clears the mark (and the
-- guard checks the balance); an entry cannot be inserted already sealed.
CREATE TABLE journal_unsealed (id TEXT PRIMARY KEY);
CREATE FUNCTION clinicpay_journal_unsealed_empty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal_unsealed never has rows';
END;
$$;
CREATE TRIGGER journal_unsealed_stays_empty BEFORE INSERT ON journal_unsealed
    FOR EACH ROW EXECUTE FUNCTION clinicpay_journal_unsealed_empty();
ALTER TABLE journal_entries ADD COLUMN unsealed TEXT REFERENCES journal_unsealed (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE journal_entries ADD CONSTRAINT journal_sealed_or_marked CHECK (sealed = (unsealed IS NULL));

CREATE OR REPLACE FUNCTION clinicpay_journal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total BIGINT;
    lines BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'journal entries are never deleted';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.sealed THEN
            RAISE EXCEPTION 'journal entries are written unsealed, then sealed';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.sealed THEN
        RAISE EXCEPTION 'sealed journal entries are immutable';
    END IF;
    IF NEW.sealed THEN
        SELECT COALESCE(SUM(amount_fen), 0), COUNT(*) INTO total, lines FROM postings WHERE entry_id = NEW.id;
        IF total <> 0 OR lines < 2 THEN
            RAISE EXCEPTION 'journal entry does not balance';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER journal_entries_guard ON journal_entries;
CREATE TRIGGER journal_entries_guard BEFORE INSERT OR UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION clinicpay_journal_guard();

-- G4: re-drive counts its attempts at a stored notification and gives up after a bound.
ALTER TABLE notifications ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- C4: a provider transaction already booked, reported again for another order or amount, is an
-- exception of its own kind (`txn_conflict`), recorded once per transaction and order.
ALTER TABLE payment_exceptions DROP CONSTRAINT payment_exceptions_kind_check;
ALTER TABLE payment_exceptions ADD CONSTRAINT payment_exceptions_kind_check
    CHECK (kind IN ('amount_mismatch', 'late_payment', 'bills_unavailable', 'refund_failed', 'txn_conflict'));
DROP INDEX payment_exceptions_once;
CREATE UNIQUE INDEX payment_exceptions_once ON payment_exceptions (kind, provider, provider_txn_id, out_trade_no);
