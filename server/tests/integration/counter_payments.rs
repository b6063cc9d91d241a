//! Counter payments (issue 9 #5, PRODUCT.md C9) on both backends: cash with the amount tendered
//! and the change, a POS slip with its reference number; both pay the chosen bills once through
//! the payment rules (receipts, ledger, outbox), count on the cashier's shift, and a refund of a
//! counter payment goes back at the counter when it is approved. Refusals change nothing, and
//! the database holds what was recorded even against direct writes.

use crate::helpers::{backends, TestDb};
use crate::intake::{bill, His};
use crate::refunds::{ask, scene};
use clinicpay::checkout::counter::CounterTender;
use clinicpay::checkout::CounterRequest;
use clinicpay::money::Money;
use clinicpay::payments::{Provider, SessionStatus};
use clinicpay::refunds::{BillRefundStatus, RefundPart};

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

async fn new_bill(his: &His, db: &TestDb, his_id: &str) -> (String, String) {
    let (st, v) = his.post("/api/v1/intake/bills", bill(his_id)).await;
    assert_eq!(st, 201, "{v}");
    let b = v["bill"]["id"].as_str().unwrap().to_string();
    let pid = db.scalar_text(&format!("SELECT patient_id FROM bills WHERE id = '{b}'")).await;
    (b, pid)
}

async fn written(db: &TestDb) -> Vec<i64> {
    let mut out = Vec::new();
    for t in ["checkout_sessions", "payments", "journal_entries", "counter_payments", "audit_log", "outbox"] {
        out.push(db.scalar_i64(&format!("SELECT COUNT(*) FROM {t}")).await);
    }
    out
}

async fn balance(db: &TestDb, code: &str) -> i64 {
    db.scalar_i64(&format!(
        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM postings WHERE account_code = '{code}'"
    ))
    .await
}

