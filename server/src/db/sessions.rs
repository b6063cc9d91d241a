//! Checkout sessions and the payables they hold (C1, C2, C4, C8). A session freezes each
//! payable's amount when it opens and holds it (`session_payables.active`, one active session per
//! payable by a partial unique index) until it is paid or ends.

use super::sql::{sql, Tx};
use super::{corrupt, SqlStore};
use async_trait::async_trait;
use clinicpay::billing::BillStatus;
use clinicpay::checkout::apply::SessionEnd;
use clinicpay::checkout::apply::{ApplyResult, PaymentRules, VerifiedPayment};
use clinicpay::checkout::counter::{CounterRecord, CounterTender};
use clinicpay::checkout::payable::{PayableId, PayableKind};
use clinicpay::checkout::{EndReason, PayerNote, SessionPayable, SessionView};
use clinicpay::ids::{ChannelId, OutTradeNo, PatientId, SessionId};
use clinicpay::money::Money;
use clinicpay::payments::{PayAction, PayMethod, Provider, SessionStatus};
use clinicpay::ports::{
    AuditInput, CheckoutStore, CounterRefusal, CreateOutcome, IdGen, NewSession, SessionRefusal, StoreError,
    StoreResult,
};
use clinicpay::time::Millis;

const SESSION_SELECT: &str = "SELECT s.id, s.patient_id, p.name AS patient_name, p.mrn, s.provider, s.method, s.channel_id, \
     s.out_trade_no, s.status, s.total_fen, s.created_at, s.expires_at, s.pay_kind, s.pay_content, s.paid_at, s.paid_fen, \
     s.provider_txn_id, s.close_reason, s.replaced_by, s.payer_note, s.payer_note_at \
     FROM checkout_sessions s JOIN patients p ON p.id = s.patient_id";

#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(try_from = "String")]
    id: SessionId,
    #[sqlx(try_from = "String")]
    patient_id: PatientId,
    patient_name: String,
    mrn: String,
    #[sqlx(try_from = "String")]
    provider: Provider,
    #[sqlx(try_from = "String")]
    method: PayMethod,
    #[sqlx(try_from = "String")]
    channel_id: ChannelId,
    #[sqlx(try_from = "String")]
    out_trade_no: OutTradeNo,
    #[sqlx(try_from = "String")]
    status: SessionStatus,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
    created_at: i64,
    expires_at: i64,
    pay_kind: Option<String>,
    pay_content: Option<String>,
    paid_at: Option<i64>,
    paid_fen: Option<i64>,
    provider_txn_id: Option<String>,
    close_reason: Option<String>,
    replaced_by: Option<String>,
    payer_note: Option<String>,
    payer_note_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PayableRow {
    #[sqlx(try_from = "String")]
    payable_kind: PayableKind,
    payable_id: String,
    number: String,
    name_zh: String,
    name_en: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    #[sqlx(try_from = "String")]
    status: BillStatus,
    receipt_no: Option<String>,
}

