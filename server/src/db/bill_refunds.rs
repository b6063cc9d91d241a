//! Refunds of paid bills (R1–R3): the request holds money of the bill by compare-and-set, the
//! decisions move the refund by compare-and-set on its status, and the provider refund that pays
//! it is queued in the same transaction as the step that releases it.

use super::audit::append;
use super::ledger::write_entries;
use super::refunds::insert_refunds;
use super::sql::{sql, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::billing::BillStatus;
use clinicpay::checkout::apply::{JournalEntry, NewRefund};
use clinicpay::checkout::ProviderRefundStatus;
use clinicpay::ids::{BillId, ChannelId, JournalEntryId, OutboxId, PaymentId, RefundId};
use clinicpay::ledger::{Account, EntryKind, Postings};
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::ports::{
    refund_event, ActionRefusal, AuditInput, BillRefundStore, IdGen, NewBillRefund, RefundDecision, RefundFilter,
    RefundRef, RequestOutcome, RequestRefusal, Step, StoreError, StoreResult,
};
use clinicpay::receipts::{receipt_number, receipt_year, ReceiptSeries};
use clinicpay::refunds::{refundable, BillRefundStatus, BillRefundView, RefundReason, RefundRefusal};
use clinicpay::time::Millis;
use std::collections::HashMap;

const VIEW_SELECT: &str = "SELECT r.id, r.refund_no, r.bill_id, b.bill_no, p.name AS patient_name, r.amount_fen, \
     r.reason_code, r.reason_text, r.status, r.approvals_needed, r.requested_by_name, r.approved_by_name, \
     r.second_approved_by_name, r.decision_note, y.provider, y.provider_txn_id, y.paid_at, y.receipt_no, r.red_receipt_no, b.total_fen, b.refunded_fen, \
     pr.provider_refund_id, pr.last_error, r.created_at, r.updated_at, r.refunded_at \
     FROM bill_refunds r JOIN bills b ON b.id = r.bill_id JOIN patients p ON p.id = b.patient_id \
     JOIN payments y ON y.id = r.payment_id LEFT JOIN provider_refunds pr ON pr.bill_refund_id = r.id";

#[derive(sqlx::FromRow)]
struct ViewRow {
    #[sqlx(try_from = "String")]
    id: RefundId,
    refund_no: String,
    #[sqlx(try_from = "String")]
    bill_id: BillId,
    bill_no: String,
    patient_name: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    #[sqlx(try_from = "String")]
    reason_code: RefundReason,
    reason_text: String,
    #[sqlx(try_from = "String")]
    status: BillRefundStatus,
    approvals_needed: i32,
    requested_by_name: String,
    approved_by_name: Option<String>,
    second_approved_by_name: Option<String>,
    decision_note: Option<String>,
    #[sqlx(try_from = "String")]
    provider: Provider,
    provider_txn_id: String,
    paid_at: i64,
    receipt_no: String,
    red_receipt_no: Option<String>,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
    #[sqlx(try_from = "i64")]
    refunded_fen: Money,
    provider_refund_id: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    refunded_at: Option<i64>,
}

impl ViewRow {
    fn into_view(self, lines: Vec<i32>) -> BillRefundView {
        BillRefundView {
            id: self.id,
            refund_no: self.refund_no,
            bill_id: self.bill_id,
            bill_no: self.bill_no,
            patient_name: self.patient_name,
            amount: self.amount_fen,
            lines,
            reason: self.reason_code,
            reason_text: self.reason_text,
            status: self.status,
            approvals_needed: self.approvals_needed.clamp(0, 2) as u8,
            requested_by: self.requested_by_name,
            approved_by: self.approved_by_name,
            second_approved_by: self.second_approved_by_name,
            decision_note: self.decision_note,
            provider: self.provider,
            provider_txn_id: self.provider_txn_id,
            paid_at_ms: self.paid_at,
            receipt_no: self.receipt_no,
            red_receipt_no: self.red_receipt_no,
            bill_total: self.total_fen,
            bill_refunded: self.refunded_fen,
            provider_refund_id: self.provider_refund_id,
            last_error: self.last_error,
            created_at_ms: self.created_at,
            updated_at_ms: self.updated_at,
            refunded_at_ms: self.refunded_at,
        }
    }
}

/// Refunds by a condition on `r`/`b` (with its arguments bound by the caller's `Sql`), lines included.
async fn load_views(tx: &mut Tx<'_>, q: super::sql::Sql) -> StoreResult<Vec<BillRefundView>> {
    let rows: Vec<ViewRow> = q.once().fetch_all(&mut *tx).await?;
    attach_lines(tx, rows).await
}

async fn attach_lines(tx: &mut Tx<'_>, rows: Vec<ViewRow>) -> StoreResult<Vec<BillRefundView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sql("SELECT refund_id, line_no FROM bill_refund_lines WHERE refund_id IN (");
    q.push_list(rows.iter().map(|r| &r.id));
    q.push(") ORDER BY refund_id, line_no");
    let lines: Vec<(String, i32)> = q.once().fetch_all(&mut *tx).await?;
    let mut by: HashMap<String, Vec<i32>> = HashMap::new();
    for (id, l) in lines {
        by.entry(id).or_default().push(l);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let l = by.remove(r.id.as_str()).unwrap_or_default();
            r.into_view(l)
        })
        .collect())
}

