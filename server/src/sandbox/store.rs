//! The sandboxes' own memory: one SQLite file (`<data_dir>/sandbox.db`; in memory when the
//! sandboxes run without a data directory, as in unit tests). A restart forgets nothing a real
//! provider would remember — trades, refunds, registrations, notifications still being
//! delivered, the counters behind provider transaction ids — and the server's memory stays flat
//! however many trades there were.
//!
//! Trades are stored as each sandbox's own JSON, with the few columns the sandboxes look them
//! up by (order number, payer-page token, provider transaction id, when money moved). This is
//! a development tool's storage: durable across a process crash (WAL, `synchronous=NORMAL`),
//! not engineered like the product's books.

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS trades (
    sandbox         TEXT NOT NULL,
    account         TEXT NOT NULL,
    out_trade_no    TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    token           TEXT NOT NULL,
    provider_txn_id TEXT,
    money_from_ms   INTEGER,
    money_to_ms     INTEGER,
    wake_ms         INTEGER,
    data            TEXT NOT NULL,
    PRIMARY KEY (sandbox, account, out_trade_no)
);
CREATE INDEX IF NOT EXISTS trades_token ON trades (sandbox, token);
CREATE INDEX IF NOT EXISTS trades_txn ON trades (sandbox, provider_txn_id);
CREATE INDEX IF NOT EXISTS trades_latest ON trades (sandbox, out_trade_no, seq);
CREATE INDEX IF NOT EXISTS trades_seq ON trades (seq);
CREATE INDEX IF NOT EXISTS trades_money ON trades (sandbox, account, money_to_ms);
CREATE INDEX IF NOT EXISTS trades_wake ON trades (sandbox, wake_ms);
CREATE TABLE IF NOT EXISTS refund_numbers (
    sandbox       TEXT NOT NULL,
    account       TEXT NOT NULL,
    out_refund_no TEXT NOT NULL,
    out_trade_no  TEXT NOT NULL,
    PRIMARY KEY (sandbox, account, out_refund_no)
);
CREATE TABLE IF NOT EXISTS registrations (
    sandbox TEXT NOT NULL,
    account TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (sandbox, account)
);
CREATE TABLE IF NOT EXISTS settings (
    sandbox    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (sandbox, key)
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    sandbox TEXT NOT NULL,
    account TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (sandbox, account, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_seen ON nonces (seen_ms);
CREATE TABLE IF NOT EXISTS deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox      TEXT NOT NULL,
    label        TEXT NOT NULL,
    out_trade_no TEXT NOT NULL,
    url          TEXT NOT NULL,
    body         BLOB NOT NULL,
    signing      TEXT NOT NULL,
    copy         INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    step         INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL CHECK (state IN ('due', 'held', 'sending', 'acknowledged', 'dropped', 'gave_up')),
    due_ms       INTEGER NOT NULL,
    last_status  INTEGER,
    created_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, due_ms);
CREATE INDEX IF NOT EXISTS deliveries_trade ON deliveries (sandbox, out_trade_no);
"#;

/// The columns a stored trade is found by.
#[derive(Debug, Clone)]
pub struct TradeIndex<'a> {
    pub account: &'a str,
    pub out_trade_no: &'a str,
    /// The payer page's token.
    pub token: &'a str,
    pub provider_txn_id: Option<&'a str>,
    /// When money first and last moved (payment, refunds): statements pick trades by it.
    pub money_from_ms: Option<i64>,
    pub money_to_ms: Option<i64>,
    /// When the sandbox must act on the trade by itself (an expiry, a refund completing).
    pub wake_ms: Option<i64>,
}

/// A sandbox's trade, as it is stored.
pub trait StoredTrade: Serialize + DeserializeOwned + Send + Sync {
    fn index(&self) -> TradeIndex<'_>;
}

pub struct SandboxStore {
    pool: SqlitePool,
}

fn decode<T: DeserializeOwned>(what: &str, text: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).with_context(|| format!("the sandbox's stored {what} does not read back"))
}

