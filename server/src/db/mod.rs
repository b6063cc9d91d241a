//! Storage: one `Store` trait (in the domain crate's ports), two implementations.
//!
//! `SqliteStore` and `PgStore` are distinct types over their own sqlx drivers, so each gets the
//! full type checking of its driver. Their SQL is written once, in `shared.rs`, which both
//! modules `include!` after defining the names it uses (`Db`, `ThisStore`, `FOR_UPDATE`, …):
//! SQL text with `$N` placeholders runs on both, and the few dialect differences are constants
//! or methods of each backend module. The contract tests in `server/tests/store_contract.rs`
//! run the same scenarios against both.

pub mod postgres;
pub mod sqlite;

use anyhow::Context;
use clinicpay::ports::{AuditInput, Store, StoreError};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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

/// A connected store; with PostgreSQL also its pool (for LISTEN/NOTIFY).
pub struct Connected {
    pub store: Arc<dyn Store>,
    pub pg: Option<sqlx::PgPool>,
}

/// Connects to the database a URL names, migrating it first when asked.
pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Connected> {
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => Connected {
            store: Arc::new(sqlite::SqliteStore::connect(url, opts).await.context("opening SQLite")?),
            pg: None,
        },
        Backend::Postgres => {
            let s = postgres::PgStore::connect(url, opts).await.context("connecting to PostgreSQL")?;
            let pool = s.pool().clone();
            Connected { store: Arc::new(s), pg: Some(pool) }
        }
    })
}

/// Maps driver errors by kind (SQLite does not report constraint names).
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
        _ => StoreError::Internal(anyhow::Error::new(e)),
    }
}

/// The audit chain: each line's hash covers the previous hash and every field of the line.
pub fn audit_hash(prev_hash: &str, seq: i64, a: &AuditInput) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &seq.to_string(),
        &a.id,
        &a.at_ms.to_string(),
        a.actor_id.as_deref().unwrap_or(""),
        &a.actor_name,
        &a.action,
        &a.target_type,
        &a.target_id,
        &a.detail,
        &a.ip,
    ] {
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
