//! Bills from the hospital's systems (issue 15, B1): the HIS creates or updates patients,
//! departments and the catalogue, issues bills once per its own id and voids them.
//!
//! Idempotency is by the HIS's ids: the same bill sent twice is one bill, the same id with other
//! content is refused naming what differs. Every item of a batch is checked on its own and
//! answered on its own; each is written whole or not at all.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{Access, CurrentUser, Role};
use crate::billing::mask_phone;
use crate::ids::{BillId, DepartmentId, PatientId};
use crate::intake::{
    mask_id_card, BillData, BillInput, CatalogueItem, ChargeItemInput, CounterBill, CounterPatient, DepartmentInput,
    FieldError, IssuedBillRef, ItemResult, PatientData, PatientInput, PatientKey, PatientResult, Refusal,
    COUNTER_VOID_LIMIT_FEN, MAX_BATCH,
};
use crate::ports::{
    BillSource, IssueOutcome, IssuedBill, NewIntakeBill, PatientWrite, StoreError, Upsert, VoidOutcome,
};
use std::collections::HashMap;

fn field_invalid(e: FieldError) -> ServiceError {
    ServiceError::Invalid { code: e.code, message: format!("{}: {}", e.field, e.message) }
}

fn batch_size(n: usize, what: &str) -> ServiceResult<()> {
    if n == 0 {
        return Err(ServiceError::invalid("empty_batch", format!("send at least one {what}")));
    }
    if n > MAX_BATCH {
        return Err(ServiceError::invalid(
            "batch_too_large",
            format!("at most {MAX_BATCH} {what}s in one call (got {n}); split the batch"),
        ));
    }
    Ok(())
}

/// The associated data sealing a patient's identity card number: the ciphertext cannot be
/// moved to another patient's row.
fn id_card_aad(id: &PatientId) -> Vec<u8> {
    format!("patient:{}:id_card", id.as_str()).into_bytes()
}

pub fn bill_ref(b: &IssuedBill) -> IssuedBillRef {
    IssuedBillRef {
        id: b.id.to_string(),
        bill_id: b.data.external_id.clone(),
        bill_no: b.bill_no.clone(),
        patient_id: b.patient_id.to_string(),
        status: b.status.as_str().to_string(),
        total: b.data.total,
        lines: b.data.lines.len(),
    }
}

