//! Payment channel configurations (G6). Secrets arrive sealed; nothing here is secret in clear.

use super::audit::append;
use super::sql::sql;
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::ids::ChannelId;
use clinicpay::payments::Provider;
use clinicpay::ports::{AuditInput, ChannelRecord, ChannelStore, StoreError, StoreResult};
use clinicpay::time::Millis;

#[derive(sqlx::FromRow)]
struct ChannelRow {
    #[sqlx(try_from = "String")]
    id: ChannelId,
    #[sqlx(try_from = "String")]
    provider: Provider,
    name: String,
    account_id: String,
    is_default: bool,
    enabled: bool,
    sandbox: bool,
    settings: String,
    secret_ciphertext: String,
    secret_key_version: i64,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<ChannelRow> for ChannelRecord {
    fn from(r: ChannelRow) -> Self {
        ChannelRecord {
            id: r.id,
            provider: r.provider,
            name: r.name,
            account_id: r.account_id,
            is_default: r.is_default,
            enabled: r.enabled,
            sandbox: r.sandbox,
            settings: r.settings,
            secret_ciphertext: r.secret_ciphertext,
            secret_key_version: r.secret_key_version,
            version: r.version,
            created_at_ms: r.created_at,
            updated_at_ms: r.updated_at,
        }
    }
}

const CHANNEL_COLS: &str =
    "id, provider, name, account_id, is_default, enabled, sandbox, settings, secret_ciphertext, \
     secret_key_version, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DefaultCheck {
    #[sqlx(try_from = "String")]
    provider: Provider,
    enabled: bool,
}

#[async_trait]
impl ChannelStore for SqlStore {
    async fn insert_channel(&self, c: &ChannelRecord, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        if c.is_default {
            sql("UPDATE channel_configs SET is_default = FALSE, version = version + 1, updated_at = $1 \
                 WHERE provider = $2 AND is_default = TRUE")
            .bind(c.updated_at_ms)
            .bind(c.provider)
            .execute(&mut tx)
            .await?;
        }
        sql(format!(
            "INSERT INTO channel_configs ({CHANNEL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&c.id)
        .bind(c.provider)
        .bind(&c.name)
        .bind(&c.account_id)
        .bind(c.is_default)
        .bind(c.enabled)
        .bind(c.sandbox)
        .bind(&c.settings)
        .bind(&c.secret_ciphertext)
        .bind(c.secret_key_version)
        .bind(c.version)
        .bind(c.created_at_ms)
        .bind(c.updated_at_ms)
        .execute(&mut tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn update_channel(&self, c: &ChannelRecord, expected_version: i64, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let n =
            sql("UPDATE channel_configs SET name = $1, account_id = $2, enabled = $3, sandbox = $4, settings = $5, \
             secret_ciphertext = $6, secret_key_version = $7, version = $8, updated_at = $9, \
             is_default = CASE WHEN $3 THEN is_default ELSE FALSE END \
             WHERE id = $10 AND version = $11")
            .bind(&c.name)
            .bind(&c.account_id)
            .bind(c.enabled)
            .bind(c.sandbox)
            .bind(&c.settings)
            .bind(&c.secret_ciphertext)
            .bind(c.secret_key_version)
            .bind(c.version)
            .bind(c.updated_at_ms)
            .bind(&c.id)
            .bind(expected_version)
            .execute(&mut tx)
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict("the channel was changed by someone else; reload and try again".into()));
        }
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn set_default_channel(&self, id: &ChannelId, at_ms: Millis, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let for_update = tx.dialect().for_update();
        let row: DefaultCheck = sql(format!("SELECT provider, enabled FROM channel_configs WHERE id = $1{for_update}"))
            .bind(id)
            .fetch_one(&mut tx)
            .await?;
        if !row.enabled {
            return Err(StoreError::Conflict("a disabled channel cannot be the default".into()));
        }
        sql("UPDATE channel_configs SET is_default = FALSE, version = version + 1, updated_at = $1 \
             WHERE provider = $2 AND is_default = TRUE AND id <> $3")
        .bind(at_ms)
        .bind(row.provider)
        .bind(id)
        .execute(&mut tx)
        .await?;
        sql("UPDATE channel_configs SET is_default = TRUE, version = version + 1, updated_at = $1 \
             WHERE id = $2 AND is_default = FALSE")
        .bind(at_ms)
        .bind(id)
        .execute(&mut tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn list_channels(&self) -> StoreResult<Vec<ChannelRecord>> {
        let rows: Vec<ChannelRow> = sql(format!(
            "SELECT {CHANNEL_COLS} FROM channel_configs WHERE provider NOT IN ('cash', 'pos') \
                 ORDER BY provider, is_default DESC, name"
        ))
        .fetch_all(&self.db)
        .await?;
        Ok(rows.into_iter().map(ChannelRecord::from).collect())
    }

    async fn get_channel(&self, id: &ChannelId) -> StoreResult<Option<ChannelRecord>> {
        let row: Option<ChannelRow> = sql(format!(
            "SELECT {CHANNEL_COLS} FROM channel_configs WHERE id = $1 AND provider NOT IN ('cash', 'pos')"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(ChannelRecord::from))
    }
}
