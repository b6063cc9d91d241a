//! Departments, patients, bills and their items (B1–B3); the billing dashboard (B2).

use super::sql::{sql, Sql};
use super::{like_escape, SqlStore};
use async_trait::async_trait;
use clinicpay::billing::{Bill, BillItem, BillStatus, Department, ItemCategory, Patient};
use clinicpay::ids::{BillId, DepartmentId, PatientId, PaymentId, SessionId};
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::ports::{BillingStore, StoreError, StoreResult};
use clinicpay::time::Millis;
use clinicpay::views::{
    BillDetail, BillQuery, BillSort, BillSummary, ChannelTakings, Dashboard, Page, PatientDetail, PatientSummary,
    PaymentLine, RecentPayment,
};

#[derive(sqlx::FromRow)]
struct BillSummaryRow {
    #[sqlx(try_from = "String")]
    id: BillId,
    bill_no: String,
    #[sqlx(try_from = "String")]
    patient_id: PatientId,
    patient_name: String,
    mrn: String,
    department_zh: String,
    department_en: String,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
    #[sqlx(try_from = "String")]
    status: BillStatus,
    created_at: i64,
}

impl From<BillSummaryRow> for BillSummary {
    fn from(r: BillSummaryRow) -> Self {
        BillSummary {
            id: r.id,
            bill_no: r.bill_no,
            patient_id: r.patient_id,
            patient_name: r.patient_name,
            mrn: r.mrn,
            department_zh: r.department_zh,
            department_en: r.department_en,
            total: r.total_fen,
            status: r.status,
            created_at_ms: r.created_at,
        }
    }
}

pub(crate) const BILL_SUMMARY_SELECT: &str = "SELECT b.id, b.bill_no, b.patient_id, p.name AS patient_name, p.mrn, \
     d.name_zh AS department_zh, d.name_en AS department_en, b.total_fen, b.status, b.created_at \
     FROM bills b JOIN patients p ON p.id = b.patient_id JOIN departments d ON d.id = b.department_id";

#[derive(sqlx::FromRow)]
struct PatientSummaryRow {
    #[sqlx(try_from = "String")]
    id: PatientId,
    mrn: String,
    name: String,
    gender: String,
    phone: String,
    birth_date: Option<String>,
    unpaid_count: i64,
    #[sqlx(try_from = "i64")]
    unpaid_fen: Money,
}

impl PatientSummaryRow {
    fn into_view(self) -> (PatientSummary, Option<String>) {
        (
            PatientSummary {
                unpaid_total: self.unpaid_fen,
                phone_masked: clinicpay::billing::mask_phone(&self.phone),
                id: self.id,
                mrn: self.mrn,
                name: self.name,
                gender: self.gender,
                unpaid_count: self.unpaid_count,
            },
            self.birth_date,
        )
    }
}

const PATIENT_SUMMARY_SELECT: &str = "SELECT p.id, p.mrn, p.name, p.gender, p.phone, p.birth_date, \
     (SELECT COUNT(*) FROM bills b WHERE b.patient_id = p.id AND b.status IN ('unpaid', 'paying')) AS unpaid_count, \
     (SELECT CAST(COALESCE(SUM(b.total_fen), 0) AS BIGINT) FROM bills b \
        WHERE b.patient_id = p.id AND b.status IN ('unpaid', 'paying')) AS unpaid_fen \
     FROM patients p";

#[derive(sqlx::FromRow)]
struct DepartmentRow {
    #[sqlx(try_from = "String")]
    id: DepartmentId,
    code: String,
    name_zh: String,
    name_en: String,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    line_no: i32,
    #[sqlx(try_from = "String")]
    category: ItemCategory,
    description: String,
    quantity: i64,
    #[sqlx(try_from = "i64")]
    unit_price_fen: Money,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
}

