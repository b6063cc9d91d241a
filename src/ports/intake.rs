//! Bills from the hospital's systems (issue 15): patients, departments and the catalogue
//! created or updated by their keys, bills issued once per HIS id, voids.

use super::{AuditInput, Sealed, StoreResult};
use crate::billing::BillStatus;
use crate::ids::{BillId, PatientId};
use crate::intake::{BillData, CatalogueItem, DepartmentData, PatientData};
use crate::time::Millis;
use async_trait::async_trait;

/// What a create-or-update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
    Unchanged,
}

impl Upsert {
    pub fn as_str(self) -> &'static str {
        match self {
            Upsert::Created => "created",
            Upsert::Updated => "updated",
            Upsert::Unchanged => "unchanged",
        }
    }
}

/// A patient as stored, for comparing and updating (the identity card still sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPatient {
    pub id: PatientId,
    pub external_id: Option<String>,
    pub mrn: String,
    pub name: String,
    pub gender: String,
    pub birth_date: Option<String>,
    pub phone: String,
    pub id_card: Option<Sealed>,
    pub id_card_masked: Option<String>,
}

/// A patient to write: the checked data, the identity card sealed under the patient's id.
#[derive(Debug, Clone)]
pub struct PatientWrite {
    pub id: PatientId,
    pub data: PatientData,
    pub id_card: Option<Sealed>,
    pub id_card_masked: Option<String>,
    /// None: insert (refused if the HIS id or record number exists); Some: update that row.
    pub update_of: Option<PatientId>,
    pub at_ms: Millis,
    pub audit: Option<AuditInput>,
}

/// Where a bill came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillSource {
    His,
    Counter,
}

impl BillSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BillSource::His => "his",
            BillSource::Counter => "counter",
        }
    }
}

/// A bill to issue.
#[derive(Debug, Clone)]
pub struct NewIntakeBill {
    pub id: BillId,
    pub data: BillData,
    pub source: BillSource,
    pub audit: Option<AuditInput>,
}

/// An issued bill, as it is referred to in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedBill {
    pub id: BillId,
    pub bill_no: String,
    pub patient_id: PatientId,
    pub status: BillStatus,
    pub data: BillData,
}

/// What issuing one bill of a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    Created(IssuedBill),
    /// A bill with that HIS id exists already (the caller compares the content).
    Exists(IssuedBill),
    /// Nothing written for this bill.
    Refused {
        code: &'static str,
        field: &'static str,
        message: String,
    },
}

/// What a void came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoidOutcome {
    Voided,
    AlreadyVoid,
    /// In an active payment session (a QR is out): cancel the session first.
    InSession,
    /// Paid (or refunded): money came in; a refund is the way back.
    Paid(BillStatus),
}

#[async_trait]
pub trait IntakeStore: Send + Sync {
    /// The patient with this HIS id, else the one with this record number.
    async fn find_patient(&self, external_id: Option<&str>, mrn: &str) -> StoreResult<Vec<StoredPatient>>;
    /// Inserts or updates one patient (compare-and-set on the HIS id and record number:
    /// a racing writer gets `Conflict`).
    async fn write_patient(&self, p: &PatientWrite) -> StoreResult<()>;
    /// Creates or updates departments by code, in one transaction (with the audit line, when
    /// a person did it).
    async fn upsert_departments(
        &self,
        deps: &[DepartmentData],
        new_ids: &[crate::ids::DepartmentId],
        audit: Option<&AuditInput>,
    ) -> StoreResult<Vec<Upsert>>;
    /// Creates or updates catalogue items by code, in one transaction (with the audit line,
    /// when a person did it).
    async fn upsert_charge_items(
        &self,
        items: &[CatalogueItem],
        at_ms: Millis,
        audit: Option<&AuditInput>,
    ) -> StoreResult<Vec<Upsert>>;
    async fn charge_items(&self, codes: &[String]) -> StoreResult<Vec<CatalogueItem>>;
    /// By code prefix or name substring; enabled ones first.
    async fn search_charge_items(&self, q: Option<&str>, limit: i64) -> StoreResult<Vec<CatalogueItem>>;
    /// Issues bills in one transaction, one outcome per bill: each bill is written whole or
    /// not at all. Bill numbers are handed out per `day` (YYYYMMDD) inside the transaction.
    async fn issue_bills(&self, bills: &[NewIntakeBill], day: &str, at_ms: Millis) -> StoreResult<Vec<IssueOutcome>>;
    async fn issued_bill(&self, external_id: &str) -> StoreResult<Option<IssuedBill>>;
    async fn issued_bill_by_id(&self, id: &BillId) -> StoreResult<Option<IssuedBill>>;
    /// `unpaid → void` as a compare-and-set, with the audit line and the `bill.voided` outbox
    /// event in the same transaction.
    async fn void_bill(
        &self,
        id: &BillId,
        reason: &str,
        by: &str,
        at_ms: Millis,
        audit: &AuditInput,
        event: &crate::checkout::apply::OutboxEvent,
    ) -> StoreResult<VoidOutcome>;
}
