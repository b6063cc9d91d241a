//! Billing (B2, B3): the dashboard, bills, patients.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::views::{
    BillDetail, BillParams, BillQuery, BillSummary, Dashboard, Page, PatientDetail, PatientSummary,
};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

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
