//! The books as finance reads them (L1: trial balance, an account's postings) and the day-end
//! close (L2, 日结): per day and channel, our totals beside the provider's statement; finance
//! confirms, or records an exception; a closed day is locked — the database refuses any entry
//! booked inside it, so corrections are new entries booked today.
//!
//! An entry's booking instant is the moment it was written (`created_at`); the instant of the
//! event it records (`occurred_at`, e.g. the provider's pay time) is kept beside it. A payment
//! made at 23:59:59 whose notification arrives after midnight is booked the next day — the
//! cross-day case reconciliation explains.

use crate::ledger::AccountKind;
use crate::payments::Provider;
use crate::time::Millis;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One account's line in the trial balance (试算平衡表).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalanceRow {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub kind: AccountKind,
    pub debit_fen: i64,
    pub credit_fen: i64,
    pub postings: i64,
}

impl TrialBalanceRow {
    /// Debit positive.
    pub fn balance_fen(&self) -> i64 {
        self.debit_fen - self.credit_fen
    }
}

/// Income of one department (the auxiliary dimension of account 6001), credit positive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentIncome {
    pub department_id: String,
    pub name: String,
    /// Issued (credits to income).
    pub earned_fen: i64,
    /// Reversed by voids and refunds (debits to income).
    pub reversed_fen: i64,
}

impl DepartmentIncome {
    pub fn net_fen(&self) -> i64 {
        self.earned_fen - self.reversed_fen
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalance {
    /// Entries booked before this instant (None: everything).
    pub until_ms: Option<Millis>,
    pub entries: i64,
    pub rows: Vec<TrialBalanceRow>,
    pub departments: Vec<DepartmentIncome>,
}

impl TrialBalance {
    pub fn total_debit_fen(&self) -> i64 {
        self.rows.iter().map(|r| r.debit_fen).sum()
    }

    pub fn total_credit_fen(&self) -> i64 {
        self.rows.iter().map(|r| r.credit_fen).sum()
    }

    pub fn balanced(&self) -> bool {
        self.total_debit_fen() == self.total_credit_fen()
    }
}

/// One posting as an account page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingLine {
    pub entry_id: String,
    pub line_no: i32,
    /// The entry kind's code (`payment`, `refund`, …).
    pub kind: String,
    pub occurred_at_ms: Millis,
    pub booked_at_ms: Millis,
    pub memo: String,
    pub ref_type: String,
    pub ref_id: String,
    /// Debit positive.
    pub amount_fen: i64,
    pub bill_id: Option<String>,
    pub bill_no: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLedger {
    pub row: TrialBalanceRow,
    /// Newest first.
    pub postings: Vec<PostingLine>,
    /// Where the next page starts (`entry_id`), when there is one.
    pub next_before: Option<String>,
}

/// What the provider's statement for a day says, in totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementTotals {
    pub received_fen: i64,
    pub refunded_fen: i64,
    pub fees_fen: i64,
    pub payments: i64,
    pub refunds: i64,
    /// SHA-256 of the file as downloaded.
    pub sha256: String,
}

/// One channel's day: our books beside the provider's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDay {
    pub provider: Provider,
    /// Debits to the channel's clearing account booked that day (money in).
    pub received_fen: i64,
    /// Credits to it (refunds going out).
    pub refunded_fen: i64,
    pub payments: i64,
    pub refunds: i64,
    /// The provider's statement, when it could be had.
    pub statement: Option<StatementTotals>,
    /// Why there is none (no channel, the download failed, …).
    pub statement_error: Option<String>,
}

impl ChannelDay {
    pub fn net_fen(&self) -> i64 {
        self.received_fen - self.refunded_fen
    }

    /// Ours less the provider's, for money in and money out; None without a statement.
    pub fn differences(&self) -> Option<(i64, i64)> {
        self.statement.as_ref().map(|s| (self.received_fen - s.received_fen, self.refunded_fen - s.refunded_fen))
    }

