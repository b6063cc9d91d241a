//! Storage: the ports of `clinicpay::ports`, implemented once over SQLite and PostgreSQL.
//!
//! [`SqlStore`] holds a [`sql::Db`] (the pool of whichever backend the URL names). Its SQL is
//! written once, with `$N` placeholders, BIGINT fen and BIGINT Unix milliseconds, and every SUM
//! cast to BIGINT (PostgreSQL would return NUMERIC). Each module holds one aggregate's storage:
//!
//! | module | what it stores |
//! |---|---|
//! | `auth` | staff users, login sessions, login throttling, API tokens |
//! | `audit` | the hash-chained audit log |
//! | `billing` | departments, patients, bills and items; bill and patient queries; the dashboard |
//! | `channels` | payment channel configurations (secrets sealed) |
//! | `notifications` | raw provider notifications and provider events |
//! | `sessions` | checkout sessions and the payables they hold |
//! | `apply` | applying verified payments: read the snapshot, ask the rules, write the booking |
//! | `ledger` | journal entries and postings |
//! | `exceptions` | payment exceptions and people's decisions |
//! | `refunds` | refunds queued at providers and their progress |
//! | `bill_refunds` | refunds of paid bills: requests, approvals, booking what went back |
//! | `outbox` | events for later consumers |
//! | `leases` | claiming background work under leases (one helper), session expiry/close/sync |
//! | `reports` | the auditor's ledger report |
//!
//! The contract tests in `server/tests/integration/store_contract.rs` run the same scenarios
//! against both backends; `schema parity` compares the two migration sets.

mod apply;
mod audit;
mod auth;
mod bill_refunds;
mod billing;
mod books;
mod channels;
mod counter;
mod exceptions;
mod intake;
mod leases;
mod ledger;
mod notifications;
mod outbox;
mod receipts;
mod refunds;
mod reports;
mod sessions;
mod shifts;
pub mod sql;
mod webhooks;

use anyhow::Context;
use async_trait::async_trait;
use clinicpay::ports::{AuditInput, PoolStats, Store, StoreResult};
use sha2::{Digest, Sha256};
pub use sql::map_err;
use sql::{sql, Db};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL (use sqlite:… or postgres://…)")
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    /// Run migrations on connect.
    pub migrate: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions { max_connections: 16, migrate: true }
    }
}

/// The store over either backend.
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    /// Connects to the database a URL names, migrating it first when asked.
    ///
    /// SQLite: one file, WAL with `synchronous=FULL`, so a commit a provider is told about
    /// survives a power cut. PostgreSQL: `synchronous_commit=on`, UTC.
    pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<SqlStore> {
        let max = opts.max_connections.max(2);
        let db = match Backend::of_url(url)? {
            Backend::Sqlite => {
                let co = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(15))
                    .pragma("cache_size", "-16000");
                if let Some(dir) = co.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)?;
                    }
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(1)
                    .connect_with(co)
                    .await
                    .context("opening SQLite")?;
                if opts.migrate {
                    sqlx::migrate!("../migrations/sqlite").run(&pool).await.context("migrating SQLite")?;
                    counter::widen_sqlite_provider_checks(&pool).await?;
                }
                Db::sqlite(pool, max)
            }
            Backend::Postgres => {
                let co = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on"), ("TimeZone", "UTC")]);
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_with(co)
                    .await
                    .context("connecting to PostgreSQL")?;
                if opts.migrate {
                    sqlx::migrate!("../migrations/postgres").run(&pool).await.context("migrating PostgreSQL")?;
                }
                Db::postgres(pool, max)
            }
        };
        if opts.migrate {
            use clinicpay::ports::Clock;
            ledger::upgrade_to_accrual(&db, &crate::runtime::RandomIds, crate::runtime::SystemClock.now_ms())
                .await
                .map_err(|e| anyhow::anyhow!("booking opening entries: {e}"))?;
        }
        Ok(SqlStore { db })
    }

    /// The pool, for raw access (tests, LISTEN/NOTIFY).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.db.dialect().name()
    }

    async fn ping(&self) -> StoreResult<()> {
        sql("SELECT 1").execute(&self.db).await?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        self.db.stats()
    }
}

/// A connected store; with PostgreSQL also its pool (for LISTEN/NOTIFY).
pub struct Connected {
    pub store: Arc<dyn Store>,
    pub pg: Option<sqlx::PgPool>,
}

/// Connects to the database a URL names, migrating it first when asked.
pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Connected> {
    let s = SqlStore::connect(url, opts).await?;
    let pg = s.db.pg_pool().cloned();
    Ok(Connected { store: Arc::new(s), pg })
}

/// The audit chain: each line's hash covers the previous hash and every field of the line.
pub fn audit_hash(prev_hash: &str, seq: i64, a: &AuditInput) -> String {
    audit_hash_parts(
        prev_hash,
        seq,
        [
            a.id.as_str(),
            &a.at_ms.to_string(),
            a.actor_id.as_deref().unwrap_or(""),
            &a.actor_name,
            &a.action,
            &a.target_type,
            &a.target_id,
            &a.detail,
            &a.ip,
        ],
    )
}

/// The same over a stored line's fields as text (a tampered line need not even parse).
pub(crate) fn audit_hash_parts(prev_hash: &str, seq: i64, fields: [&str; 9]) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for part in [prev_hash, seq.as_str()].into_iter().chain(fields) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `%` and `_` are wildcards in LIKE; searches treat them literally.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A stored value that does not parse: the database holds something we never write.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> clinicpay::ports::StoreError {
    clinicpay::ports::StoreError::Internal(anyhow::anyhow!("stored {what}: {e}"))
}
