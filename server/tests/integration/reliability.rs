//! Q1: exactly once, whatever the providers, the network and our own server do.
//!
//! Two processes: one plays the providers (the built-in sandboxes of a `clinicpay` server), the
//! other is ClinicPay under test. Hundreds of sessions are paid while the sandbox duplicates,
//! delays, reorders and drops notifications; midway the ClinicPay process is killed with SIGKILL
//! and restarted on the same port and database. Afterwards every invariant must hold.

use crate::helpers::{backends, fresh_db_url};
use clinicpay::auth::Role;
use clinicpay::payments::Provider;
use clinicpay::services::auth::Actor;
use clinicpay::services::channels::ChannelInput;
use serde_json::{json, Value};
use server::config::Config;
use server::crypto::PrivateKey;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SESSIONS: usize = 200;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `clinicpay serve` and waits until it says where it runs.
fn start(envs: &[(&str, String)], log: &std::path::Path) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clinicpay"));
    cmd.arg("serve").stdout(Stdio::piped()).stderr(std::fs::File::create(log).unwrap());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start clinicpay");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the server did not start; see {}", log.display());
        match lines.next() {
            Some(Ok(l)) if l.contains("ClinicPay is running at ") => {
                let url = l.rsplit(' ').next().unwrap().trim().to_string();
                // keep draining stdout so the child never blocks on a full pipe
                std::thread::spawn(move || for _ in lines {});
                return (Proc { child }, url);
            }
            Some(_) => {}
            None => panic!("the server exited; see {}", log.display()),
        }
    }
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{url}/readyz")).await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_under_duplicates_drops_reordering_and_sigkill() {
    for backend in backends() {
        if std::env::var("RELIABILITY_ONLY").is_ok_and(|b| b != backend) {
            continue;
        }
        run(backend).await;
    }
}

