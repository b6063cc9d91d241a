//! SQLite: the embedded default. One file under `./data`, WAL mode with `synchronous=FULL` so a
//! commit a provider is told about survives a power cut. Writers are serialised in-process (a
//! tokio mutex around `BEGIN IMMEDIATE`) instead of spinning on SQLite's busy handler.

use super::DbOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

type Db = sqlx::Sqlite;
type ThisStore = SqliteStore;
const BACKEND: &str = "sqlite";
/// SQLite has no row locks; the write transaction already holds the database's write lock.
const FOR_UPDATE: &str = "";
/// Claiming work: row locks that other workers skip (PostgreSQL); SQLite's single writer needs none.
const SKIP_LOCKED: &str = "";

pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    max_connections: u32,
}

impl SqliteStore {
    pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Self> {
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
            .max_connections(opts.max_connections.max(2))
            .min_connections(1)
            .connect_with(co)
            .await?;
        if opts.migrate {
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        }
        Ok(SqliteStore {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            max_connections: opts.max_connections.max(2),
        })
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let guard = self.write_lock.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _guard: Some(guard) })
    }
}

include!("shared.rs");
include!("checkout_sql.rs");
