//! PostgreSQL: for several app instances on one database. Commits are durable
//! (`synchronous_commit=on`); state changes are compare-and-set updates under row locks, and
//! work queues are claimed with `FOR UPDATE SKIP LOCKED`.

use super::DbOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

type Db = sqlx::Postgres;
type ThisStore = PgStore;
const BACKEND: &str = "postgres";
const FOR_UPDATE: &str = " FOR UPDATE";
/// Claiming work: row locks that other workers skip (PostgreSQL); SQLite's single writer needs none.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

pub struct PgStore {
    pool: sqlx::PgPool,
    max_connections: u32,
}

impl PgStore {
    pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Self> {
        let co = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on"), ("TimeZone", "UTC")]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(co)
            .await?;
        if opts.migrate {
            sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        }
        Ok(PgStore { pool, max_connections: opts.max_connections.max(2) })
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        Ok(WriteTx { tx: self.pool.begin().await?, _guard: None })
    }
}

include!("shared.rs");
include!("checkout_sql.rs");
