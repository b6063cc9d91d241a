//! `clinicpay-bench`: measurements the issues ask for, printed with the ceilings measured in the
//! same run. Not a test: it runs the release server as a child process on loopback with a fresh
//! database, loads it with a bounded number of requests, and prints figures.
//!
//!   clinicpay-bench pages   [--db sqlite|postgres]   bills list + dashboard, 50 clients; RSS
//!   clinicpay-bench crypto                            sign / verify / decrypt vs `openssl speed`
//!   clinicpay-bench verify                            notification endpoint, verification only
//!   clinicpay-bench apply   [--db …] [--sessions N] [--runs R]
//!                                                     session creation (20 clients), notification
//!                                                     apply throughput vs the database's ceiling,
//!                                                     charge screen render, RSS
//!
//! PostgreSQL runs use `CLINICPAY_BENCH_PG_URL` (default postgres://postgres@127.0.0.1:5432/postgres)
//! to create a fresh database.

// Floats here are timings and rates, never money.
#![allow(clippy::float_arithmetic)]

use anyhow::{bail, Context, Result};
use clinicpay::billing::{price_items, Bill, BillStatus, ItemCategory, NewBillItem, Patient};
use clinicpay::ids::{BillId, PatientId};
use clinicpay::money::Money;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn pct(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if xs.is_empty() {
        0.0
    } else {
        xs[xs.len() / 2]
    }
}

/// The release server as a child process.
struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    db: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

async fn fresh_db(kind: &str, dir: &std::path::Path) -> Result<String> {
    Ok(match kind {
        "sqlite" => format!("sqlite://{}", dir.join("bench.db").display()),
        "postgres" => {
            use sqlx::Connection;
            let admin = std::env::var("CLINICPAY_BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("clinicpay_bench_{}", std::process::id());
            let mut c = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut c).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await?;
            format!("{}/{name}", admin.rsplit_once('/').map(|x| x.0).unwrap_or(&admin))
        }
        other => bail!("--db must be sqlite or postgres, not {other}"),
    })
}

