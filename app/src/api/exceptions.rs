//! Payment exceptions (C4) and finance's decisions on them.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::checkout::ExceptionView;
use leptos::prelude::*;

#[server(prefix = "/api/fn", endpoint = "exceptions")]
pub async fn list_exceptions(open_only: bool) -> Result<Vec<ExceptionView>, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.exceptions(open_only).await?)
}

/// Finance decides a held exception: `refund` through its channel, or `resolve` with a note.
#[server(prefix = "/api/fn", endpoint = "exceptions/decide")]
pub async fn decide_exception(exception_id: String, action: String, note: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Finance)?;
    let refund = match action.as_str() {
        "refund" => true,
        "resolve" => false,
        _ => return Err(AppError::bad_request("bad_action", "action must be refund or resolve")),
    };
    Ok(ssr::services()?.decide_exception(&user, &ssr::client_ip(), &exception_id, refund, &note).await?)
}