    /// The statement agrees with our books to the fen (no activity and no statement agrees too).
    /// The counter's own channels (cash, the counter's POS) have no provider statement: their
    /// money is counted at each shift handover (L3), so they never hold up the day.
    pub fn agrees(&self) -> bool {
        match self.differences() {
            Some(d) => d == (0, 0),
            None if self.provider.is_counter() => true,
            None => self.received_fen == 0 && self.refunded_fen == 0 && self.statement_error.is_none(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseStatus {
    /// Every channel agrees.
    Confirmed,
    /// Closed with differences finance explained in a note.
    Exception,
}

impl CloseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseStatus::Confirmed => "confirmed",
            CloseStatus::Exception => "exception",
        }
    }

    pub fn parse(s: &str) -> Option<CloseStatus> {
        [CloseStatus::Confirmed, CloseStatus::Exception].into_iter().find(|c| c.as_str() == s)
    }
}

/// A closed day, as recorded (immutable; hash-chained to the close before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayClose {
    pub day: NaiveDate,
    pub status: CloseStatus,
    pub channels: Vec<ChannelDay>,
    /// Income booked that day (credits less debits to 6001).
    pub income_fen: i64,
    pub entries: i64,
    pub note: String,
    pub closed_by: String,
    pub closed_at_ms: Millis,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// A day as the close page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayView {
    pub day: NaiveDate,
    pub starts_at_ms: Millis,
    pub ends_at_ms: Millis,
    /// Live figures while open; the recorded ones once closed.
    pub channels: Vec<ChannelDay>,
    pub income_fen: i64,
    pub entries: i64,
    pub close: Option<DayClose>,
    /// The day has ended (only a past day can be closed).
    pub over: bool,
}

impl DayView {
    pub fn agrees(&self) -> bool {
        self.channels.iter().all(ChannelDay::agrees)
    }
}

/// The close chain, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseChain {
    pub closes: i64,
    pub broken_at: Option<String>,
}

/// Why a day cannot be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseRefusal {
    /// Today or a future day.
    DayNotOver,
    AlreadyClosed,
    /// The statements disagree with our books (or are missing): an exception note is needed.
    DifferencesNeedException,
    /// The figures changed since the page showed them.
    FiguresChanged,
}

impl CloseRefusal {
    pub fn code(self) -> &'static str {
        match self {
            CloseRefusal::DayNotOver => "day_not_over",
            CloseRefusal::AlreadyClosed => "day_already_closed",
            CloseRefusal::DifferencesNeedException => "day_has_differences",
            CloseRefusal::FiguresChanged => "day_figures_changed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CloseRefusal::DayNotOver => "only a day that has ended can be closed",
            CloseRefusal::AlreadyClosed => "this day is closed already",
            CloseRefusal::DifferencesNeedException => {
                "the statements do not agree with our books: record an exception with a note to close the day"
            }
            CloseRefusal::FiguresChanged => "the day's figures changed since the page was loaded: look again",
        }
    }
}

/// A short fingerprint of the figures finance looked at, so a close confirms exactly those.
pub fn figures_key(channels: &[ChannelDay], income_fen: i64, entries: i64) -> String {
    let mut s = format!("{income_fen}/{entries}");
    for c in channels {
        let st = c.statement.as_ref().map_or("-".to_string(), |t| {
            // the totals, not the file's hash: a provider may pack the same figures differently
            // on each download (a zip's timestamps)
            format!("{}:{}:{}:{}:{}", t.received_fen, t.refunded_fen, t.fees_fen, t.payments, t.refunds)
        });
        s.push_str(&format!("|{}:{}:{}:{}", c.provider.as_str(), c.received_fen, c.refunded_fen, st));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(received: i64, refunded: i64, st: Option<(i64, i64)>) -> ChannelDay {
        ChannelDay {
            provider: Provider::Alipay,
            received_fen: received,
            refunded_fen: refunded,
            payments: 1,
            refunds: 0,
            statement: st.map(|(r, f)| StatementTotals {
                received_fen: r,
                refunded_fen: f,
                fees_fen: 0,
                payments: 1,
                refunds: 0,
                sha256: "ab".repeat(32),
            }),
            statement_error: None,
        }
    }

    #[test]
    fn a_channel_agrees_only_to_the_fen() {
        assert!(day(100, 20, Some((100, 20))).agrees());
        assert!(!day(100, 20, Some((100, 19))).agrees());
        assert_eq!(day(100, 20, Some((99, 20))).differences(), Some((1, 0)));
        // activity without a statement does not agree; no activity and no statement does
        assert!(!day(100, 0, None).agrees());
        assert!(day(0, 0, None).agrees());
        let mut failed = day(0, 0, None);
        failed.statement_error = Some("timeout".into());
        assert!(!failed.agrees());
    }

    #[test]
    fn the_figures_key_changes_with_any_figure() {
        let a = figures_key(&[day(100, 0, Some((100, 0)))], 100, 3);
        assert_ne!(a, figures_key(&[day(101, 0, Some((100, 0)))], 100, 3));
        assert_ne!(a, figures_key(&[day(100, 0, Some((100, 0)))], 100, 4));
        assert_eq!(a, figures_key(&[day(100, 0, Some((100, 0)))], 100, 3));
    }
}
