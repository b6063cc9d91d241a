//! Patients, departments and bills (B1–B3).

use super::StoreResult;
use crate::billing::{Bill, BillItem, Department, Patient};
use crate::ids::{BillId, PatientId};
use crate::time::Millis;
use crate::views::{BillDetail, BillQuery, BillSummary, Dashboard, Page, PatientDetail, PatientSummary};
use async_trait::async_trait;

#[async_trait]
pub trait BillingStore: Send + Sync {
    async fn insert_departments(&self, deps: &[Department]) -> StoreResult<()>;
    async fn list_departments(&self) -> StoreResult<Vec<Department>>;
    async fn insert_patients(&self, patients: &[Patient]) -> StoreResult<()>;
    /// Inserts bills with their items, all in one transaction.
    async fn insert_bills(&self, bills: &[(Bill, Vec<BillItem>)]) -> StoreResult<()>;
    async fn count_patients(&self) -> StoreResult<i64>;
    async fn patient_detail(&self, id: &PatientId) -> StoreResult<Option<PatientDetail>>;
    /// By name (substring), record number (prefix) or id.
    async fn list_patients(&self, q: Option<&str>, page: i64, page_size: i64) -> StoreResult<Page<PatientSummary>>;
    async fn bill_detail(&self, id: &BillId) -> StoreResult<Option<BillDetail>>;
    async fn list_bills(&self, q: &BillQuery) -> StoreResult<Page<BillSummary>>;
    /// Unpaid (and not in an active session) bills of a patient, oldest first.
    async fn unpaid_bills(&self, patient_id: &PatientId) -> StoreResult<Vec<BillSummary>>;
    /// The billing dashboard for one hospital-local day.
    async fn dashboard(&self, day: &str, day_start_ms: Millis, day_end_ms: Millis) -> StoreResult<Dashboard>;
}
