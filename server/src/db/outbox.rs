//! The outbox: events written in the same transaction as the change they describe, published
//! by a worker to later consumers (partner callbacks, HIS events, e-receipts).

use super::leases::{claim, Claim};
use super::sql::{a, run_rows, Arg, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::checkout::apply::OutboxEvent;
use clinicpay::ids::OutboxId;
use clinicpay::ports::{OutboxItem, OutboxStore, StoreError, StoreResult};
use clinicpay::time::Millis;

pub(crate) async fn insert_events(tx: &mut Tx<'_>, events: &[(&OutboxEvent, Millis)]) -> StoreResult<()> {
    let rows = events
        .iter()
        .map(|&(e, at_ms)| {
            let payload = serde_json::to_string(&e.payload)
                .map_err(|err| StoreError::Internal(anyhow::anyhow!("outbox payload: {err}")))?;
            Ok(vec![a(&e.id), a(e.topic), a(&e.aggregate_id), a(payload), a("pending"), a(at_ms)])
        })
        .collect::<StoreResult<Vec<Vec<Arg>>>>()?;
    run_rows(tx, "INSERT INTO outbox (id, topic, aggregate_id, payload, status, created_at) VALUES ", "", rows).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    #[sqlx(try_from = "String")]
    id: OutboxId,
    topic: String,
    aggregate_id: String,
    payload: String,
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim_outbox(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        let mut tx = self.db.write().await?;
        let mut rows: Vec<ItemRow> = claim(
            &mut tx,
            Claim {
                table: "outbox",
                columns: "id, topic, aggregate_id, payload",
                due: "status = 'pending'",
                order_by: "created_at, id",
                also_set: ", attempts = attempts + 1",
                now_ms,
                lease_ms,
                limit,
            },
        )
        .await?;
        tx.commit().await?;
        rows.sort_by(|x, y| x.id.cmp(&y.id));
        Ok(rows
            .into_iter()
            .map(|r| OutboxItem { id: r.id, topic: r.topic, aggregate_id: r.aggregate_id, payload: r.payload })
            .collect())
    }
}
