//! Counter payments (C9): a session on a counter channel, opened, paid and recorded in one
//! transaction. The session is opened by the same code as a QR session and paid by the same
//! rules as a provider's report ([`super::apply::apply_alone`]); nothing here decides money.

use super::apply::apply_alone;
use super::sessions::{create_session_in, load_session};
use super::sql::{sql, Tx};
use clinicpay::checkout::apply::{ApplyResult, PaymentRules, VerifiedPayment};
use clinicpay::checkout::counter::{CounterRecord, CounterTender};
use clinicpay::checkout::SessionView;
use clinicpay::ids::SessionId;
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::ports::{CounterRefusal, CreateOutcome, IdGen, NewSession, StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(try_from = "String")]
    session_id: SessionId,
    #[sqlx(try_from = "String")]
    kind: Provider,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
    tendered_fen: Option<i64>,
    change_fen: Option<i64>,
    pos_reference: Option<String>,
    pos_terminal: Option<String>,
    card_last4: Option<String>,
    cashier_name: String,
    shift_id: Option<String>,
    created_at: i64,
}

fn money(fen: Option<i64>) -> StoreResult<Option<Money>> {
    fen.map(|f| Money::from_fen(f).map_err(|e| super::corrupt("counter amount", e))).transpose()
}

pub(crate) async fn record_in(tx: &mut Tx<'_>, session_id: &SessionId) -> StoreResult<Option<CounterRecord>> {
    let r: Option<Row> =
        sql("SELECT session_id, kind, amount_fen, tendered_fen, change_fen, pos_reference, pos_terminal, card_last4, \
         cashier_name, shift_id, created_at FROM counter_payments WHERE session_id = $1")
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(CounterRecord {
        session_id: r.session_id,
        provider: r.kind,
        amount: r.amount_fen,
        tendered: money(r.tendered_fen)?,
        change: money(r.change_fen)?,
        pos_reference: r.pos_reference,
        pos_terminal: r.pos_terminal,
        card_last4: r.card_last4,
        cashier_name: r.cashier_name,
        shift_id: r.shift_id,
        recorded_at_ms: r.created_at,
    }))
}

/// See [`clinicpay::ports::CheckoutStore::record_counter_payment`].
pub(crate) async fn record_counter_payment(
    mut tx: Tx<'_>,
    s: &NewSession,
    tender: &CounterTender,
    cashier_name: &str,
    rules: &PaymentRules,
    ids: &dyn IdGen,
) -> StoreResult<Result<(SessionView, CounterRecord), CounterRefusal>> {
    if s.provider != tender.provider() || s.method != tender.method() || !s.provider.is_counter() {
        return Err(StoreError::Internal(anyhow::anyhow!("a counter session must name its tender's channel")));
    }
    let view = match create_session_in(&mut tx, s).await? {
        Err(r) => return Ok(Err(CounterRefusal::Session(r))),
        Ok(CreateOutcome::Existing(view)) => {
            // the same request again: what the first one recorded
            let rec = record_in(&mut tx, &view.id)
                .await?
                .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("counter session {} has no record", view.id)))?;
            return Ok(Ok((view, rec)));
        }
        Ok(CreateOutcome::Created(view)) => view,
    };
    let change = match tender.change_for(view.total) {
        Ok(c) => c,
        Err(e) => return Ok(Err(CounterRefusal::Tender(e))),
    };
    let p = VerifiedPayment {
        event_id: format!("counter:{}", view.id),
        notification_id: None,
        provider: s.provider,
        channel_id: s.channel_id.clone(),
        out_trade_no: view.out_trade_no.clone(),
        provider_txn_id: tender.txn_id(&view.id),
        amount: view.total,
        paid_at_ms: s.created_at_ms,
        received_at_ms: s.created_at_ms,
    };
    match apply_alone(&mut tx, &p, rules, ids).await? {
        ApplyResult::Paid { .. } => {}
        ApplyResult::TxnConflict { .. } | ApplyResult::Duplicate => return Ok(Err(CounterRefusal::SlipUsed)),
        other => {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "a counter payment for session {} came to {other:?}",
                view.id
            )))
        }
    }
    let shift: Option<String> = sql("SELECT id FROM shifts WHERE cashier_id = $1 AND status = 'open'")
        .bind(&s.created_by)
        .scalar_optional(&mut tx)
        .await?;
    let (tendered, reference, terminal, last4) = match tender {
        CounterTender::Cash { tendered } => (Some(tendered.fen()), None, None, None),
        CounterTender::Pos { reference, terminal, card_last4 } => {
            (None, Some(reference.as_str()), terminal.as_deref(), card_last4.as_deref())
        }
    };
    sql("INSERT INTO counter_payments (session_id, kind, amount_fen, tendered_fen, change_fen, pos_reference, pos_terminal, \
         card_last4, cashier_id, cashier_name, shift_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
    .bind(&view.id)
    .bind(s.provider.as_str())
    .bind(view.total)
    .bind(tendered)
    .bind(change.map(|c| c.fen()))
    .bind(reference)
    .bind(terminal)
    .bind(last4)
    .bind(&s.created_by)
    .bind(cashier_name)
    .bind(shift)
    .bind(s.created_at_ms)
    .execute(&mut tx)
    .await?;
    let view = load_session(&mut tx, "s.id = $1", view.id.as_str()).await?.ok_or(StoreError::NotFound)?;
    let rec = record_in(&mut tx, &view.id).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(Ok((view, rec)))
}

