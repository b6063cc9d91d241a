//! Session creation, notification apply throughput against the database's own ceiling, the
//! charge screen render, and the server's memory over many sessions.

use super::*;

/// Synthetic patients with `bills_each` unpaid bills of 3 items.
pub(crate) async fn seed_synthetic(
    store: &Arc<dyn clinicpay::ports::Store>,
    tag: u64,
    patients: usize,
    bills_each: usize,
) -> Result<Vec<(String, Vec<String>)>> {
    let deps = store.list_departments().await?;
    let dep = deps.first().context("no departments")?.id.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let today = clinicpay::time::local_date(now).context("clock")?;
    let mut out = Vec::with_capacity(patients);
    let mut ps = Vec::with_capacity(patients);
    let mut bills = Vec::with_capacity(patients * bills_each);
    let mut bill_seq = 0u32;
    for i in 0..patients {
        let pid = PatientId::from_u128(((tag as u128) << 64) | (i as u128) << 8);
        ps.push(Patient {
            id: pid.clone(),
            mrn: format!("9{:02}{:07}", tag % 100, i),
            name: format!("压测患者{i}"),
            gender: "女".into(),
            birth_date: None,
            phone: "13800000000".into(),
            created_at_ms: now,
        });
        let mut ids = Vec::new();
        for j in 0..bills_each {
            bill_seq += 1;
            let items = vec![
                NewBillItem {
                    category: ItemCategory::Consultation,
                    description: "诊查费".into(),
                    quantity: 1,
                    unit_price: Money::from_fen(2_000)?,
                },
                NewBillItem {
                    category: ItemCategory::Drug,
                    description: "药品".into(),
                    quantity: 2,
                    unit_price: Money::from_fen(1_250 + j as i64)?,
                },
                NewBillItem {
                    category: ItemCategory::Lab,
                    description: "化验".into(),
                    quantity: 1,
                    unit_price: Money::from_fen(3_000)?,
                },
            ];
            let (lines, total) = price_items(&items)?;
            let id = BillId::from_u128(((tag as u128) << 64) | ((i as u128) << 8) | (j as u128 + 1));
            ids.push(id.to_string());
            bills.push((
                Bill {
                    id,
                    bill_no: format!("B{}-{:06}", today.format("%Y%m%d"), (tag % 10) * 100_000 + bill_seq as u64),
                    patient_id: pid.clone(),
                    department_id: dep.clone(),
                    total,
                    status: BillStatus::Unpaid,
                    refunded: Money::ZERO,
                    created_at_ms: now,
                    paid_at_ms: None,
                },
                lines,
            ));
        }
        out.push((pid.to_string(), ids));
    }
    for chunk in ps.chunks(500) {
        store.insert_patients(chunk).await?;
    }
    for chunk in bills.chunks(500) {
        store.insert_bills(chunk).await?;
    }
    Ok(out)
}

