//! Server functions: thin adapters that check the caller's role, parse input into domain types,
//! call one service and map its error to [`AppError`].
//!
//! Every server function is listed in [`SERVER_FN_ACCESS`] with the roles that may call it. The
//! server enforces that table before any function runs (unknown paths are refused), and each
//! function checks again itself; a test walks every function × role.

use crate::api_pay;
use crate::error::AppError;
use clinicpay::auth::{Access, CurrentUser};
use clinicpay::views::{
    AuditEntryView, BillDetail, BillParams, BillQuery, BillSummary, Dashboard, Page, PatientDetail, PatientSummary,
    UserView,
};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::ServerFn;

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side helpers for server functions and SSR.
    use super::*;
    use crate::state::AppState;
    use clinicpay::services::Services;

    /// The client's address, set by the server's middleware (after proxy rules).
    #[derive(Debug, Clone)]
    pub struct ClientIp(pub String);

    pub fn services() -> Result<Services, AppError> {
        use_context::<AppState>()
            .map(|s| s.services.clone())
            .ok_or_else(|| AppError::new(500, "internal", "application state missing"))
    }

    pub fn current_user() -> Option<CurrentUser> {
        use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<CurrentUser>().cloned())
    }

    pub fn client_ip() -> String {
        use_context::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<ClientIp>().map(|c| c.0.clone()))
            .unwrap_or_default()
    }

    /// The caller, if `access` allows them; otherwise 401 (not logged in) or 403.
    pub fn require(access: Access) -> Result<Option<CurrentUser>, AppError> {
        let user = current_user();
        if access.allows(user.as_ref().map(|u| u.role)) {
            Ok(user)
        } else if user.is_none() {
            Err(AppError::unauthenticated())
        } else {
            Err(AppError::forbidden())
        }
    }

    /// Like [`require`], for functions that need a logged-in user.
    pub fn require_user(access: Access) -> Result<CurrentUser, AppError> {
        require(access)?.ok_or_else(AppError::unauthenticated)
    }
}

/// Who may call which server function. Enforced by the server before a function runs.
pub fn server_fn_access() -> Vec<(&'static str, Access)> {
    vec![
        (<GetCurrentUser as ServerFn>::PATH, Access::Public),
        (<GetDashboard as ServerFn>::PATH, Access::Billing),
        (<ListBills as ServerFn>::PATH, Access::Billing),
        (<GetBill as ServerFn>::PATH, Access::Billing),
        (<ListPatients as ServerFn>::PATH, Access::Billing),
        (<GetPatient as ServerFn>::PATH, Access::Billing),
        (<ListUsers as ServerFn>::PATH, Access::Admin),
        (<CreateUser as ServerFn>::PATH, Access::Admin),
        (<SetUserDisabled as ServerFn>::PATH, Access::Admin),
        (<ResetPassword as ServerFn>::PATH, Access::Admin),
        (<GetAuditLog as ServerFn>::PATH, Access::Admin),
        (<api_pay::FindPatients as ServerFn>::PATH, Access::Billing),
        (<api_pay::ChargeOverview as ServerFn>::PATH, Access::Billing),
        (<api_pay::StartPayment as ServerFn>::PATH, Access::Billing),
        (<api_pay::PaymentStatus as ServerFn>::PATH, Access::Billing),
        (<api_pay::CancelPayment as ServerFn>::PATH, Access::Billing),
        (<api_pay::RefreshPayment as ServerFn>::PATH, Access::Billing),
        (<api_pay::CheckPayment as ServerFn>::PATH, Access::Billing),
        (<api_pay::ListExceptions as ServerFn>::PATH, Access::Billing),
        (<api_pay::DecideException as ServerFn>::PATH, Access::Finance),
        (<api_pay::ListChannels as ServerFn>::PATH, Access::Admin),
        (<api_pay::SaveChannel as ServerFn>::PATH, Access::Admin),
        (<api_pay::MakeDefaultChannel as ServerFn>::PATH, Access::Admin),
        (<api_pay::ReencryptChannels as ServerFn>::PATH, Access::Admin),
        (<api_pay::ListTokens as ServerFn>::PATH, Access::Admin),
        (<api_pay::CreateToken as ServerFn>::PATH, Access::Admin),
        (<api_pay::DisableToken as ServerFn>::PATH, Access::Admin),
        (<api_pay::ListNotifications as ServerFn>::PATH, Access::Admin),
    ]
}

/// Which role a page needs, by path prefix (the app renders "not allowed" otherwise).
pub fn page_access(path: &str) -> Access {
    if path == "/login" {
        Access::Public
    } else if path.starts_with("/admin") {
        Access::Admin
    } else {
        Access::Billing
    }
}

#[server(prefix = "/api/fn", endpoint = "me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, AppError> {
    ssr::require(Access::Public)
}

#[server(prefix = "/api/fn", endpoint = "dashboard")]
pub async fn get_dashboard() -> Result<Dashboard, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.dashboard().await?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillList {
    pub query: BillQuery,
    pub page: Page<BillSummary>,
}

#[server(prefix = "/api/fn", endpoint = "bills")]
pub async fn list_bills(#[server(default)] params: BillParams) -> Result<BillList, AppError> {
    ssr::require_user(Access::Billing)?;
    let (query, page) = ssr::services()?.list_bills(&params).await?;
    Ok(BillList { query, page })
}

#[server(prefix = "/api/fn", endpoint = "bill")]
pub async fn get_bill(id: String) -> Result<BillDetail, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.bill_detail(&id).await?)
}

#[server(prefix = "/api/fn", endpoint = "patients")]
pub async fn list_patients(q: Option<String>, page: Option<String>) -> Result<Page<PatientSummary>, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.list_patients(q.as_deref(), page.as_deref()).await?)
}

#[server(prefix = "/api/fn", endpoint = "patient")]
pub async fn get_patient(id: String) -> Result<PatientDetail, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.patient_detail(&id).await?)
}

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

#[server(prefix = "/api/fn", endpoint = "admin/audit")]
pub async fn get_audit_log() -> Result<Vec<AuditEntryView>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.audit_log(&user, 200).await?)
}