/// The rebuild of `channel_configs` that lets its provider CHECK allow the counter channels.
const SQLITE_REBUILD_CHANNELS: &str = r#"
CREATE TABLE channel_configs_v14 (
    id                 TEXT PRIMARY KEY,
    provider           TEXT NOT NULL CHECK (provider IN ('alipay', 'wechatpay', 'bank', 'cash', 'pos')),
    name               TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    is_default         BOOLEAN NOT NULL DEFAULT FALSE,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    sandbox            BOOLEAN NOT NULL DEFAULT FALSE,
    settings           TEXT NOT NULL,
    secret_ciphertext  TEXT NOT NULL,
    secret_key_version BIGINT NOT NULL,
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
INSERT INTO channel_configs_v14 SELECT id, provider, name, account_id, is_default, enabled, sandbox, settings,
    secret_ciphertext, secret_key_version, version, created_at, updated_at FROM channel_configs;
DROP TABLE channel_configs;
ALTER TABLE channel_configs_v14 RENAME TO channel_configs;
CREATE UNIQUE INDEX channel_configs_one_default ON channel_configs (provider) WHERE is_default;
CREATE UNIQUE INDEX channel_configs_account ON channel_configs (provider, account_id);
"#;

/// The rebuild of `checkout_sessions` that lets its provider CHECK allow the counter channels.
const SQLITE_REBUILD_SESSIONS: &str = r#"
CREATE TABLE checkout_sessions_v14 (
    id                   TEXT PRIMARY KEY,
    patient_id           TEXT NOT NULL REFERENCES patients (id),
    channel_id           TEXT NOT NULL REFERENCES channel_configs (id),
    provider             TEXT NOT NULL CHECK (provider IN ('alipay', 'wechatpay', 'bank', 'cash', 'pos')),
    method               TEXT NOT NULL,
    out_trade_no         TEXT NOT NULL UNIQUE,
    total_fen            BIGINT NOT NULL CHECK (total_fen > 0),
    status               TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled', 'closed', 'failed')),
    expires_at           BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    created_by           TEXT NOT NULL,
    updated_at           BIGINT NOT NULL,
    pay_kind             TEXT,
    pay_content          TEXT,
    provider_txn_id      TEXT UNIQUE,
    paid_at              BIGINT,
    paid_fen             BIGINT,
    closed_at            BIGINT,
    close_reason         TEXT,
    provider_close       TEXT NOT NULL DEFAULT 'none' CHECK (provider_close IN ('none', 'pending', 'done')),
    sync_next_at         BIGINT,
    sync_attempts        BIGINT NOT NULL DEFAULT 0,
    lease_until          BIGINT NOT NULL DEFAULT 0,
    replaced_by          TEXT,
    version              BIGINT NOT NULL DEFAULT 0,
    payer_note           TEXT,
    payer_note_at        BIGINT
);
INSERT INTO checkout_sessions_v14 SELECT id, patient_id, channel_id, provider, method, out_trade_no, total_fen, status,
    expires_at, created_at, created_by, updated_at, pay_kind, pay_content, provider_txn_id, paid_at, paid_fen, closed_at,
    close_reason, provider_close, sync_next_at, sync_attempts, lease_until, replaced_by, version, payer_note,
    payer_note_at FROM checkout_sessions;
DROP TABLE checkout_sessions;
ALTER TABLE checkout_sessions_v14 RENAME TO checkout_sessions;
CREATE INDEX checkout_sessions_pending ON checkout_sessions (status, expires_at);
CREATE INDEX checkout_sessions_sync ON checkout_sessions (status, sync_next_at);
CREATE INDEX checkout_sessions_close ON checkout_sessions (provider_close);
CREATE INDEX checkout_sessions_patient ON checkout_sessions (patient_id, created_at);
CREATE INDEX checkout_sessions_paid ON checkout_sessions (status, paid_at);
"#;

/// The two built-in counter channels (the same rows as migrations/postgres/0014).
const SQLITE_COUNTER_CHANNELS: &str = r#"
-- the two counter channels: built in, no gateway, no secrets
INSERT OR IGNORE INTO channel_configs (id, provider, name, account_id, is_default, enabled, sandbox, settings,
    secret_ciphertext, secret_key_version, version, created_at, updated_at) VALUES
    ('chn_00000000000000000000000001', 'cash', '现金 · 收费处', 'counter', TRUE, TRUE, FALSE, '{}', '', 0, 1, 0, 0),
    ('chn_00000000000000000000000002', 'pos', 'POS 刷卡 · 收费处', 'counter', TRUE, TRUE, FALSE, '{}', '', 0, 1, 0, 0);
"#;

/// SQLite only, right after the migrations: widens the provider CHECKs of `channel_configs`
/// and `checkout_sessions` to the counter channels by rebuilding each table that does not allow
/// them yet (SQLite cannot alter a CHECK; a rebuild needs foreign keys off, which only works
/// outside a transaction, and sqlx runs SQLite migrations inside one — see
/// migrations/sqlite/0014_counter_payments.sql), then adds the two built-in counter channels.
/// Each rebuild is one transaction on one connection, checked by `foreign_key_check` before it
/// commits; run again, it finds the tables widened and does nothing.
pub(crate) async fn widen_sqlite_provider_checks(pool: &sqlx::SqlitePool) -> anyhow::Result<()> {
    use anyhow::Context;
    use sqlx::Connection;
    let mut conn = pool.acquire().await?;
    for (table, rebuild) in
        [("channel_configs", SQLITE_REBUILD_CHANNELS), ("checkout_sessions", SQLITE_REBUILD_SESSIONS)]
    {
        let ddl: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(table)
            .fetch_one(&mut *conn)
            .await
            .with_context(|| format!("reading the schema of {table}"))?;
        if ddl.contains("'cash'") {
            continue;
        }
        sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
        let done = async {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(rebuild).execute(&mut *tx).await?;
            let dangling = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *tx).await?;
            if !dangling.is_empty() {
                anyhow::bail!("rebuilding {table} would leave {} rows pointing at nothing", dangling.len());
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
        done.with_context(|| format!("rebuilding {table} for the counter channels"))?;
        tracing::info!(table, "provider CHECK widened to the counter channels");
    }
    sqlx::raw_sql(SQLITE_COUNTER_CHANNELS).execute(&mut *conn).await.context("adding the counter channels")?;
    Ok(())
}
