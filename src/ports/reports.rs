//! What an auditor checks: the books' invariants (L1), over everything stored.

use super::StoreResult;
use async_trait::async_trait;

/// Invariants an auditor (and the reliability suite) checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LedgerReport {
    pub journal_entries: i64,
    pub unsealed_entries: i64,
    pub unbalanced_entries: i64,
    /// Account code → balance in fen (debit positive).
    pub balances: Vec<(String, i64)>,
    pub paid_sessions: i64,
    /// Paid sessions whose payments do not add up to exactly their total.
    pub misallocated_sessions: i64,
    /// Bills with more than one payment (the unique index makes this impossible).
    pub bills_paid_twice: i64,
    /// Bills marked paid without a payment, or with a payment but not marked paid.
    pub bill_payment_mismatches: i64,
    /// Notifications still `received` (not resolved).
    pub unresolved_notifications: i64,
    /// Money received (allocated + unallocated) minus refunded equals the clearing balances.
    pub clearing_matches_receipts: bool,
    /// The sum of every account's balance (debits minus credits): zero when the books balance.
    pub trial_balance_fen: i64,
    /// Bills whose receivable postings are not what they owe (their total while unpaid, else 0).
    pub bill_receivable_mismatches: i64,
    /// Bills whose income postings are not their total less approved refunds (0 when void).
    pub bill_income_mismatches: i64,
    /// Refunds payable less the refunds approved and not yet paid back: zero when they agree.
    pub refunds_payable_difference_fen: i64,
    /// Receipt series-years (payments `R`, red receipts `H`) whose numbers are not exactly
    /// 1, 2, …, the counter (F4): a gap, a number beyond the counter, or a year without one.
    pub receipt_number_gaps: i64,
}

impl LedgerReport {
    /// Every invariant holds.
    pub fn consistent(&self) -> bool {
        self.unsealed_entries == 0
            && self.unbalanced_entries == 0
            && self.misallocated_sessions == 0
            && self.bills_paid_twice == 0
            && self.bill_payment_mismatches == 0
            && self.clearing_matches_receipts
            && self.trial_balance_fen == 0
            && self.bill_receivable_mismatches == 0
            && self.bill_income_mismatches == 0
            && self.refunds_payable_difference_fen == 0
            && self.receipt_number_gaps == 0
    }
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    async fn ledger_report(&self) -> StoreResult<LedgerReport>;
}
