//! Real payments under a junk flood (issue 13 #7): genuine signed notifications posted at a
//! fixed arrival rate (open loop), first alone — the ceiling — then while 64 clients post
//! unsigned junk to the same endpoint from the same address as fast as they can. Prints the
//! real notifications' latency both ways, the junk's rate and how it was answered, and how many
//! junk rows the database had to take.

use super::*;

/// Posts `notes` at `rate` per second, each in its own task at its own time; returns the
/// latencies of the acknowledged ones, sorted, and how many failed.
async fn open_loop(c: &reqwest::Client, base: &str, notes: &Notes, rate: u64) -> (Vec<Duration>, usize) {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(notes.len());
    for (i, (h, b)) in notes.iter().cloned().enumerate() {
        let (c, base) = (c.clone(), base.to_string());
        let at = started + Duration::from_micros(i as u64 * 1_000_000 / rate.max(1));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let t = Instant::now();
            let ok = post_alipay_notification(&c, &base, &h, b).await;
            (ok, t.elapsed())
        }));
    }
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok((true, d)) => lat.push(d),
            _ => failed += 1,
        }
    }
    lat.sort();
    (lat, failed)
}

pub(crate) async fn bench_flood(kind: &str) -> Result<()> {
    let n: usize = arg("--sessions").map(|s| s.parse()).transpose()?.unwrap_or(1_000);
    let rate: u64 = arg("--rate").map(|s| s.parse()).transpose()?.unwrap_or(200);
    let (server, c, store, token) = server_with_token(kind).await?;
    println!(
        "flood on {kind}: {n} genuine Alipay notifications at {rate}/s (open loop), alone and beside 64 junk clients"
    );
    let alone = seed_synthetic(&store, 40, n, 3).await?;
    let (alone, _) = paid_notifications(&server, &c, &token, alone).await;
    let flooded = seed_synthetic(&store, 41, n, 3).await?;
    let (flooded, _) = paid_notifications(&server, &c, &token, flooded).await;
    let rows = |store: Arc<dyn clinicpay::ports::Store>| async move {
        store.list_notifications(1_000_000).await.map(|v| v.len()).unwrap_or(0)
    };

    // the ceiling: the same arrivals with nothing else going on
    let (lat, failed) = open_loop(&c, &server.base, &alone, rate).await;
    println!(
        "  alone:       {:>5} acknowledged  p50 {:>7.2} ms  p99 {:>7.2} ms  failed {failed}",
        lat.len(),
        pct(&lat, 50),
        pct(&lat, 99)
    );
    let (p50_alone, p99_alone) = (pct(&lat, 50), pct(&lat, 99));

    // the flood: junk from the same address, as fast as 64 clients can post it
    let before = rows(store.clone()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let mut junk = Vec::new();
    let junk_started = Instant::now();
    for w in 0..64 {
        let (c, base, stop, answers) = (c.clone(), server.base.clone(), stop.clone(), answers.clone());
        junk.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let r = c
                    .post(format!("{base}/notify/alipay"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("%00=a&%00=b&w{w}n{i}=%00&sign=AAAA&app_id=2021000000000000"))
                    .send()
                    .await;
                let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
                *answers.lock().unwrap().entry(status).or_insert(0) += 1;
            }
        }));
    }
    let (lat, failed) = open_loop(&c, &server.base, &flooded, rate).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for j in junk {
        let _ = j.await;
    }
    let junk_secs = junk_started.elapsed().as_secs_f64();
    let answers = answers.lock().unwrap().clone();
    let junk_total: usize = answers.values().sum();
    let stored = rows(store.clone()).await.saturating_sub(before + lat.len());
    println!(
        "  under flood: {:>5} acknowledged  p50 {:>7.2} ms  p99 {:>7.2} ms  failed {failed}   ({:.2}× and {:.2}× the ceiling)",
        lat.len(),
        pct(&lat, 50),
        pct(&lat, 99),
        pct(&lat, 50) / p50_alone.max(0.001),
        pct(&lat, 99) / p99_alone.max(0.001)
    );
    println!(
        "  junk: {junk_total} requests in {junk_secs:.1}s = {:.0}/s, answered {answers:?}; junk rows stored {stored}",
        junk_total as f64 / junk_secs
    );
    let report = store.ledger_report().await?;
    println!(
        "  books: paid sessions {}, misallocated {}, bills paid twice {}, unbalanced entries {}",
        report.paid_sessions, report.misallocated_sessions, report.bills_paid_twice, report.unbalanced_entries
    );
    Ok(())
}
