//! The books (L1: trial balance, account pages) and the day-end close (L2, 日结).

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::books::{AccountLedger, DayClose, DayView, TrialBalance};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn date_arg(s: Option<&str>) -> Result<Option<chrono::NaiveDate>, AppError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(d) => clinicpay::time::parse_date(d)
            .map(Some)
            .ok_or_else(|| AppError::bad_request("bad_date", "the date must be written yyyy-mm-dd")),
    }
}

/// The trial balance, of everything or through the end of a day (`yyyy-mm-dd`).
#[server(prefix = "/api/fn", endpoint = "books/trial-balance")]
pub async fn get_trial_balance(through: Option<String>) -> Result<TrialBalance, AppError> {
    let user = ssr::require_user(Access::Finance)?;
    let through = date_arg(through.as_deref())?;
    Ok(ssr::services()?.trial_balance(&user, through).await?)
}

/// One account's postings, newest first; `before` is the page cursor (an entry id).
#[server(prefix = "/api/fn", endpoint = "books/account")]
pub async fn get_account_ledger(code: String, before: Option<String>) -> Result<AccountLedger, AppError> {
    let user = ssr::require_user(Access::Finance)?;
    Ok(ssr::services()?.account_ledger(&user, &code, before.as_deref(), 50).await?)
}

/// A day for the close page (yesterday when none is named), with the channels' statements.
#[server(prefix = "/api/fn", endpoint = "books/day")]
pub async fn get_day(day: Option<String>) -> Result<DayView, AppError> {
    let user = ssr::require_user(Access::Finance)?;
    let s = ssr::services()?;
    let day = match date_arg(day.as_deref())? {
        Some(d) => d,
        None => s.yesterday()?,
    };
    Ok(s.day_view(&user, day, true).await?)
}

/// Closes a day: `key` is the figures the page showed; `note` records an exception.
#[server(prefix = "/api/fn", endpoint = "books/close-day")]
pub async fn close_day(day: String, key: String, note: String) -> Result<DayClose, AppError> {
    let user = ssr::require_user(Access::FinanceOfficer)?;
    let day = date_arg(Some(&day))?.ok_or_else(|| AppError::bad_request("bad_date", "which day?"))?;
    let note = Some(note.as_str()).filter(|n| !n.trim().is_empty());
    Ok(ssr::services()?.close_day(&user, &ssr::client_ip(), day, &key, note).await?)
}

/// The latest closed days.
#[server(prefix = "/api/fn", endpoint = "books/closes")]
pub async fn list_closes() -> Result<Vec<DayClose>, AppError> {
    let user = ssr::require_user(Access::Finance)?;
    Ok(ssr::services()?.recent_closes(&user, 60).await?)
}
