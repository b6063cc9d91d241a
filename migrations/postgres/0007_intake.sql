-- Issue 15 (bills from the hospital's systems). Same tables and columns as
-- migrations/sqlite/0007_intake.sql.

ALTER TABLE patients ADD COLUMN external_id TEXT;
ALTER TABLE patients ADD COLUMN id_card_sealed TEXT;
ALTER TABLE patients ADD COLUMN id_card_key_version BIGINT;
ALTER TABLE patients ADD CONSTRAINT patients_id_card_sealed_whole
    CHECK ((id_card_sealed IS NULL) = (id_card_key_version IS NULL));
ALTER TABLE patients ADD COLUMN id_card_masked TEXT;
ALTER TABLE patients ADD COLUMN updated_at BIGINT;
CREATE UNIQUE INDEX patients_external_id ON patients (external_id) WHERE external_id IS NOT NULL;

ALTER TABLE departments ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE charge_items (
    code           TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    category       TEXT NOT NULL CHECK (category IN ('consultation', 'drug', 'exam', 'lab', 'treatment', 'material', 'bed')),
    unit           TEXT NOT NULL,
    unit_price_fen BIGINT NOT NULL CHECK (unit_price_fen > 0 AND unit_price_fen <= 100000000),
    national_code  TEXT,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX charge_items_name ON charge_items (name);

ALTER TABLE bills ADD COLUMN external_id TEXT;
ALTER TABLE bills ADD COLUMN source TEXT NOT NULL DEFAULT 'demo' CHECK (source IN ('demo', 'his', 'counter'));
ALTER TABLE bills ADD COLUMN doctor TEXT;
ALTER TABLE bills ADD COLUMN visit_no TEXT;
ALTER TABLE bills ADD COLUMN replaces_bill_id TEXT REFERENCES bills (id);
ALTER TABLE bills ADD COLUMN void_reason TEXT;
ALTER TABLE bills ADD COLUMN voided_at BIGINT;
ALTER TABLE bills ADD COLUMN voided_by TEXT;
CREATE UNIQUE INDEX bills_external_id ON bills (external_id) WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX bills_reissued_once ON bills (replaces_bill_id) WHERE replaces_bill_id IS NOT NULL;
CREATE TRIGGER bills_void_final BEFORE UPDATE OF status ON bills
    FOR EACH ROW WHEN (OLD.status = 'void' AND NEW.status <> 'void')
    EXECUTE FUNCTION clinicpay_refuse_change('a void bill stays void');

ALTER TABLE bill_items ADD COLUMN item_code TEXT;
ALTER TABLE bill_items ADD COLUMN unit TEXT;

CREATE TABLE bill_no_seq (
    day  TEXT PRIMARY KEY,
    last BIGINT NOT NULL CHECK (last >= 0)
);

-- API tokens have a scope: `checkout` (the REST API the counter's systems use, as before) or
-- `intake` (the HIS pushing patients, departments, the catalogue and bills). Neither can use
-- the other's endpoints.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'checkout' CHECK (scope IN ('checkout', 'intake'));