impl SandboxStore {
    /// Opens (creating it if needed) the file, or an in-memory database for `None`.
    pub async fn open(path: Option<&Path>) -> anyhow::Result<SandboxStore> {
        let (co, max) = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let co = SqliteConnectOptions::new()
                    .filename(p)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(std::time::Duration::from_secs(10));
                (co, 4)
            }
            // one connection: every connection to `:memory:` would be a database of its own
            None => (SqliteConnectOptions::from_str("sqlite::memory:")?, 1),
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(co)
            .await
            .context("opening the sandbox database")?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.context("creating the sandbox tables")?;
        Ok(SandboxStore { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    // --- trades ---------------------------------------------------------------------------

    async fn one<T: DeserializeOwned>(&self, sql: &str, binds: &[&str]) -> anyhow::Result<Option<T>> {
        let mut q = sqlx::query_scalar::<_, String>(sql);
        for b in binds {
            q = q.bind(*b);
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.map(|t| decode("trade", &t)).transpose()
    }

    pub async fn trade<T: StoredTrade>(
        &self,
        sandbox: &str,
        account: &str,
        out_trade_no: &str,
    ) -> anyhow::Result<Option<T>> {
        self.one(
            "SELECT data FROM trades WHERE sandbox = ? AND account = ? AND out_trade_no = ?",
            &[sandbox, account, out_trade_no],
        )
        .await
    }

    /// The most recent trade with this order number (of any account): the control API's view.
    pub async fn latest_trade<T: StoredTrade>(&self, sandbox: &str, out_trade_no: &str) -> anyhow::Result<Option<T>> {
        self.one(
            "SELECT data FROM trades WHERE sandbox = ? AND out_trade_no = ? ORDER BY seq DESC LIMIT 1",
            &[sandbox, out_trade_no],
        )
        .await
    }

    pub async fn trade_by_token<T: StoredTrade>(&self, sandbox: &str, token: &str) -> anyhow::Result<Option<T>> {
        self.one("SELECT data FROM trades WHERE sandbox = ? AND token = ? ORDER BY seq DESC LIMIT 1", &[sandbox, token])
            .await
    }

    pub async fn trade_by_txn<T: StoredTrade>(&self, sandbox: &str, txn: &str) -> anyhow::Result<Option<T>> {
        self.one("SELECT data FROM trades WHERE sandbox = ? AND provider_txn_id = ? LIMIT 1", &[sandbox, txn]).await
    }

    /// Inserts or replaces a trade.
    pub async fn save_trade<T: StoredTrade>(&self, sandbox: &str, t: &T) -> anyhow::Result<()> {
        let i = t.index();
        let data = serde_json::to_string(t)?;
        sqlx::query(
            "INSERT INTO trades (sandbox, account, out_trade_no, seq, token, provider_txn_id, money_from_ms, money_to_ms, \
             wake_ms, data) VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM trades), ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (sandbox, account, out_trade_no) DO UPDATE SET token = ?4, provider_txn_id = ?5, \
             money_from_ms = ?6, money_to_ms = ?7, wake_ms = ?8, data = ?9",
        )
        .bind(sandbox)
        .bind(i.account)
        .bind(i.out_trade_no)
        .bind(i.token)
        .bind(i.provider_txn_id)
        .bind(i.money_from_ms)
        .bind(i.money_to_ms)
        .bind(i.wake_ms)
        .bind(data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An account's trades whose money moved between two instants (statements, bills).
    pub async fn trades_with_money<T: StoredTrade>(
        &self,
        sandbox: &str,
        account: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> anyhow::Result<Vec<T>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT data FROM trades WHERE sandbox = ? AND account = ? AND money_to_ms >= ? AND money_from_ms < ? ORDER BY seq",
        )
        .bind(sandbox)
        .bind(account)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|t| decode("trade", t)).collect()
    }

    /// Trades the sandbox must act on by now.
    pub async fn due_trades<T: StoredTrade>(&self, sandbox: &str, now_ms: i64, limit: i64) -> anyhow::Result<Vec<T>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT data FROM trades WHERE sandbox = ? AND wake_ms <= ? ORDER BY wake_ms LIMIT ?")
                .bind(sandbox)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|t| decode("trade", t)).collect()
    }

    /// When the next trade of a sandbox needs it.
    pub async fn next_wake(&self, sandbox: &str) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(wake_ms) FROM trades WHERE sandbox = ?")
            .bind(sandbox)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn count_trades(&self, sandbox: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM trades WHERE sandbox = ?")
            .bind(sandbox)
            .fetch_one(&self.pool)
            .await?)
    }

    // --- refund numbers ---------------------------------------------------------------------

