//! Billing queries (B2, B3): dashboard, bills, patients.

use super::{ServiceError, ServiceResult, Services};
use crate::ids::{BillId, PatientId};
use crate::time::{day_start, local_date, DAY_MS};
use crate::views::{
    parse_page, parse_search, BillDetail, BillParams, BillQuery, BillSummary, Dashboard, Page, PatientDetail,
    PatientSummary,
};

impl Services {
    pub async fn dashboard(&self) -> ServiceResult<Dashboard> {
        let now = self.now();
        let today = local_date(now).ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("clock out of range")))?;
        let start = day_start(today);
        Ok(self.store.dashboard(&today.format("%Y-%m-%d").to_string(), start, start + DAY_MS).await?)
    }

    pub async fn list_bills(&self, params: &BillParams) -> ServiceResult<(BillQuery, Page<BillSummary>)> {
        let q = BillQuery::parse(params).map_err(|e| ServiceError::invalid("bad_query", e.to_string()))?;
        let page = self.store.list_bills(&q).await?;
        Ok((q, page))
    }

    pub async fn bill_detail(&self, id: &str) -> ServiceResult<BillDetail> {
        let id = BillId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        self.store.bill_detail(&id).await?.ok_or(ServiceError::NotFound("bill"))
    }

    pub async fn departments(&self) -> ServiceResult<Vec<crate::billing::Department>> {
        Ok(self.store.list_departments().await?)
    }

    pub async fn list_patients(&self, q: Option<&str>, page: Option<&str>) -> ServiceResult<Page<PatientSummary>> {
        let q = parse_search(q).map_err(|e| ServiceError::invalid("bad_query", e.to_string()))?;
        let page = parse_page(page).map_err(|e| ServiceError::invalid("bad_query", e.to_string()))?;
        Ok(self.store.list_patients(q.as_deref(), page, 20).await?)
    }

    pub async fn patient_detail(&self, id: &str) -> ServiceResult<PatientDetail> {
        let id = PatientId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        self.store.patient_detail(&id).await?.ok_or(ServiceError::NotFound("patient"))
    }

    /// B3: the bills a patient still owes, each payable now.
    pub async fn unpaid_bills(&self, patient_id: &str) -> ServiceResult<(PatientSummary, Vec<BillSummary>)> {
        let id = PatientId::parse(patient_id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let detail = self.store.patient_detail(&id).await?.ok_or(ServiceError::NotFound("patient"))?;
        let bills = self.store.unpaid_bills(&id).await?;
        Ok((detail.patient, bills))
    }
}
