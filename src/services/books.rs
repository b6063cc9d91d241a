//! The books for finance (L1: trial balance, account pages) and the day-end close (L2, 日结).
//!
//! The close page shows, per channel, what our books booked that day beside the provider's own
//! statement (downloaded through the channel's gateway); finance confirms when they agree to the
//! fen, or records an exception with a note. The figures finance saw are confirmed exactly: if
//! anything was booked meanwhile, the close is refused and the page shows the new figures.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{Access, CurrentUser};
use crate::books::{
    figures_key, AccountLedger, ChannelDay, CloseChain, CloseRefusal, DayClose, DayView, StatementTotals, TrialBalance,
};
use crate::ledger::Account;
use crate::payments::Outcome;
use crate::ports::{CloseOutcome, NewDayClose};
use crate::time::{day_start, local_date, DAY_MS};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};

fn require(caller: &CurrentUser, access: Access) -> ServiceResult<()> {
    if access.allows(Some(caller.role)) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

fn refusal(r: CloseRefusal) -> ServiceError {
    ServiceError::conflict(r.code(), r.message())
}

impl Services {
    /// The trial balance (试算平衡表), of everything or of entries booked before a day's end.
    pub async fn trial_balance(&self, caller: &CurrentUser, through: Option<NaiveDate>) -> ServiceResult<TrialBalance> {
        require(caller, Access::Finance)?;
        let until = through.map(|d| day_start(d) + DAY_MS);
        Ok(self.store.trial_balance(until).await?)
    }

    /// One account and its postings, newest first.
    pub async fn account_ledger(
        &self,
        caller: &CurrentUser,
        code: &str,
        before: Option<&str>,
        limit: i64,
    ) -> ServiceResult<AccountLedger> {
        require(caller, Access::Finance)?;
        let account = Account::from_code(code.trim())
            .ok_or_else(|| ServiceError::invalid("unknown_account", format!("no account {code:?}")))?;
        let before = match before.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => Some(
                crate::ids::JournalEntryId::parse(b).map_err(|e| ServiceError::invalid("bad_cursor", e.to_string()))?,
            ),
            None => None,
        };
        Ok(self.store.account_ledger(account, before.as_ref().map(|b| b.as_str()), limit).await?)
    }

    /// The business day before today (the one usually closed).
    pub fn yesterday(&self) -> ServiceResult<NaiveDate> {
        let today = local_date(self.now()).ok_or_else(|| anyhow::anyhow!("clock out of range"))?;
        today.pred_opt().ok_or_else(|| anyhow::anyhow!("no day before {today}").into())
    }

    /// A day as the close page shows it: the record once closed; else our figures now, beside
    /// each channel's statement when `statements` is asked for (a download per channel).
    pub async fn day_view(&self, caller: &CurrentUser, day: NaiveDate, statements: bool) -> ServiceResult<DayView> {
        require(caller, Access::Finance)?;
        let starts = day_start(day);
        let ends = starts + DAY_MS;
        let over = self.now() >= ends;
        if let Some(close) = self.store.day_close(day).await? {
            return Ok(DayView {
                day,
                starts_at_ms: starts,
                ends_at_ms: ends,
                channels: close.channels.clone(),
                income_fen: close.income_fen,
                entries: close.entries,
                close: Some(close),
                over,
            });
        }
        let figures = self.store.day_figures(starts, ends).await?;
        let mut channels = figures.channels;
        if statements && over {
            for ch in channels.iter_mut() {
                self.attach_statement(ch, day).await;
            }
        }
        Ok(DayView {
            day,
            starts_at_ms: starts,
            ends_at_ms: ends,
            channels,
            income_fen: figures.income_fen,
            entries: figures.entries,
            close: None,
            over,
        })
    }

    /// Downloads the channel's statement for the day and puts its totals beside ours.
    async fn attach_statement(&self, ch: &mut ChannelDay, day: NaiveDate) {
        if ch.provider.is_counter() {
            return; // counted at the shift handovers, not stated by a provider
        }
        let gateway = match self.gateways.default_channel(ch.provider).await {
            Ok((_, g)) => g,
            Err(e) => {
                ch.statement_error = Some(format!("no channel: {e}"));
                return;
            }
        };
        let call = gateway.download_statement(day).await;
        match call.outcome {
            Outcome::Success(st) => {
                let (mut received, mut refunded, mut fees, mut payments, mut refunds) = (0i64, 0i64, 0i64, 0i64, 0i64);
                for l in &st.lines {
                    if l.amount.is_negative() {
                        refunded -= l.amount.fen();
                        refunds += 1;
                    } else {
                        received += l.amount.fen();
                        payments += 1;
                    }
                    fees += l.fee.map_or(0, |f| f.fen());
                }
                ch.statement = Some(StatementTotals {
                    received_fen: received,
                    refunded_fen: refunded,
                    fees_fen: fees,
                    payments,
                    refunds,
                    sha256: hex::encode(Sha256::digest(&st.raw)),
                });
            }
            Outcome::Failure(e)
                if matches!(
                    e.sub_code.as_deref().unwrap_or(&e.code),
                    "NO_STATEMENT_EXIST" | "isp.bill_not_exist" | "NO_STATEMENT" | "BILL_NOT_EXIST"
                ) =>
            {
                // the provider has no file for a day without trades
                ch.statement = Some(StatementTotals {
                    received_fen: 0,
                    refunded_fen: 0,
                    fees_fen: 0,
                    payments: 0,
                    refunds: 0,
                    sha256: String::new(),
                });
            }
            Outcome::Failure(e) => ch.statement_error = Some(format!("{}: {}", e.code, e.message)),
            Outcome::Waiting(_) => ch.statement_error = Some("the provider has not published the statement yet".into()),
            Outcome::Unknown(why) => ch.statement_error = Some(why),
        }
    }

    /// Closes a day: the figures finance saw (`figures_key` of the view) are recorded and the
    /// day locked. With differences (or a missing statement) an exception note is required.
    pub async fn close_day(
        &self,
        caller: &CurrentUser,
        ip: &str,
        day: NaiveDate,
        seen_key: &str,
        exception_note: Option<&str>,
    ) -> ServiceResult<DayClose> {
        require(caller, Access::FinanceOfficer)?;
        let note = exception_note.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = note {
            if n.chars().count() > 1000 || n.chars().any(char::is_control) {
                return Err(ServiceError::invalid(
                    "bad_close_note",
                    "the note must be at most 1000 characters of text",
                ));
            }
        }
        let view = self.day_view(caller, day, true).await?;
        if view.close.is_some() {
            return Err(refusal(CloseRefusal::AlreadyClosed));
        }
        if !view.over {
            return Err(refusal(CloseRefusal::DayNotOver));
        }
        let key = figures_key(&view.channels, view.income_fen, view.entries);
        if key != seen_key {
            return Err(refusal(CloseRefusal::FiguresChanged));
        }
        if !view.agrees() && note.is_none() {
            return Err(refusal(CloseRefusal::DifferencesNeedException));
        }
        let detail = serde_json::json!({
            "day": day.to_string(),
            "agrees": view.agrees(),
            "income": view.income_fen,
            "entries": view.entries,
            "note": note.unwrap_or(""),
            "before": { "status": "open" },
            "after": { "status": if view.agrees() { "confirmed" } else { "exception" } },
        });
        let audit = self.audit_input(&Actor::user(caller, ip), "day_closed", "day", &day.to_string(), detail);
        let c = NewDayClose {
            day,
            starts_at_ms: view.starts_at_ms,
            ends_at_ms: view.ends_at_ms,
            channels: view.channels,
            figures_key: key,
            exception_note: note.map(str::to_string),
            closed_by: caller.id.clone(),
            closed_by_name: caller.display_name.clone(),
            at_ms: self.now(),
            audit,
        };
        match self.store.close_day(&c).await? {
            CloseOutcome::Closed(c) => Ok(c),
            CloseOutcome::AlreadyClosed(_) => Err(refusal(CloseRefusal::AlreadyClosed)),
            CloseOutcome::FiguresChanged => Err(refusal(CloseRefusal::FiguresChanged)),
            CloseOutcome::NeedsException => Err(refusal(CloseRefusal::DifferencesNeedException)),
        }
    }

    /// The latest closes, newest first.
    pub async fn recent_closes(&self, caller: &CurrentUser, limit: i64) -> ServiceResult<Vec<DayClose>> {
        require(caller, Access::Finance)?;
        Ok(self.store.recent_closes(limit).await?)
    }

    pub async fn verify_close_chain(&self) -> ServiceResult<CloseChain> {
        Ok(self.store.verify_close_chain().await?)
    }
}