    /// The order a refund number was used for.
    pub async fn refund_order(
        &self,
        sandbox: &str,
        account: &str,
        out_refund_no: &str,
    ) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT out_trade_no FROM refund_numbers WHERE sandbox = ? AND account = ? AND out_refund_no = ?",
        )
        .bind(sandbox)
        .bind(account)
        .bind(out_refund_no)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn index_refund(
        &self,
        sandbox: &str,
        account: &str,
        out_refund_no: &str,
        out_trade_no: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO refund_numbers (sandbox, account, out_refund_no, out_trade_no) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(sandbox)
        .bind(account)
        .bind(out_refund_no)
        .bind(out_trade_no)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- registrations ----------------------------------------------------------------------

    pub async fn register<T: Serialize>(&self, sandbox: &str, account: &str, value: &T) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO registrations (sandbox, account, data) VALUES (?1, ?2, ?3) \
             ON CONFLICT (sandbox, account) DO UPDATE SET data = ?3",
        )
        .bind(sandbox)
        .bind(account)
        .bind(serde_json::to_string(value)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn registration<T: DeserializeOwned>(&self, sandbox: &str, account: &str) -> anyhow::Result<Option<T>> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT data FROM registrations WHERE sandbox = ? AND account = ?")
                .bind(sandbox)
                .bind(account)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|t| decode("registration", &t)).transpose()
    }

    // --- settings (faults, bill links) ------------------------------------------------------

    pub async fn setting<T: DeserializeOwned>(
        &self,
        sandbox: &str,
        key: &str,
        now_ms: i64,
    ) -> anyhow::Result<Option<T>> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT value FROM settings WHERE sandbox = ? AND key = ? AND (expires_ms IS NULL OR expires_ms > ?)",
        )
        .bind(sandbox)
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|t| decode("setting", &t)).transpose()
    }

    pub async fn set_setting<T: Serialize>(
        &self,
        sandbox: &str,
        key: &str,
        value: &T,
        expires_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        // expired entries are swept on the way
        if let Some(now) = expires_ms {
            sqlx::query("DELETE FROM settings WHERE expires_ms IS NOT NULL AND expires_ms < ?")
                .bind(now - 3_600_000)
                .execute(&self.pool)
                .await?;
        }
        sqlx::query(
            "INSERT INTO settings (sandbox, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (sandbox, key) DO UPDATE SET value = ?3, expires_ms = ?4",
        )
        .bind(sandbox)
        .bind(key)
        .bind(serde_json::to_string(value)?)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reads and removes a setting.
    pub async fn take_setting<T: DeserializeOwned>(&self, sandbox: &str, key: &str) -> anyhow::Result<Option<T>> {
        let row: Option<String> =
            sqlx::query_scalar("DELETE FROM settings WHERE sandbox = ? AND key = ? RETURNING value")
                .bind(sandbox)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|t| decode("setting", &t)).transpose()
    }

    // --- counters and nonces ----------------------------------------------------------------

    /// The next value of a counter that survives restarts (provider transaction ids).
    pub async fn next(&self, counter: &str) -> anyhow::Result<u64> {
        let v: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, value) VALUES (?1, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 \
             RETURNING value",
        )
        .bind(counter)
        .fetch_one(&self.pool)
        .await?;
        Ok(v as u64)
    }

    /// Remembers a request nonce; false when it was seen within `memory_ms` (a replay).
    pub async fn fresh_nonce(
        &self,
        sandbox: &str,
        account: &str,
        nonce: &str,
        now_ms: i64,
        memory_ms: i64,
    ) -> anyhow::Result<bool> {
        sqlx::query("DELETE FROM nonces WHERE seen_ms < ?").bind(now_ms - memory_ms).execute(&self.pool).await?;
        let n = sqlx::query(
            "INSERT INTO nonces (sandbox, account, nonce, seen_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(sandbox)
        .bind(account)
        .bind(nonce)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct T {
        account: String,
        no: String,
        token: String,
        paid: Option<i64>,
    }

    impl StoredTrade for T {
        fn index(&self) -> TradeIndex<'_> {
            TradeIndex {
                account: &self.account,
                out_trade_no: &self.no,
                token: &self.token,
                provider_txn_id: None,
                money_from_ms: self.paid,
                money_to_ms: self.paid,
                wake_ms: None,
            }
        }
    }

    #[tokio::test]
    async fn trades_settings_counters_and_nonces_persist() {
        let dir = std::env::temp_dir().join(format!("cp-sandbox-store-{}", crate::crypto::random_alnum(8)));
        let path = dir.join("sandbox.db");
        {
            let s = SandboxStore::open(Some(&path)).await.unwrap();
            let t = T { account: "a".into(), no: "N1".into(), token: "tok".into(), paid: Some(5) };
            s.save_trade("x", &t).await.unwrap();
            s.save_trade("x", &T { account: "b".into(), no: "N1".into(), token: "tok2".into(), paid: None })
                .await
                .unwrap();
            assert_eq!(s.next("txn").await.unwrap(), 1);
            assert_eq!(s.next("txn").await.unwrap(), 2);
            assert!(s.fresh_nonce("x", "a", "n", 100, 1_000).await.unwrap());
            assert!(!s.fresh_nonce("x", "a", "n", 200, 1_000).await.unwrap(), "a replay");
            s.set_setting("x", "faults", &42, None).await.unwrap();
        }
        // a restart remembers everything
        let s = SandboxStore::open(Some(&path)).await.unwrap();
        let a: T = s.trade("x", "a", "N1").await.unwrap().unwrap();
        assert_eq!(a.token, "tok");
        let latest: T = s.latest_trade("x", "N1").await.unwrap().unwrap();
        assert_eq!(latest.account, "b", "the most recent trade of that number");
        let by_token: T = s.trade_by_token("x", "tok").await.unwrap().unwrap();
        assert_eq!(by_token, a);
        assert_eq!(s.trades_with_money::<T>("x", "a", 0, 10).await.unwrap().len(), 1);
        assert!(s.trades_with_money::<T>("x", "a", 6, 10).await.unwrap().is_empty());
        assert_eq!(s.next("txn").await.unwrap(), 3, "counters continue after a restart");
        assert!(!s.fresh_nonce("x", "a", "n", 300, 1_000).await.unwrap());
        assert_eq!(s.setting::<i64>("x", "faults", 0).await.unwrap(), Some(42));
        assert_eq!(s.take_setting::<i64>("x", "faults").await.unwrap(), Some(42));
        assert_eq!(s.setting::<i64>("x", "faults", 0).await.unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
