//! Bill intake (issue 15): bills of 5 lines posted by the HIS one per call (16 clients, closed
//! loop) and 200 per batch call, beside the ceiling of the same clients reading a bill back
//! through the same authenticated API (HTTP, token check and one indexed read, no write); and
//! the time from the HIS's POST to the `bills` event on an open charge screen's stream.

use super::*;

fn bill(i: usize, patients: usize) -> Value {
    json!({
        "bill_id": format!("BENCH-{i}"),
        "patient_id": format!("BP-{}", i % patients),
        "department": "BENCH",
        "doctor": "bench",
        "items": (0..5).map(|k| json!({"code": format!("BI-{k}"), "quantity": 1 + (i + k) % 3})).collect::<Vec<_>>(),
    })
}

/// POSTs to the intake API; the answer when it is 200 or 201.
pub(crate) async fn post(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &Value,
) -> std::result::Result<Value, String> {
    let r = c
        .post(format!("{base}/api/v1/intake/{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let s = r.status().as_u16();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if s == 200 || s == 201 {
        Ok(v)
    } else {
        Err(format!("{s}: {v}"))
    }
}

pub(crate) async fn bench_intake(kind: &str) -> Result<()> {
    let n: usize = arg("--bills").map(|s| s.parse()).transpose()?.unwrap_or(2_000);
    let (server, c, _store, services, token) = server_with_scope(kind, clinicpay::auth::TokenScope::Intake).await?;
    let base = server.base.clone();
    println!("intake on {kind}: bills of 5 lines; {n} one per call (16 clients), {n} in batches of 200; push-to-screen latency");
    post(&c, &base, &token, "departments", &json!({"departments": [{"code": "BENCH", "name_zh": "压测科"}]}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let items: Vec<Value> = (0..5)
        .map(|k| json!({"code": format!("BI-{k}"), "name": format!("项目{k}"), "category": "lab", "unit": "次", "unit_price": format!("{}.50", 10 + k)}))
        .collect();
    post(&c, &base, &token, "charge-items", &json!({ "items": items })).await.map_err(|e| anyhow::anyhow!(e))?;
    let patients = 200;
    for p in 0..patients {
        let body =
            json!({"patient_id": format!("BP-{p}"), "mrn": format!("{}", 900000 + p), "name": format!("压测{p}")});
        post(&c, &base, &token, "patients", &body).await.map_err(|e| anyhow::anyhow!(e))?;
    }

    // one bill per call
    let (cc, bb, tt) = (c.clone(), base.clone(), token.clone());
    let (lat, wall, errors) = load(16, n, Duration::from_secs(120), move |i| {
        let (c, base, token) = (cc.clone(), bb.clone(), tt.clone());
        async move { note_error(post(&c, &base, &token, "bills", &bill(i, patients)).await.map(|_| ())) }
    })
    .await;
    let single_rate = (lat.len() - errors) as f64 / wall.as_secs_f64();
    report("POST /api/v1/intake/bills (one per call)", &lat, wall, errors);

    // the ceiling: the same clients reading a bill back (no write)
    let (cc, bb, tt) = (c.clone(), base.clone(), token.clone());
    let (rlat, rwall, rerrors) = load(16, n, Duration::from_secs(60), move |i| {
        let (c, base, token) = (cc.clone(), bb.clone(), tt.clone());
        async move {
            let r =
                c.get(format!("{base}/api/v1/intake/bills/BENCH-{}", i % n.max(1))).bearer_auth(&token).send().await;
            note_error(match r {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(format!("{}", r.status())),
                Err(e) => Err(e.to_string()),
            })
        }
    })
    .await;
    let read_rate = (rlat.len() - rerrors) as f64 / rwall.as_secs_f64();
    report("ceiling: GET /api/v1/intake/bills/{id}", &rlat, rwall, rerrors);

    // batches of 200
    let batches = n.div_ceil(200);
    let (cc, bb, tt) = (c.clone(), base.clone(), token.clone());
    let (blat, bwall, berrors) = load(2, batches, Duration::from_secs(120), move |b| {
        let (c, base, token) = (cc.clone(), bb.clone(), tt.clone());
        async move {
            let bills: Vec<Value> = (0..200).map(|k| bill(n + b * 200 + k, patients)).collect();
            note_error(match post(&c, &base, &token, "bills/batch", &json!({ "bills": bills })).await {
                Ok(v) if v["created"] == 200 => Ok(()),
                Ok(v) => Err(format!("batch not all created: {}", v["refused"])),
                Err(e) => Err(e),
            })
        }
    })
    .await;
    let batch_bills = (blat.len() - berrors) * 200;
    let batch_rate = batch_bills as f64 / bwall.as_secs_f64();
    println!(
        "  {:<44} {:>6} bills in {:>6.2}s = {:>8.1}/s   p50 {:>7.2} ms   p99 {:>7.2} ms a batch   errors {berrors}",
        "POST /api/v1/intake/bills/batch (200 a call)",
        batch_bills,
        bwall.as_secs_f64(),
        batch_rate,
        pct(&blat, 50),
        pct(&blat, 99)
    );

    // push to screen: a charge screen's event stream for one patient, the HIS posting bills
    let cookie = login(&c, &base, "cashier", "demo-cashier").await?;
    let pid = services
        .store
        .list_patients(Some("900007"), 1, 1)
        .await?
        .items
        .first()
        .map(|p| p.id.to_string())
        .context("bench patient")?;
    let mut stream =
        c.get(format!("{base}/api/v1/finance/patients/{pid}/events")).header("cookie", &cookie).send().await?;
    let mut push = Vec::new();
    let mut lost = 0;
    for k in 0..200 {
        let body = json!({"bill_id": format!("PUSH-{k}"), "patient_id": "BP-7", "department": "BENCH",
                          "items": [{"code": "BI-0", "quantity": 1}]});
        let t = Instant::now();
        post(&c, &base, &token, "bills", &body).await.map_err(|e| anyhow::anyhow!(e))?;
        // the event arrives once the commit is done; wait for it (bounded)
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(chunk)) = stream.chunk().await {
                if String::from_utf8_lossy(&chunk).contains("event: bills") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if got {
            push.push(t.elapsed());
        } else {
            lost += 1;
        }
    }
    push.sort();
    println!(
        "  {:<44} {:>6} bills   p50 {:>7.2} ms   p99 {:>7.2} ms   never seen {lost}",
        "HIS POST → `bills` event on the screen",
        push.len(),
        pct(&push, 50),
        pct(&push, 99)
    );
    println!(
        "  one per call = {:.0}% of the read ceiling; batches = {:.1}× one per call",
        100.0 * single_rate / read_rate.max(1e-9),
        batch_rate / single_rate.max(1e-9)
    );
    Ok(())
}
