//! Refunds (issue 9): N bills paid through the Alipay sandbox, then each refunded in part the
//! way the hospital does it — the HIS asks over REST (`POST /api/payment/refunds`, 16 clients),
//! a finance officer approves in the queue (the page's server function, 16 clients), and the
//! server's refund worker sends each to the sandbox and books the confirmation. Prints each
//! stage's rate and latency beside the ceiling of the same clients reading a refund back.

use super::*;

pub(crate) async fn bench_refunds(kind: &str) -> Result<()> {
    let n: usize = arg("--bills").map(|s| s.parse()).transpose()?.unwrap_or(500);
    let (server, c, store, _services, token) = server_with_scope(kind, clinicpay::auth::TokenScope::Checkout).await?;
    let base = server.base.clone();
    println!("refunds on {kind}: {n} paid bills, each refunded ¥10.00: REST request → finance approval → provider confirmation");

    // paid bills: sessions through the API, the sandbox's signed notifications posted back
    let patients = seed_synthetic(&store, 77, n, 1).await?;
    let bills: Vec<String> = patients.iter().flat_map(|(_, b)| b.clone()).collect();
    let (notes, _) = paid_notifications(&server, &c, &token, patients).await;
    let notes = Arc::new(notes);
    let (cc, bb, nn) = (c.clone(), base.clone(), notes.clone());
    load(32, notes.len(), Duration::from_secs(300), move |i| {
        let (c, base, nn) = (cc.clone(), bb.clone(), nn.clone());
        async move { post_alipay_notification(&c, &base, &nn[i].0, nn[i].1.clone()).await }
    })
    .await;
    let paid = store.list_bills(&paid_query()).await?.total;
    println!("  paid bills: {paid}");

    // 1. the HIS asks (a cashier-role token: each needs one finance approval)
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let bills = Arc::new(bills);
    let (cc, bb, tt, bl, ii) = (c.clone(), base.clone(), token.clone(), bills.clone(), ids.clone());
    let (lat, wall, errors) = load(16, bills.len(), Duration::from_secs(300), move |i| {
        let (c, base, token, bl, ii) = (cc.clone(), bb.clone(), tt.clone(), bl.clone(), ii.clone());
        async move {
            let r = c
                .post(format!("{base}/api/payment/refunds"))
                .bearer_auth(&token)
                .header("idempotency-key", format!("bench-{i}"))
                .json(&json!({"order_id": bl[i], "refund_amount": "10.00", "refund_reason": "压测退药", "reason_code": "drug_returned"}))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 201 => match r.json::<Value>().await {
                    Ok(v) => {
                        ii.lock().unwrap().push(v["refund_id"].as_str().unwrap_or_default().to_string());
                        true
                    }
                    Err(e) => note_error(Err(e.to_string())),
                },
                Ok(r) => note_error(Err(format!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default()))),
                Err(e) => note_error(Err(e.to_string())),
            }
        }
    })
    .await;
    report("POST /api/payment/refunds (requested)", &lat, wall, errors);
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().unwrap().clone());

    // the ceiling: the same clients reading a refund back
    let (cc, bb, tt, ii) = (c.clone(), base.clone(), token.clone(), ids.clone());
    let (lat, wall, errors) = load(16, ids.len(), Duration::from_secs(120), move |i| {
        let (c, base, token, ii) = (cc.clone(), bb.clone(), tt.clone(), ii.clone());
        async move {
            let r = c.get(format!("{base}/api/payment/refunds/{}", ii[i])).bearer_auth(&token).send().await;
            matches!(r, Ok(r) if r.status() == 200)
        }
    })
    .await;
    report("ceiling: GET /api/payment/refunds/{id}", &lat, wall, errors);

    // 2. finance approves each in the queue (the page's server function, as the browser calls it)
    let cookie = login(&c, &base, "finance", "demo-finance").await?;
    let approve_start = Instant::now();
    let (cc, bb, ii, ck) = (c.clone(), base.clone(), ids.clone(), cookie.clone());
    let (lat, wall, errors) = load(16, ids.len(), Duration::from_secs(300), move |i| {
        let (c, base, ii, ck) = (cc.clone(), bb.clone(), ii.clone(), ck.clone());
        async move {
            let r = c
                .post(format!("{base}/api/fn/refunds/act"))
                .header("origin", &base)
                .header("accept", "application/json")
                .header("cookie", &ck)
                .form(&[("refund_id", ii[i].as_str()), ("action", "approve"), ("seen", "requested"), ("note", "")])
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => true,
                Ok(r) => note_error(Err(format!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default()))),
                Err(e) => note_error(Err(e.to_string())),
            }
        }
    })
    .await;
    report("approve (server function, → submitted)", &lat, wall, errors);

    // 3. the server's refund worker: sent to the sandbox, confirmed, booked (bounded wait)
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = 0;
    while Instant::now() < deadline {
        done = count_succeeded(&store).await?;
        if done >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let confirm = approve_start.elapsed();
    println!(
        "  {:<44} {:>6} refunds in {:>6.2}s = {:>8.1}/s (from the first approval; missing {})",
        "approved → confirmed by the provider, booked",
        done,
        confirm.as_secs_f64(),
        done as f64 / confirm.as_secs_f64().max(1e-9),
        ids.len().saturating_sub(done),
    );
    println!("  server RSS {} MB", server.rss_kb() / 1024);
    Ok(())
}

fn paid_query() -> clinicpay::views::BillQuery {
    clinicpay::views::BillQuery::parse(&clinicpay::views::BillParams {
        status: Some("paid".into()),
        page_size: Some("5".into()),
        ..Default::default()
    })
    .expect("a valid query")
}

/// Bills that show a refund (each bench bill gets one, of part of it).
async fn count_succeeded(store: &Arc<dyn clinicpay::ports::Store>) -> Result<usize> {
    let q = clinicpay::views::BillQuery::parse(&clinicpay::views::BillParams {
        status: Some("partially_refunded".into()),
        page_size: Some("5".into()),
        ..Default::default()
    })
    .expect("a valid query");
    Ok(store.list_bills(&q).await?.total as usize)
}
