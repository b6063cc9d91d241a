//! Shift handover (issue 9 #6, PRODUCT.md L3) on both backends: a cashier opens a shift with the
//! float, takes a payment, a refund of theirs goes back, the sheet shows both by channel; the
//! close needs a note for a difference; someone else confirms; refusals change nothing and the
//! database holds the rules even against direct writes.

use crate::helpers::backends;
use crate::intake::bill;
use crate::refunds::{ask, scene, settle};
use clinicpay::checkout::SessionRequest;
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::refunds::{BillRefundStatus, RefundPart};
use clinicpay::shifts::ShiftStatus;
use server::sandbox::SandboxControl;

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

#[tokio::test]
async fn a_shift_is_opened_counted_handed_over_and_confirmed() {
    for backend in backends() {
        let (app, db, (cashier, finance, _, admin), ids) = scene(backend, &["HIS-SH-0"], "alipay").await;
        let s = &app.services;
        let his = crate::intake::His::new(&app).await;

        // bad input and the wrong people are refused with codes, nothing written
        let audit_before = db.scalar_i64("SELECT COUNT(*) FROM audit_log").await;
        for (float, code) in [("-1", "bad_float"), ("abc", "bad_float"), ("20000000", "bad_float")] {
            assert_eq!(s.open_shift(&cashier, "127.0.0.1", float).await.unwrap_err().code(), code, "{backend}");
        }
        assert_eq!(s.open_shift(&admin, "127.0.0.1", "100").await.unwrap_err().code(), "forbidden");
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM shifts").await, 0);
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM audit_log").await, audit_before);

        // the cashier opens with ¥500 in the drawer; a second open is refused
        let shift = s.open_shift(&cashier, "10.0.0.7", "500.00").await.unwrap();
        assert_eq!((shift.status, shift.float, shift.expected_cash), (ShiftStatus::Open, m("500"), m("500")));
        assert!(shift.lines.iter().all(|l| l.payments == 0 && l.refunds == 0));
        assert_eq!(s.open_shift(&cashier, "10.0.0.7", "1").await.unwrap_err().code(), "shift_already_open");

        // a payment the cashier takes during the shift: on the Alipay line
        let (st, v) = his.post("/api/v1/intake/bills", bill("HIS-SH-1")).await;
        assert_eq!(st, 201, "{v}");
        let b = v["bill"]["id"].as_str().unwrap().to_string();
        let pid = db.scalar_text(&format!("SELECT patient_id FROM bills WHERE id = '{b}'")).await;
        let req = SessionRequest::parse(&pid, std::slice::from_ref(&b), "alipay_qr", None).unwrap();
        let (sess, _) = s.create_checkout(&cashier, "10.0.0.7", req, None, None).await.unwrap();
        app.sandboxes.clone().unwrap().alipay.pay(sess.out_trade_no.as_str()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{b}'")).await != "paid" {
            assert!(std::time::Instant::now() < deadline, "{backend}: never paid");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // a refund the cashier asked for (of the bill paid before the shift), approved by finance
        let r = s
            .request_refund(&cashier, "10.0.0.7", &ask(&ids[0], RefundPart::Amount(m("8.60")), "drug_returned", ""))
            .await
            .unwrap()
            .refund;
        s.decide_refund(&finance, "10.0.0.8", r.id.as_str(), true, Some(BillRefundStatus::Requested), "")
            .await
            .unwrap();
        assert_eq!(settle(s, &db, r.id.as_str()).await, BillRefundStatus::Succeeded);

        let board = s.shift_board(&cashier).await.unwrap();
        let mine = board.mine.unwrap();
        let alipay = mine.lines.iter().find(|l| l.provider == Provider::Alipay).unwrap();
        assert_eq!((alipay.payments, alipay.received, alipay.refunds, alipay.refunded), (1, m("68.60"), 1, m("8.60")));
        assert_eq!(mine.received(), m("68.60"), "{backend}: only this cashier's payments in this shift");

        // closing: not someone else's shift; a difference needs a note
        let e = s.close_shift(&finance, "10.0.0.8", &shift.id, "500", "").await.unwrap_err();
        assert_eq!(e.code(), "shift_not_yours");
        let e = s.close_shift(&cashier, "10.0.0.7", &shift.id, "480.00", "  ").await.unwrap_err();
        assert_eq!(e.code(), "shift_difference_needs_note");
        assert_eq!(
            s.close_shift(&cashier, "10.0.0.7", &shift.id, "x", "").await.unwrap_err().code(),
            "bad_counted_cash"
        );
        assert_eq!(s.close_shift(&cashier, "10.0.0.7", "sft_nope", "1", "").await.unwrap_err().code(), "bad_shift_id");
        let closed = s.close_shift(&cashier, "10.0.0.7", &shift.id, "480.00", "找零多找了 20 元").await.unwrap();
        assert_eq!(closed.status, ShiftStatus::Closed);
        assert_eq!((closed.counted_cash, closed.difference), (Some(m("480")), Some(Money::from_fen(-2000).unwrap())));
        let e = s.close_shift(&cashier, "10.0.0.7", &shift.id, "480.00", "x").await.unwrap_err();
        assert_eq!(e.code(), "shift_not_open", "closing twice has one effect");

        // the sheet is frozen: a later payment of the cashier's does not change it
        let (st, v) = his.post("/api/v1/intake/bills", bill("HIS-SH-2")).await;
        assert_eq!(st, 201, "{v}");
        let b2 = v["bill"]["id"].as_str().unwrap().to_string();
        let req = SessionRequest::parse(&pid, std::slice::from_ref(&b2), "alipay_qr", None).unwrap();
        let (sess, _) = s.create_checkout(&cashier, "10.0.0.7", req, None, None).await.unwrap();
        app.sandboxes.clone().unwrap().alipay.pay(sess.out_trade_no.as_str()).await.unwrap();
        while db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{b2}'")).await != "paid" {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(s.shift(&finance, &shift.id).await.unwrap().received(), m("68.60"));

        // confirming: not by the cashier who closed it; once
        let e = s.confirm_shift(&cashier, "10.0.0.7", &shift.id).await.unwrap_err();
        assert_eq!(e.code(), "shift_own_confirm");
        let to_confirm = s.shift_board(&finance).await.unwrap().to_confirm;
        assert_eq!(to_confirm.iter().map(|x| x.id.clone()).collect::<Vec<_>>(), vec![shift.id.clone()]);
        let done = s.confirm_shift(&finance, "10.0.0.8", &shift.id).await.unwrap();
        assert_eq!((done.status, done.confirmed_by_name.is_some()), (ShiftStatus::Confirmed, true));
        assert_eq!(s.confirm_shift(&finance, "10.0.0.8", &shift.id).await.unwrap_err().code(), "shift_not_closed");
        let steps = db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE target_id = '{}' AND action IN ('shift_opened', 'shift_closed', 'shift_confirmed')",
                shift.id
            ))
            .await;
        assert_eq!(steps, 3, "{backend}");
        // a new shift may open now
        let next = s.open_shift(&cashier, "10.0.0.7", "300").await.unwrap();

        // the database holds the rules against direct writes
        let refused = [
            format!("INSERT INTO shifts (id, cashier_id, cashier_name, status, opened_at, float_fen) VALUES ('sft_x', '{}', 'x', 'open', 1, 0)", cashier.id),
            format!("UPDATE shifts SET status = 'closed', closed_at = opened_at, lines = '[]', expected_cash_fen = 0, counted_cash_fen = 100, difference_fen = 100, note = '' WHERE id = '{}'", next.id),
            format!("UPDATE shifts SET difference_fen = 5 WHERE id = '{}'", shift.id),
            format!("UPDATE shifts SET status = 'confirmed', confirmed_by = cashier_id, confirmed_at = 1 WHERE id = '{}'", next.id),
            format!("UPDATE shifts SET float_fen = -1 WHERE id = '{}'", next.id),
        ];
        for q in &refused {
            assert!(db.exec(q).await.is_err(), "{backend}: {q} was allowed");
        }
    }
}