/// The database's ceiling for the same durable writes: transactions with as many row writes as
/// a stored notification plus its application (1 + 17), equally durable, on a scratch table.
pub(crate) async fn ceiling(db: &str, writers: usize, seconds: u64) -> Result<f64> {
    let writes_per_item = 18;
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    if db.starts_with("sqlite") {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(db)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_ceiling (k INTEGER PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let mut i = 0i64;
        while Instant::now() < deadline {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            for _ in 0..writes_per_item {
                i += 1;
                sqlx::query("INSERT INTO bench_ceiling (v, n) VALUES ($1, $2)")
                    .bind("x".repeat(80))
                    .bind(i)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(writers as u32).connect(db).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_ceiling (k BIGSERIAL PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (pool, n) = (pool.clone(), n.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0i64;
                while Instant::now() < deadline {
                    let mut tx = pool.begin().await?;
                    for _ in 0..writes_per_item {
                        i += 1;
                        sqlx::query("INSERT INTO bench_ceiling (v, n) VALUES ($1, $2)")
                            .bind("x".repeat(80))
                            .bind(i * 100 + w as i64)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok::<_, sqlx::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    Ok(n.load(std::sync::atomic::Ordering::SeqCst) as f64 / seconds as f64)
}

/// Signed notifications as the sandbox sent them: (headers, body).
pub(crate) type Notes = Vec<(Vec<(String, String)>, String)>;

/// Signed Alipay success notifications for one paid session per patient: the sessions opened
/// through the REST API by 20 clients (the provider round trip included), the payer paying at
/// the sandbox with the notification held back. Also the creation figures (count, wall time,
/// p50 ms, p99 ms, errors).
pub(crate) async fn paid_notifications(
    server: &Server,
    c: &reqwest::Client,
    token: &str,
    patients: Vec<(String, Vec<String>)>,
) -> (Notes, (usize, Duration, f64, f64, usize)) {
    // sessions through the REST API (the provider round trip included)
    let (base, tk, cc) = (server.base.clone(), token.to_string(), c.clone());
    let n = patients.len();
    let patients = Arc::new(patients);
    let trades = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let (pp, tt) = (patients.clone(), trades.clone());
    let (lat, wall, errors) = load(20, n, Duration::from_secs(600), move |i| {
        let (c, base, tk, pp, tt) = (cc.clone(), base.clone(), tk.clone(), pp.clone(), tt.clone());
        async move {
            let (p, bills) = &pp[i];
            let r = c
                .post(format!("{base}/api/v1/finance/merged-payment/create-session"))
                .bearer_auth(&tk)
                .json(&json!({"patient_id": p, "bill_ids": bills, "payment_method": "alipay"}))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 201 => match r.json::<Value>().await {
                    Ok(v) => {
                        tt.lock().unwrap().push(v["out_trade_no"].as_str().unwrap_or_default().to_string());
                        true
                    }
                    Err(_) => false,
                },
                _ => false,
            }
        }
    })
    .await;
    let created = (lat.len(), wall, pct(&lat, 50), pct(&lat, 99), errors);
    // the payer pays; the sandbox keeps its notification, we take a signed copy
    let trades: Vec<String> = trades.lock().unwrap().clone();
    let notes = Arc::new(std::sync::Mutex::new(Vec::with_capacity(trades.len())));
    let (sb_base, cc, tr, nn) = (server.base.clone(), c.clone(), Arc::new(trades), notes.clone());
    load(32, tr.len(), Duration::from_secs(600), move |i| {
        let (c, base, tr, nn) = (cc.clone(), sb_base.clone(), tr.clone(), nn.clone());
        async move {
            let no = &tr[i];
            let _ = c
                .post(format!("{base}/sandbox/alipay/control/trades/{no}/faults"))
                .header("x-sandbox-token", BENCH_SANDBOX_TOKEN)
                .json(&json!({"drop": true}))
                .send()
                .await;
            let _ = c
                .post(format!("{base}/sandbox/alipay/control/trades/{no}/pay"))
                .header("x-sandbox-token", BENCH_SANDBOX_TOKEN)
                .json(&json!({}))
                .send()
                .await;
            match c
                .get(format!("{base}/sandbox/alipay/control/trades/{no}/notification"))
                .header("x-sandbox-token", BENCH_SANDBOX_TOKEN)
                .send()
                .await
            {
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) => {
                        // {headers: {name: value}, body} (the control API of every sandbox)
                        let headers: Vec<(String, String)> = v["headers"]
                            .as_object()
                            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                            .unwrap_or_default();
                        nn.lock().unwrap().push((headers, v["body"].as_str().unwrap_or_default().to_string()));
                        true
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            }
        }
    })
    .await;
    let notes = notes.lock().unwrap().clone();
    (notes, created)
}

/// The release server on a fresh database, a client, a direct handle on its store, and a
/// cashier API token.
pub(crate) async fn server_with_token(
    kind: &str,
) -> Result<(Server, reqwest::Client, Arc<dyn clinicpay::ports::Store>, String)> {
    let (server, c, store, _, token) = server_with_scope(kind, clinicpay::auth::TokenScope::Checkout).await?;
    Ok((server, c, store, token))
}

/// A release server on a fresh database, a store on it, services and an API token of `scope`.
pub(crate) async fn server_with_scope(
    kind: &str,
    scope: clinicpay::auth::TokenScope,
) -> Result<(Server, reqwest::Client, Arc<dyn clinicpay::ports::Store>, clinicpay::services::Services, String)> {
    let server = start_server(kind).await?;
    let c = client();
    let store =
        server::db::connect(&server.db, &server::db::DbOptions { max_connections: 4, migrate: false }).await?.store;
    let admin = store.user_by_username("admin").await?.context("admin")?.current();
    let services = server::startup::build_services(&server::config::Config {
        database_url: server.db.clone(),
        data_dir: server.dir.join("data"),
        env: server::config::RunMode::Development,
        sandbox: false,
        ..Default::default()
    })
    .await?;
    let token = services
        .create_api_token(&admin, "", "bench", clinicpay::auth::Role::Cashier, scope)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .0;
    Ok((server, c, store, services, token))
}

pub(crate) async fn bench_apply(kind: &str) -> Result<()> {
    let sessions_per_run: usize = arg("--sessions").map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let runs: usize = arg("--runs").map(|s| s.parse()).transpose()?.unwrap_or(5);
    let (server, c, store, token) = server_with_token(kind).await?;
    println!("apply on {kind}: {runs} runs × {sessions_per_run} sessions of 3 bills; pre-signed Alipay notifications posted by 64 clients");

    let mut rates = Vec::new();
    let mut ceilings = Vec::new();
    let mut p99s = Vec::new();
    let mut peak_rss = 0u64;
    let mut create_stats = None;
    for run in 0..runs {
        // fresh unpaid bills for this run
        let patients = seed_synthetic(&store, 10 + run as u64, sessions_per_run, 3).await?;
        let (notes, created) = paid_notifications(&server, &c, &token, patients).await;
        if run == 0 {
            create_stats = Some(created);
        }
        let notes = Arc::new(notes);

        // the database's own ceiling, measured right before (interleaved)
        let writers = if kind == "sqlite" { 1 } else { 8 };
        let ceil = ceiling(&server.db, writers, 5).await?;

        // the notifications, all at once
        let (base, cc, nn) = (server.base.clone(), c.clone(), notes.clone());
        let ((lat, wall, errors), peak) = with_rss(
            &server,
            load(64, nn.len(), Duration::from_secs(600), move |i| {
                let (c, base, nn) = (cc.clone(), base.clone(), nn.clone());
                async move {
                    let (h, b) = &nn[i];
                    post_alipay_notification(&c, &base, h, b.clone()).await
                }
            }),
        )
        .await;
        peak_rss = peak_rss.max(peak);
        let rate = lat.len() as f64 / wall.as_secs_f64();
        println!(
            "  run {}: {:>5} notifications in {:>6.2}s = {:>7.1}/s  p99 {:>7.2} ms  errors {errors}   ceiling {:>7.1} tx/s ({writers} writer{}) → {:>5.1}% of it   server RSS after {} sessions: {:.1} MiB",
            run + 1,
            lat.len(),
            wall.as_secs_f64(),
            rate,
            pct(&lat, 99),
            ceil,
            if writers == 1 { "" } else { "s" },
            rate / ceil * 100.0,
            (run + 1) * sessions_per_run,
            server.rss_kb() as f64 / 1024.0
        );
        rates.push(rate);
        ceilings.push(ceil);
        p99s.push(pct(&lat, 99));
    }
    let report_store = store.ledger_report().await?;
    let ratio: Vec<f64> = rates.iter().zip(&ceilings).map(|(r, c)| r / c * 100.0).collect();
    println!(
        "  median: {:.1} notifications/s, p99 {:.2} ms, ceiling {:.1} tx/s, ratio {:.1}%  (goal ≥ 2000/s and ≥ 25%)",
        median(rates),
        median(p99s),
        median(ceilings),
        median(ratio)
    );
    println!(
        "  books after the runs: paid sessions {}, misallocated {}, bills paid twice {}, unbalanced entries {}, clearing matches receipts {}",
        report_store.paid_sessions,
        report_store.misallocated_sessions,
        report_store.bills_paid_twice,
        report_store.unbalanced_entries,
        report_store.clearing_matches_receipts
    );
    if let Some((n, wall, p50, p99, errors)) = create_stats {
        println!(
            "  session creation (REST + Alipay sandbox round trip), 20 clients: {n} in {:.2}s = {:.1}/s  p50 {p50:.2} ms  p99 {p99:.2} ms  errors {errors}  (goal p99 < 50 ms)",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64()
        );
    }

    // charge screen render for a patient with 20 unpaid bills
    let p = seed_synthetic(&store, 99, 1, 20).await?;
    let cookie = login(&c, &server.base, "cashier", "demo-cashier").await?;
    let url = format!("{}/charge?patient={}", server.base, p[0].0);
    let mut lat = Vec::new();
    for _ in 0..20 {
        c.get(&url).header("cookie", &cookie).send().await?.bytes().await?;
    }
    for _ in 0..300 {
        let t = Instant::now();
        let r = c.get(&url).header("cookie", &cookie).send().await?;
        let ok = r.status() == 200;
        let body = r.text().await?;
        lat.push(t.elapsed());
        if !ok || !body.contains("20 unpaid") && !body.contains("共 20 笔") {
            bail!("the charge screen did not render the 20 bills");
        }
    }
    lat.sort();
    println!(
        "  charge screen server render, 20 unpaid bills, sequential: p50 {:.2} ms  p99 {:.2} ms  (goal p50 < 10 ms)",
        pct(&lat, 50),
        pct(&lat, 99)
    );
    println!(
        "  server RSS: now {:.1} MiB, peak under notification load {:.1} MiB (goal < 150 MB)",
        server.rss_kb() as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    Ok(())
}
