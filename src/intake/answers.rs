//! What intake answers: a result per item, the issued bill, the patient.

use crate::money::Money;
use serde::{Deserialize, Serialize};

use super::FieldError;

/// Why one item of an intake call was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Refusal {
    /// Stable, e.g. `total_mismatch`, `unknown_patient`, `bill_conflict`.
    pub code: String,
    /// The field it is about, e.g. `items[1].quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// `bill_conflict`: the fields that differ from the bill already issued under this id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

impl From<FieldError> for Refusal {
    fn from(e: FieldError) -> Refusal {
        Refusal { code: e.code.to_string(), field: Some(e.field), message: e.message, differences: Vec::new() }
    }
}

/// An issued bill as intake answers name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IssuedBillRef {
    /// Our id (`bil_…`), what the checkout API takes.
    pub id: String,
    /// The HIS's id, when the HIS issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_id: Option<String>,
    #[cfg_attr(feature = "server", schema(example = "B20261201-0007"))]
    pub bill_no: String,
    /// Our id of the patient (`pat_…`).
    pub patient_id: String,
    /// unpaid, paying, paid, partially_refunded, refunded or void.
    pub status: String,
    #[cfg_attr(feature = "server", schema(value_type = String, example = "68.60"))]
    pub total: Money,
    pub lines: usize,
}

/// The result of one item of an intake call (a batch answers one per item, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ItemResult {
    /// The item's position in the request, from 0.
    pub index: usize,
    /// The key the item was sent with (the HIS bill id, the code).
    pub key: String,
    /// created, updated, unchanged or refused.
    pub result: String,
    /// The bill (bills only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill: Option<IssuedBillRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
}

impl ItemResult {
    pub fn refused(index: usize, key: &str, r: Refusal) -> ItemResult {
        ItemResult { index, key: key.to_string(), result: "refused".into(), bill: None, error: Some(r) }
    }
}

/// A patient after intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PatientResult {
    /// Our id (`pat_…`), what the checkout API takes.
    pub id: String,
    /// The HIS's id.
    pub patient_id: String,
    pub mrn: String,
    pub name: String,
    /// created, updated or unchanged.
    pub result: String,
    #[cfg_attr(feature = "server", schema(example = "138****5678"))]
    pub phone_masked: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(example = "110105********002X"))]
    pub id_card_masked: Option<String>,
}
