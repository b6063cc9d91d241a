//! Payment exceptions (C4): money that could not be applied as asked, and people's decisions.

use super::audit::append;
use super::refunds::{insert_refunds, resubmit_failed_refund};
use super::sql::{a, run_rows, sql, Arg, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::checkout::apply::{NewException, NewRefund};
use clinicpay::checkout::{ExceptionKind, ExceptionStatus, ExceptionView};
use clinicpay::ids::{ChannelId, ExceptionId, OutTradeNo, RefundId, SessionId};
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::ports::{AuditInput, ExceptionDecision, ExceptionStore, IdGen, StoreError, StoreResult};
use clinicpay::time::Millis;

pub(crate) async fn insert_exceptions(tx: &mut Tx<'_>, xs: &[(&NewException, Millis)]) -> StoreResult<()> {
    let rows: Vec<Vec<Arg>> = xs
        .iter()
        .map(|&(e, at_ms)| {
            vec![
                a(&e.id),
                a(e.kind),
                a(e.session_id.as_ref()),
                a(e.provider),
                a(&e.channel_id),
                a(&e.out_trade_no),
                a(&e.provider_txn_id),
                a(e.amount),
                a(e.expected),
                a(e.status),
                a(&e.detail),
                a(at_ms),
                a(at_ms),
            ]
        })
        .collect();
    run_rows(
        tx,
        "INSERT INTO payment_exceptions (id, kind, session_id, provider, channel_id, out_trade_no, provider_txn_id, amount_fen, \
         expected_fen, status, detail, created_at, updated_at) VALUES ",
        // once per kind, transaction and order: the same conflicting report heard again adds nothing
        " ON CONFLICT (kind, provider, provider_txn_id, out_trade_no) DO NOTHING",
        rows,
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ViewRow {
    #[sqlx(try_from = "String")]
    id: ExceptionId,
    #[sqlx(try_from = "String")]
    kind: ExceptionKind,
    session_id: Option<String>,
    patient_name: Option<String>,
    #[sqlx(try_from = "String")]
    provider: Provider,
    out_trade_no: String,
    provider_txn_id: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    expected_fen: Option<i64>,
    #[sqlx(try_from = "String")]
    status: ExceptionStatus,
    detail: String,
    resolution: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct DecideRow {
    #[sqlx(try_from = "String")]
    status: ExceptionStatus,
    #[sqlx(try_from = "String")]
    provider: Provider,
    channel_id: Option<String>,
    out_trade_no: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
}

#[async_trait]
impl ExceptionStore for SqlStore {
    async fn list_exceptions(&self, open_only: bool, limit: i64) -> StoreResult<Vec<ExceptionView>> {
        let open: Vec<String> =
            ExceptionStatus::ALL.into_iter().filter(|s| s.is_open()).map(|s| format!("'{}'", s.as_str())).collect();
        let filter = if open_only { format!("WHERE e.status IN ({})", open.join(", ")) } else { String::new() };
        let rows: Vec<ViewRow> = sql(format!(
            "SELECT e.id, e.kind, e.session_id, p.name AS patient_name, e.provider, e.out_trade_no, e.provider_txn_id, e.amount_fen, \
                    e.expected_fen, e.status, e.detail, e.resolution, e.created_at, e.updated_at \
             FROM payment_exceptions e LEFT JOIN checkout_sessions s ON s.id = e.session_id LEFT JOIN patients p ON p.id = s.patient_id \
             {filter} ORDER BY e.created_at DESC, e.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ExceptionView {
                    id: r.id,
                    kind: r.kind,
                    session_id: r
                        .session_id
                        .map(|s| SessionId::parse(&s))
                        .transpose()
                        .map_err(|e| super::corrupt("session id", e))?,
                    patient_name: r.patient_name,
                    provider: r.provider,
                    out_trade_no: r.out_trade_no,
                    provider_txn_id: r.provider_txn_id,
                    amount: r.amount_fen,
                    expected: r
                        .expected_fen
                        .map(Money::from_fen)
                        .transpose()
                        .map_err(|e| super::corrupt("amount", e))?,
                    status: r.status,
                    detail: r.detail,
                    resolution: r.resolution,
                    created_at_ms: r.created_at,
                    updated_at_ms: r.updated_at,
                })
            })
            .collect()
    }

    async fn decide_exception(
        &self,
        exception_id: &ExceptionId,
        decision: ExceptionDecision,
        note: &str,
        actor: &str,
        now_ms: Millis,
        ids: &dyn IdGen,
        audit: &AuditInput,
    ) -> StoreResult<Result<(), ExceptionStatus>> {
        let mut tx = self.db.write().await?;
        let for_update = tx.dialect().for_update();
        let row: DecideRow = sql(format!(
            "SELECT status, provider, channel_id, out_trade_no, amount_fen FROM payment_exceptions WHERE id = $1{for_update}"
        ))
        .bind(exception_id)
        .fetch_one(&mut tx)
        .await?;
        if !row.status.can_be_decided() {
            return Ok(Err(row.status));
        }
        let new_status = match decision {
            ExceptionDecision::Refund => ExceptionStatus::RefundPending,
            ExceptionDecision::Resolve => ExceptionStatus::Resolved,
        };
        sql("UPDATE payment_exceptions SET status = $1, resolution = $2, resolved_by = $3, updated_at = $4 \
             WHERE id = $5 AND status = $6")
        .bind(new_status)
        .bind(note)
        .bind(actor)
        .bind(now_ms)
        .bind(exception_id)
        .bind(row.status)
        .execute(&mut tx)
        .await?;
        // Refund decided again after the automatic one failed: that same refund goes again.
        if decision == ExceptionDecision::Refund && !resubmit_failed_refund(&mut tx, exception_id, now_ms).await? {
            let channel = row
                .channel_id
                .as_deref()
                .map(ChannelId::parse)
                .transpose()
                .map_err(|e| super::corrupt("channel id", e))?
                .ok_or_else(|| StoreError::Conflict("the exception names no channel to refund through".into()))?;
            let trade = OutTradeNo::parse(&row.out_trade_no).map_err(|e| super::corrupt("order number", e))?;
            let refund = NewRefund::new(
                RefundId::from_u128(ids.next_bits()),
                row.provider,
                channel,
                trade,
                row.amount_fen,
                row.amount_fen,
                note.to_string(),
                Some(exception_id.clone()),
            );
            insert_refunds(&mut tx, &[(&refund, now_ms)]).await?;
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
