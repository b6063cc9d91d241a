//! The books at size (issue 9): the demo server's database grown to N postings (bills issued,
//! each a balanced two-line entry, written in batches), then `clinicpay verify` timed as the real
//! command over all of it, beside the ceiling of one full scan summing every posting; and the
//! trial balance and an account page, as finance loads them, p50 / p99.

use super::*;
use server::db::sql::sql;

pub(crate) async fn bench_books(kind: &str) -> Result<()> {
    let target: usize = arg("--postings").map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let server = start_server(kind).await?;
    let store =
        server::db::SqlStore::connect(&server.db, &server::db::DbOptions { max_connections: 4, migrate: false })
            .await?;
    let db = store.db();
    let (patient, department): (String, String) =
        sql("SELECT p.id, d.id FROM patients p, departments d ORDER BY p.id, d.id LIMIT 1").fetch_one(db).await?;
    let existing: i64 = sql("SELECT COUNT(*) FROM postings").scalar(db).await?;
    let bills = target.saturating_sub(existing as usize) / 2;
    println!(
        "books on {kind}: the demo database ({existing} postings) grown to {} postings",
        existing as usize + 2 * bills
    );

    // bills issued, 1,000 per transaction: the bill, its entry (unsealed), two postings, sealed
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    let mut seq = 0usize;
    while seq < bills {
        let n = (bills - seq).min(1000);
        let mut b = String::from(
            "INSERT INTO bills (id, bill_no, patient_id, department_id, total_fen, refunded_fen, status, created_at, updated_at) VALUES ",
        );
        let mut j = String::from(
            "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) VALUES ",
        );
        let mut p = String::from("INSERT INTO postings (entry_id, line_no, account_code, amount_fen, bill_id) VALUES ");
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let i = seq + k;
            let bill = BillId::from_u128((0xB00C_u128 << 112) | i as u128);
            let entry = clinicpay::ids::JournalEntryId::from_u128((0xE0C_u128 << 112) | i as u128);
            let fen = 100 + (i as i64 * 7919) % 50_000;
            let at = now - 30 * 86_400_000 + (i as i64 % (30 * 86_400)) * 1000;
            let sep = if k == 0 { "" } else { "," };
            b.push_str(&format!(
                "{sep}('{bill}', 'BK{i:09}', '{patient}', '{department}', {fen}, 0, 'unpaid', {at}, {at})"
            ));
            j.push_str(&format!(
                "{sep}('{entry}', 'bill_issued', {at}, 'bill', '{bill}', 'bench', FALSE, 'open', {at})"
            ));
            p.push_str(&format!(
                "{sep}('{entry}', 1, '1221', {fen}, '{bill}'), ('{entry}', 2, '6001', {}, '{bill}')",
                -fen
            ));
            ids.push(format!("'{entry}'"));
        }
        let mut tx = db.write().await?;
        sql(b).execute(&mut tx).await?;
        sql(j).execute(&mut tx).await?;
        sql(p).execute(&mut tx).await?;
        sql(format!("UPDATE journal_entries SET sealed = TRUE, unsealed = NULL WHERE id IN ({})", ids.join(",")))
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        seq += n;
    }
    let postings: i64 = sql("SELECT COUNT(*) FROM postings").scalar(db).await?;
    let load_s = started.elapsed().as_secs_f64();
    println!(
        "  wrote {bills} bills with their entries in {load_s:.1} s ({:.0} postings/s)",
        (2 * bills) as f64 / load_s
    );
    if kind == "postgres" {
        sql("ANALYZE").execute(db).await?;
    }

    // the ceiling: one scan summing every posting
    let mut scans = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let _: i64 = sql("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM postings").scalar(db).await?;
        scans.push(t.elapsed().as_secs_f64());
    }
    let scan = median(scans);

    // `clinicpay verify`, the real command, three runs
    let exe = std::env::current_exe()?.with_file_name("clinicpay");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new(&exe)
            .arg("verify")
            .env("CLINICPAY_ENV", "development")
            .env("CLINICPAY_SANDBOX", "false")
            .env("CLINICPAY_SEED_DEMO", "false")
            .env("CLINICPAY_DATABASE_URL", &server.db)
            .env("CLINICPAY_DATA_DIR", server.dir.join("data"))
            .env("CLINICPAY_LOG", "error")
            .output()?;
        runs.push(t.elapsed().as_secs_f64());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("the books are consistent") {
            bail!("verify failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let verify = median(runs);
    println!(
        "  clinicpay verify over {postings} postings: median {verify:.2} s (goal ≤ 5 s); ceiling one scan summing them {:.0} ms ({:.0}× the scan)",
        scan * 1000.0,
        verify / scan.max(1e-6)
    );

    // the pages as finance opens them, one at a time
    let c = client();
    let cookie = login(&c, &server.base, "finance", "demo-finance").await?;
    for (name, path) in [
        ("trial balance (GET /finance/ledger)", "/finance/ledger"),
        ("account page (GET /finance/ledger/1221)", "/finance/ledger/1221"),
    ] {
        let mut lat = Vec::new();
        let mut errors = 0;
        let wall = Instant::now();
        for i in 0..22 {
            let t = Instant::now();
            let r = c.get(format!("{}{path}", server.base)).header("cookie", &cookie).send().await;
            let ok = match r {
                Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t.contains("1221")),
                _ => false,
            };
            if i >= 2 {
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
        }
        lat.sort();
        report(name, &lat, wall.elapsed(), errors);
    }
    Ok(())
}
