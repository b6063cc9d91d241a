//! Refunds we asked a provider for, driven by the refund worker until the provider confirms
//! (today: automatic refunds of unallocated money and refunds decided on an exception).

use super::bill_refunds::{book_bill_refund, status_for_update};
use super::leases::{claim, Claim};
use super::ledger::write_entries;
use super::sql::{a, run_rows, sql, Arg, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::checkout::apply::{JournalEntry, NewRefund};
use clinicpay::checkout::{ExceptionStatus, ProviderRefundStatus};
use clinicpay::ids::{ChannelId, ExceptionId, JournalEntryId, RefundId};
use clinicpay::ledger::{Account, EntryKind, Postings};
use clinicpay::money::Money;
use clinicpay::payments::{printable_reason, Provider};
use clinicpay::ports::{IdGen, RefundProgress, RefundStore, RefundTask, StoreError, StoreResult};
use clinicpay::refunds::BillRefundStatus;
use clinicpay::time::Millis;

/// Submits a failed refund of `exception_id` again (same `out_refund_no`, so the provider pays
/// it at most once); false when the exception has no failed refund.
pub(crate) async fn resubmit_failed_refund(
    tx: &mut Tx<'_>,
    exception_id: &ExceptionId,
    now_ms: Millis,
) -> StoreResult<bool> {
    let n = sql("UPDATE provider_refunds SET status = $1, next_attempt_at = $2, attempts = 0, lease_until = 0, updated_at = $2 \
                 WHERE exception_id = $3 AND status = $4")
    .bind(ProviderRefundStatus::Pending)
    .bind(now_ms)
    .bind(exception_id)
    .bind(ProviderRefundStatus::Failed)
    .execute(&mut *tx)
    .await?;
    Ok(n > 0)
}

/// Queues refunds (status `pending`, due now).
pub(crate) async fn insert_refunds(tx: &mut Tx<'_>, refunds: &[(&NewRefund, Millis)]) -> StoreResult<()> {
    let rows: Vec<Vec<Arg>> = refunds
        .iter()
        .map(|&(r, at_ms)| {
            vec![
                a(&r.id),
                a(&r.out_refund_no),
                a(r.provider),
                a(&r.channel_id),
                a(&r.out_trade_no),
                a(r.total),
                a(r.amount),
                a(&r.reason),
                a(r.exception_id.as_ref()),
                a(ProviderRefundStatus::Pending),
                a(at_ms),
                a(at_ms),
                a(at_ms),
            ]
        })
        .collect();
    run_rows(
        tx,
        "INSERT INTO provider_refunds (id, out_refund_no, provider, channel_id, out_trade_no, total_fen, amount_fen, reason, \
         exception_id, status, next_attempt_at, created_at, updated_at) VALUES ",
        "",
        rows,
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    #[sqlx(try_from = "String")]
    id: RefundId,
    #[sqlx(try_from = "String")]
    channel_id: ChannelId,
    out_trade_no: String,
    out_refund_no: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
    reason: String,
    #[sqlx(try_from = "String")]
    status: ProviderRefundStatus,
    attempts: i64,
}

#[derive(sqlx::FromRow)]
struct ProgressRow {
    #[sqlx(try_from = "String")]
    provider: Provider,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    exception_id: Option<String>,
    bill_refund_id: Option<String>,
    #[sqlx(try_from = "String")]
    status: ProviderRefundStatus,
}

#[async_trait]
impl RefundStore for SqlStore {
    async fn claim_refunds(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<RefundTask>> {
        let mut tx = self.db.write().await?;
        let due = format!(
            "status IN ('{}', '{}') AND next_attempt_at <= $1",
            ProviderRefundStatus::Pending.as_str(),
            ProviderRefundStatus::Processing.as_str()
        );
        let rows: Vec<TaskRow> = claim(
            &mut tx,
            Claim {
                table: "provider_refunds",
                columns: "id, channel_id, out_trade_no, out_refund_no, amount_fen, total_fen, reason, status, attempts",
                due: &due,
                order_by: "next_attempt_at",
                also_set: "",
                now_ms,
                lease_ms,
                limit,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| RefundTask {
                id: r.id,
                channel_id: r.channel_id,
                out_trade_no: r.out_trade_no,
                out_refund_no: r.out_refund_no,
                amount: r.amount_fen,
                total: r.total_fen,
                reason: r.reason,
                status: r.status,
                attempts: r.attempts,
            })
            .collect())
    }

    async fn refund_progress(
        &self,
        refund_id: &RefundId,
        progress: &RefundProgress,
        now_ms: Millis,
        ids: &dyn IdGen,
    ) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let for_update = tx.dialect().for_update();
        let row: ProgressRow = sql(format!(
            "SELECT provider, amount_fen, exception_id, bill_refund_id, status FROM provider_refunds WHERE id = $1{for_update}"
        ))
        .bind(refund_id)
        .fetch_one(&mut tx)
        .await?;
        let to = match progress {
            RefundProgress::Succeeded { .. } => ProviderRefundStatus::Succeeded,
            RefundProgress::Failed { .. } => ProviderRefundStatus::Failed,
            RefundProgress::Processing | RefundProgress::Retry { .. } => ProviderRefundStatus::Processing,
        };
        if !row.status.can_become(to) {
            return Ok(()); // a repeated or out-of-order report changes nothing
        }
        let bill_refund_id = row
            .bill_refund_id
            .map(|e| RefundId::parse(&e))
            .transpose()
            .map_err(|e| super::corrupt("bill refund id", e))?;
        let exception_id = row
            .exception_id
            .map(|e| ExceptionId::parse(&e))
            .transpose()
            .map_err(|e| super::corrupt("exception id", e))?;
        match progress {
            RefundProgress::Succeeded { provider_refund_id } => {
                let mut note: Option<String> = None;
                let entry_id = match &bill_refund_id {
                    // a refund of a bill: the bill's income goes back, the bill shows it
                    Some(br) => match status_for_update(&mut tx, br).await? {
                        Some(BillRefundStatus::Submitted | BillRefundStatus::Failed) => {
                            let (_, entry_id) = book_bill_refund(
                                &mut tx,
                                br,
                                Account::clearing_for(row.provider),
                                BillRefundStatus::Succeeded,
                                now_ms,
                                ids,
                            )
                            .await?;
                            Some(entry_id)
                        }
                        other => {
                            // Paid by hand after it was reported failed, and now the provider
                            // paid it too: the payer has the money twice. Nothing is booked
                            // twice; finance must recover it (the refund shows this).
                            tracing::error!(refund = %br, status = ?other, "the provider reports a refund paid that was already settled; nothing booked");
                            note = Some("the provider paid this refund after it was settled by hand: the payer was refunded twice; recover it".into());
                            None
                        }
                    },
                    None => {
                        let entry = JournalEntry {
                            id: JournalEntryId::from_u128(ids.next_bits()),
                            kind: EntryKind::UnallocatedRefund,
                            occurred_at_ms: now_ms,
                            ref_type: "refund",
                            ref_id: refund_id.to_string(),
                            memo: "refund of unallocated money".into(),
                            postings: Postings::unallocated_refund(row.provider, row.amount_fen)
                                .map_err(|e| StoreError::Internal(anyhow::anyhow!("{e}")))?,
                        };
                        write_entries(&mut tx, &[(&entry, now_ms)]).await?;
                        Some(entry.id)
                    }
                };
                if let Some(n) = &note {
                    sql("UPDATE provider_refunds SET last_error = $1 WHERE id = $2")
                        .bind(n)
                        .bind(refund_id)
                        .execute(&mut tx)
                        .await?;
                }
                sql("UPDATE provider_refunds SET status = $1, provider_refund_id = $2, journal_entry_id = $3, \
                     attempts = attempts + 1, lease_until = 0, updated_at = $4 WHERE id = $5")
                .bind(ProviderRefundStatus::Succeeded)
                .bind(provider_refund_id.as_deref())
                .bind(entry_id.as_ref())
                .bind(now_ms)
                .bind(refund_id)
                .execute(&mut tx)
                .await?;
                if let Some(e) = &exception_id {
                    // refund_pending, or open again after this refund was reported failed
                    sql("UPDATE payment_exceptions SET status = $1, resolution = $2, updated_at = $3 \
                         WHERE id = $4 AND status IN ($5, $6)")
                    .bind(ExceptionStatus::Refunded)
                    .bind(format!("refunded {} through the original channel", row.amount_fen.display()))
                    .bind(now_ms)
                    .bind(e)
                    .bind(ExceptionStatus::RefundPending)
                    .bind(ExceptionStatus::Open)
                    .execute(&mut tx)
                    .await?;
                }
            }
            RefundProgress::Processing => {
                sql("UPDATE provider_refunds SET status = $1, attempts = attempts + 1, next_attempt_at = $2, lease_until = 0, \
                     updated_at = $3 WHERE id = $4")
                .bind(ProviderRefundStatus::Processing)
                .bind(now_ms + 10_000)
                .bind(now_ms)
                .bind(refund_id)
                .execute(&mut tx)
                .await?;
            }
            RefundProgress::Retry { error, next_attempt_at_ms } => {
                sql("UPDATE provider_refunds SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, lease_until = 0, \
                     updated_at = $3 WHERE id = $4")
                .bind(*next_attempt_at_ms)
                .bind(printable_reason(error))
                .bind(now_ms)
                .bind(refund_id)
                .execute(&mut tx)
                .await?;
            }
            RefundProgress::Failed { error } => {
                sql("UPDATE provider_refunds SET status = $1, attempts = attempts + 1, last_error = $2, lease_until = 0, \
                     updated_at = $3 WHERE id = $4")
                .bind(ProviderRefundStatus::Failed)
                .bind(printable_reason(error))
                .bind(now_ms)
                .bind(refund_id)
                .execute(&mut tx)
                .await?;
                if let Some(br) = &bill_refund_id {
                    // finance sees it in the refund queue: send it again or pay it by hand
                    sql("UPDATE bill_refunds SET status = 'failed', updated_at = $1 WHERE id = $2 AND status = 'submitted'")
                        .bind(now_ms)
                        .bind(br)
                        .execute(&mut tx)
                        .await?;
                }
                if let Some(e) = &exception_id {
                    sql("UPDATE payment_exceptions SET status = $1, resolution = $2, updated_at = $3 WHERE id = $4 AND status = $5")
                        .bind(ExceptionStatus::Open)
                        .bind(format!("automatic refund failed: {}; decide manually", printable_reason(error)))
                        .bind(now_ms)
                        .bind(e)
                        .bind(ExceptionStatus::RefundPending)
                        .execute(&mut tx)
                        .await?;
                }
            }
        }
        tx.commit().await
    }
}