async fn start_server(kind: &str) -> Result<Server> {
    let dir = std::env::temp_dir().join(format!("clinicpay-bench-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = fresh_db(kind, &dir).await?;
    let exe = std::env::current_exe()?.with_file_name("clinicpay");
    if !exe.exists() {
        bail!("{} not found: build it first (cargo build --release -p server)", exe.display());
    }
    let mut child = Command::new(&exe)
        .arg("serve")
        .env("CLINICPAY_DATABASE_URL", &db)
        .env("CLINICPAY_DATA_DIR", dir.join("data"))
        .env("CLINICPAY_LISTEN", "127.0.0.1:0")
        .env("CLINICPAY_LOG", "error")
        .env("CLINICPAY_DB_MAX_CONNECTIONS", "16")
        .env("LEPTOS_SITE_ROOT", std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into()))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .spawn()
        .context("starting the server")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("ClinicPay is running at ") => {
                break l.rsplit(' ').next().unwrap_or_default().to_string()
            }
            Some(_) => {}
            None => bail!("the server exited; see {}", dir.join("server.log").display()),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, base, dir, db })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn login(c: &reqwest::Client, base: &str, user: &str, pw: &str) -> Result<String> {
    let r = c
        .post(format!("{base}/auth/login"))
        .header("origin", base)
        .form(&[("username", user), ("password", pw), ("next", "/")])
        .send()
        .await?;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cp_session="))
        .context("no session cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

/// `clients` concurrent loops until `total` requests are done (or `max_time` passes).
async fn load<F, Fut>(clients: usize, total: usize, max_time: Duration, f: F) -> (Vec<Duration>, Duration, usize)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (f, next, errors) = (f.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total || started.elapsed() > max_time {
                    return lat;
                }
                let t = Instant::now();
                if !f(i).await {
                    errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall, errors.load(std::sync::atomic::Ordering::SeqCst))
}

/// Prints the first few failures of a load run (so an error count is never a mystery).
fn note_error(outcome: std::result::Result<(), String>) -> bool {
    static SHOWN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match outcome {
        Ok(()) => true,
        Err(e) => {
            if SHOWN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                eprintln!("    error: {e}");
            }
            false
        }
    }
}

fn report(name: &str, lat: &[Duration], wall: Duration, errors: usize) {
    println!(
        "  {name:<44} {:>6} req in {:>6.2}s = {:>8.1}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {errors}",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        pct(lat, 50),
        pct(lat, 99)
    );
}

/// Samples the child's RSS while `fut` runs; returns (result, peak KiB).
async fn with_rss<T>(server: &Server, fut: impl std::future::Future<Output = T>) -> (T, u64) {
    let pid = server.child.id();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = peak.clone();
    let sampler = tokio::spawn(async move {
        loop {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                p2.fetch_max(kb, std::sync::atomic::Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let out = fut.await;
    sampler.abort();
    (out, peak.load(std::sync::atomic::Ordering::SeqCst))
}

async fn bench_pages(kind: &str) -> Result<()> {
    let server = start_server(kind).await?;
    let c = client();
    let cookie = login(&c, &server.base, "cashier", "demo-cashier").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server.rss_kb();
    let bills: Value = {
        let s =
            server::db::connect(&server.db, &server::db::DbOptions { max_connections: 2, migrate: false }).await?.store;
        json!({ "count": s.list_bills(&Default::default()).await?.total })
    };
    println!(
        "pages on {kind}: {} bills in the database; 50 concurrent clients on loopback; goal p99 < 50 ms",
        bills["count"]
    );
    let mut peak_all = 0;
    for (name, path) in
        [("bills list, name search (GET /bills?q=王)", "/bills?q=%E7%8E%8B"), ("dashboard (GET /)", "/")]
    {
        // warm up
        for _ in 0..50 {
            c.get(format!("{}{path}", server.base)).header("cookie", &cookie).send().await?.bytes().await?;
        }
        let (base, ck) = (server.base.clone(), cookie.clone());
        let cc = c.clone();
        let ((lat, wall, errors), peak) = with_rss(
            &server,
            load(50, 4000, Duration::from_secs(30), move |_| {
                let (c, base, ck) = (cc.clone(), base.clone(), ck.clone());
                async move {
                    let outcome = match c.get(format!("{base}{path}")).header("cookie", ck).send().await {
                        Ok(r) if r.status() == 200 => r.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
                        Ok(r) => {
                            let status = r.status();
                            Err(format!(
                                "{status}: {}",
                                r.text().await.unwrap_or_default().chars().take(200).collect::<String>()
                            ))
                        }
                        Err(e) => Err(format!("{e:?}")),
                    };
                    note_error(outcome)
                }
            }),
        )
        .await;
        report(name, &lat, wall, errors);
        peak_all = peak_all.max(peak);
    }
    println!("  server RSS: idle {:.1} MiB, peak under load {:.1} MiB", idle as f64 / 1024.0, peak_all as f64 / 1024.0);
    Ok(())
}

fn openssl_speed() -> Option<(f64, f64)> {
    let out = Command::new("openssl").args(["speed", "-seconds", "2", "rsa2048"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.trim_start().starts_with("rsa 2048") || l.trim_start().starts_with("rsa  2048"))?;
    let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    // columns: bits, sign (s), verify (s), sign/s, verify/s — take the last two
    let n = nums.len();
    (n >= 2).then(|| (nums[n - 2], nums[n - 1]))
}

fn bench_crypto() -> Result<()> {
    use server::crypto::{aes_gcm_decrypt, aes_gcm_encrypt, PrivateKey};
    let key = PrivateKey::generate()?;
    let public = key.public_key();
    let msg = b"app_id=2021000000000001&biz_content={\"out_trade_no\":\"T1\",\"total_amount\":\"88.88\"}&charset=utf-8&method=alipay.trade.precreate";
    let sig = key.sign_sha256(msg);
    let per_sec = |f: &dyn Fn()| {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_secs(2) {
            for _ in 0..50 {
                f();
            }
            n += 50;
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let sign = per_sec(&|| {
        std::hint::black_box(key.sign_sha256(msg));
    });
    let verify = per_sec(&|| {
        assert!(public.verify_sha256(msg, &sig));
    });
    let k = [7u8; 32];
    let pt = vec![1u8; 1024];
    let ct = aes_gcm_encrypt(&k, b"0123456789ab", b"transaction", &pt)?;
    let dec = per_sec(&|| {
        std::hint::black_box(aes_gcm_decrypt(&k, b"0123456789ab", b"transaction", &ct).expect("decrypt"));
    });
    println!("crypto, one core (aws-lc-rs behind server::crypto):");
    println!("  RSA-2048 PKCS#1 v1.5 SHA-256 sign    {sign:>10.0}/s");
    println!("  RSA-2048 PKCS#1 v1.5 SHA-256 verify  {verify:>10.0}/s");
    println!("  AES-256-GCM decrypt 1 KiB            {dec:>10.0}/s ({:.2} µs each)", 1e6 / dec);
    match openssl_speed() {
        Some((s, v)) => println!(
            "  openssl speed rsa2048 (same run):     sign {s:.0}/s verify {v:.0}/s  → ours {:.2}× sign, {:.2}× verify (goal ≥ 0.9×)",
            sign / s,
            verify / v
        ),
        None => println!("  openssl speed rsa2048: openssl not available"),
    }
    Ok(())
}

/// The notification endpoint's verification alone: an axum route running the real Alipay
/// client's `verify_notification` (no database), loaded with pre-signed notifications.
async fn bench_verify() -> Result<()> {
    use clinicpay::ports::{Gateway, RawNotification};
    use server::sandbox::SandboxControl;
    let settings = server::sandbox::SandboxSettings {
        base_url: "http://127.0.0.1:1".into(),
        time_scale_permille: 1000,
        key_dir: None,
        state_file: None,
    };
    let sb = server::sandbox::Sandboxes::new(settings).await?;
    let merchant = server::crypto::PrivateKey::generate()?;
    let alipay_pk = sb.alipay.register_app("2021000000001234", &merchant.public_key().to_pem()).await?;
    let gw: Arc<dyn Gateway> = Arc::new(server::gateways::alipay::AlipayClient::new(
        server::gateways::alipay::AlipaySettings {
            app_id: "2021000000001234".into(),
            gateway_url: "http://127.0.0.1:1/gateway.do".into(),
            alipay_public_key: alipay_pk,
            seller_id: None,
        },
        &merchant.to_pkcs8_pem(),
        server::gateways::http_client(),
    )?);
    // pre-signed notifications: precreate + pay trades at the sandbox's own gateway over a local router
    let app = sb.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let gw_sb = server::gateways::alipay::AlipayClient::new(
        server::gateways::alipay::AlipaySettings {
            app_id: "2021000000001234".into(),
            gateway_url: format!("{sandbox_base}/sandbox/alipay/gateway.do"),
            alipay_public_key: sb.alipay.public_key_pem(),
            seller_id: None,
        },
        &merchant.to_pkcs8_pem(),
        server::gateways::http_client(),
    )?;
    let n = 5_000;
    let mut bodies = Vec::with_capacity(n);
    for i in 0..200 {
        let no = format!("VB{i:08}");
        let call = gw_sb
            .create_payment(&clinicpay::ports::CreatePayment {
                out_trade_no: no.clone(),
                amount: Money::parse("12.34")?,
                subject: "bench".into(),
                method: clinicpay::payments::PayMethod::AlipayQr,
                expires_at_ms: chrono::Utc::now().timestamp_millis() + 3_600_000,
                notify_url: "http://127.0.0.1:1/notify/alipay".into(),
                return_url: None,
                payer_openid: None,
                payer_ip: None,
            })
            .await;
        if !call.outcome.is_success() {
            bail!("precreate failed: {:?}", call.outcome);
        }
        sb.alipay.set_faults(&no, server::sandbox::FaultSpec { drop: true, ..Default::default() }).await?;
        sb.alipay.pay(&no).await?;
        bodies.push(sb.alipay.signed_success_notification(&no).await?);
    }
    let verify_router = axum::Router::new().route(
        "/notify/alipay",
        axum::routing::post({
            let gw = gw.clone();
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let gw = gw.clone();
                async move {
                    let raw = RawNotification {
                        headers: vec![],
                        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").into(),
                        body: body.to_vec(),
                    };
                    let ok = gw.verify_notification(&raw, chrono::Utc::now().timestamp_millis()).is_ok();
                    let reply = gw.notify_reply(ok);
                    (axum::http::StatusCode::from_u16(reply.status).unwrap_or(axum::http::StatusCode::OK), reply.body)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, verify_router).await;
    });
    let c = client();
    let bodies = Arc::new(bodies);
    let (lat, wall, errors) = load(32, n, Duration::from_secs(30), move |i| {
        let (c, base, bodies) = (c.clone(), base.clone(), bodies.clone());
        async move {
            let (h, b) = &bodies[i % bodies.len()];
            let mut rb = c.post(format!("{base}/notify/alipay")).body(b.clone());
            for (k, v) in h {
                rb = rb.header(k.as_str(), v.as_str());
            }
            match rb.send().await {
                Ok(r) => r.text().await.is_ok_and(|t| t == "success"),
                Err(_) => false,
            }
        }
    })
    .await;
    println!("notification endpoint, verification only (Alipay RSA2, handler no-op; server and load in one process on 2 cores):");
    report("POST /notify/alipay, 32 concurrent", &lat, wall, errors);
    Ok(())
}

/// Synthetic patients with `bills_each` unpaid bills of 3 items.
async fn seed_synthetic(
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
async fn ceiling(db: &str, writers: usize, seconds: u64) -> Result<f64> {
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

async fn bench_apply(kind: &str) -> Result<()> {
    let sessions_per_run: usize = arg("--sessions").map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let runs: usize = arg("--runs").map(|s| s.parse()).transpose()?.unwrap_or(5);
    let server = start_server(kind).await?;
    let c = client();
    let store =
        server::db::connect(&server.db, &server::db::DbOptions { max_connections: 4, migrate: false }).await?.store;
    let admin = store.user_by_username("admin").await?.context("admin")?.current();
    let services = server::startup::build_services(&server::config::Config {
        database_url: server.db.clone(),
        data_dir: server.dir.join("data"),
        sandbox: false,
        ..Default::default()
    })
    .await?;
    let token = services
        .create_api_token(&admin, "", "bench", clinicpay::auth::Role::Cashier)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .0;
    println!("apply on {kind}: {runs} runs × {sessions_per_run} sessions of 3 bills; pre-signed Alipay notifications posted by 64 clients");

    let mut rates = Vec::new();
    let mut ceilings = Vec::new();
    let mut p99s = Vec::new();
    let mut peak_rss = 0u64;
    let mut create_stats = None;
    for run in 0..runs {
        // fresh unpaid bills for this run
        let patients = seed_synthetic(&store, 10 + run as u64, sessions_per_run, 3).await?;
        // sessions through the REST API (the provider round trip included)
        let (base, tk, cc) = (server.base.clone(), token.clone(), c.clone());
        let patients = Arc::new(patients);
        let trades = Arc::new(std::sync::Mutex::new(Vec::with_capacity(sessions_per_run)));
        let (pp, tt) = (patients.clone(), trades.clone());
        let (lat, wall, errors) = load(20, sessions_per_run, Duration::from_secs(600), move |i| {
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
        if run == 0 {
            create_stats = Some((lat.len(), wall, pct(&lat, 50), pct(&lat, 99), errors));
        }
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
                    .json(&json!({"drop": true}))
                    .send()
                    .await;
                let _ = c.post(format!("{base}/sandbox/alipay/control/trades/{no}/pay")).json(&json!({})).send().await;
                match c.get(format!("{base}/sandbox/alipay/control/trades/{no}/notification")).send().await {
                    Ok(r) => match r.json::<Value>().await {
                        Ok(v) => {
                            let headers: Vec<(String, String)> = v["headers"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
                                        .collect()
                                })
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
        let notes: Arc<Vec<(Vec<(String, String)>, String)>> = Arc::new(notes.lock().unwrap().clone());

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
                    let mut rb = c.post(format!("{base}/notify/alipay")).body(b.clone());
                    for (k, v) in h {
                        rb = rb.header(k.as_str(), v.as_str());
                    }
                    match rb.send().await {
                        Ok(r) => r.text().await.is_ok_and(|t| t == "success"),
                        Err(_) => false,
                    }
                }
            }),
        )
        .await;
        peak_rss = peak_rss.max(peak);
        let rate = lat.len() as f64 / wall.as_secs_f64();
        println!(
            "  run {}: {:>5} notifications in {:>6.2}s = {:>7.1}/s  p99 {:>7.2} ms  errors {errors}   ceiling {:>7.1} tx/s ({writers} writer{}) → {:>5.1}% of it",
            run + 1,
            lat.len(),
            wall.as_secs_f64(),
            rate,
            pct(&lat, 99),
            ceil,
            if writers == 1 { "" } else { "s" },
            rate / ceil * 100.0
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

#[tokio::main]
async fn main() -> Result<()> {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let db = arg("--db").unwrap_or_else(|| "sqlite".into());
    match scenario.as_str() {
        "pages" => bench_pages(&db).await,
        "crypto" => bench_crypto(),
        "verify" => bench_verify().await,
        "apply" => bench_apply(&db).await,
        _ => {
            eprintln!(
                "usage: clinicpay-bench pages|crypto|verify|apply [--db sqlite|postgres] [--sessions N] [--runs R]"
            );
            std::process::exit(2)
        }
    }
}