#[derive(sqlx::FromRow)]
struct BillExtraRow {
    #[sqlx(try_from = "i64")]
    refunded_fen: Money,
    paid_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PaymentLineRow {
    #[sqlx(try_from = "String")]
    id: PaymentId,
    #[sqlx(try_from = "String")]
    session_id: SessionId,
    #[sqlx(try_from = "String")]
    provider: Provider,
    provider_txn_id: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    paid_at: i64,
}

#[derive(sqlx::FromRow)]
struct TotalsRow {
    #[sqlx(try_from = "i64")]
    fen: Money,
    n: i64,
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    #[sqlx(try_from = "String")]
    provider: Provider,
    n: i64,
    #[sqlx(try_from = "i64")]
    fen: Money,
}

#[derive(sqlx::FromRow)]
struct RecentPaymentRow {
    #[sqlx(try_from = "String")]
    id: SessionId,
    name: String,
    #[sqlx(try_from = "String")]
    provider: Provider,
    paid_fen: Option<i64>,
    paid_at: Option<i64>,
    bills: i64,
}

/// Adds the bill list's filters to a statement (the count and the page share them).
fn bill_filters(b: &mut Sql, q: &BillQuery) {
    let (from, to) = q.range_ms();
    if let Some(text) = &q.q {
        // Name (anywhere in it), record number or bill number (from the start). A term that
        // cannot match (record numbers are digits, bill numbers `B…-…`) is left out, so a
        // name search finds the patients first and their bills by index.
        let like = format!("%{}%", like_escape(&text.to_lowercase()));
        let prefix = format!("{}%", like_escape(text));
        let mrn_shaped = text.bytes().all(|c| c.is_ascii_digit());
        let bill_shaped = text.len() > 1
            && text.as_bytes()[0].eq_ignore_ascii_case(&b'B')
            && text.bytes().skip(1).all(|c| c.is_ascii_digit() || c == b'-');
        let p = b.arg(like);
        b.push(&format!(" AND (b.patient_id IN (SELECT id FROM patients WHERE LOWER(name) LIKE {p} ESCAPE '\\'"));
        if mrn_shaped {
            let p = b.arg(prefix.clone());
            b.push(&format!(" OR mrn LIKE {p} ESCAPE '\\'"));
        }
        b.push(")");
        if bill_shaped {
            let p = b.arg(prefix.to_uppercase());
            b.push(&format!(" OR b.bill_no LIKE {p} ESCAPE '\\'"));
        }
        b.push(")");
    }
    if let Some(st) = q.status {
        let p = b.arg(st);
        b.push(&format!(" AND b.status = {p}"));
    }
    if let Some(f) = from {
        let p = b.arg(f);
        b.push(&format!(" AND b.created_at >= {p}"));
    }
    if let Some(t) = to {
        let p = b.arg(t);
        b.push(&format!(" AND b.created_at < {p}"));
    }
}

/// Adds the patient search to a statement.
fn patient_filter(b: &mut Sql, q: &str) {
    let like = b.arg(format!("%{}%", like_escape(&q.to_lowercase())));
    let prefix = b.arg(format!("{}%", like_escape(q)));
    let exact = b.arg(q);
    b.push(&format!(
        " WHERE (LOWER(p.name) LIKE {like} ESCAPE '\\' OR p.mrn LIKE {prefix} ESCAPE '\\' OR p.id = {exact})"
    ));
}

impl SqlStore {
    async fn payments_of_bill(&self, bill_id: &BillId) -> StoreResult<Vec<PaymentLine>> {
        let rows: Vec<PaymentLineRow> = sql(
            "SELECT id, session_id, provider, provider_txn_id, amount_fen, paid_at FROM payments WHERE bill_id = $1 ORDER BY paid_at",
        )
        .bind(bill_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PaymentLine {
                id: r.id,
                session_id: r.session_id,
                provider: r.provider,
                provider_txn_id: r.provider_txn_id,
                amount: r.amount_fen,
                paid_at_ms: r.paid_at,
            })
            .collect())
    }
}

#[async_trait]
impl BillingStore for SqlStore {
    async fn insert_departments(&self, deps: &[Department]) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        for d in deps {
            sql("INSERT INTO departments (id, code, name_zh, name_en) VALUES ($1, $2, $3, $4)")
                .bind(&d.id)
                .bind(&d.code)
                .bind(&d.name_zh)
                .bind(&d.name_en)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }

