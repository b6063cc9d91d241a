//! Who is logged in.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::auth::CurrentUser;
use leptos::prelude::*;

#[server(prefix = "/api/fn", endpoint = "me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, AppError> {
    ssr::require(Access::Public)
}
