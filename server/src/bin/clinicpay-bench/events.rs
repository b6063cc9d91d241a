//! Events back to the HIS (issue 15 #2): the HIS voids bills (16 clients, closed loop) and a
//! receiver on loopback counts the signed `bill.voided` events as they arrive. Prints the time
//! from each void's POST to its event at the receiver (p50 / p99: the outbox worker's round, the
//! delivery, the signature) and the delivery rate, beside the ceiling of the voids themselves
//! (events cannot outrun the changes they describe).

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

type Arrivals = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

pub(crate) async fn bench_events(kind: &str) -> Result<()> {
    let n: usize = arg("--bills").map(|s| s.parse()).transpose()?.unwrap_or(1_000);
    let (server, c, store, services, token) = server_with_scope(kind, clinicpay::auth::TokenScope::Intake).await?;
    let base = server.base.clone();
    println!("events on {kind}: {n} bills voided by the HIS (16 clients); signed bill.voided events to a receiver on loopback");

    // the receiver: the arrival time of each bill's event, and whether its signature held
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let secret_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (a2, s2) = (arrivals.clone(), secret_cell.clone());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let (a, s) = (a2.clone(), s2.clone());
            async move {
                let at = Instant::now();
                let sig = h.get("clinicpay-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
                let now_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let ok = clinicpay::webhooks::verify_signature(&s.lock().unwrap(), sig, body.as_bytes(), now_s);
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(b) = v["data"]["bill"]["bill_id"].as_str() {
                    a.lock().unwrap().entry(b.to_string()).or_insert((at, ok));
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let admin = store.user_by_username("admin").await?.context("admin")?.current();
    let (secret, _) = services
        .create_endpoint(
            &admin,
            "",
            clinicpay::services::webhooks::EndpointInput {
                name: "bench HIS".into(),
                url: format!("http://{addr}/events"),
                topics: vec!["bill.voided".into()],
                enabled: true,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    *secret_cell.lock().unwrap() = secret;

    post(&c, &base, &token, "departments", &json!({"departments": [{"code": "BENCH", "name_zh": "压测科"}]}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    post(
        &c,
        &base,
        &token,
        "charge-items",
        &json!({"items": [{"code": "BE-0", "name": "项目", "category": "lab", "unit": "次", "unit_price": "10.00"}]}),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    post(&c, &base, &token, "patients", &json!({"patient_id": "EP-1", "mrn": "910001", "name": "压测"}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let bills: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"bill_id": format!("EV-{i}"), "patient_id": "EP-1", "department": "BENCH", "items": [{"code": "BE-0", "quantity": 1}]}))
            .collect();
        post(&c, &base, &token, "bills/batch", &json!({ "bills": bills })).await.map_err(|e| anyhow::anyhow!(e))?;
    }

    // void them all; note when each void was sent
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let (cc, bb, tt, ss) = (c.clone(), base.clone(), token.clone(), sent.clone());
    let started = Instant::now();
    let (lat, wall, errors) = load(16, n, Duration::from_secs(120), move |i| {
        let (c, base, token, sent) = (cc.clone(), bb.clone(), tt.clone(), ss.clone());
        async move {
            let id = format!("EV-{i}");
            sent.lock().unwrap().insert(id.clone(), Instant::now());
            note_error(
                post(&c, &base, &token, &format!("bills/{id}/void"), &json!({"reason": "压测作废"})).await.map(|_| ()),
            )
        }
    })
    .await;
    report("ceiling: POST …/bills/{id}/void", &lat, wall, errors);

    // wait for the events (bounded)
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < n - errors && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = arrivals.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    let last = got.values().map(|(t, _)| *t).max().unwrap_or(started);
    let mut lag: Vec<Duration> =
        got.iter().filter_map(|(b, (t, _))| sent.get(b).map(|s| t.saturating_duration_since(*s))).collect();
    lag.sort();
    let bad_sigs = got.values().filter(|(_, ok)| !ok).count();
    let span = last.saturating_duration_since(started).as_secs_f64();
    println!(
        "  {:<44} {:>6} events in {:>6.2}s = {:>8.1}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   missing {}   bad signatures {bad_sigs}",
        "void POST → signed event at the HIS",
        got.len(),
        span,
        got.len() as f64 / span.max(1e-9),
        pct(&lag, 50),
        pct(&lag, 99),
        (n - errors).saturating_sub(got.len()),
    );

    // one at a time, as a counter makes them (5 a second): the lag of a single event
    let mut single = Vec::new();
    for k in 0..50 {
        let id = format!("EV-{}", n + k);
        let body = json!({"bill_id": id, "patient_id": "EP-1", "department": "BENCH", "items": [{"code": "BE-0", "quantity": 1}]});
        post(&c, &base, &token, "bills", &body).await.map_err(|e| anyhow::anyhow!(e))?;
        let t = Instant::now();
        post(&c, &base, &token, &format!("bills/{id}/void"), &json!({"reason": "压测作废"}))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let deadline = t + Duration::from_secs(10);
        loop {
            if let Some((at, _)) = arrivals.lock().unwrap().get(&id) {
                single.push(at.saturating_duration_since(t));
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    single.sort();
    println!(
        "  {:<44} {:>6} events                      p50 {:>7.2} ms   p99 {:>7.2} ms   missing {}",
        "one void at a time → its event at the HIS",
        single.len(),
        pct(&single, 50),
        pct(&single, 99),
        50 - single.len(),
    );
    let counts = store.delivery_counts().await?;
    println!("  deliveries by status: {counts:?}");
    Ok(())
}