impl Services {
    /// The hospital-local day (`YYYYMMDD`) bill numbers are counted in.
    fn bill_day(&self) -> ServiceResult<String> {
        let d = crate::time::local_date(self.now())
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("clock out of range")))?;
        Ok(d.format("%Y%m%d").to_string())
    }

    /// Creates or updates a patient by the HIS's id. A patient registered before under the same
    /// record number without an HIS id (at the counter) is taken over; one that belongs to
    /// another HIS patient is a conflict. Fields the HIS leaves out keep their stored value.
    pub async fn intake_patient(&self, _caller: &CurrentUser, input: &PatientInput) -> ServiceResult<PatientResult> {
        let data = input.check().map_err(field_invalid)?;
        let mut last = None;
        for _ in 0..3 {
            match self.write_patient_once(input, data.clone()).await {
                Err(Retry::Again(e)) => last = Some(e),
                Err(Retry::Fail(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
        Err(ServiceError::conflict("patient_busy", last.unwrap_or_else(|| "the patient is being changed".into())))
    }

    async fn write_patient_once(&self, input: &PatientInput, mut data: PatientData) -> Result<PatientResult, Retry> {
        let ext = data.external_id.clone();
        let rows = self.store.find_patient(ext.as_deref(), &data.mrn).await.map_err(|e| Retry::Fail(e.into()))?;
        let by_ext = rows.iter().find(|r| ext.is_some() && r.external_id == ext);
        let by_mrn = rows.iter().find(|r| r.mrn == data.mrn);
        let taken = |owner: &str| {
            Retry::Fail(ServiceError::conflict(
                "mrn_taken",
                format!("medical record number {} belongs to {owner}", data.mrn),
            ))
        };
        let target = match (by_ext, by_mrn) {
            (Some(e), Some(m)) if e.id != m.id => return Err(taken("another patient")),
            (Some(e), _) => Some(e),
            (None, Some(m)) if m.external_id.is_some() => return Err(taken("another patient of the HIS")),
            (None, Some(m)) => Some(m),
            (None, None) => None,
        };
        let id = target.map(|t| t.id.clone()).unwrap_or_else(|| self.ids.new_id::<PatientId>());
        if let Some(t) = target {
            if input.phone.is_none() {
                data.phone = t.phone.clone();
            }
            if input.birth_date.is_none() {
                data.birth_date = t.birth_date.clone();
            }
        }
        let stored_card = match target.and_then(|t| t.id_card.as_ref()) {
            Some(sealed) => Some(
                String::from_utf8(self.secrets.open(&id_card_aad(&id), sealed).map_err(|e| Retry::Fail(e.into()))?)
                    .map_err(|e| Retry::Fail(ServiceError::Internal(e.into())))?,
            ),
            None => None,
        };
        if data.id_card.is_none() {
            data.id_card = stored_card.clone();
        }
        let result = match target {
            None => Upsert::Created,
            Some(t)
                if t.external_id == data.external_id
                    && t.mrn == data.mrn
                    && t.name == data.name
                    && t.gender == data.gender
                    && t.birth_date == data.birth_date
                    && t.phone == data.phone
                    && stored_card == data.id_card =>
            {
                Upsert::Unchanged
            }
            Some(_) => Upsert::Updated,
        };
        let masked = data.id_card.as_deref().map(mask_id_card);
        let answer = PatientResult {
            id: id.to_string(),
            patient_id: data.external_id.clone().unwrap_or_default(),
            mrn: data.mrn.clone(),
            name: data.name.clone(),
            result: result.as_str().to_string(),
            phone_masked: mask_phone(&data.phone),
            id_card_masked: masked.clone(),
        };
        if result == Upsert::Unchanged {
            return Ok(answer);
        }
        let sealed = match &data.id_card {
            Some(card) => {
                Some(self.secrets.seal(&id_card_aad(&id), card.as_bytes()).map_err(|e| Retry::Fail(e.into()))?)
            }
            None => None,
        };
        let write = PatientWrite {
            id: id.clone(),
            data,
            id_card: sealed,
            id_card_masked: masked,
            update_of: target.map(|t| t.id.clone()),
            at_ms: self.now(),
            audit: None,
        };
        match self.store.write_patient(&write).await {
            Ok(()) => Ok(answer),
            Err(StoreError::Conflict(m)) => Err(Retry::Again(m)),
            Err(e) => Err(Retry::Fail(e.into())),
        }
    }

    /// Creates or updates departments by code; one result per item.
    pub async fn intake_departments(
        &self,
        _caller: &CurrentUser,
        inputs: &[DepartmentInput],
    ) -> ServiceResult<Vec<ItemResult>> {
        batch_size(inputs.len(), "department")?;
        let mut results: Vec<Option<ItemResult>> = vec![None; inputs.len()];
        let mut valid = Vec::new();
        let mut at = Vec::new();
        for (i, d) in inputs.iter().enumerate() {
            match d.check() {
                Ok(v) if valid.iter().any(|x: &crate::intake::DepartmentData| x.code == v.code) => {
                    results[i] = Some(ItemResult::refused(
                        i,
                        &d.code,
                        FieldError::new("duplicate_code", "code", "the same code twice in one call").into(),
                    ))
                }
                Ok(v) => {
                    valid.push(v);
                    at.push(i);
                }
                Err(e) => results[i] = Some(ItemResult::refused(i, &d.code, e.into())),
            }
        }
        let ids: Vec<DepartmentId> = valid.iter().map(|_| self.ids.new_id::<DepartmentId>()).collect();
        let outcomes =
            if valid.is_empty() { Vec::new() } else { self.store.upsert_departments(&valid, &ids, None).await? };
        for ((i, v), o) in at.into_iter().zip(&valid).zip(outcomes) {
            results[i] =
                Some(ItemResult { index: i, key: v.code.clone(), result: o.as_str().into(), bill: None, error: None });
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Creates or updates catalogue items by code; one result per item.
    pub async fn intake_charge_items(
        &self,
        _caller: &CurrentUser,
        inputs: &[ChargeItemInput],
    ) -> ServiceResult<Vec<ItemResult>> {
        batch_size(inputs.len(), "charge item")?;
        let mut results: Vec<Option<ItemResult>> = vec![None; inputs.len()];
        let mut valid: Vec<CatalogueItem> = Vec::new();
        let mut at = Vec::new();
        for (i, it) in inputs.iter().enumerate() {
            match it.check() {
                Ok(v) if valid.iter().any(|x| x.code == v.code) => {
                    results[i] = Some(ItemResult::refused(
                        i,
                        &it.code,
                        FieldError::new("duplicate_code", "code", "the same code twice in one call").into(),
                    ))
                }
                Ok(v) => {
                    valid.push(v);
                    at.push(i);
                }
                Err(e) => results[i] = Some(ItemResult::refused(i, &it.code, e.into())),
            }
        }
        let outcomes = if valid.is_empty() {
            Vec::new()
        } else {
            self.store.upsert_charge_items(&valid, self.now(), None).await?
        };
        for ((i, v), o) in at.into_iter().zip(&valid).zip(outcomes) {
            results[i] =
                Some(ItemResult { index: i, key: v.code.clone(), result: o.as_str().into(), bill: None, error: None });
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// The catalogue, searched by code prefix or name (the counter's item picker).
    pub async fn search_charge_items(&self, q: Option<&str>) -> ServiceResult<Vec<CatalogueItem>> {
        let q = q.map(str::trim).filter(|q| !q.is_empty());
        if let Some(q) = q {
            if q.chars().count() > 40 || q.chars().any(char::is_control) {
                return Err(ServiceError::invalid("bad_query", "search for at most 40 characters"));
            }
        }
        Ok(self.store.search_charge_items(q, 50).await?)
    }

    /// Issues bills from the HIS, one result per bill, in order. A bill whose HIS id is known
    /// already answers `unchanged` when its content is the same and is refused with
    /// `bill_conflict` naming the differences when it is not.
    pub async fn intake_bills(&self, _caller: &CurrentUser, inputs: &[BillInput]) -> ServiceResult<Vec<ItemResult>> {
        batch_size(inputs.len(), "bill")?;
        let mut codes: Vec<String> = inputs.iter().flat_map(|b| b.codes().map(str::to_string)).collect();
        codes.sort();
        codes.dedup();
        let catalogue: HashMap<String, CatalogueItem> =
            self.store.charge_items(&codes).await?.into_iter().map(|c| (c.code.clone(), c)).collect();
        let mut results: Vec<Option<ItemResult>> = vec![None; inputs.len()];
        let mut news = Vec::new();
        let mut at = Vec::new();
        for (i, b) in inputs.iter().enumerate() {
            match b.check(&catalogue) {
                Ok(data) => {
                    news.push(NewIntakeBill {
                        id: self.ids.new_id::<BillId>(),
                        data,
                        source: BillSource::His,
                        audit: None,
                    });
                    at.push(i);
                }
                Err(e) => results[i] = Some(ItemResult::refused(i, &b.bill_id, e.into())),
            }
        }
        let outcomes = self.issue_with_retry(&news).await?;
        let mut touched: Vec<PatientId> = outcomes
            .iter()
            .filter_map(|o| match o {
                IssueOutcome::Created(b) => Some(b.patient_id.clone()),
                _ => None,
            })
            .collect();
        touched.sort();
        touched.dedup();
        self.events.bills_changed(&touched).await;
        for ((i, nb), outcome) in at.into_iter().zip(&news).zip(outcomes) {
            let key = nb.data.external_id.clone().unwrap_or_default();
            results[i] = Some(match outcome {
                IssueOutcome::Created(b) => {
                    ItemResult { index: i, key, result: "created".into(), bill: Some(bill_ref(&b)), error: None }
                }
                IssueOutcome::Exists(b) => {
                    let differences = nb.data.differences(&b.data);
                    if differences.is_empty() {
                        ItemResult { index: i, key, result: "unchanged".into(), bill: Some(bill_ref(&b)), error: None }
                    } else {
                        ItemResult {
                            index: i,
                            key,
                            result: "refused".into(),
                            bill: Some(bill_ref(&b)),
                            error: Some(Refusal {
                                code: "bill_conflict".into(),
                                field: None,
                                message: format!(
                                    "bill {} was issued with other content ({}); a bill's amount is fixed once issued: void it and re-issue under a new id with `replaces`",
                                    nb.data.external_id.as_deref().unwrap_or(""),
                                    differences.join(", ")
                                ),
                                differences,
                            }),
                        }
                    }
                }
                IssueOutcome::Refused { code, field, message } => ItemResult::refused(
                    i,
                    &key,
                    Refusal { code: code.into(), field: Some(field.into()), message, differences: Vec::new() },
                ),
            });
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Issues in one transaction; a racing writer of the same HIS id (PostgreSQL) makes the
    /// transaction fail on the unique index, and the retry then finds the bill issued.
    async fn issue_with_retry(&self, news: &[NewIntakeBill]) -> ServiceResult<Vec<IssueOutcome>> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        let day = self.bill_day()?;
        let mut attempt = 0;
        loop {
            match self.store.issue_bills(news, &day, self.now()).await {
                Err(StoreError::Conflict(m)) if attempt < 2 => {
                    tracing::debug!(conflict = %m, "bill intake raced another writer; retrying");
                    attempt += 1;
                }
                other => return Ok(other?),
            }
        }
    }

    /// One bill by the HIS's id.
    pub async fn intake_bill(&self, external_id: &str) -> ServiceResult<IssuedBillRef> {
        let ext = crate::intake::check_external_id("bill_id", external_id).map_err(field_invalid)?;
        let b = self.store.issued_bill(&ext).await?.ok_or(ServiceError::NotFound("bill"))?;
        Ok(bill_ref(&b))
    }

    /// Voids a bill the HIS issued. Voiding twice answers the void bill; a bill in an active
    /// payment session or already paid is refused with a code and stays as it is.
    pub async fn intake_void_bill(
        &self,
        caller: &CurrentUser,
        ip: &str,
        external_id: &str,
        reason: &str,
    ) -> ServiceResult<IssuedBillRef> {
        let ext = crate::intake::check_external_id("bill_id", external_id).map_err(field_invalid)?;
        let b = self.store.issued_bill(&ext).await?.ok_or(ServiceError::NotFound("bill"))?;
        self.void_issued(caller, ip, &b, reason).await
    }

    pub(crate) async fn void_issued(
        &self,
        caller: &CurrentUser,
        ip: &str,
        b: &IssuedBill,
        reason: &str,
    ) -> ServiceResult<IssuedBillRef> {
        let reason = crate::intake::check_void_reason(reason).map_err(field_invalid)?;
        let audit = self.audit_input(
            &Actor::user(caller, ip),
            "bill_voided",
            "bill",
            b.id.as_str(),
            serde_json::json!({
                "bill_no": b.bill_no,
                "before": { "status": b.status.as_str() },
                "after": { "status": "void" },
                "total": b.data.total.plain(),
                "reason": reason,
            }),
        );
        let now = self.now();
        let event = crate::checkout::apply::OutboxEvent {
            id: self.ids.new_id::<crate::ids::OutboxId>(),
            topic: "bill.voided",
            aggregate_id: b.id.to_string(),
            payload: crate::checkout::apply::OutboxPayload::BillVoided {
                bill_id: b.id.clone(),
                reason: reason.clone(),
                voided_by: caller.username.clone(),
                voided_at_ms: now,
            },
        };
        match self.store.void_bill(&b.id, &reason, &caller.username, now, &audit, &event).await? {
            VoidOutcome::Voided | VoidOutcome::AlreadyVoid => {}
            VoidOutcome::InSession => {
                return Err(ServiceError::conflict(
                    "bill_in_session",
                    format!("bill {} is in an active payment session; cancel the session first", b.bill_no),
                ))
            }
            VoidOutcome::Paid(st) => {
                return Err(ServiceError::conflict(
                    "bill_paid",
                    format!("bill {} is {}: money came in, refund it instead of voiding", b.bill_no, st.as_str()),
                ))
            }
        }
        self.events.bills_changed(std::slice::from_ref(&b.patient_id)).await;
        let b = self.store.issued_bill_by_id(&b.id).await?.ok_or(ServiceError::NotFound("bill"))?;
        Ok(bill_ref(&b))
    }
}

impl Services {
    /// B1 at the counter: a patient registered by the cashier (no HIS id). The record number
    /// must be free; the identity card is sealed like the HIS's.
    pub async fn register_patient(
        &self,
        caller: &CurrentUser,
        ip: &str,
        p: &CounterPatient,
    ) -> ServiceResult<PatientResult> {
        if !Access::Billing.allows(Some(caller.role)) {
            return Err(ServiceError::Forbidden);
        }
        let data = PatientData::check(None, &p.mrn, &p.name, &p.gender, &p.birth_date, &p.phone, &p.id_card)
            .map_err(field_invalid)?;
        if !self.store.find_patient(None, &data.mrn).await?.is_empty() {
            return Err(ServiceError::conflict(
                "mrn_taken",
                format!("medical record number {} belongs to another patient", data.mrn),
            ));
        }
        let id = self.ids.new_id::<PatientId>();
        let masked = data.id_card.as_deref().map(mask_id_card);
        let sealed = match &data.id_card {
            Some(card) => Some(self.secrets.seal(&id_card_aad(&id), card.as_bytes())?),
            None => None,
        };
        let audit = self.audit_input(
            &Actor::user(caller, ip),
            "patient_registered",
            "patient",
            id.as_str(),
            serde_json::json!({ "mrn": data.mrn, "name": data.name }),
        );
        let answer = PatientResult {
            id: id.to_string(),
            patient_id: String::new(),
            mrn: data.mrn.clone(),
            name: data.name.clone(),
            result: "created".into(),
            phone_masked: mask_phone(&data.phone),
            id_card_masked: masked.clone(),
        };
        let write = PatientWrite {
            id,
            data,
            id_card: sealed,
            id_card_masked: masked,
            update_of: None,
            at_ms: self.now(),
            audit: Some(audit),
        };
        match self.store.write_patient(&write).await {
            Ok(()) => Ok(answer),
            Err(StoreError::Conflict(_)) => Err(ServiceError::conflict(
                "mrn_taken",
                format!("medical record number {} belongs to another patient", answer.mrn),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// B1 at the counter: the cashier issues a bill of catalogue items for one of our patients.
    pub async fn issue_counter_bill(
        &self,
        caller: &CurrentUser,
        ip: &str,
        b: &CounterBill,
    ) -> ServiceResult<IssuedBillRef> {
        if !Access::Billing.allows(Some(caller.role)) {
            return Err(ServiceError::Forbidden);
        }
        let patient = PatientId::parse(&b.patient_id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let mut codes: Vec<String> =
            b.items.iter().filter_map(|l| l.code.as_deref()).map(|c| c.trim().to_string()).collect();
        codes.sort();
        codes.dedup();
        let catalogue: HashMap<String, CatalogueItem> =
            self.store.charge_items(&codes).await?.into_iter().map(|c| (c.code.clone(), c)).collect();
        let data = BillData::check(
            None,
            PatientKey::Ours(patient.clone()),
            &b.department,
            &b.doctor,
            &None,
            &b.items,
            None,
            None,
            &catalogue,
        )
        .map_err(field_invalid)?;
        let id = self.ids.new_id::<BillId>();
        let audit = self.audit_input(
            &Actor::user(caller, ip),
            "bill_issued",
            "bill",
            id.as_str(),
            serde_json::json!({
                "patient_id": patient.as_str(),
                "department": data.department,
                "lines": data.lines.len(),
                "total": data.total.plain(),
            }),
        );
        let nb = NewIntakeBill { id, data, source: BillSource::Counter, audit: Some(audit) };
        match self.issue_with_retry(std::slice::from_ref(&nb)).await?.pop() {
            Some(IssueOutcome::Created(issued)) => {
                self.events.bills_changed(std::slice::from_ref(&issued.patient_id)).await;
                Ok(bill_ref(&issued))
            }
            Some(IssueOutcome::Refused { code, message, .. }) => Err(ServiceError::invalid(code, message)),
            _ => Err(ServiceError::Internal(anyhow::anyhow!("a counter bill was not issued"))),
        }
    }

    /// Voids a bill from the counter with a reason. A cashier may void up to
    /// [`COUNTER_VOID_LIMIT_FEN`]; a larger bill needs a finance officer.
    pub async fn void_bill(
        &self,
        caller: &CurrentUser,
        ip: &str,
        bill_id: &str,
        reason: &str,
    ) -> ServiceResult<IssuedBillRef> {
        if !Access::Billing.allows(Some(caller.role)) {
            return Err(ServiceError::Forbidden);
        }
        let id = BillId::parse(bill_id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let b = self.store.issued_bill_by_id(&id).await?.ok_or(ServiceError::NotFound("bill"))?;
        if caller.role == Role::Cashier && b.data.total.fen() > COUNTER_VOID_LIMIT_FEN {
            return Err(ServiceError::conflict(
                "void_needs_finance",
                format!(
                    "bill {} is {}: above ¥{}.00 a finance officer voids it",
                    b.bill_no,
                    b.data.total.display(),
                    COUNTER_VOID_LIMIT_FEN / 100
                ),
            ));
        }
        self.void_issued(caller, ip, &b, reason).await
    }
}

enum Retry {
    Again(String),
    Fail(ServiceError),
}