    async fn list_departments(&self) -> StoreResult<Vec<Department>> {
        let rows: Vec<DepartmentRow> =
            sql("SELECT id, code, name_zh, name_en FROM departments WHERE enabled = TRUE ORDER BY code")
                .fetch_all(&self.db)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| Department { id: r.id, code: r.code, name_zh: r.name_zh, name_en: r.name_en })
            .collect())
    }

    async fn insert_patients(&self, patients: &[Patient]) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        for p in patients {
            sql("INSERT INTO patients (id, mrn, name, gender, birth_date, phone, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&p.id)
                .bind(&p.mrn)
                .bind(&p.name)
                .bind(&p.gender)
                .bind(p.birth_date.as_deref())
                .bind(&p.phone)
                .bind(p.created_at_ms)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }

    async fn insert_bills(&self, bills: &[(Bill, Vec<BillItem>)]) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        for (b, items) in bills {
            let sum = Money::sum(items.iter().map(|i| i.amount)).map_err(|e| StoreError::Internal(e.into()))?;
            if sum != b.total || items.is_empty() {
                return Err(StoreError::Conflict(format!("bill {} total does not equal its items", b.bill_no)));
            }
            sql("INSERT INTO bills (id, bill_no, patient_id, department_id, total_fen, refunded_fen, status, created_at, paid_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8)")
            .bind(&b.id)
            .bind(&b.bill_no)
            .bind(&b.patient_id)
            .bind(&b.department_id)
            .bind(b.total)
            .bind(b.refunded)
            .bind(b.status)
            .bind(b.created_at_ms)
            .bind(b.paid_at_ms)
            .execute(&mut tx)
            .await?;
            if b.status != BillStatus::Void {
                super::ledger::book_issued(
                    &mut tx,
                    &[(&b.id, b.total, &b.bill_no)],
                    b.created_at_ms,
                    &crate::runtime::IdsAt(b.created_at_ms),
                )
                .await?;
            }
            for it in items {
                sql("INSERT INTO bill_items (bill_id, line_no, category, description, quantity, unit_price_fen, amount_fen) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&b.id)
                .bind(it.line_no)
                .bind(it.category)
                .bind(&it.description)
                .bind(it.quantity)
                .bind(it.unit_price)
                .bind(it.amount)
                .execute(&mut tx)
                .await?;
            }
        }
        tx.commit().await
    }

    async fn count_patients(&self) -> StoreResult<i64> {
        sql("SELECT COUNT(*) FROM patients").scalar(&self.db).await
    }

    async fn patient_detail(&self, id: &PatientId) -> StoreResult<Option<PatientDetail>> {
        let row: Option<PatientSummaryRow> =
            sql(format!("{PATIENT_SUMMARY_SELECT} WHERE p.id = $1")).bind(id).fetch_optional(&self.db).await?;
        let Some(row) = row else { return Ok(None) };
        let (patient, birth_date) = row.into_view();
        let bills: Vec<BillSummaryRow> =
            sql(format!("{BILL_SUMMARY_SELECT} WHERE b.patient_id = $1 ORDER BY b.created_at DESC, b.id"))
                .bind(id)
                .fetch_all(&self.db)
                .await?;
        Ok(Some(PatientDetail { patient, birth_date, bills: bills.into_iter().map(BillSummary::from).collect() }))
    }

    async fn list_patients(&self, q: Option<&str>, page: i64, page_size: i64) -> StoreResult<Page<PatientSummary>> {
        let mut count = sql("SELECT COUNT(*) FROM patients p");
        let mut list = sql(PATIENT_SUMMARY_SELECT);
        if let Some(q) = q {
            patient_filter(&mut count, q);
            patient_filter(&mut list, q);
        }
        let total: i64 = count.scalar(&self.db).await?;
        let limit = list.arg(page_size);
        let offset = list.arg((page - 1) * page_size);
        list.push(&format!(" ORDER BY p.mrn LIMIT {limit} OFFSET {offset}"));
        let rows: Vec<PatientSummaryRow> = list.fetch_all(&self.db).await?;
        Ok(Page { items: rows.into_iter().map(|r| r.into_view().0).collect(), total, page, page_size })
    }

    async fn bill_detail(&self, id: &BillId) -> StoreResult<Option<BillDetail>> {
        let row: Option<BillSummaryRow> =
            sql(format!("{BILL_SUMMARY_SELECT} WHERE b.id = $1")).bind(id).fetch_optional(&self.db).await?;
        let Some(row) = row else { return Ok(None) };
        let extra: BillExtraRow =
            sql("SELECT refunded_fen, paid_at FROM bills WHERE id = $1").bind(id).fetch_one(&self.db).await?;
        let items: Vec<ItemRow> = sql(
            "SELECT line_no, category, description, quantity, unit_price_fen, amount_fen FROM bill_items WHERE bill_id = $1 ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?;
        Ok(Some(BillDetail {
            bill: row.into(),
            items: items
                .into_iter()
                .map(|r| BillItem {
                    line_no: r.line_no,
                    category: r.category,
                    description: r.description,
                    quantity: r.quantity,
                    unit_price: r.unit_price_fen,
                    amount: r.amount_fen,
                })
                .collect(),
            refunded: extra.refunded_fen,
            paid_at_ms: extra.paid_at,
            payments: self.payments_of_bill(id).await?,
        }))
    }

    async fn list_bills(&self, q: &BillQuery) -> StoreResult<Page<BillSummary>> {
        let mut count = sql("SELECT COUNT(*) FROM bills b WHERE 1 = 1");
        bill_filters(&mut count, q);
        let mut list = sql(BILL_SUMMARY_SELECT);
        list.push(" WHERE 1 = 1");
        bill_filters(&mut list, q);
        let total: i64 = count.scalar(&self.db).await?;
        let dir = if q.desc { "DESC" } else { "ASC" };
        let order = match q.sort {
            BillSort::Created => format!(" ORDER BY b.created_at {dir}, b.id {dir}"),
            BillSort::Amount => format!(" ORDER BY b.total_fen {dir}, b.id {dir}"),
            BillSort::BillNo => format!(" ORDER BY b.bill_no {dir}"),
            BillSort::Patient => format!(" ORDER BY p.name {dir}, b.created_at DESC, b.id"),
        };
        let limit = list.arg(q.page_size);
        let offset = list.arg((q.page - 1) * q.page_size);
        list.push(&format!("{order} LIMIT {limit} OFFSET {offset}"));
        let rows: Vec<BillSummaryRow> = list.fetch_all(&self.db).await?;
        Ok(Page {
            items: rows.into_iter().map(BillSummary::from).collect(),
            total,
            page: q.page,
            page_size: q.page_size,
        })
    }

    async fn unpaid_bills(&self, patient_id: &PatientId) -> StoreResult<Vec<BillSummary>> {
        let rows: Vec<BillSummaryRow> =
            sql(format!("{BILL_SUMMARY_SELECT} WHERE b.patient_id = $1 AND b.status = $2 ORDER BY b.created_at, b.id"))
                .bind(patient_id)
                .bind(BillStatus::Unpaid)
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(BillSummary::from).collect())
    }

    async fn dashboard(&self, day: &str, day_start_ms: Millis, day_end_ms: Millis) -> StoreResult<Dashboard> {
        let takings: TotalsRow =
            sql("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS fen, COUNT(DISTINCT session_id) AS n \
             FROM payments WHERE paid_at >= $1 AND paid_at < $2")
            .bind(day_start_ms)
            .bind(day_end_ms)
            .fetch_one(&self.db)
            .await?;
        let unpaid: TotalsRow = sql(
            "SELECT CAST(COALESCE(SUM(total_fen), 0) AS BIGINT) AS fen, COUNT(*) AS n FROM bills WHERE status IN ('unpaid', 'paying')",
        )
        .fetch_one(&self.db)
        .await?;
        let recent: Vec<BillSummaryRow> =
            sql(format!("{BILL_SUMMARY_SELECT} ORDER BY b.created_at DESC, b.id DESC LIMIT 8"))
                .fetch_all(&self.db)
                .await?;
        let payments: Vec<RecentPaymentRow> = sql("SELECT s.id, p.name, s.provider, s.paid_fen, s.paid_at, \
                    (SELECT COUNT(*) FROM payments x WHERE x.session_id = s.id) AS bills \
             FROM checkout_sessions s JOIN patients p ON p.id = s.patient_id \
             WHERE s.status = 'paid' ORDER BY s.paid_at DESC LIMIT 8")
        .fetch_all(&self.db)
        .await?;
        let recent_payments = payments
            .into_iter()
            .map(|r| {
                Ok(RecentPayment {
                    session_id: r.id,
                    patient_name: r.name,
                    provider: r.provider,
                    amount: Money::from_fen(r.paid_fen.unwrap_or(0)).map_err(|e| super::corrupt("paid amount", e))?,
                    bills: r.bills,
                    paid_at_ms: r.paid_at.unwrap_or(0),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let channels: Vec<ChannelRow> =
            sql("SELECT provider, COUNT(DISTINCT session_id) AS n, CAST(SUM(amount_fen) AS BIGINT) AS fen \
                 FROM payments WHERE paid_at >= $1 AND paid_at < $2 GROUP BY provider ORDER BY provider")
            .bind(day_start_ms)
            .bind(day_end_ms)
            .fetch_all(&self.db)
            .await?;
        let open_exceptions: i64 =
            sql("SELECT COUNT(*) FROM payment_exceptions WHERE status IN ('open', 'held', 'refund_pending')")
                .scalar(&self.db)
                .await?;
        Ok(Dashboard {
            today: day.to_string(),
            today_takings: takings.fen,
            today_payments: takings.n,
            by_channel: channels
                .into_iter()
                .map(|c| ChannelTakings { provider: c.provider, payments: c.n, amount: c.fen })
                .collect(),
            open_exceptions,
            unpaid_count: unpaid.n,
            unpaid_total: unpaid.fen,
            recent_bills: recent.into_iter().map(BillSummary::from).collect(),
            recent_payments,
        })
    }
}
