//! What an auditor checks: the books' invariants over everything stored (`clinicpay verify`).

use super::sql::sql;
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::ledger::Account;
use clinicpay::ports::{LedgerReport, ReportStore, StoreResult};

#[async_trait]
impl ReportStore for SqlStore {
    async fn ledger_report(&self) -> StoreResult<LedgerReport> {
        let db = &self.db;
        let count = |text: &'static str| async move { sql(text).scalar::<i64>(db).await };
        let balances: Vec<(String, i64)> =
            sql("SELECT account_code, CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS fen FROM postings \
             GROUP BY account_code ORDER BY account_code")
            .fetch_all(db)
            .await?;
        // where money that came in sits: the providers' clearing accounts and, for cash taken at
        // the counter (C9), the drawer
        let clearing: i64 =
            balances.iter().filter(|(a, _)| a.starts_with("1012") || a == Account::Cash.code()).map(|(_, f)| f).sum();
        let received = count("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM provider_transactions").await?;
        // what went back through a provider, and what went back at the counter
        let refunded = count(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM provider_refunds WHERE status = 'succeeded'",
        )
        .await?
            + count(
                "SELECT CAST(COALESCE(SUM(r.amount_fen), 0) AS BIGINT) FROM bill_refunds r JOIN payments y ON y.id = r.payment_id \
                 WHERE r.status = 'succeeded' AND y.provider IN ('cash', 'pos')",
            )
            .await?;
        let trial_balance_fen: i64 = balances.iter().map(|(_, f)| f).sum();
        let balance_of = |code: &str| balances.iter().find(|(a, _)| a == code).map_or(0, |(_, f)| *f);
        let open_refunds = count(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM bill_refunds WHERE status IN ('submitted', 'failed')",
        )
        .await?;
        let refunds_payable_difference_fen = balance_of(Account::RefundsPayable.code()) + open_refunds;
        let bill_receivable_mismatches = count(
            "SELECT COUNT(*) FROM bills b LEFT JOIN (SELECT bill_id, SUM(amount_fen) AS s FROM postings \
             WHERE account_code = '1221' AND bill_id IS NOT NULL GROUP BY bill_id) r ON r.bill_id = b.id \
             WHERE COALESCE(r.s, 0) <> CASE WHEN b.status IN ('unpaid', 'paying') THEN b.total_fen ELSE 0 END",
        )
        .await?;
        let bill_income_mismatches = count(
            "SELECT COUNT(*) FROM bills b \
             LEFT JOIN (SELECT bill_id, SUM(amount_fen) AS s FROM postings WHERE account_code = '6001' \
                        AND bill_id IS NOT NULL GROUP BY bill_id) i ON i.bill_id = b.id \
             LEFT JOIN (SELECT bill_id, SUM(amount_fen) AS s FROM bill_refunds \
                        WHERE status IN ('submitted', 'failed', 'succeeded', 'manual') GROUP BY bill_id) f ON f.bill_id = b.id \
             WHERE COALESCE(i.s, 0) + CASE WHEN b.status = 'void' THEN 0 ELSE b.total_fen - COALESCE(f.s, 0) END <> 0",
        )
        .await?;
        Ok(LedgerReport {
            trial_balance_fen,
            bill_receivable_mismatches,
            bill_income_mismatches,
            refunds_payable_difference_fen,
            journal_entries: count("SELECT COUNT(*) FROM journal_entries").await?,
            unsealed_entries: count("SELECT COUNT(*) FROM journal_entries WHERE sealed = FALSE").await?,
            unbalanced_entries: count(
                "SELECT COUNT(*) FROM (SELECT entry_id FROM postings GROUP BY entry_id HAVING SUM(amount_fen) <> 0) x",
            )
            .await?,
            paid_sessions: count("SELECT COUNT(*) FROM checkout_sessions WHERE status = 'paid'").await?,
            misallocated_sessions: count(
                "SELECT COUNT(*) FROM checkout_sessions s WHERE s.status = 'paid' AND s.total_fen <> \
                 (SELECT COALESCE(SUM(x.amount_fen), 0) FROM payments x WHERE x.session_id = s.id)",
            )
            .await?,
            bills_paid_twice: count(
                "SELECT COUNT(*) FROM (SELECT bill_id FROM payments WHERE bill_id IS NOT NULL GROUP BY bill_id HAVING COUNT(*) > 1) x",
            )
            .await?,
            bill_payment_mismatches: count(
                "SELECT COUNT(*) FROM bills b WHERE \
                 (b.status IN ('paid', 'partially_refunded', 'refunded') AND NOT EXISTS (SELECT 1 FROM payments x WHERE x.bill_id = b.id)) \
                 OR (b.status IN ('unpaid', 'paying', 'void') AND EXISTS (SELECT 1 FROM payments x WHERE x.bill_id = b.id))",
            )
            .await?,
            unresolved_notifications: count("SELECT COUNT(*) FROM notifications WHERE status = 'received'").await?,
            // numbers are unique (constraints), so count = last = max means exactly 1..=last
            receipt_number_gaps: count(
                "SELECT (SELECT COUNT(*) FROM receipt_counters c WHERE c.series = 'R' AND \
                   (c.last_no <> (SELECT COUNT(*) FROM payments p WHERE p.receipt_no LIKE 'R' || CAST(c.year AS TEXT) || '-%') \
                    OR c.last_no <> (SELECT COALESCE(MAX(CAST(SUBSTR(p.receipt_no, 7) AS BIGINT)), 0) FROM payments p \
                                     WHERE p.receipt_no LIKE 'R' || CAST(c.year AS TEXT) || '-%'))) \
                 + (SELECT COUNT(*) FROM receipt_counters c WHERE c.series = 'H' AND \
                   (c.last_no <> (SELECT COUNT(*) FROM bill_refunds r WHERE r.red_receipt_no LIKE 'H' || CAST(c.year AS TEXT) || '-%') \
                    OR c.last_no <> (SELECT COALESCE(MAX(CAST(SUBSTR(r.red_receipt_no, 7) AS BIGINT)), 0) FROM bill_refunds r \
                                     WHERE r.red_receipt_no LIKE 'H' || CAST(c.year AS TEXT) || '-%'))) \
                 + (SELECT COUNT(*) FROM payments p WHERE p.receipt_no LIKE 'R____-%' AND NOT EXISTS \
                   (SELECT 1 FROM receipt_counters c WHERE c.series = 'R' AND p.receipt_no LIKE 'R' || CAST(c.year AS TEXT) || '-%')) \
                 + (SELECT COUNT(*) FROM bill_refunds r WHERE r.red_receipt_no IS NOT NULL AND NOT EXISTS \
                   (SELECT 1 FROM receipt_counters c WHERE c.series = 'H' AND r.red_receipt_no LIKE 'H' || CAST(c.year AS TEXT) || '-%'))",
            )
            .await?,
            clearing_matches_receipts: clearing == received - refunded,
            balances,
        })
    }
}
