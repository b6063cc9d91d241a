//! The full books (issue 9 #4) and the day-end close (#7) on both backends: a bill's life in the
//! chart of accounts (issued → receivable and income by department, paid → clearing, refunded →
//! refunds payable → clearing, voided → reversed), the trial balance and account pages, `verify`;
//! a day closed against the sandboxes' statements, an exception, the lock the database keeps.

use crate::helpers::backends;
use crate::intake::{bill, His};
use crate::refunds::{ask, scene, settle};
use clinicpay::books::{figures_key, CloseStatus};
use clinicpay::ledger::Account;
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::refunds::{BillRefundStatus, RefundPart};
use clinicpay::time::{local_date, DAY_MS};
use serde_json::json;
use std::sync::Arc;

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn balance(tb: &clinicpay::books::TrialBalance, a: Account) -> i64 {
    tb.rows.iter().find(|r| r.code == a.code()).map(|r| r.balance_fen()).unwrap()
}

#[tokio::test]
async fn a_bill_through_the_chart_of_accounts() {
    for backend in backends() {
        let (app, db, (cashier, finance, _finance2, _admin), ids) =
            scene(backend, &["HIS-BK-1", "HIS-BK-2"], "alipay").await;
        let s = &app.services;
        let his = His::new(&app).await;
        // the demo data set is in the books too: everything below is a change from here
        let tb0 = s.trial_balance(&finance, None).await.unwrap();
        assert!(tb0.balanced(), "{backend}: {tb0:?}");
        let delta = |tb: &clinicpay::books::TrialBalance, a: Account| balance(tb, a) - balance(&tb0, a);
        // the scene's payment (two bills, one QR) went to Alipay's clearing account
        let clearing = s.account_ledger(&finance, "1012.01", None, 5).await.unwrap();
        assert_eq!((clearing.postings[0].kind.as_str(), clearing.postings[0].amount_fen), ("payment", 13720));

        // one bill still owed, one voided
        let (st, _) = his.post("/api/v1/intake/bills", bill("HIS-BK-OWED")).await;
        assert_eq!(st, 201);
        let (st, _) = his.post("/api/v1/intake/bills", bill("HIS-BK-VOID")).await;
        assert_eq!(st, 201);
        let (st, _) = his.post("/api/v1/intake/bills/HIS-BK-VOID/void", json!({"reason": "医嘱取消"})).await;
        assert_eq!(st, 200);

        // a direct refund by finance (≤ ¥10): owed to the payer the moment it is approved …
        let r = s
            .request_refund(&finance, "10.0.0.8", &ask(&ids[0], RefundPart::Amount(m("5.00")), "price_correction", ""))
            .await
            .unwrap()
            .refund;
        assert_eq!(r.status, BillRefundStatus::Submitted);
        let tb = s.trial_balance(&finance, None).await.unwrap();
        assert!(tb.balanced(), "{backend}: {tb:?}");
        assert_eq!(delta(&tb, Account::RefundsPayable), -500, "{backend}: owed back once approved");
        assert_eq!(delta(&tb, Account::PatientReceivable), 6860, "{backend}: only the owed bill is receivable");
        assert_eq!(delta(&tb, Account::AlipayClearing), 0);
        assert_eq!(delta(&tb, Account::MedicalIncome), -(6860 - 500), "{backend}: issued twice, one void, a refund");
        // … and paid back when Alipay confirms
        assert_eq!(settle(s, &db, r.id.as_str()).await, BillRefundStatus::Succeeded);
        let tb = s.trial_balance(&finance, None).await.unwrap();
        assert_eq!(delta(&tb, Account::RefundsPayable), 0, "{backend}");
        assert_eq!(delta(&tb, Account::AlipayClearing), -500, "{backend}");
        // income by department adds up to the income account
        let by_dept: i64 = tb.departments.iter().map(|d| d.net_fen()).sum();
        assert_eq!(by_dept, -balance(&tb, Account::MedicalIncome), "{backend}: {:?}", tb.departments);
        let dept = |tb: &clinicpay::books::TrialBalance| {
            tb.departments.iter().find(|d| d.name == "心内科").map(|d| (d.earned_fen, d.reversed_fen)).unwrap_or((0, 0))
        };
        let (before, after) = (dept(&tb0), dept(&tb));
        assert_eq!(after.0 - before.0, 2 * 6860, "{backend}: two bills issued to the department");
        assert_eq!(after.1 - before.1, 6860 + 500, "{backend}: the void and the refund");

        // verify: every invariant holds
        let report = s.store.ledger_report().await.unwrap();
        assert!(report.consistent(), "{backend}: {report:?}");
        assert_eq!(report.trial_balance_fen, 0);

        // the account page: newest first, paged without splitting an entry
        let page = s.account_ledger(&finance, "1221", None, 50).await.unwrap();
        assert_eq!(page.row.balance_fen(), balance(&tb, Account::PatientReceivable));
        let kinds: Vec<&str> = page.postings.iter().take(3).map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["bill_voided", "bill_issued", "bill_issued"], "{backend}: the void, then the two bills");
        assert!(page.postings.iter().skip(3).take(2).all(|p| p.kind == "payment"), "{backend}: then the payment");
        let first = s.account_ledger(&finance, "1221", None, 2).await.unwrap();
        assert_eq!(first.postings.len(), 2);
        let next = first.next_before.clone().expect("more pages");
        let second = s.account_ledger(&finance, "1221", Some(&next), 5).await.unwrap();
        assert!(second.postings.iter().all(|p| p.entry_id < next));
        let joined: Vec<(String, i32)> =
            first.postings.iter().chain(&second.postings).map(|p| (p.entry_id.clone(), p.line_no)).collect();
        let whole: Vec<(String, i32)> =
            page.postings.iter().take(joined.len()).map(|p| (p.entry_id.clone(), p.line_no)).collect();
        assert_eq!(joined, whole, "{backend}: pages follow each other");
        // a page of one line still holds the whole payment (one line per bill it paid)
        let one = s.account_ledger(&finance, "1221", Some(&page.postings[2].entry_id), 1).await.unwrap();
        assert_eq!(one.postings.len(), 2, "{backend}: {:?}", one.postings);
        assert!(one.postings.iter().all(|p| p.kind == "payment" && p.entry_id == one.postings[0].entry_id));
        assert_eq!(one.next_before.as_deref(), Some(one.postings[0].entry_id.as_str()));
        // bad input gets a code; cashiers do not read the books
        assert_eq!(s.account_ledger(&finance, "9999", None, 50).await.unwrap_err().code(), "unknown_account");
        assert_eq!(s.account_ledger(&finance, "1221", Some("je_%27"), 50).await.unwrap_err().code(), "bad_cursor");
        assert_eq!(s.trial_balance(&cashier, None).await.unwrap_err().code(), "forbidden");

        // an entry that does not balance cannot be committed, even by hand
        let bad = db
            .exec_tx(&[
                "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) \
                 VALUES ('je_bk1', 'adjustment', 1, 'test', 'x', '', FALSE, 'open', 1)",
                "INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_bk1', 1, '1002', 100)",
                "INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_bk1', 2, '6001', -99)",
                "UPDATE journal_entries SET sealed = TRUE, unsealed = NULL WHERE id = 'je_bk1'",
            ])
            .await;
        assert!(bad.is_err(), "{backend}: an unbalanced entry is refused");
    }
}

