-- Counter payments (C9): cash and a POS bank-card slip recorded by the cashier. A counter payment
-- is a checkout session on one of the two built-in counter channels, opened and paid in the same
-- transaction through the same payment rules as a QR payment (C3); `counter_payments` keeps what
-- the cashier recorded (cash tendered and change, or the POS slip). Keep in step with
-- migrations/sqlite/0014_counter_payments.sql.
ALTER TABLE channel_configs DROP CONSTRAINT channel_configs_provider_check;
ALTER TABLE channel_configs ADD CONSTRAINT channel_configs_provider_check
    CHECK (provider IN ('alipay', 'wechatpay', 'bank', 'cash', 'pos'));
ALTER TABLE checkout_sessions DROP CONSTRAINT checkout_sessions_provider_check;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_provider_check
    CHECK (provider IN ('alipay', 'wechatpay', 'bank', 'cash', 'pos'));

-- the two counter channels: built in, no gateway, no secrets
INSERT INTO channel_configs (id, provider, name, account_id, is_default, enabled, sandbox, settings,
    secret_ciphertext, secret_key_version, version, created_at, updated_at) VALUES
    ('chn_00000000000000000000000001', 'cash', '现金 · 收费处', 'counter', TRUE, TRUE, FALSE, '{}', '', 0, 1, 0, 0),
    ('chn_00000000000000000000000002', 'pos', 'POS 刷卡 · 收费处', 'counter', TRUE, TRUE, FALSE, '{}', '', 0, 1, 0, 0);

INSERT INTO ledger_accounts (code, name_zh, name_en, kind) VALUES
    ('1012.04', 'POS 刷卡待清算', 'POS card clearing', 'asset');

-- What the cashier recorded, once, never changed.
CREATE TABLE counter_payments (
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
CREATE INDEX counter_payments_shift ON counter_payments (shift_id);
CREATE FUNCTION clinicpay_counter_payments_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a counter payment never changes';
END;
$$;
CREATE TRIGGER counter_payments_fixed BEFORE UPDATE OR DELETE ON counter_payments
    FOR EACH ROW EXECUTE FUNCTION clinicpay_counter_payments_fixed();
