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
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    async fn ledger_report(&self) -> StoreResult<LedgerReport>;
}
