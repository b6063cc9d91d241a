//! One SQL text for both backends.
//!
//! The store's SQL is written once, with `$N` placeholders, BIGINT fen and BIGINT Unix
//! milliseconds, and runs on SQLite and on PostgreSQL. [`Sql`] carries the text and its arguments
//! (typed, so PostgreSQL gets a NULL of the right type); running it dispatches to sqlx's own
//! typed driver for the connected backend, so both keep their full type checking and prepared
//! statement caches. Rows map into `#[derive(sqlx::FromRow)]` types that decode on both
//! ([`Row`]). The few dialect differences are methods of [`Dialect`].
//!
//! [`Db`] is the pool; [`Db::write`] opens a write transaction ([`Tx`]): on SQLite it holds the
//! in-process writer lock around `BEGIN IMMEDIATE` (writers queue in Rust instead of spinning in
//! SQLite's busy handler); on PostgreSQL it is a plain transaction whose rows are locked with
//! [`Dialect::for_update`]. [`Tx::savepoint`] nests one.

use clinicpay::ports::{PoolStats, StoreError, StoreResult};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Acquire, Postgres, Sqlite, Transaction};
use std::sync::Arc;

/// Maps driver errors by kind (SQLite does not report constraint names).
pub fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
        // raised by the journal_day_locked trigger (migration 0011)
        sqlx::Error::Database(db) if db.message().contains("the day is closed") => StoreError::DayClosed,
        _ => StoreError::Internal(anyhow::Error::new(e)),
    }
}

/// What differs between the two SQL dialects we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Locks the rows a `SELECT` reads until the transaction ends. SQLite has no row locks: its
    /// write transaction already holds the database's write lock.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Claims rows other workers skip (PostgreSQL); SQLite's single writer needs none.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

enum Pool {
    Sqlite { pool: SqlitePool, writer: Arc<tokio::sync::Mutex<()>> },
    Postgres(PgPool),
}

/// The connection pool of the connected backend.
pub struct Db {
    pool: Pool,
    max_connections: u32,
}

impl Db {
    pub fn sqlite(pool: SqlitePool, max_connections: u32) -> Db {
        Db { pool: Pool::Sqlite { pool, writer: Arc::new(tokio::sync::Mutex::new(())) }, max_connections }
    }

    pub fn postgres(pool: PgPool, max_connections: u32) -> Db {
        Db { pool: Pool::Postgres(pool), max_connections }
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite { .. } => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The PostgreSQL pool (LISTEN/NOTIFY, tests).
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite { .. } => None,
        }
    }

    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite { pool, .. } => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    pub fn stats(&self) -> PoolStats {
        let (size, idle) = match &self.pool {
            Pool::Sqlite { pool, .. } => (pool.size(), pool.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        };
        PoolStats { size, idle: idle as u32, max: self.max_connections }
    }

    /// Opens a read transaction: one consistent snapshot for several statements. Never
    /// committed (nothing to keep); dropping it ends it.
    pub async fn read(&self) -> StoreResult<Tx<'static>> {
        match &self.pool {
            Pool::Sqlite { pool, .. } => {
                Ok(Tx { inner: TxInner::Sqlite(pool.begin().await.map_err(map_err)?), _guard: None })
            }
            Pool::Postgres(p) => Ok(Tx { inner: TxInner::Postgres(p.begin().await.map_err(map_err)?), _guard: None }),
        }
    }

    /// Opens a write transaction.
    pub async fn write(&self) -> StoreResult<Tx<'static>> {
        match &self.pool {
            Pool::Sqlite { pool, writer } => {
                let guard = writer.clone().lock_owned().await;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
                Ok(Tx { inner: TxInner::Sqlite(tx), _guard: Some(guard) })
            }
            Pool::Postgres(p) => Ok(Tx { inner: TxInner::Postgres(p.begin().await.map_err(map_err)?), _guard: None }),
        }
    }
}

enum TxInner<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

