//! Bills list and dashboard under 50 clients.

use super::*;

pub(crate) async fn bench_pages(kind: &str) -> Result<()> {
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
