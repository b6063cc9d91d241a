//! Server functions: thin adapters that check the caller's role, parse input into domain types,
//! call one service and map its error to [`AppError`](crate::error::AppError). One file per area:
//!
//! | module | what |
//! |---|---|
//! | `session` | who is logged in |
//! | `billing` | dashboard, bills, patients |
//! | `books` | trial balance, account pages, the day-end close |
//! | `bill_entry` | bills and patients entered at the counter, the catalogue, voids |
//! | `catalogue` | departments and the catalogue kept by an administrator, CSV/XLSX import |
//! | `charge` | the charge screen: find a patient, open, follow, cancel, refresh a payment |
//! | `exceptions` | payment exceptions and finance's decisions |
//! | `refunds` | refund requests on the bill page, finance's approval queue |
//! | `payment_admin` | channels, API tokens, notifications (administrators) |
//! | `users` | users and the audit log (administrators) |
//! | `webhooks` | event endpoints (administrators), the delivery log and re-send (finance) |
//!
//! Every server function is listed in [`server_fn_access`] with the roles that may call it. The
//! server enforces that table before any function runs (unknown paths are refused), and each
//! function checks again itself; a test walks every function × role.

pub mod bill_entry;
pub mod billing;
pub mod books;
pub mod catalogue;
pub mod charge;
pub mod exceptions;
pub mod payment_admin;
pub mod refunds;
pub mod session;
pub mod shifts;
pub mod users;
pub mod webhooks;

pub use bill_entry::*;
pub use billing::*;
pub use books::*;
pub use catalogue::*;
pub use charge::*;
pub use exceptions::*;
pub use payment_admin::*;
pub use refunds::*;
pub use session::*;
pub use shifts::*;
pub use users::*;
pub use webhooks::*;

use clinicpay::auth::Access;
use server_fn::ServerFn;

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side helpers for server functions and SSR.
    use crate::error::AppError;
    use crate::state::AppState;
    use clinicpay::auth::{Access, CurrentUser};
    use clinicpay::services::Services;
    use leptos::prelude::*;

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
        (<SearchCatalogue as ServerFn>::PATH, Access::Billing),
        (<ListDepartments as ServerFn>::PATH, Access::Billing),
        (<IssueBill as ServerFn>::PATH, Access::Billing),
        (<RegisterPatient as ServerFn>::PATH, Access::Billing),
        (<VoidBill as ServerFn>::PATH, Access::Billing),
        (<ListUsers as ServerFn>::PATH, Access::Admin),
        (<CreateUser as ServerFn>::PATH, Access::Admin),
        (<SetUserDisabled as ServerFn>::PATH, Access::Admin),
        (<ResetPassword as ServerFn>::PATH, Access::Admin),
        (<SearchAuditLog as ServerFn>::PATH, Access::Admin),
        (<FindPatients as ServerFn>::PATH, Access::Billing),
        (<ChargeOverview as ServerFn>::PATH, Access::Billing),
        (<StartPayment as ServerFn>::PATH, Access::Billing),
        (<PaymentStatus as ServerFn>::PATH, Access::Billing),
        (<CancelPayment as ServerFn>::PATH, Access::Billing),
        (<RefreshPayment as ServerFn>::PATH, Access::Billing),
        (<CheckPayment as ServerFn>::PATH, Access::Billing),
        (<RecordCounterPayment as ServerFn>::PATH, Access::Billing),
        (<ListExceptions as ServerFn>::PATH, Access::Billing),
        (<DecideException as ServerFn>::PATH, Access::Finance),
        (<ListRefunds as ServerFn>::PATH, Access::Billing),
        (<GetRefund as ServerFn>::PATH, Access::Billing),
        (<GetShiftBoard as ServerFn>::PATH, Access::Billing),
        (<GetShift as ServerFn>::PATH, Access::Billing),
        (<OpenShift as ServerFn>::PATH, Access::MoneyDesk),
        (<CloseShift as ServerFn>::PATH, Access::MoneyDesk),
        (<ConfirmShift as ServerFn>::PATH, Access::MoneyDesk),
        (<RequestRefund as ServerFn>::PATH, Access::MoneyDesk),
        (<ActOnRefund as ServerFn>::PATH, Access::FinanceOfficer),
        (<GetTrialBalance as ServerFn>::PATH, Access::Finance),
        (<GetAccountLedger as ServerFn>::PATH, Access::Finance),
        (<GetDay as ServerFn>::PATH, Access::Finance),
        (<CloseDay as ServerFn>::PATH, Access::FinanceOfficer),
        (<ListCloses as ServerFn>::PATH, Access::Finance),
        (<ListChannels as ServerFn>::PATH, Access::Admin),
        (<TestChannel as ServerFn>::PATH, Access::Admin),
        (<SaveChannel as ServerFn>::PATH, Access::Admin),
        (<MakeDefaultChannel as ServerFn>::PATH, Access::Admin),
        (<ReencryptChannels as ServerFn>::PATH, Access::Admin),
        (<ListTokens as ServerFn>::PATH, Access::Admin),
        (<CreateToken as ServerFn>::PATH, Access::Admin),
        (<DisableToken as ServerFn>::PATH, Access::Admin),
        (<ListNotifications as ServerFn>::PATH, Access::Admin),
        (<AdminCatalogue as ServerFn>::PATH, Access::Admin),
        (<SaveChargeItem as ServerFn>::PATH, Access::Admin),
        (<ImportCatalogue as ServerFn>::PATH, Access::Admin),
        (<ListEndpoints as ServerFn>::PATH, Access::Admin),
        (<SaveEndpoint as ServerFn>::PATH, Access::Admin),
        (<RollEndpointSecret as ServerFn>::PATH, Access::Admin),
        (<ListDeliveries as ServerFn>::PATH, Access::Finance),
        (<DeliveryDetail as ServerFn>::PATH, Access::Finance),
        (<ResendDelivery as ServerFn>::PATH, Access::Finance),
    ]
}

/// Which role a page needs, by path prefix (the app renders "not allowed" otherwise).
pub fn page_access(path: &str) -> Access {
    if path == "/login" {
        Access::Public
    } else if path.starts_with("/admin") {
        Access::Admin
    } else if path == "/finance" || path.starts_with("/finance/") {
        Access::Finance
    } else {
        Access::Billing
    }
}