pub(crate) async fn view_in(tx: &mut Tx<'_>, id: &RefundId) -> StoreResult<Option<BillRefundView>> {
    let q = sql(format!("{VIEW_SELECT} WHERE r.id = $1")).bind(id);
    Ok(load_views(tx, q).await?.into_iter().next())
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    #[sqlx(try_from = "String")]
    id: PaymentId,
    #[sqlx(try_from = "String")]
    provider: Provider,
    #[sqlx(try_from = "String")]
    channel_id: ChannelId,
    #[sqlx(try_from = "String")]
    out_trade_no: clinicpay::ids::OutTradeNo,
    #[sqlx(try_from = "i64")]
    trade_total_fen: Money,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    #[sqlx(try_from = "String")]
    bill_id: BillId,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    #[sqlx(try_from = "String")]
    status: BillRefundStatus,
    approvals_needed: i32,
    requested_by: String,
    approved_by: Option<String>,
    #[sqlx(try_from = "String")]
    reason_code: RefundReason,
    reason_text: String,
    refund_no: String,
}

pub(crate) async fn status_for_update(tx: &mut Tx<'_>, id: &RefundId) -> StoreResult<Option<BillRefundStatus>> {
    let for_update = tx.dialect().for_update();
    let s: Option<String> = sql(format!("SELECT status FROM bill_refunds WHERE id = $1{for_update}"))
        .bind(id)
        .scalar_optional(&mut *tx)
        .await?;
    s.map(|s| BillRefundStatus::parse(&s).ok_or_else(|| super::corrupt("bill refund status", &s))).transpose()
}

