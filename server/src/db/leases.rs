//! Background work claimed under leases (O4): one statement marks the due rows as taken until
//! `now + lease` and returns them, skipping rows another instance holds (PostgreSQL
//! `FOR UPDATE SKIP LOCKED`; SQLite's single writer needs no row locks). A worker that dies only
//! delays its items until the lease runs out. Also the sessions' own background work: expiry,
//! closing at the provider, status sync (G5).

use super::sessions::end_session_in;
use super::sql::{sql, Row, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::checkout::EndReason;
use clinicpay::ids::{ChannelId, SessionId};
use clinicpay::payments::SessionStatus;
use clinicpay::ports::{SessionTask, SessionWorkStore, StoreResult};
use clinicpay::time::Millis;

/// What to claim. In `due` and `also_set`, `$1` is the instant now.
pub(crate) struct Claim<'a> {
    pub table: &'static str,
    /// Returned for each claimed row (after the update).
    pub columns: &'a str,
    pub due: &'a str,
    pub order_by: &'static str,
    /// More assignments made by the claim, starting with `, ` (or empty).
    pub also_set: &'a str,
    pub now_ms: Millis,
    pub lease_ms: Millis,
    pub limit: i64,
}

/// Claims up to `limit` due rows of a table keyed by `id`.
pub(crate) async fn claim<R: Row>(tx: &mut Tx<'_>, c: Claim<'_>) -> StoreResult<Vec<R>> {
    let skip_locked = tx.dialect().skip_locked();
    sql(format!(
        "UPDATE {table} SET lease_until = $2{also_set} WHERE id IN (SELECT id FROM {table} WHERE ({due}) AND lease_until < $1 \
         ORDER BY {order_by} LIMIT $3{skip_locked}) RETURNING {columns}",
        table = c.table,
        also_set = c.also_set,
        due = c.due,
        order_by = c.order_by,
        columns = c.columns,
    ))
    .bind(c.now_ms)
    .bind(c.now_ms + c.lease_ms)
    .bind(c.limit)
    .fetch_all(&mut *tx)
    .await
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    #[sqlx(try_from = "String")]
    id: SessionId,
    #[sqlx(try_from = "String")]
    channel_id: ChannelId,
    out_trade_no: String,
    #[sqlx(try_from = "String")]
    status: SessionStatus,
    sync_attempts: i64,
}

impl From<TaskRow> for SessionTask {
    fn from(r: TaskRow) -> Self {
        SessionTask {
            session_id: r.id,
            channel_id: r.channel_id,
            out_trade_no: r.out_trade_no,
            status: r.status,
            attempts: r.sync_attempts,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ExpiryRow {
    #[sqlx(try_from = "String")]
    id: SessionId,
    pay_kind: Option<String>,
    expires_at: i64,
}

/// Status sync backs off: the next query 15 s, 30 s, 60 s after the previous, then every 2 min.
const SYNC_BACKOFF: &str = "CASE sync_attempts WHEN 0 THEN 15000 WHEN 1 THEN 30000 WHEN 2 THEN 60000 ELSE 120000 END";

#[async_trait]
impl SessionWorkStore for SqlStore {
    async fn expire_sessions(&self, now_ms: Millis, limit: i64) -> StoreResult<Vec<SessionId>> {
        let mut tx = self.db.write().await?;
        let skip_locked = tx.dialect().skip_locked();
        let rows: Vec<ExpiryRow> = sql(format!(
            "SELECT id, pay_kind, expires_at FROM checkout_sessions WHERE status = $1 \
             AND (expires_at <= $2 OR (pay_kind IS NULL AND created_at <= $3)) ORDER BY expires_at LIMIT $4{skip_locked}"
        ))
        .bind(SessionStatus::Pending)
        .bind(now_ms)
        .bind(now_ms - 120_000)
        .bind(limit)
        .fetch_all(&mut tx)
        .await?;
        let mut ended = Vec::new();
        for r in rows {
            // No QR was ever stored and the session is not past its expiry: the provider call
            // never answered.
            let reason = if r.pay_kind.is_none() && r.expires_at > now_ms {
                EndReason::CreateFailed
            } else {
                EndReason::Expired
            };
            if end_session_in(&mut tx, &r.id, reason, now_ms, true, None).await?.is_ok() {
                ended.push(r.id);
            }
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn sessions_due_to_expire(&self, now_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>> {
        // no lease: asking twice (two instances) is harmless — closing is idempotent at the
        // provider and ending the session is a compare-and-set
        let rows: Vec<TaskRow> =
            sql("SELECT id, channel_id, out_trade_no, status, sync_attempts FROM checkout_sessions \
             WHERE status = $1 AND pay_kind IS NOT NULL AND expires_at <= $2 ORDER BY expires_at LIMIT $3")
            .bind(SessionStatus::Pending)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.db)
            .await?;
        Ok(rows.into_iter().map(SessionTask::from).collect())
    }

    async fn claim_closes(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>> {
        let mut tx = self.db.write().await?;
        let rows: Vec<TaskRow> = claim(
            &mut tx,
            Claim {
                table: "checkout_sessions",
                columns: "id, channel_id, out_trade_no, status, sync_attempts",
                due: "provider_close = 'pending'",
                order_by: "closed_at",
                also_set: "",
                now_ms,
                lease_ms,
                limit,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(SessionTask::from).collect())
    }

    async fn mark_closed_at_provider(&self, session_id: &SessionId) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sql("UPDATE checkout_sessions SET provider_close = 'done', lease_until = 0 WHERE id = $1 AND provider_close = 'pending'")
            .bind(session_id)
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    async fn claim_syncs(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>> {
        let mut tx = self.db.write().await?;
        let also = format!(", sync_next_at = $1 + {SYNC_BACKOFF}, sync_attempts = sync_attempts + 1");
        let due =
            format!("status = '{}' AND pay_kind IS NOT NULL AND sync_next_at <= $1", SessionStatus::Pending.as_str());
        let rows: Vec<TaskRow> = claim(
            &mut tx,
            Claim {
                table: "checkout_sessions",
                // the attempts made before this one
                columns: "id, channel_id, out_trade_no, status, sync_attempts - 1 AS sync_attempts",
                due: &due,
                order_by: "sync_next_at",
                also_set: &also,
                now_ms,
                lease_ms,
                limit,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(SessionTask::from).collect())
    }
}
