//! Bills from the hospital's systems (issue 15): patients by HIS id, departments and the
//! catalogue by code, bills issued once per HIS id with numbers handed out in the issuing
//! transaction, voids as a compare-and-set.

use super::audit::append;
use super::sql::{a, run_rows, sql, Tx};
use super::{like_escape, SqlStore};
use async_trait::async_trait;
use clinicpay::billing::{BillNo, BillStatus, ItemCategory};
use clinicpay::ids::{BillId, DepartmentId, PatientId};
use clinicpay::intake::{BillData, BillLine, CatalogueItem, DepartmentData, PatientKey};
use clinicpay::money::Money;
use clinicpay::ports::{
    AuditInput, IntakeStore, IssueOutcome, IssuedBill, NewIntakeBill, PatientWrite, Sealed, StoreError, StoreResult,
    StoredPatient, Upsert, VoidOutcome,
};
use clinicpay::time::Millis;
use std::collections::HashMap;

#[derive(sqlx::FromRow)]
struct PatientRow {
    #[sqlx(try_from = "String")]
    id: PatientId,
    external_id: Option<String>,
    mrn: String,
    name: String,
    gender: String,
    birth_date: Option<String>,
    phone: String,
    id_card_sealed: Option<String>,
    id_card_key_version: Option<i64>,
    id_card_masked: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    code: String,
    name: String,
    #[sqlx(try_from = "String")]
    category: ItemCategory,
    unit: String,
    #[sqlx(try_from = "i64")]
    unit_price_fen: Money,
    national_code: Option<String>,
    enabled: bool,
}

impl From<ItemRow> for CatalogueItem {
    fn from(r: ItemRow) -> Self {
        CatalogueItem {
            code: r.code,
            name: r.name,
            category: r.category,
            unit: r.unit,
            unit_price: r.unit_price_fen,
            national_code: r.national_code,
            enabled: r.enabled,
        }
    }
}

const ITEM_COLS: &str = "code, name, category, unit, unit_price_fen, national_code, enabled";

#[derive(sqlx::FromRow)]
struct IssuedRow {
    #[sqlx(try_from = "String")]
    id: BillId,
    bill_no: String,
    external_id: Option<String>,
    #[sqlx(try_from = "String")]
    patient_id: PatientId,
    patient_external: Option<String>,
    department: String,
    doctor: Option<String>,
    visit_no: Option<String>,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
    #[sqlx(try_from = "String")]
    status: BillStatus,
    replaces: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    line_no: i32,
    item_code: Option<String>,
    #[sqlx(try_from = "String")]
    category: ItemCategory,
    description: String,
    unit: Option<String>,
    quantity: i64,
    #[sqlx(try_from = "i64")]
    unit_price_fen: Money,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
}

const ISSUED_SELECT: &str = "SELECT b.id, b.bill_no, b.external_id, b.patient_id, p.external_id AS patient_external, \
     d.code AS department, b.doctor, b.visit_no, b.total_fen, b.status, r.external_id AS replaces \
     FROM bills b JOIN patients p ON p.id = b.patient_id JOIN departments d ON d.id = b.department_id \
     LEFT JOIN bills r ON r.id = b.replaces_bill_id";

async fn load_issued(tx: &mut Tx<'_>, filter: &str, key: &str) -> StoreResult<Option<IssuedBill>> {
    let row: Option<IssuedRow> =
        sql(format!("{ISSUED_SELECT} WHERE {filter} = $1")).bind(key).fetch_optional(&mut *tx).await?;
    let Some(r) = row else { return Ok(None) };
    let lines: Vec<LineRow> =
        sql("SELECT line_no, item_code, category, description, unit, quantity, unit_price_fen, amount_fen \
         FROM bill_items WHERE bill_id = $1 ORDER BY line_no")
        .bind(&r.id)
        .fetch_all(&mut *tx)
        .await?;
    // A bill from the HIS names its patient by the HIS's id; one typed at the counter by ours.
    let patient = match (&r.external_id, r.patient_external) {
        (Some(_), Some(ext)) => PatientKey::External(ext),
        _ => PatientKey::Ours(r.patient_id.clone()),
    };
    Ok(Some(IssuedBill {
        id: r.id,
        bill_no: r.bill_no,
        patient_id: r.patient_id,
        status: r.status,
        data: BillData {
            external_id: r.external_id,
            patient,
            department: r.department,
            doctor: r.doctor,
            visit_no: r.visit_no,
            lines: lines
                .into_iter()
                .map(|l| BillLine {
                    line_no: l.line_no,
                    code: l.item_code,
                    category: l.category,
                    name: l.description,
                    unit: l.unit,
                    quantity: l.quantity,
                    unit_price: l.unit_price_fen,
                    amount: l.amount_fen,
                })
                .collect(),
            total: r.total_fen,
            replaces: r.replaces,
        },
    }))
}

