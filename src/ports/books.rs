//! The books as finance reads them (trial balance, account pages) and the day-end close (L2).

use super::{AuditInput, StoreResult};
use crate::books::{AccountLedger, ChannelDay, CloseChain, DayClose, TrialBalance};
use crate::ledger::Account;
use crate::time::Millis;
use async_trait::async_trait;
use chrono::NaiveDate;

/// Our side of a day: what the books say was booked between two instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFigures {
    /// One per provider, statements not filled in.
    pub channels: Vec<ChannelDay>,
    pub income_fen: i64,
    pub entries: i64,
}

/// A close to record: the statements' side as the service fetched it; the store fills in our
/// side again under the lock, so what is recorded is exactly what was booked.
#[derive(Debug, Clone)]
pub struct NewDayClose {
    pub day: NaiveDate,
    pub starts_at_ms: Millis,
    pub ends_at_ms: Millis,
    /// With the statements (our figures are recomputed by the store).
    pub channels: Vec<ChannelDay>,
    /// The figures finance saw (`books::figures_key`): the close is refused if ours changed.
    pub figures_key: String,
    pub exception_note: Option<String>,
    pub closed_by: String,
    pub closed_by_name: String,
    pub at_ms: Millis,
    pub audit: AuditInput,
}

/// Why the store did not record a close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed(DayClose),
    AlreadyClosed(DayClose),
    /// Our figures differ from those finance confirmed.
    FiguresChanged,
    /// Differences and no exception note.
    NeedsException,
}

#[async_trait]
pub trait BooksStore: Send + Sync {
    /// Balances of every account from entries booked before `until_ms` (all when None).
    async fn trial_balance(&self, until_ms: Option<Millis>) -> StoreResult<TrialBalance>;
    /// An account's postings, newest first, `limit` from before an entry id.
    async fn account_ledger(&self, account: Account, before: Option<&str>, limit: i64) -> StoreResult<AccountLedger>;
    /// Our figures for entries booked in `[from_ms, to_ms)`.
    async fn day_figures(&self, from_ms: Millis, to_ms: Millis) -> StoreResult<DayFigures>;
    async fn day_close(&self, day: NaiveDate) -> StoreResult<Option<DayClose>>;
    async fn recent_closes(&self, limit: i64) -> StoreResult<Vec<DayClose>>;
    /// Records a close — confirmed when every channel agrees, else an exception, which needs a
    /// note — (our figures recomputed under a lock that keeps writers out meanwhile),
    /// locking the day: the database then refuses any entry booked in it.
    async fn close_day(&self, c: &NewDayClose) -> StoreResult<CloseOutcome>;
    /// Walks the close chain.
    async fn verify_close_chain(&self) -> StoreResult<CloseChain>;
}