/// A transaction (or a savepoint inside one).
pub struct Tx<'c> {
    inner: TxInner<'c>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<'c> Tx<'c> {
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A savepoint: committing it keeps its work in the outer transaction; dropping or rolling
    /// it back undoes only its own.
    pub async fn savepoint(&mut self) -> StoreResult<Tx<'_>> {
        let inner = match &mut self.inner {
            TxInner::Sqlite(t) => TxInner::Sqlite(t.begin().await.map_err(map_err)?),
            TxInner::Postgres(t) => TxInner::Postgres(t.begin().await.map_err(map_err)?),
        };
        Ok(Tx { inner, _guard: None })
    }

    pub async fn commit(self) -> StoreResult<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await,
            TxInner::Postgres(t) => t.commit().await,
        }
        .map_err(map_err)
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.rollback().await,
            TxInner::Postgres(t) => t.rollback().await,
        }
        .map_err(map_err)
    }
}

/// Where a statement runs: the pool (reads) or a transaction.
pub enum Exec<'a> {
    SqlitePool(&'a SqlitePool),
    PgPool(&'a PgPool),
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl<'a> From<&'a Db> for Exec<'a> {
    fn from(db: &'a Db) -> Self {
        match &db.pool {
            Pool::Sqlite { pool, .. } => Exec::SqlitePool(pool),
            Pool::Postgres(p) => Exec::PgPool(p),
        }
    }
}

impl<'a, 'c> From<&'a mut Tx<'c>> for Exec<'a> {
    fn from(tx: &'a mut Tx<'c>) -> Self {
        match &mut tx.inner {
            TxInner::Sqlite(t) => Exec::Sqlite(&mut *t),
            TxInner::Postgres(t) => Exec::Postgres(&mut *t),
        }
    }
}

/// A statement argument, typed (PostgreSQL types its parameters, NULLs included).
#[derive(Debug, Clone)]
pub enum Arg {
    I64(Option<i64>),
    I32(Option<i32>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// What can be bound as an argument.
pub trait IntoArg {
    fn into_arg(self) -> Arg;
}

macro_rules! into_arg {
    ($variant:ident: $($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(
            impl IntoArg for $t {
                fn into_arg(self) -> Arg {
                    let $v = self;
                    Arg::$variant(Some($e))
                }
            }
            impl IntoArg for Option<$t> {
                fn into_arg(self) -> Arg {
                    Arg::$variant(self.map(|$v| $e))
                }
            }
        )*
    };
}

into_arg!(I64: i64 => |v| v, &i64 => |v| *v, usize => |v| v as i64);
into_arg!(I32: i32 => |v| v);
into_arg!(Bool: bool => |v| v, &bool => |v| *v);
into_arg!(Text: String => |v| v, &String => |v| v.clone(), &str => |v| v.to_string());
into_arg!(Bytes: Vec<u8> => |v| v, &Vec<u8> => |v| v.clone(), &[u8] => |v| v.to_vec());
into_arg!(I64: clinicpay::Money => |v| v.fen(), &clinicpay::Money => |v| v.fen());

/// Typed ids and domain words are stored as their text.
macro_rules! text_arg {
    ($($t:ty),* $(,)?) => {
        $(
            into_arg!(Text: $t => |v| v.as_str().to_string(), &$t => |v| v.as_str().to_string());
        )*
    };
}

use clinicpay::ids::*;
text_arg!(
    UserId,
    DepartmentId,
    PatientId,
    BillId,
    SessionId,
    PaymentId,
    RefundId,
    JournalEntryId,
    NotificationId,
    ExceptionId,
    ChannelId,
    AuditId,
    ApiTokenId,
    OutboxId,
    WebhookEndpointId,
    DeliveryId,
    OutTradeNo,
);

/// Domain enums with an `as_str` that is their stored word.
macro_rules! word_arg {
    ($($t:ty),* $(,)?) => {
        $(
            into_arg!(Text: $t => |v| v.as_str().to_string(), &$t => |v| v.as_str().to_string());
        )*
    };
}

word_arg!(
    clinicpay::payments::Provider,
    clinicpay::payments::PayMethod,
    clinicpay::payments::SessionStatus,
    clinicpay::payments::NotificationStatus,
    clinicpay::billing::BillStatus,
    clinicpay::billing::ItemCategory,
    clinicpay::auth::Role,
    clinicpay::checkout::ExceptionKind,
    clinicpay::checkout::ExceptionStatus,
    clinicpay::checkout::ProviderRefundStatus,
    clinicpay::checkout::payable::PayableKind,
    clinicpay::ledger::EntryKind,
    clinicpay::webhooks::EventTopic,
    clinicpay::webhooks::DeliveryStatus,
);

impl IntoArg for clinicpay::ledger::Account {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.code().to_string()))
    }
}

