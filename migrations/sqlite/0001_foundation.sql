-- ClinicPay foundation: users, sessions, login throttling, audit log, billing, ledger.
-- Portable rules (see docs/ARCHITECTURE.md): ids are TEXT made in Rust, money is BIGINT fen,
-- instants are BIGINT Unix milliseconds bound from Rust. Same tables and columns as
-- migrations/postgres/0001_foundation.sql (a test compares them).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('cashier', 'finance', 'admin')),
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    demo          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE auth_sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical row).
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          BIGINT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    detail      TEXT NOT NULL,
    ip          TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
-- The chain's head: one row, locked by each append so entries get consecutive numbers.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TABLE departments (
    id      TEXT PRIMARY KEY,
    code    TEXT NOT NULL UNIQUE,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL
);

CREATE TABLE patients (
    id         TEXT PRIMARY KEY,
    mrn        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    gender     TEXT NOT NULL,
    birth_date TEXT,
    phone      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX patients_name ON patients (name);

CREATE TABLE bills (
    id            TEXT PRIMARY KEY,
    bill_no       TEXT NOT NULL UNIQUE,
    patient_id    TEXT NOT NULL REFERENCES patients (id),
    department_id TEXT NOT NULL REFERENCES departments (id),
    total_fen     BIGINT NOT NULL CHECK (total_fen > 0),
    refunded_fen  BIGINT NOT NULL DEFAULT 0 CHECK (refunded_fen >= 0 AND refunded_fen <= total_fen),
    status        TEXT NOT NULL CHECK (status IN ('unpaid', 'paying', 'paid', 'partially_refunded', 'refunded', 'void')),
    created_at    BIGINT NOT NULL,
    paid_at       BIGINT,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX bills_patient_status ON bills (patient_id, status);
CREATE INDEX bills_created ON bills (created_at);
CREATE INDEX bills_status_created ON bills (status, created_at);
-- B1: a bill's amount and patient are fixed once issued; corrections are voids and re-issues.
CREATE TRIGGER bills_amount_fixed BEFORE UPDATE OF total_fen, patient_id, bill_no ON bills
BEGIN
    SELECT RAISE(ABORT, 'a bill amount is fixed once issued');
END;

CREATE TABLE bill_items (
    bill_id        TEXT NOT NULL REFERENCES bills (id),
    line_no        INTEGER NOT NULL CHECK (line_no > 0),
    category       TEXT NOT NULL CHECK (category IN ('consultation', 'drug', 'exam', 'lab', 'treatment', 'material', 'bed')),
    description    TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_fen BIGINT NOT NULL CHECK (unit_price_fen > 0),
    amount_fen     BIGINT NOT NULL CHECK (amount_fen = quantity * unit_price_fen),
    PRIMARY KEY (bill_id, line_no)
);
CREATE TRIGGER bill_items_fixed BEFORE UPDATE ON bill_items
BEGIN
    SELECT RAISE(ABORT, 'bill items are fixed once issued');
END;
CREATE TRIGGER bill_items_no_delete BEFORE DELETE ON bill_items
BEGIN
    SELECT RAISE(ABORT, 'bill items are fixed once issued');
END;

-- Double-entry ledger (L1). An entry is written unsealed, its postings added, then sealed in
-- the same transaction; sealing checks the balance, and sealed entries never change.
CREATE TABLE ledger_accounts (
    code    TEXT PRIMARY KEY,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('asset', 'liability', 'income', 'expense'))
);
INSERT INTO ledger_accounts (code, name_zh, name_en, kind) VALUES
    ('1002', '银行存款', 'Bank deposits', 'asset'),
    ('1012.01', '支付宝待清算', 'Alipay clearing', 'asset'),
    ('1012.02', '微信支付待清算', 'WeChat Pay clearing', 'asset'),
    ('1012.03', '银行卡待清算', 'Bank card clearing', 'asset'),
    ('2241', '待处理收款', 'Unallocated receipts', 'liability'),
    ('6001', '医疗收入', 'Medical service income', 'income'),
    ('6603', '支付手续费', 'Payment fees', 'expense');

CREATE TABLE journal_entries (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    ref_type    TEXT NOT NULL,
    ref_id      TEXT NOT NULL,
    memo        TEXT NOT NULL,
    sealed      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
CREATE INDEX journal_entries_ref ON journal_entries (ref_type, ref_id);
CREATE INDEX journal_entries_occurred ON journal_entries (occurred_at);

CREATE TABLE postings (
    entry_id     TEXT NOT NULL REFERENCES journal_entries (id),
    line_no      INTEGER NOT NULL,
    account_code TEXT NOT NULL REFERENCES ledger_accounts (code),
    amount_fen   BIGINT NOT NULL CHECK (amount_fen <> 0),
    bill_id      TEXT REFERENCES bills (id),
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX postings_account ON postings (account_code);
CREATE INDEX postings_bill ON postings (bill_id);

CREATE TRIGGER journal_seal_checks_balance BEFORE UPDATE OF sealed ON journal_entries
WHEN NEW.sealed AND NOT OLD.sealed
BEGIN
    SELECT RAISE(ABORT, 'journal entry does not balance')
    WHERE (SELECT COALESCE(SUM(amount_fen), 0) FROM postings WHERE entry_id = NEW.id) <> 0
       OR (SELECT COUNT(*) FROM postings WHERE entry_id = NEW.id) < 2;
END;
CREATE TRIGGER journal_sealed_immutable BEFORE UPDATE ON journal_entries
WHEN OLD.sealed
BEGIN
    SELECT RAISE(ABORT, 'sealed journal entries are immutable');
END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal_entries
BEGIN
    SELECT RAISE(ABORT, 'journal entries are never deleted');
END;
CREATE TRIGGER postings_only_unsealed BEFORE INSERT ON postings
WHEN (SELECT sealed FROM journal_entries WHERE id = NEW.entry_id)
BEGIN
    SELECT RAISE(ABORT, 'cannot post to a sealed journal entry');
END;
CREATE TRIGGER postings_immutable BEFORE UPDATE ON postings
BEGIN
    SELECT RAISE(ABORT, 'postings are immutable');
END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
BEGIN
    SELECT RAISE(ABORT, 'postings are never deleted');
END;
