//! Events out to the hospital's systems: endpoints (compare-and-set on version), events fixed
//! when made, deliveries claimed under leases and moved on by compare-and-set, every attempt
//! logged.

use super::audit::append;
use super::leases::{claim, Claim};
use super::sql::{sql, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::ids::{DeliveryId, OutboxId, WebhookEndpointId};
use clinicpay::ports::{
    AttemptRecord, AttemptRow, AuditInput, DeliveryFilter, DeliveryNext, DeliveryRow, DeliveryTask, EndpointRecord,
    IdGen, NewEvent, Sealed, StoreError, StoreResult, WebhookStore,
};
use clinicpay::time::Millis;
use clinicpay::webhooks::{topics_from_string, topics_to_string, DeliveryStatus, EventTopic};

const ENDPOINT_COLS: &str = "id, name, url, topics, enabled, secret_key_version, secret_ciphertext, secret_hint, \
                             version, created_by, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct EndpointRow {
    #[sqlx(try_from = "String")]
    id: WebhookEndpointId,
    name: String,
    url: String,
    topics: String,
    enabled: bool,
    secret_key_version: i64,
    secret_ciphertext: String,
    secret_hint: String,
    version: i64,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<EndpointRow> for EndpointRecord {
    type Error = StoreError;
    fn try_from(r: EndpointRow) -> StoreResult<EndpointRecord> {
        Ok(EndpointRecord {
            topics: topics_from_string(&r.topics).map_err(|e| StoreError::Internal(e.into()))?,
            id: r.id,
            name: r.name,
            url: r.url,
            enabled: r.enabled,
            secret: Sealed { key_version: r.secret_key_version, ciphertext: r.secret_ciphertext },
            secret_hint: r.secret_hint,
            version: r.version,
            created_by: r.created_by,
            created_at_ms: r.created_at,
            updated_at_ms: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    #[sqlx(try_from = "String")]
    id: DeliveryId,
    #[sqlx(try_from = "String")]
    endpoint_id: WebhookEndpointId,
    url: String,
    secret_key_version: i64,
    secret_ciphertext: String,
    event_id: String,
    #[sqlx(try_from = "String")]
    topic: EventTopic,
    body: String,
    attempts: i64,
    round_attempts: i64,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    #[sqlx(try_from = "String")]
    id: DeliveryId,
    event_id: String,
    #[sqlx(try_from = "String")]
    topic: EventTopic,
    aggregate_id: String,
    #[sqlx(try_from = "String")]
    endpoint_id: WebhookEndpointId,
    endpoint_name: String,
    #[sqlx(try_from = "String")]
    status: DeliveryStatus,
    attempts: i64,
    next_attempt_at: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct AttemptDbRow {
    attempt: i64,
    started_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    error: Option<String>,
    response_excerpt: Option<String>,
}

fn status_code(v: Option<i64>) -> Option<u16> {
    v.and_then(|c| u16::try_from(c).ok())
}

async fn insert_event(tx: &mut Tx<'_>, e: &NewEvent, now_ms: Millis) -> StoreResult<()> {
    sql("INSERT INTO webhook_events (id, topic, aggregate_id, body, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING")
    .bind(&e.id)
    .bind(e.topic)
    .bind(&e.aggregate_id)
    .bind(&e.body)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_endpoint(&self, e: &EndpointRecord, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sql(format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&e.id)
        .bind(&e.name)
        .bind(&e.url)
        .bind(topics_to_string(&e.topics))
        .bind(e.enabled)
        .bind(e.secret.key_version)
        .bind(&e.secret.ciphertext)
        .bind(&e.secret_hint)
        .bind(e.version)
        .bind(&e.created_by)
        .bind(e.created_at_ms)
        .bind(e.updated_at_ms)
        .execute(&mut tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn update_endpoint(&self, e: &EndpointRecord, expected_version: i64, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE webhook_endpoints SET name = $1, url = $2, topics = $3, enabled = $4, \
                     secret_key_version = $5, secret_ciphertext = $6, secret_hint = $7, version = $8, updated_at = $9 \
                     WHERE id = $10 AND version = $11")
        .bind(&e.name)
        .bind(&e.url)
        .bind(topics_to_string(&e.topics))
        .bind(e.enabled)
        .bind(e.secret.key_version)
        .bind(&e.secret.ciphertext)
        .bind(&e.secret_hint)
        .bind(e.version)
        .bind(e.updated_at_ms)
        .bind(&e.id)
        .bind(expected_version)
        .execute(&mut tx)
        .await?;
        if n != 1 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!("endpoint {} was changed meanwhile; reload and try again", e.id)));
        }
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn list_endpoints(&self) -> StoreResult<Vec<EndpointRecord>> {
        let rows: Vec<EndpointRow> =
            sql(format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints ORDER BY created_at, id"))
                .fetch_all(&self.db)
                .await?;
        rows.into_iter().map(EndpointRecord::try_from).collect()
    }

    async fn get_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<Option<EndpointRecord>> {
        let row: Option<EndpointRow> = sql(format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        row.map(EndpointRecord::try_from).transpose()
    }

    async fn publish_events(
        &self,
        outbox_id: &OutboxId,
        events: &[NewEvent],
        ids: &dyn IdGen,
        now_ms: Millis,
    ) -> StoreResult<usize> {
        let mut tx = self.db.write().await?;
        let endpoints: Vec<(String, String)> =
            sql("SELECT id, topics FROM webhook_endpoints WHERE enabled = TRUE ORDER BY id").fetch_all(&mut tx).await?;
        let mut made = 0usize;
        let endpoints = endpoints
            .into_iter()
            .map(|(id, topics)| Ok((id, topics_from_string(&topics).map_err(|err| StoreError::Internal(err.into()))?)))
            .collect::<StoreResult<Vec<(String, Vec<EventTopic>)>>>()?;
        for e in events {
            let wanted_by: Vec<&String> =
                endpoints.iter().filter(|(_, wants)| wants.contains(&e.topic)).map(|(id, _)| id).collect();
            // an event nobody wants is not kept (an endpoint added later starts from then on)
            if wanted_by.is_empty() {
                continue;
            }
            insert_event(&mut tx, e, now_ms).await?;
            for endpoint_id in wanted_by {
                made += sql("INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, \
                             next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4) \
                             ON CONFLICT (endpoint_id, event_id) DO NOTHING")
                .bind(DeliveryId::from_u128(ids.next_bits()))
                .bind(&e.id)
                .bind(endpoint_id.as_str())
                .bind(now_ms)
                .execute(&mut tx)
                .await? as usize;
            }
        }
        sql("UPDATE outbox SET status = 'published', published_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(now_ms)
            .bind(outbox_id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(made)
    }

    async fn claim_deliveries(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<DeliveryTask>> {
        let mut tx = self.db.write().await?;
        let claimed: Vec<(String,)> = claim(
            &mut tx,
            Claim {
                table: "webhook_deliveries",
                columns: "id",
                due: "status = 'pending' AND next_attempt_at <= $1 \
                      AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled = TRUE)",
                order_by: "next_attempt_at, id",
                also_set: "",
                now_ms,
                lease_ms,
                limit,
            },
        )
        .await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut q = sql("SELECT d.id, d.endpoint_id, w.url, w.secret_key_version, w.secret_ciphertext, d.event_id, \
                         e.topic, e.body, d.attempts, d.round_attempts FROM webhook_deliveries d \
                         JOIN webhook_endpoints w ON w.id = d.endpoint_id JOIN webhook_events e ON e.id = d.event_id \
                         WHERE d.id IN (");
        q.push_list(claimed.iter().map(|(id,)| id.as_str()));
        q.push(") ORDER BY d.next_attempt_at, d.id");
        let rows: Vec<TaskRow> = q.fetch_all(&mut tx).await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| DeliveryTask {
                id: r.id,
                endpoint_id: r.endpoint_id,
                url: r.url,
                secret: Sealed { key_version: r.secret_key_version, ciphertext: r.secret_ciphertext },
                event_id: r.event_id,
                topic: r.topic,
                body: r.body,
                attempts: r.attempts,
                round_attempts: r.round_attempts,
            })
            .collect())
    }

    async fn record_attempt(
        &self,
        id: &DeliveryId,
        attempt: i64,
        record: &AttemptRecord,
        next: DeliveryNext,
        now_ms: Millis,
    ) -> StoreResult<bool> {
        let (status, next_at, delivered_at) = match next {
            DeliveryNext::Delivered => (DeliveryStatus::Delivered, now_ms, Some(now_ms)),
            DeliveryNext::RetryAt(at) => (DeliveryStatus::Pending, at, None),
            DeliveryNext::Failed => (DeliveryStatus::Failed, now_ms, None),
        };
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE webhook_deliveries SET status = $1, attempts = $2, round_attempts = round_attempts + 1, \
                     next_attempt_at = $3, last_status_code = $4, last_error = $5, delivered_at = $6, lease_until = 0, \
                     updated_at = $7 WHERE id = $8 AND status = 'pending' AND attempts = $9")
        .bind(status)
        .bind(attempt)
        .bind(next_at)
        .bind(record.status_code.map(i64::from))
        .bind(record.error.clone())
        .bind(delivered_at)
        .bind(now_ms)
        .bind(id)
        .bind(attempt - 1)
        .execute(&mut tx)
        .await?;
        if n != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sql("INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, \
             response_excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(id)
        .bind(attempt)
        .bind(record.started_at_ms)
        .bind(record.duration_ms)
        .bind(record.status_code.map(i64::from))
        .bind(record.error.clone())
        .bind(record.response_excerpt.clone())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<DeliveryRow>> {
        let mut q = sql("SELECT d.id, d.event_id, e.topic, e.aggregate_id, d.endpoint_id, w.name AS endpoint_name, \
                         d.status, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error, d.delivered_at, \
                         d.created_at FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                         JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE 1 = 1");
        if let Some(s) = f.status {
            let p = q.arg(s);
            q.push(&format!(" AND d.status = {p}"));
        }
        if let Some(id) = &f.endpoint_id {
            let p = q.arg(id);
            q.push(&format!(" AND d.endpoint_id = {p}"));
        }
        if let Some(id) = &f.delivery_id {
            let p = q.arg(id);
            q.push(&format!(" AND d.id = {p}"));
        }
        if let Some(about) = f.about.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let p = q.arg(about);
            q.push(&format!(" AND (d.event_id = {p} OR e.aggregate_id = {p})"));
        }
        let p = q.arg(f.limit.clamp(1, 500));
        q.push(&format!(" ORDER BY d.created_at DESC, d.id DESC LIMIT {p}"));
        let rows: Vec<LogRow> = q.fetch_all(&self.db).await?;
        Ok(rows
            .into_iter()
            .map(|r| DeliveryRow {
                id: r.id,
                event_id: r.event_id,
                topic: r.topic,
                aggregate_id: r.aggregate_id,
                endpoint_id: r.endpoint_id,
                endpoint_name: r.endpoint_name,
                status: r.status,
                attempts: r.attempts,
                next_attempt_at_ms: r.next_attempt_at,
                last_status_code: status_code(r.last_status_code),
                last_error: r.last_error,
                delivered_at_ms: r.delivered_at,
                created_at_ms: r.created_at,
            })
            .collect())
    }

    async fn delivery_attempts(&self, id: &DeliveryId) -> StoreResult<Vec<AttemptRow>> {
        let rows: Vec<AttemptDbRow> =
            sql("SELECT attempt, started_at, duration_ms, status_code, error, response_excerpt \
                                           FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt")
            .bind(id)
            .fetch_all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AttemptRow {
                attempt: r.attempt,
                record: AttemptRecord {
                    started_at_ms: r.started_at,
                    duration_ms: r.duration_ms,
                    status_code: status_code(r.status_code),
                    error: r.error,
                    response_excerpt: r.response_excerpt,
                },
            })
            .collect())
    }

    async fn delivery_body(&self, id: &DeliveryId) -> StoreResult<Option<String>> {
        sql("SELECT e.body FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1")
            .bind(id)
            .scalar_optional(&self.db)
            .await
    }

    async fn resend_delivery(&self, id: &DeliveryId, now_ms: Millis, audit: &AuditInput) -> StoreResult<bool> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, next_attempt_at = $1, \
                     delivered_at = NULL, updated_at = $1 WHERE id = $2 AND NOT (status = 'pending' AND lease_until >= $1)")
        .bind(now_ms)
        .bind(id)
        .execute(&mut tx)
        .await?;
        if n != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, i64)>> {
        let rows: Vec<(String, i64)> =
            sql("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status ORDER BY status")
                .fetch_all(&self.db)
                .await?;
        rows.into_iter()
            .map(|(s, n)| {
                DeliveryStatus::parse(&s)
                    .map(|s| (s, n))
                    .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("delivery status {s:?}")))
            })
            .collect()
    }
}