impl IntoArg for &clinicpay::checkout::payable::PayableId {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.as_str().to_string()))
    }
}

impl IntoArg for Arg {
    fn into_arg(self) -> Arg {
        self
    }
}

/// A row type both backends decode (`#[derive(sqlx::FromRow)]`, or a tuple).
pub trait Row: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {}

/// A single value both backends decode.
pub trait Scalar:
    sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Postgres>
    + for<'r> sqlx::Decode<'r, Postgres>
    + Send
    + Unpin
{
}
impl<T> Scalar for T where
    T: sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Postgres>
        + for<'r> sqlx::Decode<'r, Postgres>
        + Send
        + Unpin
{
}

/// A statement and its arguments.
#[derive(Debug, Clone)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
    persistent: bool,
}

/// A statement (prepared once and cached per connection).
pub fn sql(text: impl Into<String>) -> Sql {
    Sql { text: text.into(), args: Vec::new(), persistent: true }
}

macro_rules! with_query {
    ($self:ident, $ex:ident, |$q:ident, $c:ident| $body:expr) => {{
        let persistent = $self.persistent;
        match $ex {
            Exec::SqlitePool(pool) => {
                let $q = bind_sqlite(sqlx::query::<Sqlite>(&$self.text).persistent(persistent), &$self.args);
                let $c = pool;
                async move { $body }.await
            }
            Exec::Sqlite(conn) => {
                let $q = bind_sqlite(sqlx::query::<Sqlite>(&$self.text).persistent(persistent), &$self.args);
                let $c = conn;
                async move { $body }.await
            }
            Exec::PgPool(pool) => {
                let $q = bind_pg(sqlx::query::<Postgres>(&$self.text).persistent(persistent), &$self.args);
                let $c = pool;
                async move { $body }.await
            }
            Exec::Postgres(conn) => {
                let $q = bind_pg(sqlx::query::<Postgres>(&$self.text).persistent(persistent), &$self.args);
                let $c = conn;
                async move { $body }.await
            }
        }
    }};
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn bind_sqlite<'q>(mut q: SqliteQuery<'q>, args: &'q [Arg]) -> SqliteQuery<'q> {
    for a in args {
        q = match a {
            Arg::I64(v) => q.bind(*v),
            Arg::I32(v) => q.bind(*v),
            Arg::Bool(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
            Arg::Bytes(v) => q.bind(v.as_deref()),
        };
    }
    q
}

fn bind_pg<'q>(mut q: PgQuery<'q>, args: &'q [Arg]) -> PgQuery<'q> {
    for a in args {
        q = match a {
            Arg::I64(v) => q.bind(*v),
            Arg::I32(v) => q.bind(*v),
            Arg::Bool(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
            Arg::Bytes(v) => q.bind(v.as_deref()),
        };
    }
    q
}

impl Sql {
    /// Binds the next `$N`.
    pub fn bind(mut self, v: impl IntoArg) -> Sql {
        self.args.push(v.into_arg());
        self
    }

    /// Adds an argument and returns its placeholder (`$N`), for statements built piece by piece.
    pub fn arg(&mut self, v: impl IntoArg) -> String {
        self.args.push(v.into_arg());
        format!("${}", self.args.len())
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// `(…), (…)`: one parenthesised tuple of placeholders per row, binding each row's values.
    pub fn push_rows<I, R>(&mut self, rows: I) -> &mut Sql
    where
        I: IntoIterator<Item = R>,
        R: IntoIterator<Item = Arg>,
    {
        let mut first = true;
        for row in rows {
            self.text.push_str(if first { "(" } else { ", (" });
            first = false;
            let mut col = true;
            for v in row {
                if !col {
                    self.text.push_str(", ");
                }
                col = false;
                let p = self.arg(v);
                self.text.push_str(&p);
            }
            self.text.push(')');
        }
        self
    }

    /// `$a, $b, …` for an `IN (…)` list.
    pub fn push_list<I, V>(&mut self, values: I) -> &mut Sql
    where
        I: IntoIterator<Item = V>,
        V: IntoArg,
    {
        let mut first = true;
        for v in values {
            if !first {
                self.text.push_str(", ");
            }
            first = false;
            let p = self.arg(v);
            self.text.push_str(&p);
        }
        self
    }

    /// Not prepared-and-cached: for statements whose text varies (batches of any size).
    pub fn once(mut self) -> Sql {
        self.persistent = false;
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Runs it; returns the rows affected.
    pub async fn execute<'a>(self, ex: impl Into<Exec<'a>>) -> StoreResult<u64> {
        let ex = ex.into();
        let n = with_query!(self, ex, |q, c| q.execute(c).await.map(|r| r.rows_affected()));
        n.map_err(map_err)
    }

    pub async fn fetch_all<'a, R: Row>(self, ex: impl Into<Exec<'a>>) -> StoreResult<Vec<R>> {
        let ex = ex.into();
        let rows: Result<Vec<R>, sqlx::Error> = with_query!(self, ex, |q, c| {
            let rows = q.fetch_all(c).await?;
            rows.iter().map(|r| R::from_row(r)).collect::<Result<Vec<R>, sqlx::Error>>()
        });
        rows.map_err(map_err)
    }

    pub async fn fetch_optional<'a, R: Row>(self, ex: impl Into<Exec<'a>>) -> StoreResult<Option<R>> {
        let ex = ex.into();
        let row: Result<Option<R>, sqlx::Error> = with_query!(self, ex, |q, c| {
            let r: Result<Option<R>, sqlx::Error> = match q.fetch_optional(c).await? {
                Some(r) => R::from_row(&r).map(Some),
                None => Ok(None),
            };
            r
        });
        row.map_err(map_err)
    }

    pub async fn fetch_one<'a, R: Row>(self, ex: impl Into<Exec<'a>>) -> StoreResult<R> {
        self.fetch_optional(ex).await?.ok_or(StoreError::NotFound)
    }

    /// The first column of the first row.
    pub async fn scalar<'a, T: Scalar>(self, ex: impl Into<Exec<'a>>) -> StoreResult<T> {
        self.scalar_optional(ex).await?.ok_or(StoreError::NotFound)
    }

    pub async fn scalar_optional<'a, T: Scalar>(self, ex: impl Into<Exec<'a>>) -> StoreResult<Option<T>> {
        use sqlx::Row as _;
        let ex = ex.into();
        let v: Result<Option<T>, sqlx::Error> = with_query!(self, ex, |q, c| {
            let r: Result<Option<T>, sqlx::Error> = match q.fetch_optional(c).await? {
                Some(r) => r.try_get::<T, _>(0).map(Some),
                None => Ok(None),
            };
            r
        });
        v.map_err(map_err)
    }

    /// The first column of every row.
    pub async fn scalars<'a, T: Scalar>(self, ex: impl Into<Exec<'a>>) -> StoreResult<Vec<T>> {
        use sqlx::Row as _;
        let ex = ex.into();
        let v: Result<Vec<T>, sqlx::Error> = with_query!(self, ex, |q, c| {
            let rows = q.fetch_all(c).await?;
            rows.iter().map(|r| r.try_get::<T, _>(0)).collect::<Result<Vec<T>, sqlx::Error>>()
        });
        v.map_err(map_err)
    }
}