#[tokio::test]
async fn cash_and_pos_slips_pay_bills_once_and_the_drawer_counts_them() {
    for backend in backends() {
        let (app, db, (cashier, finance, _, admin), _) = scene(backend, &["HIS-CP-0"], "alipay").await;
        let s = &app.services;
        let his = His::new(&app).await;
        let ip = "10.0.0.7";
        let shift = s.open_shift(&cashier, ip, "500.00").await.unwrap();
        let (b1, pid) = new_bill(&his, &db, "HIS-CP-1").await;
        let (b2, _) = new_bill(&his, &db, "HIS-CP-2").await;
        let both = CounterRequest::parse(&pid, &[b1.clone(), b2.clone()]).unwrap();
        let (cash0, pos0) = (balance(&db, "1001").await, balance(&db, "1012.04").await);

        // refusals, each with its code, and nothing written
        let before = written(&db).await;
        let e = s.record_counter_payment(&cashier, ip, both.clone(), CounterTender::cash("100").unwrap(), None).await;
        assert_eq!(e.unwrap_err().code(), "tendered_too_little", "{backend}");
        let e = s.record_counter_payment(&cashier, ip, both.clone(), CounterTender::cash("50000").unwrap(), None).await;
        assert_eq!(e.unwrap_err().code(), "tendered_implausible", "{backend}");
        let e = s.record_counter_payment(&admin, ip, both.clone(), CounterTender::cash("200").unwrap(), None).await;
        assert_eq!(e.unwrap_err().code(), "forbidden", "{backend}");
        let other = CounterRequest::parse(&pid, &[clinicpay::ids::BillId::from_u128(9).to_string()]).unwrap();
        let e = s.record_counter_payment(&cashier, ip, other, CounterTender::cash("200").unwrap(), None).await;
        assert_eq!(e.unwrap_err().code(), "unknown_bill", "{backend}");
        assert_eq!(written(&db).await, before, "{backend}: a refusal writes nothing");
        assert_eq!(db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{b1}'")).await, "unpaid");

        // ¥200 handed over for ¥137.20: paid, ¥62.80 change, on the open shift
        let tender = CounterTender::cash("200").unwrap();
        let (v, rec) =
            s.record_counter_payment(&cashier, ip, both.clone(), tender.clone(), Some("counter-k-1")).await.unwrap();
        assert_eq!((v.status, v.provider, v.total), (SessionStatus::Paid, Provider::Cash, m("137.20")), "{backend}");
        assert_eq!((rec.tendered, rec.change), (Some(m("200")), Some(m("62.80"))));
        assert_eq!(rec.shift_id.as_deref(), Some(shift.id.as_str()));
        assert_eq!(v.counter.as_ref(), Some(&rec), "{backend}: the session carries what was recorded");
        assert!(v.payables.iter().all(|p| p.receipt_no.as_deref().is_some_and(|r| r.starts_with('R'))), "{v:?}");
        for b in [&b1, &b2] {
            assert_eq!(db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{b}'")).await, "paid");
        }
        assert_eq!(balance(&db, "1001").await - cash0, 13720, "{backend}: the drawer's account took the cash");
        let after = written(&db).await;
        // the same press again (a double click, a retry after a lost answer): the same payment
        let (again, _) =
            s.record_counter_payment(&cashier, ip, both.clone(), tender.clone(), Some("counter-k-1")).await.unwrap();
        assert_eq!(again.id, v.id);
        assert_eq!(written(&db).await, after, "{backend}: a retry writes nothing");
        // the same key for another tender is a misuse; the same bills again are paid already
        let e = s.record_counter_payment(
            &cashier,
            ip,
            both.clone(),
            CounterTender::cash("300").unwrap(),
            Some("counter-k-1"),
        );
        assert_eq!(e.await.unwrap_err().code(), "idempotency_key_reused");
        let e = s.record_counter_payment(&cashier, ip, both.clone(), tender.clone(), None).await;
        assert_eq!(e.unwrap_err().code(), "bill_not_payable", "{backend}");

        // a POS slip pays another bill; the same slip cannot pay a second time
        let (b3, _) = new_bill(&his, &db, "HIS-CP-3").await;
        let (b4, _) = new_bill(&his, &db, "HIS-CP-4").await;
        let slip = CounterTender::pos("240312345678", "t01", "6217").unwrap();
        let (pv, prec) = s
            .record_counter_payment(
                &cashier,
                ip,
                CounterRequest::parse(&pid, std::slice::from_ref(&b3)).unwrap(),
                slip.clone(),
                None,
            )
            .await
            .unwrap();
        assert_eq!((pv.provider, pv.provider_txn_id.as_deref()), (Provider::Pos, Some("pos-240312345678")));
        assert_eq!((prec.pos_terminal.as_deref(), prec.card_last4.as_deref()), (Some("T01"), Some("6217")));
        assert_eq!(balance(&db, "1012.04").await - pos0, 6860);
        let before = written(&db).await;
        let e = s
            .record_counter_payment(
                &cashier,
                ip,
                CounterRequest::parse(&pid, std::slice::from_ref(&b4)).unwrap(),
                slip,
                None,
            )
            .await;
        assert_eq!(e.unwrap_err().code(), "pos_slip_used", "{backend}");
        assert_eq!(written(&db).await, before, "{backend}: nothing booked for a used slip");
        assert_eq!(db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{b4}'")).await, "unpaid");

        // the shift: cash and POS on their own lines; the drawer should hold the float and the cash
        let mine = s.shift_board(&cashier).await.unwrap().mine.unwrap();
        let line = |p: Provider| mine.lines.iter().find(|l| l.provider == p).map(|l| (l.payments, l.received)).unwrap();
        assert_eq!(line(Provider::Cash), (1, m("137.20")), "{backend}");
        assert_eq!(line(Provider::Pos), (1, m("68.60")), "{backend}");
        assert_eq!(mine.expected_cash, m("637.20"), "{backend}");

        // a refund of the cash payment, approved by finance: paid back from the drawer at once,
        // with its red receipt; nothing is sent to a provider
        let r = s
            .request_refund(&cashier, ip, &ask(&b1, RefundPart::Amount(m("20.00")), "drug_returned", ""))
            .await
            .unwrap()
            .refund;
        let r = s.decide_refund(&finance, "10.0.0.8", r.id.as_str(), true, Some(BillRefundStatus::Requested), "").await;
        let r = r.unwrap();
        assert_eq!(r.status, BillRefundStatus::Succeeded, "{backend}");
        assert!(r.red_receipt_no.as_deref().is_some_and(|h| h.starts_with('H')), "{r:?}");
        let queued =
            db.scalar_i64(&format!("SELECT COUNT(*) FROM provider_refunds WHERE bill_refund_id = '{}'", r.id)).await;
        assert_eq!(queued, 0, "{backend}: no provider refund for a counter payment");
        assert_eq!(balance(&db, "1001").await - cash0, 13720 - 2000);
        assert_eq!(db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{b1}'")).await, "partially_refunded");
        let mine = s.shift_board(&cashier).await.unwrap().mine.unwrap();
        assert_eq!(mine.expected_cash, m("617.20"), "{backend}: the cash paid back left the drawer");
        let closed = s.close_shift(&cashier, ip, &shift.id, "617.20", "").await.unwrap();
        assert_eq!(closed.difference, Some(Money::ZERO), "{backend}");

        // the books hold
        let report = s.store.ledger_report().await.unwrap();
        assert!(report.consistent(), "{backend}: {report:?}");

        // what was recorded never changes, and the database refuses a record that does not add up
        let sid = v.id.to_string();
        assert!(db
            .exec(&format!("UPDATE counter_payments SET change_fen = 0 WHERE session_id = '{sid}'"))
            .await
            .is_err());
        assert!(db.exec(&format!("DELETE FROM counter_payments WHERE session_id = '{sid}'")).await.is_err());
        let qr = db.scalar_text("SELECT id FROM checkout_sessions WHERE provider = 'alipay' LIMIT 1").await;
        let row = |change: i64| {
            format!(
                "INSERT INTO counter_payments (session_id, kind, amount_fen, tendered_fen, change_fen, cashier_id, \
                 cashier_name, created_at) VALUES ('{qr}', 'cash', 6860, 10000, {change}, 'u', 'u', 0)"
            )
        };
        let e = db.exec_tx(&[&row(1)]).await.unwrap_err();
        assert!(e.to_lowercase().contains("check"), "{backend}: change must be tendered less the amount: {e}");
        // the counter channels are built in: no gateway, not listed for configuration
        assert!(s.store.list_channels().await.unwrap().iter().all(|c| !c.provider.is_counter()));
    }
}
