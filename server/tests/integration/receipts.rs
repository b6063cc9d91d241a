//! Receipt numbers (issue 9 #8, PRODUCT.md F4) on both backends: every payment's receipt is
//! numbered per year without gaps (`R2026-00000001`), also when payments are booked at the same
//! time; a refund that goes back gets its red receipt (`H…`) linked to the original; the
//! database keeps numbers from being changed, reused or counted back.

use crate::checkout_http::{trade, Api};
use crate::helpers::{backends, TestDb};
use crate::intake::{bill, His};
use crate::refunds::{ask, scene, settle};
use clinicpay::auth::Role;
use clinicpay::money::Money;
use clinicpay::ports::RefundProgress;
use clinicpay::receipts::{parse_receipt_number, ReceiptSeries};
use clinicpay::refunds::{BillRefundStatus, RefundPart};
use server::db::sql::sql;
use server::sandbox::SandboxControl;
use std::collections::BTreeMap;

/// Every receipt number issued, by (series, year) → numbers; and the counters.
async fn numbers(db: &TestDb) -> (BTreeMap<(ReceiptSeries, i32), Vec<u64>>, BTreeMap<(ReceiptSeries, i32), u64>) {
    let mut issued: BTreeMap<(ReceiptSeries, i32), Vec<u64>> = BTreeMap::new();
    let rows: Vec<(String,)> = sql("SELECT receipt_no FROM payments \
         UNION ALL SELECT red_receipt_no FROM bill_refunds WHERE red_receipt_no IS NOT NULL")
    .fetch_all(db.store.db())
    .await
    .unwrap();
    for (no,) in rows {
        let (series, year, n) = parse_receipt_number(&no).unwrap_or_else(|| panic!("{no}: not a numbered receipt"));
        issued.entry((series, year)).or_default().push(n);
    }
    let counters: Vec<(String, i64, i64)> =
        sql("SELECT series, year, last_no FROM receipt_counters").fetch_all(db.store.db()).await.unwrap();
    let counters =
        counters.into_iter().map(|(s, y, n)| ((ReceiptSeries::parse(&s).unwrap(), y as i32), n as u64)).collect();
    (issued, counters)
}

/// 1, 2, 3, … up to the counter: none missing, none twice, none beyond it.
async fn assert_gapless(db: &TestDb) {
    let (issued, counters) = numbers(db).await;
    assert_eq!(issued.keys().collect::<Vec<_>>(), counters.keys().collect::<Vec<_>>(), "{}", db.backend);
    for (k, mut ns) in issued {
        ns.sort_unstable();
        let want: Vec<u64> = (1..=counters[&k]).collect();
        assert_eq!(ns, want, "{}: {k:?} has gaps or repeats", db.backend);
    }
}

