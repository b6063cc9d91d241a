//! Raw provider notifications, stored before anything is done with them (G4), and the provider
//! events they carried (the duplicate detector).

use super::sql::{a, sql, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::checkout::apply::{EventRecord, NotificationFinish};
use clinicpay::ids::{ChannelId, NotificationId};
use clinicpay::payments::{printable_reason, NotificationStatus, Provider};
use clinicpay::ports::{NewNotification, NotificationResult, NotificationStore, StoreResult, StoredNotification};
use clinicpay::time::Millis;
use clinicpay::views::NotificationView;

#[derive(sqlx::FromRow)]
struct ViewRow {
    #[sqlx(try_from = "String")]
    id: NotificationId,
    #[sqlx(try_from = "String")]
    provider: Provider,
    received_at: i64,
    #[sqlx(try_from = "String")]
    status: NotificationStatus,
    reason: Option<String>,
    event_id: Option<String>,
    out_trade_no: Option<String>,
    remote_addr: String,
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    #[sqlx(try_from = "String")]
    id: NotificationId,
    #[sqlx(try_from = "String")]
    provider: Provider,
    received_at: i64,
    remote_addr: String,
    content_type: String,
    headers: String,
    body: Vec<u8>,
    #[sqlx(try_from = "String")]
    status: NotificationStatus,
}

/// Records provider events (`ON CONFLICT DO NOTHING`: the first one wins).
pub(crate) async fn record_events(tx: &mut Tx<'_>, events: &[(&EventRecord, Millis)]) -> StoreResult<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut q = sql("INSERT INTO provider_events (provider, event_id, notification_id, outcome, created_at) VALUES ");
    q.push_rows(events.iter().map(|&(e, at_ms)| {
        [
            a(e.provider),
            a(&e.event_id),
            a(e.notification_id.as_ref().map(|n| n.as_str()).unwrap_or("")),
            a(e.outcome),
            a(at_ms),
        ]
    }));
    q.push(" ON CONFLICT (provider, event_id) DO NOTHING");
    q.once().execute(&mut *tx).await
}

/// Writes what became of stored notifications, in the transaction of the effect.
pub(crate) async fn finish_all(tx: &mut Tx<'_>, done: &[(&NotificationFinish, Millis)]) -> StoreResult<()> {
    if done.is_empty() {
        return Ok(());
    }
    let mut q = sql(
        "UPDATE notifications SET status = v.column2, reason = v.column3, channel_id = v.column4, event_id = v.column5, \
         out_trade_no = v.column6, processed_at = v.column7 FROM (VALUES ",
    );
    q.push_rows(done.iter().map(|&(f, at_ms)| {
        [
            a(&f.id),
            a(f.status),
            a(f.reason.as_deref().map(printable_reason)),
            a(&f.channel_id),
            a(&f.event_id),
            a(&f.out_trade_no),
            a(at_ms),
        ]
    }));
    q.push(") AS v WHERE notifications.id = v.column1");
    q.once().execute(&mut *tx).await?;
    Ok(())
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn insert_notification(&self, n: &NewNotification) -> StoreResult<()> {
        self.insert_notifications(std::slice::from_ref(n)).await
    }

    async fn insert_notifications(&self, ns: &[NewNotification]) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        // one multi-row statement per 100 (well inside both databases' parameter limits)
        for chunk in ns.chunks(100) {
            let mut q = sql(
                "INSERT INTO notifications (id, provider, received_at, remote_addr, content_type, headers, body, status) VALUES ",
            );
            q.push_rows(chunk.iter().map(|n| {
                [
                    a(&n.id),
                    a(n.provider),
                    a(n.received_at_ms),
                    a(&n.remote_addr),
                    a(&n.content_type),
                    a(&n.headers),
                    a(&n.body),
                    a(NotificationStatus::Received),
                ]
            }));
            let q = if chunk.len() == 1 { q } else { q.once() };
            q.execute(&mut tx).await?;
        }
        tx.commit().await
    }

    async fn finish_notification(&self, id: &NotificationId, r: &NotificationResult) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sql("UPDATE notifications SET status = $1, reason = $2, channel_id = $3, event_id = $4, out_trade_no = $5, \
             processed_at = $6 WHERE id = $7")
        .bind(r.status)
        .bind(r.reason.as_deref().map(printable_reason))
        .bind(r.channel_id.as_ref().map(ChannelId::as_str))
        .bind(r.event_id.as_deref())
        .bind(r.out_trade_no.as_deref())
        .bind(r.processed_at_ms)
        .bind(id)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    async fn list_notifications(&self, limit: i64) -> StoreResult<Vec<NotificationView>> {
        let rows: Vec<ViewRow> = sql(
            "SELECT id, provider, received_at, status, reason, event_id, out_trade_no, remote_addr FROM notifications \
             ORDER BY received_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| NotificationView {
                id: r.id,
                provider: r.provider,
                received_at_ms: r.received_at,
                status: r.status,
                reason: r.reason,
                event_id: r.event_id,
                out_trade_no: r.out_trade_no,
                remote_addr: r.remote_addr,
            })
            .collect())
    }

    async fn unfinished_notifications(
        &self,
        before_ms: Millis,
        max_attempts: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredNotification>> {
        let rows: Vec<StoredRow> = sql(
            "SELECT id, provider, received_at, remote_addr, content_type, headers, body, status FROM notifications \
             WHERE status = $1 AND received_at < $2 AND attempts < $3 ORDER BY received_at LIMIT $4",
        )
        .bind(NotificationStatus::Received)
        .bind(before_ms)
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredNotification {
                id: r.id,
                provider: r.provider,
                received_at_ms: r.received_at,
                remote_addr: r.remote_addr,
                content_type: r.content_type,
                headers: r.headers,
                body: r.body,
                status: r.status,
            })
            .collect())
    }

    async fn purge_rejected_notifications(&self, before_ms: Millis, limit: i64) -> StoreResult<u64> {
        // read first: most rounds find nothing, and a read does not take SQLite's writer
        let ids: Vec<(String,)> =
            sql("SELECT id FROM notifications WHERE status = $1 AND received_at < $2 ORDER BY received_at LIMIT $3")
                .bind(NotificationStatus::Rejected)
                .bind(before_ms)
                .bind(limit)
                .fetch_all(&self.db)
                .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.write().await?;
        let mut gone = 0;
        for (id,) in &ids {
            // compare-and-set: only a row still rejected and still old enough goes
            gone += sql("DELETE FROM notifications WHERE id = $1 AND status = $2 AND received_at < $3")
                .bind(id)
                .bind(NotificationStatus::Rejected)
                .bind(before_ms)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    async fn count_redrive_attempt(&self, id: &NotificationId) -> StoreResult<Option<i64>> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE notifications SET attempts = attempts + 1 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(NotificationStatus::Received)
            .execute(&mut tx)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        let attempts: i64 = sql("SELECT attempts FROM notifications WHERE id = $1").bind(id).scalar(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(attempts))
    }

    async fn record_provider_event(
        &self,
        provider: Provider,
        event_id: &str,
        notification_id: &NotificationId,
        outcome: &str,
        at_ms: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.db.write().await?;
        let n = sql(
            "INSERT INTO provider_events (provider, event_id, notification_id, outcome, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .bind(notification_id)
        .bind(outcome)
        .bind(at_ms)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(n == 1)
    }
}
