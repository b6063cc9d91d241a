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
