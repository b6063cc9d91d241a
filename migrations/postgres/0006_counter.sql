-- Issue 14 (the counter). Same tables and columns as migrations/sqlite/0006_counter.sql.

-- C6: the provider's word on the payer's last failed attempt (a declined card) while the
-- session stays payable, so the counter says what happened instead of "waiting".
ALTER TABLE checkout_sessions ADD COLUMN payer_note TEXT;
ALTER TABLE checkout_sessions ADD COLUMN payer_note_at BIGINT
    CHECK ((payer_note IS NULL) = (payer_note_at IS NULL));
