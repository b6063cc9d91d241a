//! Bill entry at the counter (issue 15, B1): a clinic without an HIS registers patients and
//! types bills from the catalogue; bills can be voided with a reason.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::billing::Department;
use clinicpay::intake::{CatalogueItem, CounterBill, CounterPatient, IssuedBillRef, PatientResult};
use leptos::prelude::*;
use server_fn::codec::Json;

/// The catalogue by code prefix or name (at most 50).
#[server(prefix = "/api/fn", endpoint = "catalogue/search")]
pub async fn search_catalogue(q: Option<String>) -> Result<Vec<CatalogueItem>, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.search_charge_items(q.as_deref()).await?)
}

#[server(prefix = "/api/fn", endpoint = "departments")]
pub async fn list_departments() -> Result<Vec<Department>, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.departments().await?)
}

#[server(prefix = "/api/fn", endpoint = "bills/issue", input = Json)]
pub async fn issue_bill(bill: CounterBill) -> Result<IssuedBillRef, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.issue_counter_bill(&user, &ssr::client_ip(), &bill).await?)
}

#[server(prefix = "/api/fn", endpoint = "patients/register", input = Json)]
pub async fn register_patient(patient: CounterPatient) -> Result<PatientResult, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.register_patient(&user, &ssr::client_ip(), &patient).await?)
}

#[server(prefix = "/api/fn", endpoint = "bills/void")]
pub async fn void_bill(bill_id: String, reason: String) -> Result<IssuedBillRef, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.void_bill(&user, &ssr::client_ip(), &bill_id, &reason).await?)
}
