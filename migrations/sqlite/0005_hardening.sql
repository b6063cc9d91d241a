-- Issue 13 (hardening). Same tables and columns as migrations/postgres/0005_hardening.sql.

-- L1: a journal entry is committed sealed or not at all. An entry is written with `unsealed`
-- naming a row of `journal_unsealed`, which never has any: the deferred foreign key fails the
-- COMMIT of any transaction that leaves an entry unsealed. Sealing clears the mark (and the
-- seal trigger checks the balance); an entry cannot be inserted already sealed.
CREATE TABLE journal_unsealed (id TEXT PRIMARY KEY);
CREATE TRIGGER journal_unsealed_stays_empty BEFORE INSERT ON journal_unsealed
BEGIN
    SELECT RAISE(ABORT, 'journal_unsealed never has rows');
END;
ALTER TABLE journal_entries ADD COLUMN unsealed TEXT REFERENCES journal_unsealed (id) DEFERRABLE INITIALLY DEFERRED;
CREATE TRIGGER journal_written_unsealed BEFORE INSERT ON journal_entries
WHEN NEW.sealed OR NEW.unsealed IS NULL
BEGIN
    SELECT RAISE(ABORT, 'journal entries are written unsealed, then sealed');
END;
CREATE TRIGGER journal_seal_clears_mark BEFORE UPDATE ON journal_entries
WHEN NOT OLD.sealed AND ((NEW.sealed AND NEW.unsealed IS NOT NULL) OR (NOT NEW.sealed AND NEW.unsealed IS NULL))
BEGIN
    SELECT RAISE(ABORT, 'sealing sets sealed and clears unsealed together');
END;

-- G4: re-drive counts its attempts at a stored notification and gives up after a bound.
ALTER TABLE notifications ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- C4: a provider transaction already booked, reported again for another order or amount, is an
-- exception of its own kind (`txn_conflict`), recorded once per transaction and order. SQLite
-- cannot change a CHECK in place: the table is rebuilt with every row kept.
CREATE TABLE payment_exceptions_v5 (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('amount_mismatch', 'late_payment', 'bills_unavailable', 'refund_failed', 'txn_conflict')),
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
INSERT INTO payment_exceptions_v5 (id, kind, session_id, provider, channel_id, out_trade_no, provider_txn_id, amount_fen,
                                   expected_fen, status, detail, resolution, resolved_by, created_at, updated_at)
    SELECT id, kind, session_id, provider, channel_id, out_trade_no, provider_txn_id, amount_fen,
           expected_fen, status, detail, resolution, resolved_by, created_at, updated_at FROM payment_exceptions;
DROP TABLE payment_exceptions;
ALTER TABLE payment_exceptions_v5 RENAME TO payment_exceptions;
CREATE UNIQUE INDEX payment_exceptions_once ON payment_exceptions (kind, provider, provider_txn_id, out_trade_no);
CREATE INDEX payment_exceptions_status ON payment_exceptions (status, created_at);