/// The next bill number of a hospital-local day (`YYYYMMDD`), counted on from the highest
/// number already issued that day (the demo seeder numbers its own bills).
async fn next_bill_no(tx: &mut Tx<'_>, day: &str) -> StoreResult<String> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y%m%d")
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("bill day {day:?}: {e}")))?;
    let bump = || sql("UPDATE bill_no_seq SET last = last + 1 WHERE day = $1 RETURNING last").bind(day);
    let seq: i64 = match bump().scalar_optional(&mut *tx).await? {
        Some(seq) => seq,
        None => {
            // the day's first: start after what is there (one scan a day, not one a bill)
            sql("INSERT INTO bill_no_seq (day, last) \
                 SELECT $1, COALESCE(MAX(CAST(SUBSTR(bill_no, 11) AS BIGINT)), 0) FROM bills WHERE bill_no LIKE $2 \
                 ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(format!("B{day}-%"))
            .execute(&mut *tx)
            .await?;
            bump().scalar(&mut *tx).await?
        }
    };
    let seq = u32::try_from(seq)
        .ok()
        .filter(|s| *s <= 999_999)
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("more than 999,999 bills on {day}")))?;
    Ok(BillNo::new(date, seq).as_str().to_string())
}

fn refused(code: &'static str, field: &'static str, message: impl Into<String>) -> IssueOutcome {
    IssueOutcome::Refused { code, field, message: message.into() }
}

/// Issues one bill inside the batch's transaction. Every check that can refuse runs before the
/// first write, so a refused bill leaves nothing behind and the transaction stays usable.
/// Look-ups a batch repeats (its bills share patients and departments), made once per batch.
#[derive(Default)]
struct BatchCache {
    patients: HashMap<PatientKey, Option<String>>,
    departments: HashMap<String, Option<(String, bool)>>,
}

