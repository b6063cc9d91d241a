-- Daily close (L2, 日结). A closed day is locked: an entry booked (created_at) inside a closed
-- day is refused by the database, so corrections are new entries booked today. Closes are
-- immutable and hash-chained: each hash covers the previous one and every field of the close.
CREATE TABLE day_closes (
    day            TEXT PRIMARY KEY,
    starts_at      BIGINT NOT NULL,
    ends_at        BIGINT NOT NULL CHECK (ends_at > starts_at),
    status         TEXT NOT NULL CHECK (status IN ('confirmed', 'exception')),
    channels       TEXT NOT NULL,
    income_fen     BIGINT NOT NULL,
    entries        BIGINT NOT NULL,
    note           TEXT NOT NULL,
    closed_by      TEXT NOT NULL,
    closed_by_name TEXT NOT NULL,
    closed_at      BIGINT NOT NULL,
    seq            BIGINT NOT NULL UNIQUE CHECK (seq > 0),
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    CHECK (status = 'confirmed' OR note <> '')
);
CREATE INDEX day_closes_range ON day_closes (starts_at, ends_at);
CREATE TRIGGER day_closes_immutable BEFORE UPDATE ON day_closes
BEGIN
    SELECT RAISE(ABORT, 'day closes are immutable');
END;
CREATE TRIGGER day_closes_no_delete BEFORE DELETE ON day_closes
BEGIN
    SELECT RAISE(ABORT, 'day closes are never deleted');
END;
CREATE TRIGGER journal_day_locked BEFORE INSERT ON journal_entries
WHEN EXISTS (SELECT 1 FROM day_closes c WHERE NEW.created_at >= c.starts_at AND NEW.created_at < c.ends_at)
BEGIN
    SELECT RAISE(ABORT, 'the day is closed: book the correction today');
END;
