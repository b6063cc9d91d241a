//! Shift handover (L3, 交班): open with the float, close by counting the drawer, confirm.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::shifts::{ShiftBoard, ShiftView};
use leptos::prelude::*;

/// The caller's open shift, handovers waiting for a confirmation, recent shifts.
#[server(prefix = "/api/fn", endpoint = "shifts")]
pub async fn get_shift_board() -> Result<ShiftBoard, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.shift_board(&user).await?)
}

/// One shift's sheet.
#[server(prefix = "/api/fn", endpoint = "shifts/one")]
pub async fn get_shift(id: String) -> Result<ShiftView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.shift(&user, &id).await?)
}

/// Opens the caller's shift with the cash float (yuan).
#[server(prefix = "/api/fn", endpoint = "shifts/open")]
pub async fn open_shift(float: String) -> Result<ShiftView, AppError> {
    let user = ssr::require_user(Access::MoneyDesk)?;
    Ok(ssr::services()?.open_shift(&user, &ssr::client_ip(), &float).await?)
}

/// Closes the caller's shift: the cash counted (yuan) and, when it differs, why.
#[server(prefix = "/api/fn", endpoint = "shifts/close")]
pub async fn close_shift(id: String, counted: String, note: String) -> Result<ShiftView, AppError> {
    let user = ssr::require_user(Access::MoneyDesk)?;
    Ok(ssr::services()?.close_shift(&user, &ssr::client_ip(), &id, &counted, &note).await?)
}

/// Confirms someone else's handover.
#[server(prefix = "/api/fn", endpoint = "shifts/confirm")]
pub async fn confirm_shift(id: String) -> Result<ShiftView, AppError> {
    let user = ssr::require_user(Access::MoneyDesk)?;
    Ok(ssr::services()?.confirm_shift(&user, &ssr::client_ip(), &id).await?)
}