async fn issue_one(
    tx: &mut Tx<'_>,
    cache: &mut BatchCache,
    nb: &NewIntakeBill,
    day: &str,
    at_ms: Millis,
) -> StoreResult<IssueOutcome> {
    let d = &nb.data;
    if let Some(ext) = &d.external_id {
        if let Some(existing) = load_issued(tx, "b.external_id", ext).await? {
            return Ok(IssueOutcome::Exists(existing));
        }
    }
    let patient = match cache.patients.get(&d.patient) {
        Some(p) => p.clone(),
        None => {
            let p: Option<String> = match &d.patient {
                PatientKey::External(e) => sql("SELECT id FROM patients WHERE external_id = $1").bind(e),
                PatientKey::Ours(id) => sql("SELECT id FROM patients WHERE id = $1").bind(id),
            }
            .scalar_optional(&mut *tx)
            .await?;
            cache.patients.insert(d.patient.clone(), p.clone());
            p
        }
    };
    let Some(patient_id) = patient else {
        return Ok(refused("unknown_patient", "patient_id", "no such patient: send the patient first"));
    };
    let dep = match cache.departments.get(&d.department) {
        Some(x) => x.clone(),
        None => {
            let x: Option<(String, bool)> = sql("SELECT id, enabled FROM departments WHERE code = $1")
                .bind(&d.department)
                .fetch_optional::<(String, bool)>(&mut *tx)
                .await?;
            cache.departments.insert(d.department.clone(), x.clone());
            x
        }
    };
    let Some((department_id, enabled)) = dep else {
        return Ok(refused("unknown_department", "department", format!("no department with code {:?}", d.department)));
    };
    if !enabled {
        return Ok(refused("department_disabled", "department", format!("department {:?} is disabled", d.department)));
    }
    let mut replaces_id = None;
    if let Some(r) = &d.replaces {
        let old: Option<(String, String)> = sql("SELECT id, status FROM bills WHERE external_id = $1")
            .bind(r)
            .fetch_optional::<(String, String)>(&mut *tx)
            .await?;
        let Some((old_id, status)) = old else {
            return Ok(refused("unknown_bill", "replaces", format!("no bill {r:?} to replace")));
        };
        if status != BillStatus::Void.as_str() {
            return Ok(refused("replaced_bill_not_void", "replaces", format!("bill {r:?} is {status}; void it first")));
        }
        let taken: Option<String> = sql("SELECT external_id FROM bills WHERE replaces_bill_id = $1")
            .bind(&old_id)
            .scalar_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(refused("already_reissued", "replaces", format!("bill {r:?} has been re-issued already")));
        }
        replaces_id = Some(old_id);
    }
    let bill_no = next_bill_no(tx, day).await?;
    sql("INSERT INTO bills (id, bill_no, patient_id, department_id, total_fen, refunded_fen, status, created_at, updated_at, \
         external_id, source, doctor, visit_no, replaces_bill_id) \
         VALUES ($1, $2, $3, $4, $5, 0, 'unpaid', $6, $6, $7, $8, $9, $10, $11)")
    .bind(&nb.id)
    .bind(&bill_no)
    .bind(&patient_id)
    .bind(&department_id)
    .bind(d.total)
    .bind(at_ms)
    .bind(d.external_id.as_deref())
    .bind(nb.source.as_str())
    .bind(d.doctor.as_deref())
    .bind(d.visit_no.as_deref())
    .bind(replaces_id)
    .execute(&mut *tx)
    .await?;
    let rows = d
        .lines
        .iter()
        .map(|l| {
            vec![
                a(&nb.id),
                a(l.line_no),
                a(l.category),
                a(&l.name),
                a(l.quantity),
                a(l.unit_price),
                a(l.amount),
                a(l.code.as_deref()),
                a(l.unit.as_deref()),
            ]
        })
        .collect();
    run_rows(
        tx,
        "INSERT INTO bill_items (bill_id, line_no, category, description, quantity, unit_price_fen, amount_fen, item_code, unit) VALUES ",
        "",
        rows,
    )
    .await?;
    super::ledger::book_issued(tx, &[(&nb.id, d.total, &bill_no)], at_ms, &crate::runtime::RandomIds).await?;
    if let Some(audit) = &nb.audit {
        append(tx, audit).await?;
    }
    let patient_id = PatientId::parse(&patient_id)
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("patient id {patient_id:?}: {e}")))?;
    Ok(IssueOutcome::Created(IssuedBill {
        id: nb.id.clone(),
        bill_no,
        patient_id,
        status: BillStatus::Unpaid,
        data: d.clone(),
    }))
}