async fn state_for_update(tx: &mut Tx<'_>, id: &RefundId) -> StoreResult<StateRow> {
    let for_update = tx.dialect().for_update();
    sql(format!(
        "SELECT bill_id, amount_fen, status, approvals_needed, requested_by, approved_by, reason_code, reason_text, refund_no \
         FROM bill_refunds WHERE id = $1{for_update}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await
}

/// Queues the provider refund that pays bill refund `id` (same id, so `bill_refund_id` ties them).
async fn queue_provider_refund(
    tx: &mut Tx<'_>,
    id: &RefundId,
    bill_id: &BillId,
    amount: Money,
    reason: &str,
    at_ms: Millis,
) -> StoreResult<()> {
    let p: PaymentRow = payment_of(tx, bill_id)
        .await?
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("paid bill {bill_id} has no payment to refund through")))?;
    if p.provider.is_counter() {
        // C9: paid at the counter, paid back at the counter — cash from the drawer, a card
        // refund on the POS terminal — when it is approved, with its red receipt; no provider
        // is asked, so no provider refund is queued.
        let ids = &crate::runtime::RandomIds;
        super::ledger::book_refund_approved(tx, id, bill_id, amount, at_ms, ids).await?;
        book_bill_refund(tx, id, Account::clearing_for(p.provider), BillRefundStatus::Succeeded, at_ms, ids).await?;
        return Ok(());
    }
    let r = NewRefund::new(
        id.clone(),
        p.provider,
        p.channel_id,
        p.out_trade_no,
        p.trade_total_fen,
        amount,
        reason.to_string(),
        None,
    );
    insert_refunds(tx, &[(&r, at_ms)]).await?;
    sql("UPDATE provider_refunds SET bill_refund_id = $1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
    super::ledger::book_refund_approved(tx, id, bill_id, amount, at_ms, &crate::runtime::RandomIds).await?;
    Ok(())
}

async fn payment_of(tx: &mut Tx<'_>, bill_id: &BillId) -> StoreResult<Option<PaymentRow>> {
    sql("SELECT y.id, y.provider, s.channel_id, s.out_trade_no, COALESCE(s.paid_fen, s.total_fen) AS trade_total_fen \
         FROM payments y JOIN checkout_sessions s ON s.id = y.session_id WHERE y.bill_id = $1")
    .bind(bill_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Books a refund that went back to the payer: the journal entry, the bill's refunded amount and
/// status, the refund's end state, the event. Returns the refund as it now is.
pub(crate) async fn book_bill_refund(
    tx: &mut Tx<'_>,
    id: &RefundId,
    from: Account,
    to: BillRefundStatus,
    now_ms: Millis,
    ids: &dyn IdGen,
) -> StoreResult<(BillRefundView, JournalEntryId)> {
    let st = state_for_update(tx, id).await?;
    let entry = JournalEntry {
        id: JournalEntryId::from_u128(ids.next_bits()),
        kind: EntryKind::Refund,
        occurred_at_ms: now_ms,
        ref_type: "bill_refund",
        ref_id: id.to_string(),
        memo: format!("refund {} of bill {}", st.refund_no, st.bill_id),
        postings: Postings::bill_refund(from, &st.bill_id, st.amount_fen)
            .map_err(|e| StoreError::Internal(anyhow::anyhow!("{e}")))?,
    };
    write_entries(tx, &[(&entry, now_ms)]).await?;
    let n = sql("UPDATE bills SET refunded_fen = refunded_fen + $1, \
                 status = CASE WHEN refunded_fen + $1 >= total_fen THEN 'refunded' ELSE 'partially_refunded' END, \
                 updated_at = $2 WHERE id = $3 AND status IN ('paid', 'partially_refunded') AND refunded_fen + $1 <= refund_held_fen")
    .bind(st.amount_fen)
    .bind(now_ms)
    .bind(&st.bill_id)
    .execute(&mut *tx)
    .await?;
    if n != 1 {
        return Err(StoreError::Internal(anyhow::anyhow!(
            "bill {} cannot take refund {id}: its refunded amount would pass what its refunds hold",
            st.bill_id
        )));
    }
    // F4: the money went back, so the refund gets its red receipt, numbered in this transaction
    let year = receipt_year(now_ms);
    let no = super::receipts::take(tx, ReceiptSeries::Refund, year, 1).await?;
    let red = receipt_number(ReceiptSeries::Refund, year, no);
    sql("UPDATE bill_refunds SET status = $1, refunded_at = $2, journal_entry_id = $3, updated_at = $2, red_receipt_no = $5 \
         WHERE id = $4")
        .bind(to.as_str())
        .bind(now_ms)
        .bind(&entry.id)
        .bind(id)
        .bind(red)
        .execute(&mut *tx)
        .await?;
    let view = view_in(tx, id).await?.ok_or(StoreError::NotFound)?;
    let event = refund_event(
        OutboxId::from_u128(ids.next_bits()),
        &view,
        view.bill_refunded,
        now_ms,
        to == BillRefundStatus::Manual,
    );
    super::outbox::insert_events(tx, &[(&event, now_ms)]).await?;
    Ok((view, entry.id))
}

/// The step's audit line, the refund as it now is, committed.
async fn finish(mut tx: Tx<'_>, id: &RefundId, audit: &AuditInput) -> StoreResult<BillRefundView> {
    append(&mut tx, audit).await?;
    let view = view_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(view)
}

/// Why a request was refused, read again under the lock after its compare-and-set found nothing.
async fn refusal_of(tx: &mut Tx<'_>, bill_id: &BillId, amount: Money) -> StoreResult<RefundRefusal> {
    let row: Option<(String, i64, i64)> = sql("SELECT status, total_fen, refund_held_fen FROM bills WHERE id = $1")
        .bind(bill_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (status, total, held) = row.ok_or(StoreError::NotFound)?;
    let status = BillStatus::parse(&status).ok_or_else(|| super::corrupt("bill status", &status))?;
    let total = Money::from_fen(total).map_err(|e| super::corrupt("bill total", e))?;
    let held = Money::from_fen(held).map_err(|e| super::corrupt("held amount", e))?;
    Ok(match refundable(status, total, held) {
        Err(r) => r,
        Ok(left) => RefundRefusal::TooMuch { asked: amount, left },
    })
}

#[async_trait]
impl BillRefundStore for SqlStore {
    async fn request_bill_refund(
        &self,
        r: &NewBillRefund,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<RequestOutcome> {
        let mut tx = self.db.write().await?;
        // The compare-and-set comes first: on PostgreSQL it locks the bill's row, so requests for
        // one bill (the same idempotency key included) take turns from here on.
        let held = sql("UPDATE bills SET refund_held_fen = refund_held_fen + $1, updated_at = $2 \
                        WHERE id = $3 AND status IN ('paid', 'partially_refunded') AND refund_held_fen + $1 <= total_fen")
        .bind(r.amount)
        .bind(at_ms)
        .bind(&r.bill_id)
        .execute(&mut tx)
        .await?;
        if let Some((scope, key, hash)) = &r.idempotency {
            let prior: Option<(String, Option<String>)> =
                sql("SELECT id, request_hash FROM bill_refunds WHERE idem_scope = $1 AND idem_key = $2")
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&mut tx)
                    .await?;
            if let Some((id, prior_hash)) = prior {
                let id = RefundId::parse(&id).map_err(|e| super::corrupt("refund id", e))?;
                if prior_hash.as_deref() != Some(hash.as_str()) {
                    tx.rollback().await?;
                    return Ok(RequestOutcome::Refused(RequestRefusal::KeyReused));
                }
                let view = view_in(&mut tx, &id).await?.ok_or(StoreError::NotFound)?;
                tx.rollback().await?;
                return Ok(RequestOutcome::Replayed(view));
            }
        }
        if held != 1 {
            let why = refusal_of(&mut tx, &r.bill_id, r.amount).await?;
            tx.rollback().await?;
            return Ok(RequestOutcome::Refused(RequestRefusal::Rule(why)));
        }
        let waiting: Option<String> =
            sql("SELECT id FROM bill_refunds WHERE bill_id = $1 AND status IN ('requested', 'approved')")
                .bind(&r.bill_id)
                .scalar_optional(&mut tx)
                .await?;
        if let Some(w) = waiting {
            tx.rollback().await?;
            let w = RefundId::parse(&w).map_err(|e| super::corrupt("refund id", e))?;
            return Ok(RequestOutcome::Refused(RequestRefusal::Waiting(w)));
        }
        if !r.lines.is_empty() {
            let mut q = sql("SELECT line_no FROM bill_refund_lines WHERE bill_id = $1 AND active AND line_no IN (");
            q.arg(&r.bill_id);
            q.push_list(r.lines.iter().map(|(l, _)| *l));
            q.push(") ORDER BY line_no");
            let taken: Vec<i32> = q.once().scalars(&mut tx).await?;
            if let Some(l) = taken.first() {
                tx.rollback().await?;
                return Ok(RequestOutcome::Refused(RequestRefusal::LineTaken(*l)));
            }
        }
        let payment = payment_of(&mut tx, &r.bill_id)
            .await?
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("paid bill {} has no payment", r.bill_id)))?;
        let status = if r.approvals_needed == 0 { BillRefundStatus::Submitted } else { BillRefundStatus::Requested };
        let (scope, key, hash) = match &r.idempotency {
            Some((s, k, h)) => (Some(s.as_str()), Some(k.as_str()), Some(h.as_str())),
            None => (None, None, None),
        };
        sql("INSERT INTO bill_refunds (id, refund_no, bill_id, payment_id, amount_fen, reason_code, reason_text, status, \
             approvals_needed, requested_by, requested_by_name, idem_scope, idem_key, request_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)")
        .bind(&r.id)
        .bind(clinicpay::refunds::refund_no(&r.id))
        .bind(&r.bill_id)
        .bind(&payment.id)
        .bind(r.amount)
        .bind(r.reason.as_str())
        .bind(&r.reason_text)
        .bind(status.as_str())
        .bind(i32::from(r.approvals_needed))
        .bind(&r.requested_by)
        .bind(&r.requested_by_name)
        .bind(scope)
        .bind(key)
        .bind(hash)
        .bind(at_ms)
        .execute(&mut tx)
        .await?;
        for (line, amount) in &r.lines {
            sql("INSERT INTO bill_refund_lines (refund_id, bill_id, line_no, amount_fen, active) VALUES ($1, $2, $3, $4, TRUE)")
                .bind(&r.id)
                .bind(&r.bill_id)
                .bind(*line)
                .bind(*amount)
                .execute(&mut tx)
                .await?;
        }
        if status == BillRefundStatus::Submitted {
            queue_provider_refund(
                &mut tx,
                &r.id,
                &r.bill_id,
                r.amount,
                &refund_reason_text(r.reason, &r.reason_text),
                at_ms,
            )
            .await?;
        }
        append(&mut tx, audit).await?;
        let view = view_in(&mut tx, &r.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(RequestOutcome::Created(view))
    }

    async fn decide_bill_refund(
        &self,
        id: &RefundId,
        decision: RefundDecision,
        step: &Step<'_>,
    ) -> StoreResult<Result<BillRefundView, ActionRefusal>> {
        let mut tx = self.db.write().await?;
        let st = state_for_update(&mut tx, id).await?;
        if st.status != step.from || !st.status.awaits_approval() {
            tx.rollback().await?;
            return Ok(Err(ActionRefusal::State(st.status)));
        }
        match decision {
            RefundDecision::Reject => {
                sql("UPDATE bill_refunds SET status = 'rejected', decided_by = $1, decided_by_name = $2, decision_note = $3, \
                     updated_at = $4 WHERE id = $5 AND status = $6")
                .bind(step.actor_id)
                .bind(step.actor_name)
                .bind(step.note)
                .bind(step.at_ms)
                .bind(id)
                .bind(st.status.as_str())
                .execute(&mut tx)
                .await?;
                sql("UPDATE bills SET refund_held_fen = refund_held_fen - $1, updated_at = $2 WHERE id = $3")
                    .bind(st.amount_fen)
                    .bind(step.at_ms)
                    .bind(&st.bill_id)
                    .execute(&mut tx)
                    .await?;
                sql("UPDATE bill_refund_lines SET active = FALSE WHERE refund_id = $1")
                    .bind(id)
                    .execute(&mut tx)
                    .await?;
            }
            RefundDecision::Approve => {
                if step.actor_id == st.requested_by {
                    tx.rollback().await?;
                    return Ok(Err(ActionRefusal::OwnRequest));
                }
                if st.approved_by.as_deref() == Some(step.actor_id) {
                    tx.rollback().await?;
                    return Ok(Err(ActionRefusal::SameApprover));
                }
                let (to, who) = match st.status {
                    BillRefundStatus::Requested if st.approvals_needed >= 2 => {
                        (BillRefundStatus::Approved, "approved_by")
                    }
                    BillRefundStatus::Requested => (BillRefundStatus::Submitted, "approved_by"),
                    _ => (BillRefundStatus::Submitted, "second_approved_by"),
                };
                sql(format!(
                    "UPDATE bill_refunds SET status = $1, {who} = $2, {who}_name = $3, decision_note = $4, updated_at = $5 \
                     WHERE id = $6 AND status = $7"
                ))
                .bind(to.as_str())
                .bind(step.actor_id)
                .bind(step.actor_name)
                .bind(step.note)
                .bind(step.at_ms)
                .bind(id)
                .bind(st.status.as_str())
                .execute(&mut tx)
                .await?;
                if to == BillRefundStatus::Submitted {
                    let reason = refund_reason_text(st.reason_code, &st.reason_text);
                    queue_provider_refund(&mut tx, id, &st.bill_id, st.amount_fen, &reason, step.at_ms).await?;
                }
            }
        }
        Ok(Ok(finish(tx, id, step.audit).await?))
    }

    async fn retry_bill_refund(
        &self,
        id: &RefundId,
        step: &Step<'_>,
    ) -> StoreResult<Result<BillRefundView, ActionRefusal>> {
        let mut tx = self.db.write().await?;
        // the provider refund first: a provider's report locks it before the bill refund, so
        // taking them in the same order cannot deadlock with one
        let for_update = tx.dialect().for_update();
        sql(format!("SELECT id FROM provider_refunds WHERE bill_refund_id = $1{for_update}"))
            .bind(id)
            .scalar_optional::<String>(&mut tx)
            .await?;
        let st = state_for_update(&mut tx, id).await?;
        if st.status != step.from || st.status != BillRefundStatus::Failed {
            tx.rollback().await?;
            return Ok(Err(ActionRefusal::State(st.status)));
        }
        sql(
            "UPDATE bill_refunds SET status = 'submitted', decided_by = $1, decided_by_name = $2, decision_note = $3, \
             updated_at = $4 WHERE id = $5 AND status = 'failed'",
        )
        .bind(step.actor_id)
        .bind(step.actor_name)
        .bind(step.note)
        .bind(step.at_ms)
        .bind(id)
        .execute(&mut tx)
        .await?;
        // the same refund number again: the provider pays it at most once
        sql("UPDATE provider_refunds SET status = $1, next_attempt_at = $2, attempts = 0, lease_until = 0, updated_at = $2 \
             WHERE bill_refund_id = $3 AND status = $4")
        .bind(ProviderRefundStatus::Pending)
        .bind(step.at_ms)
        .bind(id)
        .bind(ProviderRefundStatus::Failed)
        .execute(&mut tx)
        .await?;
        Ok(Ok(finish(tx, id, step.audit).await?))
    }

    async fn manual_bill_refund(
        &self,
        id: &RefundId,
        step: &Step<'_>,
        ids: &dyn IdGen,
    ) -> StoreResult<Result<BillRefundView, ActionRefusal>> {
        let mut tx = self.db.write().await?;
        let st = state_for_update(&mut tx, id).await?;
        if st.status != step.from || st.status != BillRefundStatus::Failed {
            tx.rollback().await?;
            return Ok(Err(ActionRefusal::State(st.status)));
        }
        sql("UPDATE bill_refunds SET decided_by = $1, decided_by_name = $2, decision_note = $3 WHERE id = $4")
            .bind(step.actor_id)
            .bind(step.actor_name)
            .bind(step.note)
            .bind(id)
            .execute(&mut tx)
            .await?;
        let (view, _) = book_bill_refund(&mut tx, id, Account::Bank, BillRefundStatus::Manual, step.at_ms, ids).await?;
        append(&mut tx, step.audit).await?;
        tx.commit().await?;
        Ok(Ok(view))
    }

    async fn bill_refund(&self, id: &RefundId) -> StoreResult<Option<BillRefundView>> {
        let mut tx = self.db.read().await?;
        view_in(&mut tx, id).await
    }

    async fn list_bill_refunds(&self, filter: &RefundFilter) -> StoreResult<Vec<BillRefundView>> {
        let mut tx = self.db.read().await?;
        let mut q = sql(VIEW_SELECT);
        q.push(" WHERE 1 = 1");
        if !filter.statuses.is_empty() {
            q.push(" AND r.status IN (");
            q.push_list(filter.statuses.iter().map(|s| s.as_str()));
            q.push(")");
        }
        if let Some(b) = &filter.bill_id {
            let p = q.arg(b);
            q.push(&format!(" AND r.bill_id = {p}"));
        }
        let p = q.arg(filter.limit.clamp(1, 500));
        q.push(&format!(" ORDER BY r.created_at DESC, r.id DESC LIMIT {p}"));
        load_views(&mut tx, q).await
    }

    async fn refund_counts(&self) -> StoreResult<(i64, i64)> {
        let (waiting, failed): (i64, i64) = sql(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status IN ('requested', 'approved') THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) FROM bill_refunds \
             WHERE status IN ('requested', 'approved', 'failed')",
        )
        .fetch_one(&self.db)
        .await?;
        Ok((waiting, failed))
    }

    async fn bill_id_by_no(&self, bill_no: &str) -> StoreResult<Option<BillId>> {
        let id: Option<String> =
            sql("SELECT id FROM bills WHERE bill_no = $1").bind(bill_no).scalar_optional(&self.db).await?;
        id.map(|i| BillId::parse(&i)).transpose().map_err(|e| super::corrupt("bill id", e))
    }

    async fn refund_ref(&self, out_refund_no: &str) -> StoreResult<Option<RefundRef>> {
        let row: Option<(String, String, i64, String)> =
            sql("SELECT id, out_trade_no, amount_fen, provider FROM provider_refunds WHERE out_refund_no = $1")
                .bind(out_refund_no)
                .fetch_optional(&self.db)
                .await?;
        row.map(|(id, out_trade_no, amount, provider)| {
            Ok(RefundRef {
                id: RefundId::parse(&id).map_err(|e| super::corrupt("refund id", e))?,
                out_trade_no,
                amount: Money::from_fen(amount).map_err(|e| super::corrupt("refund amount", e))?,
                provider: Provider::parse(&provider).ok_or_else(|| super::corrupt("provider", &provider))?,
            })
        })
        .transpose()
    }
}

/// What the provider is told the refund is for (shown to the payer by some wallets).
fn refund_reason_text(reason: RefundReason, text: &str) -> String {
    if text.is_empty() {
        reason.label_zh().to_string()
    } else {
        format!("{}：{}", reason.label_zh(), text.chars().take(60).collect::<String>())
    }
}
