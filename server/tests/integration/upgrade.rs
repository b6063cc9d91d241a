//! An existing database of the previous release migrates, keeps every session, payment, ledger
//! entry and exception, and `clinicpay verify` passes on it — on both backends. The databases are
//! dumps of that release's own data (`tests/fixtures/upgrade/`).

use crate::helpers::{backends, fresh_db_url};
use server::db::sql::sql;
use server::db::{DbOptions, SqlStore};

const SQLITE_DUMP: &str = include_str!("../fixtures/upgrade/schema3-sqlite.sql");
const POSTGRES_DUMP: &str = include_str!("../fixtures/upgrade/schema3-postgres.sql");

/// Loads the previous release's database into a fresh one, exactly as it was (no migration).
async fn load_previous_release(backend: &str) -> String {
    let url = fresh_db_url(backend).await;
    use sqlx::Connection;
    match backend {
        "sqlite" => {
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let mut c = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true)).await.unwrap();
            sqlx::raw_sql(SQLITE_DUMP).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        _ => {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(POSTGRES_DUMP).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    }
    url
}

/// What must survive, counted in the old schema's own tables.
const KEPT: [(&str, &str); 7] = [
    ("sessions", "SELECT COUNT(*) FROM checkout_sessions"),
    ("active sessions", "SELECT COUNT(*) FROM checkout_sessions WHERE status = 'pending'"),
    ("payments", "SELECT COUNT(*) FROM payments"),
    ("paid fen", "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM payments"),
    ("exceptions", "SELECT COUNT(*) FROM payment_exceptions"),
    ("paid bills", "SELECT COUNT(*) FROM bills WHERE status = 'paid'"),
    ("audit entries", "SELECT COUNT(*) FROM audit_log"),
];

async fn count(store: &SqlStore, q: &str) -> i64 {
    sql(q).scalar::<i64>(store.db()).await.unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[tokio::test]
async fn the_previous_release_database_migrates_and_verifies() {
    for backend in backends() {
        let url = load_previous_release(backend).await;
        let before = {
            let old = SqlStore::connect(&url, &DbOptions { max_connections: 2, migrate: false }).await.unwrap();
            let mut v = Vec::new();
            for (what, q) in KEPT {
                v.push((what, count(&old, q).await));
            }
            let bill_rows = count(&old, "SELECT COUNT(*) FROM session_bills").await;
            let frozen = count(&old, "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM session_bills").await;
            let active = count(&old, "SELECT COUNT(*) FROM session_bills WHERE active").await;
            v.push(("session payables", bill_rows));
            v.push(("frozen fen", frozen));
            v.push(("active payables", active));
            assert!(v.iter().all(|(_, n)| *n > 0), "{backend}: the fixture has something of each: {v:?}");
            let entries = count(&old, "SELECT COUNT(*) FROM journal_entries").await;
            let postings = count(&old, "SELECT COUNT(*) FROM postings").await;
            let owed = count(&old, "SELECT COUNT(*) FROM bills WHERE status IN ('unpaid', 'paying')").await;
            assert!(entries > 0 && owed > 0, "{backend}: the fixture has entries and bills still owed");
            (v, entries, postings, owed)
        };
        let (before, entries_before, postings_before, owed) = before;

        // `clinicpay verify` of this release: it migrates the database, then checks the books
        let data =
            std::env::temp_dir().join("clinicpay-tests").join(format!("upgrade-{backend}-{}", std::process::id()));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicpay"))
            .arg("verify")
            .env("CLINICPAY_ENV", "development")
            .env("CLINICPAY_SANDBOX", "false")
            .env("CLINICPAY_SEED_DEMO", "false")
            .env("CLINICPAY_DATABASE_URL", &url)
            .env("CLINICPAY_DATA_DIR", &data)
            .env("CLINICPAY_LOG", "error")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("the books are consistent"),
            "{backend}: verify failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let new = SqlStore::connect(&url, &DbOptions { max_connections: 2, migrate: true }).await.unwrap();
        assert_eq!(count(&new, "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 4").await, 1, "{backend}");
        let mut after = Vec::new();
        for (what, q) in KEPT {
            after.push((what, count(&new, q).await));
        }
        after.push((
            "session payables",
            count(&new, "SELECT COUNT(*) FROM session_payables WHERE payable_kind = 'bill'").await,
        ));
        after.push((
            "frozen fen",
            count(&new, "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM session_payables").await,
        ));
        after.push(("active payables", count(&new, "SELECT COUNT(*) FROM session_payables WHERE active").await));
        assert_eq!(after, before, "{backend}: everything kept");
        // every old entry kept; bills still owed got their opening issue entry (accrual), once
        let openings = count(&new, "SELECT entries FROM ledger_upgrades WHERE name = '0010_accrual_openings'").await;
        assert_eq!(openings, owed, "{backend}: one opening entry per bill still owed");
        assert_eq!(count(&new, "SELECT COUNT(*) FROM journal_entries").await, entries_before + openings);
        assert_eq!(count(&new, "SELECT COUNT(*) FROM postings").await, postings_before + 2 * openings);
        let report = clinicpay::ports::ReportStore::ledger_report(&new).await.unwrap();
        assert!(report.consistent(), "{backend}: {report:?}");
        let unnamed =
            count(&new, "SELECT COUNT(*) FROM payments WHERE payable_kind <> 'bill' OR payable_id <> bill_id").await;
        assert_eq!(unnamed, 0, "{backend}: every old payment names the bill it paid as its payable");

        // the invariants still hold in the database: one active session per payable
        let dup =
            sql("INSERT INTO session_payables (session_id, payable_kind, payable_id, bill_id, amount_fen, active) \
             SELECT id, 'bill', (SELECT bill_id FROM session_payables WHERE active LIMIT 1), \
                    (SELECT bill_id FROM session_payables WHERE active LIMIT 1), 1, TRUE \
             FROM checkout_sessions WHERE status = 'cancelled' LIMIT 1")
            .execute(new.db())
            .await;
        assert!(dup.is_err(), "{backend}: a second active session for a bill is refused");

        // and this release reads the old sessions through its own types
        let ids: Vec<(String,)> =
            sql("SELECT id FROM checkout_sessions ORDER BY id").fetch_all(new.db()).await.unwrap();
        for (id,) in ids {
            let id = clinicpay::ids::SessionId::try_from(id).unwrap();
            let view = clinicpay::ports::CheckoutStore::session(&new, &id).await.unwrap().expect("the session reads");
            assert!(!view.payables.is_empty(), "{backend}: session {id} has its payables");
        }
        let _ = std::fs::remove_dir_all(&data);
    }
}