#[async_trait]
impl IntakeStore for SqlStore {
    async fn find_patient(&self, external_id: Option<&str>, mrn: &str) -> StoreResult<Vec<StoredPatient>> {
        let rows: Vec<PatientRow> = sql(
            "SELECT id, external_id, mrn, name, gender, birth_date, phone, id_card_sealed, id_card_key_version, id_card_masked \
             FROM patients WHERE external_id = $1 OR mrn = $2",
        )
        .bind(external_id)
        .bind(mrn)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredPatient {
                id: r.id,
                external_id: r.external_id,
                mrn: r.mrn,
                name: r.name,
                gender: r.gender,
                birth_date: r.birth_date,
                phone: r.phone,
                id_card: match (r.id_card_sealed, r.id_card_key_version) {
                    (Some(c), Some(v)) => Some(Sealed { key_version: v, ciphertext: c }),
                    _ => None,
                },
                id_card_masked: r.id_card_masked,
            })
            .collect())
    }

    async fn write_patient(&self, p: &PatientWrite) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let d = &p.data;
        let (sealed, version) = match &p.id_card {
            Some(s) => (Some(s.ciphertext.clone()), Some(s.key_version)),
            None => (None, None),
        };
        match &p.update_of {
            None => {
                sql("INSERT INTO patients (id, mrn, name, gender, birth_date, phone, created_at, external_id, \
                     id_card_sealed, id_card_key_version, id_card_masked, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $7)")
                .bind(&p.id)
                .bind(&d.mrn)
                .bind(&d.name)
                .bind(d.gender)
                .bind(d.birth_date.as_deref())
                .bind(&d.phone)
                .bind(p.at_ms)
                .bind(d.external_id.as_deref())
                .bind(sealed)
                .bind(version)
                .bind(p.id_card_masked.as_deref())
                .execute(&mut tx)
                .await?;
            }
            Some(id) => {
                let n = sql("UPDATE patients SET mrn = $2, name = $3, gender = $4, birth_date = $5, phone = $6, \
                             external_id = $7, id_card_sealed = $8, id_card_key_version = $9, id_card_masked = $10, updated_at = $11 \
                             WHERE id = $1 AND (external_id IS NULL OR external_id = $7)")
                .bind(id)
                .bind(&d.mrn)
                .bind(&d.name)
                .bind(d.gender)
                .bind(d.birth_date.as_deref())
                .bind(&d.phone)
                .bind(d.external_id.as_deref())
                .bind(sealed)
                .bind(version)
                .bind(p.id_card_masked.as_deref())
                .bind(p.at_ms)
                .execute(&mut tx)
                .await?;
                if n != 1 {
                    return Err(StoreError::Conflict(format!("patient {id} changed meanwhile")));
                }
            }
        }
        if let Some(audit) = &p.audit {
            append(&mut tx, audit).await?;
        }
        tx.commit().await
    }

    async fn upsert_departments(
        &self,
        deps: &[DepartmentData],
        new_ids: &[DepartmentId],
        audit: Option<&AuditInput>,
    ) -> StoreResult<Vec<Upsert>> {
        let mut tx = self.db.write().await?;
        let mut out = Vec::with_capacity(deps.len());
        for (d, new_id) in deps.iter().zip(new_ids) {
            let cur: Option<(String, String)> = sql("SELECT name_zh, name_en FROM departments WHERE code = $1")
                .bind(&d.code)
                .fetch_optional::<(String, String)>(&mut tx)
                .await?;
            out.push(match cur {
                None => {
                    sql("INSERT INTO departments (id, code, name_zh, name_en) VALUES ($1, $2, $3, $4)")
                        .bind(new_id)
                        .bind(&d.code)
                        .bind(&d.name_zh)
                        .bind(&d.name_en)
                        .execute(&mut tx)
                        .await?;
                    Upsert::Created
                }
                Some((zh, en)) if zh == d.name_zh && en == d.name_en => Upsert::Unchanged,
                Some(_) => {
                    sql("UPDATE departments SET name_zh = $2, name_en = $3 WHERE code = $1")
                        .bind(&d.code)
                        .bind(&d.name_zh)
                        .bind(&d.name_en)
                        .execute(&mut tx)
                        .await?;
                    Upsert::Updated
                }
            });
        }
        if let Some(a) = audit {
            append(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn upsert_charge_items(
        &self,
        items: &[CatalogueItem],
        at_ms: Millis,
        audit: Option<&AuditInput>,
    ) -> StoreResult<Vec<Upsert>> {
        let mut tx = self.db.write().await?;
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let cur: Option<ItemRow> = sql(format!("SELECT {ITEM_COLS} FROM charge_items WHERE code = $1"))
                .bind(&it.code)
                .fetch_optional(&mut tx)
                .await?;
            let write = |q: &str| {
                sql(q.to_string())
                    .bind(&it.code)
                    .bind(&it.name)
                    .bind(it.category)
                    .bind(&it.unit)
                    .bind(it.unit_price)
                    .bind(it.national_code.as_deref())
                    .bind(it.enabled)
                    .bind(at_ms)
            };
            out.push(match cur.map(CatalogueItem::from) {
                None => {
                    write("INSERT INTO charge_items (code, name, category, unit, unit_price_fen, national_code, enabled, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .execute(&mut tx)
                    .await?;
                    Upsert::Created
                }
                Some(cur) if &cur == it => Upsert::Unchanged,
                Some(_) => {
                    write("UPDATE charge_items SET name = $2, category = $3, unit = $4, unit_price_fen = $5, \
                           national_code = $6, enabled = $7, updated_at = $8 WHERE code = $1")
                    .execute(&mut tx)
                    .await?;
                    Upsert::Updated
                }
            });
        }
        if let Some(a) = audit {
            append(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn charge_items(&self, codes: &[String]) -> StoreResult<Vec<CatalogueItem>> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in codes.chunks(500) {
            let mut q = sql(format!("SELECT {ITEM_COLS} FROM charge_items WHERE code IN ("));
            q.push_list(chunk.iter().map(String::as_str));
            q.push(")");
            let rows: Vec<ItemRow> = q.once().fetch_all(&self.db).await?;
            out.extend(rows.into_iter().map(CatalogueItem::from));
        }
        Ok(out)
    }

    async fn search_charge_items(&self, q: Option<&str>, limit: i64) -> StoreResult<Vec<CatalogueItem>> {
        let mut s = sql(format!("SELECT {ITEM_COLS} FROM charge_items"));
        if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
            let prefix = s.arg(format!("{}%", like_escape(&q.to_uppercase())));
            let like = s.arg(format!("%{}%", like_escape(q)));
            s.push(&format!(" WHERE UPPER(code) LIKE {prefix} ESCAPE '\\' OR name LIKE {like} ESCAPE '\\'"));
        }
        let lim = s.arg(limit.clamp(1, 200));
        s.push(&format!(" ORDER BY enabled DESC, code LIMIT {lim}"));
        let rows: Vec<ItemRow> = s.once().fetch_all(&self.db).await?;
        Ok(rows.into_iter().map(CatalogueItem::from).collect())
    }

    async fn issue_bills(&self, bills: &[NewIntakeBill], day: &str, at_ms: Millis) -> StoreResult<Vec<IssueOutcome>> {
        let mut tx = self.db.write().await?;
        let mut out = Vec::with_capacity(bills.len());
        let mut cache = BatchCache::default();
        for nb in bills {
            out.push(issue_one(&mut tx, &mut cache, nb, day, at_ms).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn issued_bill(&self, external_id: &str) -> StoreResult<Option<IssuedBill>> {
        let mut tx = self.db.read().await?;
        let b = load_issued(&mut tx, "b.external_id", external_id).await?;
        tx.commit().await?;
        Ok(b)
    }

    async fn issued_bill_by_id(&self, id: &BillId) -> StoreResult<Option<IssuedBill>> {
        let mut tx = self.db.read().await?;
        let b = load_issued(&mut tx, "b.id", id.as_str()).await?;
        tx.commit().await?;
        Ok(b)
    }

    async fn void_bill(
        &self,
        id: &BillId,
        reason: &str,
        by: &str,
        at_ms: Millis,
        audit: &AuditInput,
        event: &clinicpay::checkout::apply::OutboxEvent,
    ) -> StoreResult<VoidOutcome> {
        let mut tx = self.db.write().await?;
        let n =
            sql("UPDATE bills SET status = 'void', void_reason = $2, voided_at = $3, voided_by = $4, updated_at = $3 \
                     WHERE id = $1 AND status = 'unpaid'")
            .bind(id)
            .bind(reason)
            .bind(at_ms)
            .bind(by)
            .execute(&mut tx)
            .await?;
        if n == 1 {
            let total: i64 = sql("SELECT total_fen FROM bills WHERE id = $1").bind(id).scalar(&mut tx).await?;
            let total = Money::from_fen(total).map_err(|e| super::corrupt("bill total", e))?;
            super::ledger::book_voided(&mut tx, id, total, reason, at_ms, &crate::runtime::RandomIds).await?;
            append(&mut tx, audit).await?;
            super::outbox::insert_events(&mut tx, &[(event, at_ms)]).await?;
            tx.commit().await?;
            return Ok(VoidOutcome::Voided);
        }
        let status: Option<String> =
            sql("SELECT status FROM bills WHERE id = $1").bind(id).scalar_optional(&mut tx).await?;
        tx.rollback().await?;
        let status = status.ok_or(StoreError::NotFound)?;
        let status = BillStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("bill {id} has status {status:?}")))?;
        Ok(match status {
            BillStatus::Void => VoidOutcome::AlreadyVoid,
            BillStatus::Paying => VoidOutcome::InSession,
            BillStatus::Unpaid => return Err(StoreError::Conflict(format!("bill {id} changed meanwhile"))),
            other => VoidOutcome::Paid(other),
        })
    }
}