async fn run(backend: &'static str) {
    let dir = std::env::temp_dir().join("clinicpay-tests").join(format!("rel-{backend}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::new();

    // --- the providers: a sandbox-only server ------------------------------------------------
    let (_providers, sb) = start(
        &[
            ("CLINICPAY_DATABASE_URL", format!("sqlite://{}", dir.join("providers.db").display())),
            ("CLINICPAY_DATA_DIR", dir.join("providers").display().to_string()),
            ("CLINICPAY_LISTEN", "127.0.0.1:0".into()),
            ("CLINICPAY_ENV", "development".into()),
            ("CLINICPAY_SANDBOX_CONTROL_TOKEN", crate::helpers::SANDBOX_TOKEN.into()),
            ("CLINICPAY_SEED_DEMO", "false".into()),
            ("CLINICPAY_RUN_WORKERS", "false".into()),
            ("CLINICPAY_SANDBOX_TIME_SCALE_PERMILLE", "1".into()),
            ("CLINICPAY_LOG", "warn".into()),
        ],
        &dir.join("providers.log"),
    );
    wait_ready(&sb).await;

    // --- ClinicPay's database: demo bills, a token, channels registered at the sandboxes -------
    let port = free_port();
    let master = server::secrets::MasterKeys::generate_entry(1);
    let db = fresh_db_url(backend).await;
    let cfg = Config {
        database_url: db.clone(),
        data_dir: dir.join("app"),
        master_keys: Some(master.clone()),
        env: server::config::RunMode::Development,
        sandbox: false,
        seed_demo: false,
        ..Config::default()
    };
    let token;
    {
        let services = server::startup::build_services(&cfg).await.unwrap();
        let today = clinicpay::time::local_date(services.now()).unwrap();
        services.seed_demo(today).await.unwrap();
        let admin = services.store.user_by_username("admin").await.unwrap().unwrap().current();
        token = services
            .create_api_token(&admin, "", "reliability", Role::Cashier, clinicpay::auth::TokenScope::Checkout)
            .await
            .unwrap()
            .0;
        let key = PrivateKey::generate().unwrap();
        let r: Value = http
            .post(format!("{sb}/sandbox/alipay/apps"))
            .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
            .json(&json!({"app_id": "2021000000007777", "app_public_key": key.public_key().to_pem()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let settings = json!({"app_id": "2021000000007777", "gateway_url": format!("{sb}/sandbox/alipay/gateway.do"), "alipay_public_key": r["alipay_public_key"]});
        services
            .create_channel_as(
                &Actor::system("test"),
                ChannelInput {
                    provider: Provider::Alipay,
                    name: "alipay".into(),
                    settings: settings.to_string(),
                    private_key: key.to_pkcs8_pem(),
                    apiv3_key: String::new(),
                    sandbox: true,
                    enabled: true,
                    make_default: true,
                },
            )
            .await
            .unwrap();
        let key = PrivateKey::generate().unwrap();
        let apiv3 = server::crypto::random_alnum(32);
        let serial = "5F0000000000000000000000000000000000AB01";
        let r: Value = http
            .post(format!("{sb}/sandbox/wechatpay/merchants"))
            .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
            .json(&json!({"mchid": "1900007777", "appid": "wx7777777777777777", "merchant_serial_no": serial,
                          "merchant_public_key": key.public_key().to_pem(), "apiv3_key": apiv3}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let settings = json!({"mchid": "1900007777", "appid": "wx7777777777777777", "api_base": format!("{sb}/sandbox/wechatpay"),
            "merchant_serial_no": serial,
            "platform": {"mode": "public_key", "public_key_id": r["public_key_id"], "public_key": r["platform_public_key"]}});
        services
            .create_channel_as(
                &Actor::system("test"),
                ChannelInput {
                    provider: Provider::WechatPay,
                    name: "wechat".into(),
                    settings: settings.to_string(),
                    private_key: key.to_pkcs8_pem(),
                    apiv3_key: apiv3,
                    sandbox: true,
                    enabled: true,
                    make_default: true,
                },
            )
            .await
            .unwrap();
    }

    let app_env = vec![
        ("CLINICPAY_DATABASE_URL", db.clone()),
        ("CLINICPAY_DATA_DIR", dir.join("app").display().to_string()),
        ("CLINICPAY_LISTEN", format!("127.0.0.1:{port}")),
        ("CLINICPAY_MASTER_KEYS", master.clone()),
        ("CLINICPAY_ENV", "development".into()),
        ("CLINICPAY_SANDBOX", "false".into()),
        ("CLINICPAY_SEED_DEMO", "false".into()),
        ("CLINICPAY_REDRIVE_AFTER_SECONDS", "2".into()),
        ("CLINICPAY_LOG", std::env::var("RELIABILITY_LOG").unwrap_or_else(|_| "warn".into())),
    ];
    let (mut app, base) = start(&app_env, &dir.join("app-1.log"));
    wait_ready(&base).await;

    // --- open sessions over the demo patients' unpaid bills ----------------------------------
    let api = |path: String| format!("{base}{path}");
    let patients: Vec<String> = {
        let s = server::startup::build_services(&Config { sandbox: false, ..cfg.clone() }).await.unwrap();
        let mut all = Vec::new();
        for page in 1..=10 {
            all.extend(
                s.store.list_patients(None, page, 20).await.unwrap().items.into_iter().map(|p| p.id.to_string()),
            );
        }
        all
    };
    let mut sessions: Vec<(String, String, &str)> = Vec::new(); // (session, trade, provider)
    for (i, patient) in patients.iter().enumerate().take(SESSIONS) {
        let bills: Value = http
            .get(api(format!("/api/v1/finance/merged-payment/patient/{patient}/unpaid-bills")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<String> = bills["bills"]
            .as_array()
            .unwrap()
            .iter()
            .take(3)
            .map(|b| b["bill_id"].as_str().unwrap().to_string())
            .collect();
        let method = if i % 2 == 0 { "alipay" } else { "wechat" };
        let r = http
            .post(api("/api/v1/finance/merged-payment/create-session".into()))
            .bearer_auth(&token)
            .json(&json!({"patient_id": patient, "bill_ids": ids, "payment_method": method}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        let provider = if method == "alipay" { "alipay" } else { "wechatpay" };
        sessions.push((v["session_id"].as_str().unwrap().into(), v["out_trade_no"].as_str().unwrap().into(), provider));
    }

    // faults: duplicates ×3, reordering, delays, drops (status sync must find those)
    for (i, (_, no, provider)) in sessions.iter().enumerate() {
        let faults = match i % 10 {
            0 | 1 => json!({"duplicate": 3}),
            2 => json!({"reorder": true}),
            3 => json!({"delay_ms": 200_000}),
            4 => json!({"drop": true}),
            5 => json!({"duplicate": 2, "reorder": true}),
            _ => json!({}),
        };
        let r = http
            .post(format!("{sb}/sandbox/{provider}/control/trades/{no}/faults"))
            .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    // --- the patients pay; halfway through, ClinicPay is killed and restarted ---------------------
    let pay = |no: String, provider: &'static str| {
        let http = http.clone();
        let sb = sb.clone();
        async move {
            let r = http
                .post(format!("{sb}/sandbox/{provider}/control/trades/{no}/pay"))
                .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "pay {no}: {}", r.text().await.unwrap());
        }
    };
    let half = sessions.len() / 2;
    let mut tasks = Vec::new();
    for (_, no, p) in &sessions[..half] {
        tasks.push(tokio::spawn(pay(no.clone(), p)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.child.kill().unwrap(); // SIGKILL, mid-stream
    app.child.wait().unwrap();
    // payments keep happening while we are down
    let mut tasks = Vec::new();
    for (_, no, p) in &sessions[half..half + 20] {
        tasks.push(tokio::spawn(pay(no.clone(), p)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (app2, _) = start(&app_env, &dir.join("app-2.log"));
    drop(app);
    let _app2 = app2;
    wait_ready(&base).await;
    let mut tasks = Vec::new();
    for (_, no, p) in &sessions[half + 20..] {
        tasks.push(tokio::spawn(pay(no.clone(), p)));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // --- every paid trade becomes a paid session, exactly once -----------------------------------
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut pending = 0;
        for (id, _, _) in &sessions {
            let v: Value = http
                .get(api(format!("/api/v1/finance/payment-sessions/{id}/status")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["status"] != "paid" {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{backend}: {pending} sessions never became paid");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // let retries and re-drives settle, then check the books
    tokio::time::sleep(Duration::from_secs(4)).await;
    let store =
        server::db::connect(&db, &server::db::DbOptions { max_connections: 2, migrate: false }).await.unwrap().store;
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r = store.ledger_report().await.unwrap();
        if r.unresolved_notifications == 0 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(report.paid_sessions, SESSIONS as i64, "{backend}: {report:?}");
    assert_eq!(report.misallocated_sessions, 0, "{backend}: each paid session allocated once: {report:?}");
    assert_eq!(report.bills_paid_twice, 0, "{backend}: {report:?}");
    assert_eq!(report.bill_payment_mismatches, 0, "{backend}: {report:?}");
    assert_eq!(
        (report.unsealed_entries, report.unbalanced_entries),
        (0, 0),
        "{backend}: the ledger balances: {report:?}"
    );
    assert!(report.clearing_matches_receipts, "{backend}: no money unaccounted for: {report:?}");
    assert_eq!(report.unresolved_notifications, 0, "{backend}: every stored notification resolved: {report:?}");
    let clearing: i64 = report.balances.iter().filter(|(a, _)| a.starts_with("1012")).map(|(_, f)| f).sum();
    let mut expected = 0i64;
    for (id, _, _) in &sessions {
        expected += store.session(&id.parse().unwrap()).await.unwrap().unwrap().total.fen();
    }
    assert_eq!(clearing, expected, "{backend}: the clearing accounts hold exactly what was paid");
    assert!(store.list_exceptions(false, 10).await.unwrap().is_empty(), "{backend}: no late or odd money");
    eprintln!("reliability[{backend}]: {SESSIONS} sessions paid once each across a SIGKILL; {report:?}");
}