#[tokio::test]
async fn a_day_is_closed_against_the_statements_then_locked() {
    for backend in backends() {
        let (app, db, (cashier, finance, finance2, _admin), _ids) =
            scene(backend, &["HIS-DC-1", "HIS-DC-2"], "wechatpay").await;
        let his = His::new(&app).await;
        // finance a day later: today is over for them (the books are booked on the real clock)
        let now = app.services.now();
        let today = local_date(now).unwrap();
        let mut later = app.services.clone();
        later.clock = Arc::new(server::runtime::ManualClock::new(now + DAY_MS));
        let s = &later;

        // an empty day agrees with every channel (no trades, no statement) and is confirmed
        let quiet = today - chrono::Days::new(400); // before the demo's history
        let v = s.day_view(&finance, quiet, true).await.unwrap();
        assert!(v.agrees(), "{backend}: {:?}", v.channels);
        let key = figures_key(&v.channels, v.income_fen, v.entries);
        assert_eq!(s.close_day(&cashier, "10.0.0.7", quiet, &key, None).await.unwrap_err().code(), "forbidden");
        let c1 = s.close_day(&finance, "10.0.0.8", quiet, &key, None).await.unwrap();
        assert_eq!((c1.status, c1.seq), (CloseStatus::Confirmed, 1));
        let e = s.close_day(&finance2, "10.0.0.9", quiet, &key, None).await.unwrap_err();
        assert_eq!(e.code(), "day_already_closed", "{backend}: closing twice has one effect");

        // today: our WeChat Pay takings beside the sandbox's trade bill
        let v = s.day_view(&finance, today, true).await.unwrap();
        let wx = v.channels.iter().find(|c| c.provider == Provider::WechatPay).unwrap();
        let statement = wx.statement.clone().expect("the sandbox's trade bill for today");
        assert_eq!((statement.received_fen, statement.payments), (13720, 1), "{backend}: {wx:?}");
        // our books hold the same trade, and the demo's payment history, which never went through
        // the sandbox (so a demo day differs from its statement until someone explains it)
        let (demo_fen, demo_n): (i64, i64) = (
            db.scalar_i64(&format!(
                "SELECT CAST(COALESCE(SUM(p.amount_fen), 0) AS BIGINT) FROM payments p JOIN journal_entries j ON j.id = p.journal_entry_id \
                 WHERE p.provider = 'wechatpay' AND p.provider_txn_id LIKE 'DEMO%' AND j.created_at >= {}",
                v.starts_at_ms
            ))
            .await,
            db.scalar_i64(&format!(
                "SELECT COUNT(DISTINCT p.session_id) FROM payments p JOIN journal_entries j ON j.id = p.journal_entry_id \
                 WHERE p.provider = 'wechatpay' AND p.provider_txn_id LIKE 'DEMO%' AND j.created_at >= {}",
                v.starts_at_ms
            ))
            .await,
        );
        assert_eq!((wx.received_fen, wx.payments), (13720 + demo_fen, 1 + demo_n), "{backend}: {wx:?}");
        let income_before = v.income_fen;
        let key = figures_key(&v.channels, v.income_fen, v.entries);
        // the real clock's today cannot be closed by someone for whom it is not over
        let e = app.services.close_day(&finance, "10.0.0.8", today, &key, None).await.unwrap_err();
        assert_eq!(e.code(), "day_not_over");
        // figures booked after the page was loaded are not confirmed blindly
        let (st, _) = his.post("/api/v1/intake/bills", bill("HIS-DC-LATE")).await;
        assert_eq!(st, 201);
        let e = s.close_day(&finance, "10.0.0.8", today, &key, Some("x")).await.unwrap_err();
        assert_eq!(e.code(), "day_figures_changed", "{backend}");
        let v = s.day_view(&finance, today, true).await.unwrap();
        let key = figures_key(&v.channels, v.income_fen, v.entries);
        let closed = if v.agrees() {
            s.close_day(&finance, "10.0.0.8", today, &key, None).await.unwrap()
        } else {
            // a channel without a statement for today needs an explanation
            let e = s.close_day(&finance, "10.0.0.8", today, &key, None).await.unwrap_err();
            assert_eq!(e.code(), "day_has_differences", "{backend}");
            let c =
                s.close_day(&finance, "10.0.0.8", today, &key, Some("渠道当日账单次日生成，次日核对")).await.unwrap();
            assert_eq!(c.status, CloseStatus::Exception);
            c
        };
        assert_eq!((closed.seq, closed.prev_hash.as_str()), (2, c1.hash.as_str()), "{backend}: chained");
        assert_eq!(closed.income_fen, income_before + 6860, "{backend}: with the late bill");

        // the day is locked: the database refuses an entry booked inside it, and nothing is half-written
        let bills = db.scalar_i64("SELECT COUNT(*) FROM bills").await;
        let (st, v) = his.post("/api/v1/intake/bills", bill("HIS-DC-LOCKED")).await;
        assert_eq!(st, 409, "{backend}: booking into a closed day is refused: {v}");
        assert_eq!(v["error"]["code"], "day_closed", "{backend}: {v}");
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM bills").await, bills, "{backend}: nothing written");
        // close records never change
        assert!(db.exec("UPDATE day_closes SET note = 'x'").await.is_err(), "{backend}");
        assert!(db.exec("DELETE FROM day_closes").await.is_err(), "{backend}");
        let chain = s.verify_close_chain().await.unwrap();
        assert_eq!((chain.closes, chain.broken_at), (2, None), "{backend}");
        let view = s.day_view(&finance, today, true).await.unwrap();
        assert_eq!(view.close.as_ref().map(|c| c.seq), Some(2), "{backend}: the page shows the record");
        // bad notes are refused
        let e = s.close_day(&finance, "10.0.0.8", quiet - chrono::Days::new(1), "k", Some(&"长".repeat(1001))).await;
        assert_eq!(e.unwrap_err().code(), "bad_close_note");
    }
}