/// Loads a session with its payables; `where_sql` names it by `$1`.
pub(crate) async fn load_session(tx: &mut Tx<'_>, where_sql: &str, key: &str) -> StoreResult<Option<SessionView>> {
    let row: Option<SessionRow> =
        sql(format!("{SESSION_SELECT} WHERE {where_sql}")).bind(key).fetch_optional(&mut *tx).await?;
    let Some(r) = row else { return Ok(None) };
    let payables: Vec<PayableRow> = sql(
        "SELECT sp.payable_kind, sp.payable_id, b.bill_no AS number, d.name_zh, d.name_en, sp.amount_fen, b.status, \
                (SELECT x.receipt_no FROM payments x WHERE x.payable_kind = sp.payable_kind AND x.payable_id = sp.payable_id \
                    AND x.session_id = sp.session_id) AS receipt_no \
         FROM session_payables sp JOIN bills b ON b.id = sp.bill_id JOIN departments d ON d.id = b.department_id \
         WHERE sp.session_id = $1 ORDER BY b.created_at, b.id",
    )
    .bind(&r.id)
    .fetch_all(&mut *tx)
    .await?;
    let payables = payables
        .into_iter()
        .map(|p| {
            Ok(SessionPayable {
                payable: PayableId::from_parts(p.payable_kind, &p.payable_id).map_err(|e| corrupt("payable", e))?,
                number: p.number,
                department_zh: p.name_zh,
                department_en: p.name_en,
                amount: p.amount_fen,
                status: p.status,
                receipt_no: p.receipt_no,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let pay_action = match (r.pay_kind, r.pay_content) {
        (Some(k), Some(c)) => {
            Some(PayAction::from_parts(&k, c).ok_or_else(|| corrupt("pay action", format!("kind {k:?}")))?)
        }
        _ => None,
    };
    let counter = if r.provider.is_counter() { super::counter::record_in(tx, &r.id).await? } else { None };
    Ok(Some(SessionView {
        counter,
        paid_amount: r.paid_fen.map(Money::from_fen).transpose().map_err(|e| corrupt("paid amount", e))?,
        replaced_by: r.replaced_by.map(|s| SessionId::parse(&s)).transpose().map_err(|e| corrupt("session id", e))?,
        id: r.id,
        patient_id: r.patient_id,
        patient_name: r.patient_name,
        mrn: r.mrn,
        provider: r.provider,
        method: r.method,
        channel_id: r.channel_id,
        out_trade_no: r.out_trade_no,
        status: r.status,
        total: r.total_fen,
        created_at_ms: r.created_at,
        expires_at_ms: r.expires_at,
        pay_action,
        paid_at_ms: r.paid_at,
        provider_txn_id: r.provider_txn_id,
        close_reason: r.close_reason,
        payables,
        payer_note: match (r.payer_note, r.payer_note_at) {
            (Some(code), Some(at_ms)) => Some(PayerNote { code, at_ms }),
            _ => None,
        },
    }))
}

/// Ends a pending session and releases its payables. `Err(status)` if it was not pending.
pub(crate) async fn end_session_in(
    tx: &mut Tx<'_>,
    id: &SessionId,
    reason: EndReason,
    at_ms: Millis,
    close_at_provider: bool,
    replaced_by: Option<&SessionId>,
) -> StoreResult<Result<(), SessionStatus>> {
    let end = SessionEnd::for_reason(reason);
    let n = sql("UPDATE checkout_sessions SET status = $1, closed_at = $2, close_reason = $3, \
         provider_close = CASE WHEN $4 THEN 'pending' ELSE provider_close END, \
         replaced_by = $5, updated_at = $2, version = version + 1 \
         WHERE id = $6 AND status = $7")
    .bind(end.to)
    .bind(at_ms)
    .bind(reason.as_str())
    .bind(close_at_provider)
    .bind(replaced_by.map(SessionId::as_str))
    .bind(id)
    .bind(end.from)
    .execute(&mut *tx)
    .await?;
    if n == 0 {
        let st: Option<String> =
            sql("SELECT status FROM checkout_sessions WHERE id = $1").bind(id).scalar_optional(&mut *tx).await?;
        return match st {
            Some(s) => Ok(Err(SessionStatus::parse(&s).ok_or_else(|| corrupt("session status", &s))?)),
            None => Err(StoreError::NotFound),
        };
    }
    sql("UPDATE bills SET status = $1, updated_at = $2 \
         WHERE status = $3 AND id IN (SELECT bill_id FROM session_payables WHERE session_id = $4 AND active = TRUE)")
    .bind(end.payables_to)
    .bind(at_ms)
    .bind(end.payables_from)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sql("UPDATE session_payables SET active = FALSE WHERE session_id = $1 AND active = TRUE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(Ok(()))
}

#[derive(sqlx::FromRow)]
struct PriorKey {
    request_hash: String,
    #[sqlx(try_from = "String")]
    session_id: SessionId,
}

#[derive(sqlx::FromRow)]
struct BillForSession {
    #[sqlx(try_from = "String")]
    patient_id: PatientId,
    #[sqlx(try_from = "String")]
    status: BillStatus,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
}

/// Opens a session in `tx` (see [`CheckoutStore::create_session`]); the caller commits.
pub(crate) async fn create_session_in(
    tx: &mut Tx<'_>,
    s: &NewSession,
) -> StoreResult<Result<CreateOutcome, SessionRefusal>> {
    let for_update = tx.dialect().for_update();
    // The idempotency key is claimed first. A concurrent request with the same key waits on
    // it (PostgreSQL) until this transaction commits — then it finds this session — or rolls
    // back (a refusal stores no key) — then it goes ahead itself.
    if let Some(k) = &s.idempotency {
        let claimed = sql(
            "INSERT INTO idempotency_keys (scope, key, request_hash, session_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(&k.scope)
        .bind(&k.key)
        .bind(&k.fingerprint)
        .bind(&s.id)
        .bind(s.created_at_ms)
        .execute(&mut *tx)
        .await?;
        if claimed == 0 {
            let p: PriorKey =
                sql("SELECT request_hash, session_id FROM idempotency_keys WHERE scope = $1 AND key = $2")
                    .bind(&k.scope)
                    .bind(&k.key)
                    .fetch_one(&mut *tx)
                    .await?;
            if p.request_hash != k.fingerprint {
                return Ok(Err(SessionRefusal::IdempotencyReused { session_id: p.session_id }));
            }
            let view = load_session(tx, "s.id = $1", p.session_id.as_str()).await?.ok_or(StoreError::NotFound)?;
            return Ok(Ok(CreateOutcome::Existing(view)));
        }
    }
    if let Some(old) = &s.replaces {
        if let Err(status) = end_session_in(tx, old, EndReason::Refreshed, s.created_at_ms, true, Some(&s.id)).await? {
            return Ok(Err(SessionRefusal::ReplacedNotPending { status }));
        }
    }
    let patient: Option<i64> = sql("SELECT CAST(1 AS BIGINT) FROM patients WHERE id = $1")
        .bind(&s.patient_id)
        .scalar_optional(&mut *tx)
        .await?;
    if patient.is_none() {
        return Ok(Err(SessionRefusal::UnknownPatient));
    }
    // Every payable: exists, this patient's, unpaid (a bill `paying` is in another session).
    // Locked in one global order (by id), whatever order the request named them in: two
    // requests for [b1, b2] and [b2, b1] never wait on each other in a cycle (PostgreSQL).
    let mut order: Vec<usize> = (0..s.payables.len()).collect();
    order.sort_by(|&x, &y| s.payables[x].cmp(&s.payables[y]));
    let mut amounts = vec![Money::ZERO; s.payables.len()];
    for &i in &order {
        let payable = &s.payables[i];
        let PayableId::Bill(bill_id) = payable;
        let row: Option<BillForSession> =
            sql(format!("SELECT patient_id, status, total_fen FROM bills WHERE id = $1{for_update}"))
                .bind(bill_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else { return Ok(Err(SessionRefusal::UnknownPayable(payable.clone()))) };
        if row.patient_id != s.patient_id {
            return Ok(Err(SessionRefusal::OtherPatient(payable.clone())));
        }
        if row.status == BillStatus::Paying {
            let active: Option<String> = sql(
                "SELECT session_id FROM session_payables WHERE payable_kind = $1 AND payable_id = $2 AND active = TRUE",
            )
            .bind(payable.kind())
            .bind(payable)
            .scalar_optional(&mut *tx)
            .await?;
            return Ok(Err(SessionRefusal::InActiveSession {
                payable: payable.clone(),
                session_id: active.and_then(|a| SessionId::parse(&a).ok()),
            }));
        }
        if !row.status.can_become(BillStatus::Paying) {
            return Ok(Err(SessionRefusal::NotPayable {
                payable: payable.clone(),
                status: row.status.as_str().to_string(),
            }));
        }
        amounts[i] = row.total_fen;
    }
    let total = Money::sum(amounts.iter().copied()).map_err(|e| StoreError::Internal(e.into()))?;
    sql("INSERT INTO checkout_sessions (id, patient_id, channel_id, provider, method, out_trade_no, total_fen, status, expires_at, \
         created_at, created_by, updated_at, sync_next_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12)")
    .bind(&s.id)
    .bind(&s.patient_id)
    .bind(&s.channel_id)
    .bind(s.provider)
    .bind(s.method)
    .bind(&s.out_trade_no)
    .bind(total)
    .bind(SessionStatus::Pending)
    .bind(s.expires_at_ms)
    .bind(s.created_at_ms)
    .bind(&s.created_by)
    .bind(s.created_at_ms + 15_000)
    .execute(&mut *tx)
    .await?;
    for (payable, amount) in s.payables.iter().zip(&amounts) {
        let r =
            sql("INSERT INTO session_payables (session_id, payable_kind, payable_id, bill_id, amount_fen, active) \
                     VALUES ($1, $2, $3, $4, $5, TRUE)")
            .bind(&s.id)
            .bind(payable.kind())
            .bind(payable)
            .bind(payable.bill())
            .bind(amount)
            .execute(&mut *tx)
            .await;
        match r {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Ok(Err(SessionRefusal::InActiveSession { payable: payable.clone(), session_id: None }))
            }
            Err(e) => return Err(e),
        }
        let PayableId::Bill(bill_id) = payable;
        let n = sql("UPDATE bills SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(BillStatus::Paying)
            .bind(s.created_at_ms)
            .bind(bill_id)
            .bind(BillStatus::Unpaid)
            .execute(&mut *tx)
            .await?;
        if n != 1 {
            return Ok(Err(SessionRefusal::NotPayable { payable: payable.clone(), status: "changed".into() }));
        }
    }
    let view = load_session(tx, "s.id = $1", s.id.as_str()).await?.ok_or(StoreError::NotFound)?;
    if let Some(a) = &s.audit {
        super::audit::append(tx, a).await?;
    }
    Ok(Ok(CreateOutcome::Created(view)))
}

#[async_trait]
impl CheckoutStore for SqlStore {
    async fn create_session(&self, s: &NewSession) -> StoreResult<Result<CreateOutcome, SessionRefusal>> {
        let mut tx = self.db.write().await?;
        let out = create_session_in(&mut tx, s).await?;
        if matches!(out, Ok(CreateOutcome::Created(_))) {
            tx.commit().await?;
        }
        Ok(out)
    }

    async fn set_pay_action(&self, session_id: &SessionId, action: &PayAction, at_ms: Millis) -> StoreResult<bool> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE checkout_sessions SET pay_kind = $1, pay_content = $2, updated_at = $3 \
                     WHERE id = $4 AND status = $5 AND pay_kind IS NULL")
        .bind(action.kind())
        .bind(action.content())
        .bind(at_ms)
        .bind(session_id)
        .bind(SessionStatus::Pending)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn note_payer_attempt(
        &self,
        out_trade_no: &str,
        code: &str,
        at_ms: Millis,
    ) -> StoreResult<Option<SessionId>> {
        let mut tx = self.db.write().await?;
        // only a pending session, and never an older note over a newer one (a late duplicate)
        let id: Option<String> =
            sql("UPDATE checkout_sessions SET payer_note = $1, payer_note_at = $2, updated_at = $2, \
                     version = version + 1 \
                     WHERE out_trade_no = $3 AND status = $4 AND (payer_note_at IS NULL OR payer_note_at <= $2) \
                     RETURNING id")
            .bind(code)
            .bind(at_ms)
            .bind(out_trade_no)
            .bind(SessionStatus::Pending)
            .scalar_optional(&mut tx)
            .await?;
        tx.commit().await?;
        id.map(|s| SessionId::parse(&s).map_err(|e| corrupt("session id", e))).transpose()
    }

    async fn end_session(
        &self,
        session_id: &SessionId,
        reason: EndReason,
        at_ms: Millis,
        close_at_provider: bool,
    ) -> StoreResult<Result<(), SessionStatus>> {
        let mut tx = self.db.write().await?;
        let r = end_session_in(&mut tx, session_id, reason, at_ms, close_at_provider, None).await?;
        if r.is_ok() {
            tx.commit().await?;
        }
        Ok(r)
    }

    async fn cancel_session(
        &self,
        session_id: &SessionId,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<Result<(), SessionStatus>> {
        let mut tx = self.db.write().await?;
        let r = end_session_in(&mut tx, session_id, EndReason::Cancelled, at_ms, true, None).await?;
        if r.is_ok() {
            super::audit::append(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok(r)
    }

    async fn session(&self, session_id: &SessionId) -> StoreResult<Option<SessionView>> {
        let mut tx = self.db.read().await?;
        load_session(&mut tx, "s.id = $1", session_id.as_str()).await
    }

    async fn session_by_trade(&self, out_trade_no: &OutTradeNo) -> StoreResult<Option<SessionView>> {
        let mut tx = self.db.read().await?;
        load_session(&mut tx, "s.out_trade_no = $1", out_trade_no.as_str()).await
    }

    async fn pending_sessions_of(&self, patient_id: &PatientId) -> StoreResult<Vec<SessionView>> {
        let ids: Vec<String> =
            sql("SELECT id FROM checkout_sessions WHERE patient_id = $1 AND status = $2 ORDER BY created_at DESC")
                .bind(patient_id)
                .bind(SessionStatus::Pending)
                .scalars(&self.db)
                .await?;
        let mut tx = self.db.read().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = load_session(&mut tx, "s.id = $1", &id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    async fn count_pending_sessions(&self) -> StoreResult<i64> {
        sql("SELECT COUNT(*) FROM checkout_sessions WHERE status = $1")
            .bind(SessionStatus::Pending)
            .scalar(&self.db)
            .await
    }

    async fn apply_payments(
        &self,
        ps: &[VerifiedPayment],
        rules: &PaymentRules,
        ids: &dyn IdGen,
    ) -> StoreResult<Vec<StoreResult<ApplyResult>>> {
        super::apply::apply_payments(&self.db, ps, rules, ids).await
    }

    async fn record_counter_payment(
        &self,
        s: &NewSession,
        tender: &CounterTender,
        cashier_name: &str,
        rules: &PaymentRules,
        ids: &dyn IdGen,
    ) -> StoreResult<Result<(SessionView, CounterRecord), CounterRefusal>> {
        let tx = self.db.write().await?;
        super::counter::record_counter_payment(tx, s, tender, cashier_name, rules, ids).await
    }

    async fn counter_record(&self, session_id: &SessionId) -> StoreResult<Option<CounterRecord>> {
        let mut tx = self.db.read().await?;
        super::counter::record_in(&mut tx, session_id).await
    }
}