#[tokio::test]
async fn receipts_are_numbered_per_year_without_gaps_and_refunds_get_red_receipts() {
    for backend in backends() {
        let (app, db, (cashier, finance, finance2, _), ids) =
            scene(backend, &["HIS-RC-1", "HIS-RC-2", "HIS-RC-3"], "alipay").await;
        let s = &app.services;
        // the demo history and this payment: every receipt is in a series, without gaps
        assert_gapless(&db).await;
        let mine: Vec<(String,)> = sql(format!(
            "SELECT receipt_no FROM payments WHERE bill_id IN ('{}') ORDER BY receipt_no",
            ids.join("','")
        ))
        .fetch_all(db.store.db())
        .await
        .unwrap();
        let mine: Vec<_> = mine.into_iter().map(|(r,)| parse_receipt_number(&r).unwrap()).collect();
        assert_eq!(mine.len(), 3);
        assert!(mine
            .iter()
            .all(|(s, y, _)| *s == ReceiptSeries::Payment && *y == clinicpay::receipts::receipt_year(s_now(&app))));
        assert_eq!(mine[1].2, mine[0].2 + 1, "one QR's bills take consecutive numbers");
        assert_eq!(mine[2].2, mine[1].2 + 1);

        // payments booked at the same time still take one number each, none lost
        let his = His::new(&app).await;
        let pid = db.scalar_text(&format!("SELECT patient_id FROM bills WHERE id = '{}'", ids[0])).await;
        let counter = Api::new(&app, Role::Cashier).await;
        let mut sessions = Vec::new();
        for i in 0..8 {
            let (st, v) = his.post("/api/v1/intake/bills", bill(&format!("HIS-RC-C{i}"))).await;
            assert_eq!(st, 201, "{v}");
            let b = v["bill"]["id"].as_str().unwrap().to_string();
            sessions.push(counter.open_session(&pid, &[b], if i % 2 == 0 { "alipay" } else { "wechatpay" }).await);
        }
        let sb = app.sandboxes.clone().unwrap();
        let pays = sessions.iter().enumerate().map(|(i, sess)| {
            let sb = sb.clone();
            let t = trade(sess);
            async move {
                if i % 2 == 0 {
                    sb.alipay.pay(&t).await
                } else {
                    sb.wechatpay.pay(&t).await
                }
            }
        });
        for r in futures::future::join_all(pays).await {
            r.unwrap();
        }
        for sess in &sessions {
            counter.wait_status(sess["session_id"].as_str().unwrap(), "paid").await;
        }
        assert_gapless(&db).await;

        // a refund through the channel: its red receipt names the receipt it reverses
        let r = s
            .request_refund(
                &finance,
                "127.0.0.1",
                &ask(&ids[0], RefundPart::Amount(Money::parse("5.00").unwrap()), "price_correction", ""),
            )
            .await
            .unwrap()
            .refund;
        assert_eq!(r.red_receipt_no, None, "no money went back yet");
        assert_eq!(settle(s, &db, r.id.as_str()).await, BillRefundStatus::Succeeded);
        let v = s.refund(&finance, r.id.as_str()).await.unwrap();
        let red = v.red_receipt_no.clone().expect("a red receipt");
        let (series, _, first_red) = parse_receipt_number(&red).unwrap();
        assert_eq!(series, ReceiptSeries::Refund);
        let original = db.scalar_text(&format!("SELECT receipt_no FROM payments WHERE bill_id = '{}'", ids[0])).await;
        assert_eq!(v.receipt_no, original);
        // the HIS is told the red receipt with the refund
        let payload = db
            .scalar_text(&format!(
                "SELECT payload FROM outbox WHERE topic = 'bill.partially_refunded' AND aggregate_id = '{}'",
                ids[0]
            ))
            .await;
        assert!(payload.contains(&red) && payload.contains(&original), "{payload}");
        // a provider's repeated success changes nothing: still one red receipt
        let ok = RefundProgress::Succeeded { provider_refund_id: Some("2026120322001".into()) };
        s.store.refund_progress(&r.id, &ok, s.now(), s.ids.as_ref()).await.unwrap();
        assert_eq!(s.refund(&finance, r.id.as_str()).await.unwrap().red_receipt_no.as_deref(), Some(red.as_str()));

        // a refund paid back by hand gets the next red number; a refund never paid back gets none
        let r2 = s
            .request_refund(
                &finance,
                "127.0.0.1",
                &ask(&ids[1], RefundPart::Amount(Money::parse("3.00").unwrap()), "other", "现金"),
            )
            .await
            .unwrap()
            .refund;
        let failed = RefundProgress::Failed { error: "ACQ.TRADE_STATUS_ERROR".into() };
        s.store.refund_progress(&r2.id, &failed, s.now(), s.ids.as_ref()).await.unwrap();
        assert_eq!(s.refund(&finance, r2.id.as_str()).await.unwrap().red_receipt_no, None);
        let v2 = s.manual_refund(&finance2, "127.0.0.1", r2.id.as_str(), "现金退还").await.unwrap();
        let (_, _, second_red) = parse_receipt_number(v2.red_receipt_no.as_deref().unwrap()).unwrap();
        assert_eq!(second_red, first_red + 1, "{backend}");
        assert_gapless(&db).await;

        // the database keeps the numbers: not changed, not reused, the counter never goes back
        let pay_id = db.scalar_text(&format!("SELECT id FROM payments WHERE bill_id = '{}'", ids[2])).await;
        let refusals = [
            format!("UPDATE payments SET receipt_no = 'R2026-99999999' WHERE id = '{pay_id}'"),
            format!("UPDATE bill_refunds SET red_receipt_no = 'H2026-99999999' WHERE id = '{}'", r.id),
            format!("UPDATE bill_refunds SET red_receipt_no = NULL WHERE id = '{}'", r.id),
            "UPDATE receipt_counters SET last_no = last_no - 1".to_string(),
            "DELETE FROM receipt_counters".to_string(),
        ];
        for q in &refusals {
            assert!(db.exec(q).await.is_err(), "{backend}: {q} was allowed");
        }
        // a red receipt on a refund that did not go back is refused by the database
        let waiting = s
            .request_refund(
                &cashier,
                "127.0.0.1",
                &ask(&ids[2], RefundPart::Amount(Money::parse("1.00").unwrap()), "other", "x"),
            )
            .await
            .unwrap()
            .refund;
        assert_eq!(waiting.status, BillRefundStatus::Requested);
        let q = format!("UPDATE bill_refunds SET red_receipt_no = 'H2026-99999997' WHERE id = '{}'", waiting.id);
        assert!(db.exec(&q).await.is_err(), "{backend}: {q} was allowed");
        assert_gapless(&db).await;

        // `clinicpay verify` checks the same: clean now, and a counter moved past its receipts is a gap
        assert_eq!(s.store.ledger_report().await.unwrap().receipt_number_gaps, 0, "{backend}");
        assert!(s.store.ledger_report().await.unwrap().consistent(), "{backend}");
        db.exec("UPDATE receipt_counters SET last_no = last_no + 1 WHERE series = 'H'").await.unwrap();
        let report = s.store.ledger_report().await.unwrap();
        assert_eq!(report.receipt_number_gaps, 1, "{backend}");
        assert!(!report.consistent());
    }
}

fn s_now(app: &crate::helpers::TestApp) -> i64 {
    app.services.now()
}
