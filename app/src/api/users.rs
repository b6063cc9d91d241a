//! Users and the audit log (administrators, S1, S3).

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::views::{AuditPageView, AuditSearch, UserView};
use leptos::prelude::*;
use server_fn::codec::Json;

#[server(prefix = "/api/fn", endpoint = "admin/users")]
pub async fn list_users() -> Result<Vec<UserView>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.list_users(&user).await?)
}

#[server(prefix = "/api/fn", endpoint = "admin/users/create")]
pub async fn create_user(
    username: String,
    display_name: String,
    role: String,
    password: String,
) -> Result<UserView, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    let role = clinicpay::auth::Role::parse(&role)
        .ok_or_else(|| AppError::bad_request("bad_role", "role must be cashier, finance or admin"))?;
    let input = clinicpay::services::auth::NewUserInput { username, display_name, role, password };
    Ok(ssr::services()?.create_user(&user, &ssr::client_ip(), input).await?)
}

#[server(prefix = "/api/fn", endpoint = "admin/users/disable")]
pub async fn set_user_disabled(user_id: String, disabled: bool) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.set_user_disabled(&user, &ssr::client_ip(), &user_id, disabled).await?)
}

#[server(prefix = "/api/fn", endpoint = "admin/users/password")]
pub async fn reset_password(user_id: String, password: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.reset_password(&user, &ssr::client_ip(), &user_id, password).await?)
}

/// One page of the audit log searched by who, what, when and object, with the chain's check.
#[server(prefix = "/api/fn", endpoint = "admin/audit/search", input = Json)]
pub async fn search_audit_log(q: AuditSearch) -> Result<AuditPageView, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.search_audit_log(&user, &q).await?)
}
