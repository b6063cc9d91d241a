-- The full chart of accounts (L1). Income is earned when a bill is issued (accrual): issuing
-- debits the patient receivable, payment clears it; an approved refund moves income to refunds
-- payable until the money has gone back. Income per department is an auxiliary dimension: each
-- income posting names its bill.
INSERT INTO ledger_accounts (code, name_zh, name_en, kind) VALUES
    ('1001', '库存现金', 'Cash on hand', 'asset'),
    ('1221', '应收医疗款', 'Patient receivables', 'asset'),
    ('1222', '应收保险公司款', 'Insurer receivables', 'asset'),
    ('2203', '应付退款', 'Refunds payable', 'liability'),
    ('2204', '预收医疗款', 'Patient deposits held', 'liability'),
    ('2205', '保险公司预存款', 'Insurer prepaid credit', 'liability');
UPDATE ledger_accounts SET name_en = 'Medical service income' WHERE code = '6001';

-- One-off bookkeeping steps the server runs once after a migration (opening entries for bills
-- and refunds that predate accrual).
CREATE TABLE ledger_upgrades (
    name    TEXT PRIMARY KEY,
    done_at BIGINT NOT NULL,
    entries BIGINT NOT NULL
);

-- the account page reads an account's postings in entry order; the day close reads entries by
-- the instant they were booked
DROP INDEX postings_account;
CREATE INDEX postings_account_entry ON postings (account_code, entry_id);
CREATE INDEX journal_entries_created ON journal_entries (created_at);