/// Most arguments one statement carries (SQLite allows 32,766; PostgreSQL 65,535).
const MAX_ARGS: usize = 30_000;

/// Runs `head (…), (…) tail` over `rows`, as many statements as the argument limits need.
/// Returns the rows affected in all. `head` ends where the first tuple starts: `… VALUES ` or
/// `UPDATE … FROM (VALUES `.
pub async fn run_rows(tx: &mut Tx<'_>, head: &str, tail: &str, rows: Vec<Vec<Arg>>) -> StoreResult<u64> {
    let Some(width) = rows.first().map(Vec::len) else { return Ok(0) };
    let per = (MAX_ARGS / width.max(1)).max(1);
    let mut total = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per).collect();
        let mut q = sql(head);
        q.push_rows(chunk);
        q.push(tail);
        total += q.once().execute(&mut *tx).await?;
    }
    Ok(total)
}

/// Shorthand for building an argument inline (`push_rows`).
pub fn a(v: impl IntoArg) -> Arg {
    v.into_arg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_placeholders_in_order() {
        let mut q = sql("INSERT INTO t (a, b) VALUES ");
        q.push_rows([[a(1i64), a("x")], [a(2i64), a(None::<String>)]]);
        q.push(" WHERE c IN (");
        q.push_list(["p", "q"]);
        q.push(")");
        assert_eq!(q.text(), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) WHERE c IN ($5, $6)");
        assert_eq!(q.args.len(), 6);
        assert!(matches!(q.args[3], Arg::Text(None)));
    }
}
