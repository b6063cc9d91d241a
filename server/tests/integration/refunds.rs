//! Refunds of paid bills (issue 9 #1–#3) on both backends, over the real sandboxes: the HIS's
//! bills are paid with one QR, then refunded by item and by amount, with maker-checker approval,
//! through the original channel; the provider's confirmation books them; races and bad input
//! change nothing they should not.

use crate::checkout_http::{trade, Api};
use crate::helpers::{backends, spawn_app_with, TestApp, TestDb};
use crate::intake::{bill, His};
use clinicpay::auth::{CurrentUser, Role};
use clinicpay::money::Money;
use clinicpay::ports::RefundProgress;
use clinicpay::refunds::{BillRefundStatus, RefundPart};
use clinicpay::services::auth::NewUserInput;
use clinicpay::services::refunds::RefundRequest;
use clinicpay::services::Services;
use serde_json::{json, Value};
use server::sandbox::SandboxControl;
use std::time::Duration;

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

pub(crate) async fn user(app: &TestApp, name: &str) -> CurrentUser {
    app.services.store.user_by_username(name).await.unwrap().unwrap().current()
}

/// The demo users, and a second finance officer for the dual approval.
async fn people(app: &TestApp) -> (CurrentUser, CurrentUser, CurrentUser, CurrentUser) {
    let admin = user(app, "admin").await;
    app.services
        .create_user(
            &admin,
            "127.0.0.1",
            NewUserInput {
                username: "finance2".into(),
                display_name: "赵会计".into(),
                role: Role::Finance,
                password: "second-finance-pw-1".into(),
            },
        )
        .await
        .unwrap();
    (user(app, "cashier").await, user(app, "finance").await, user(app, "finance2").await, admin)
}

/// Refund limits small enough for the test bills (¥68.60): a finance officer refunds up to
/// ¥10 directly, above ¥50 two approvers are needed.
async fn app_for(backend: &'static str) -> TestApp {
    spawn_app_with(backend, true, |c| {
        c.refund_direct_limit = "10.00".into();
        c.refund_dual_limit = "50.00".into();
    })
    .await
}

/// HIS bills `ids` (¥68.60 each: line 1 ¥50.00, line 2 ¥18.60), paid with one QR through
/// `provider`. Returns their ids.
async fn paid_bills(app: &TestApp, his: &His, pid: &str, ids: &[&str], provider: &str) -> Vec<String> {
    let counter = Api::new(app, Role::Cashier).await;
    let mut out = Vec::new();
    for id in ids {
        let (st, v) = his.post("/api/v1/intake/bills", bill(id)).await;
        assert_eq!(st, 201, "{v}");
        out.push(v["bill"]["id"].as_str().unwrap().to_string());
    }
    let sess = counter.open_session(pid, &out, provider).await;
    let sb = app.sandboxes.clone().unwrap();
    match provider {
        "alipay" => sb.alipay.pay(&trade(&sess)).await.unwrap(),
        "wechatpay" => sb.wechatpay.pay(&trade(&sess)).await.unwrap(),
        other => panic!("{other}"),
    }
    counter.wait_status(sess["session_id"].as_str().unwrap(), "paid").await;
    out
}

/// A fresh app with the test limits, its database, the people, and HIS bills paid with one QR.
pub(crate) async fn scene(
    backend: &'static str,
    bills: &[&str],
    provider: &str,
) -> (TestApp, TestDb, (CurrentUser, CurrentUser, CurrentUser, CurrentUser), Vec<String>) {
    let app = app_for(backend).await;
    let db = TestDb::attach(&app).await;
    let who = people(&app).await;
    let his = His::new(&app).await;
    let pid = his.setup().await;
    let ids = paid_bills(&app, &his, &pid, bills, provider).await;
    (app, db, who, ids)
}

pub(crate) fn ask(bill: &str, part: RefundPart, reason: &str, text: &str) -> RefundRequest {
    RefundRequest {
        bill: bill.into(),
        part,
        expect_amount: None,
        reason: reason.into(),
        reason_text: text.into(),
        idempotency_key: None,
    }
}

/// Drives the refund worker until the refund is no longer with the provider (refunds the
/// provider answers "processing" are confirmed by its notification or a later query).
pub(crate) async fn settle(s: &Services, db: &TestDb, refund_id: &str) -> BillRefundStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        s.refund_step().await.unwrap();
        let st =
            s.store.bill_refund(&clinicpay::ids::RefundId::parse(refund_id).unwrap()).await.unwrap().unwrap().status;
        if st != BillRefundStatus::Submitted {
            return st;
        }
        assert!(std::time::Instant::now() < deadline, "refund {refund_id} never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
        db.exec("UPDATE provider_refunds SET next_attempt_at = 0 WHERE status = 'processing'").await.unwrap();
    }
}

async fn bill_row(db: &TestDb, id: &str) -> (String, i64, i64) {
    let status = db.scalar_text(&format!("SELECT status FROM bills WHERE id = '{id}'")).await;
    let refunded = db.scalar_i64(&format!("SELECT refunded_fen FROM bills WHERE id = '{id}'")).await;
    let held = db.scalar_i64(&format!("SELECT refund_held_fen FROM bills WHERE id = '{id}'")).await;
    (status, refunded, held)
}

async fn ledger_balances(db: &TestDb) {
    let unbalanced = db
        .scalar_i64(
            "SELECT COUNT(*) FROM (SELECT entry_id FROM postings GROUP BY entry_id HAVING SUM(amount_fen) <> 0) x",
        )
        .await;
    assert_eq!(unbalanced, 0, "every entry balances");
}

#[tokio::test]
async fn refunds_by_item_and_amount_with_approval_through_the_original_channel() {
    for backend in backends() {
        let (app, db, (cashier, finance, finance2, admin), ids) =
            scene(backend, &["HIS-RF-1", "HIS-RF-2"], "wechatpay").await;
        let his = His::new(&app).await;
        let s = &app.services;
        let (b1, b2) = (ids[0].as_str(), ids[1].as_str());

        // refusals with codes, nothing written
        let (st, v) = his.post("/api/v1/intake/bills", bill("HIS-RF-UNPAID")).await;
        assert_eq!(st, 201, "{v}");
        let unpaid = v["bill"]["id"].as_str().unwrap().to_string();
        let (st, v) = his.post("/api/v1/intake/bills", bill("HIS-RF-VOID")).await;
        assert_eq!(st, 201, "{v}");
        let void = v["bill"]["id"].as_str().unwrap().to_string();
        let (st, _) = his.post("/api/v1/intake/bills/HIS-RF-VOID/void", json!({"reason": "医嘱取消"})).await;
        assert_eq!(st, 200);
        let audit_before = db.scalar_i64("SELECT COUNT(*) FROM audit_log").await;
        let cases: Vec<(&CurrentUser, RefundRequest, &str)> = vec![
            (&cashier, ask(&unpaid, RefundPart::Amount(m("1")), "drug_returned", ""), "bill_not_paid"),
            (&cashier, ask(&void, RefundPart::Amount(m("1")), "drug_returned", ""), "bill_void"),
            (&cashier, ask(b1, RefundPart::Amount(m("68.61")), "drug_returned", ""), "refund_exceeds_paid"),
            (&cashier, ask(b1, RefundPart::Amount(m("0")), "drug_returned", ""), "bad_amount"),
            (&cashier, ask(b1, RefundPart::Lines(vec![3]), "drug_returned", ""), "unknown_line"),
            (&cashier, ask(b1, RefundPart::Lines(vec![2, 2]), "drug_returned", ""), "repeated_line"),
            (&cashier, ask(b1, RefundPart::Amount(m("1")), "mood", ""), "bad_reason"),
            (&cashier, ask(b1, RefundPart::Amount(m("1")), "other", "  "), "bad_reason_text"),
            (&cashier, ask("bill_nonsense", RefundPart::Amount(m("1")), "other", "x"), "bad_order_id"),
            (&admin, ask(b1, RefundPart::Amount(m("1")), "drug_returned", ""), "forbidden"),
        ];
        for (who, req, code) in cases {
            let e = s.request_refund(who, "127.0.0.1", &req).await.unwrap_err();
            assert_eq!(e.code(), code, "{backend}: {req:?}");
        }
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM bill_refunds").await, 0);
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM audit_log").await, audit_before, "refusals write nothing");

        // the cashier asks for the drug line back: one finance approval needed
        let r1 = s
            .request_refund(&cashier, "10.0.0.7", &ask(b1, RefundPart::Lines(vec![2]), "drug_returned", "未开封"))
            .await
            .unwrap();
        assert!(r1.created);
        let r1 = r1.refund;
        assert_eq!(
            (r1.status, r1.amount, r1.approvals_needed, r1.lines.clone()),
            (BillRefundStatus::Requested, m("18.60"), 1, vec![2])
        );
        assert_eq!(r1.requested_by, "张丽");
        // a second request for the same bill while one waits is refused
        let e = s
            .request_refund(&finance, "10.0.0.8", &ask(b1, RefundPart::Amount(m("5")), "other", "x"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "refund_pending");
        // cashiers do not approve; the request is not changed by refused attempts
        let e = s.decide_refund(&cashier, "10.0.0.7", r1.id.as_str(), true, None, "").await.unwrap_err();
        assert_eq!(e.code(), "forbidden");
        let e = s.decide_refund(&finance, "10.0.0.8", r1.id.as_str(), false, None, "").await.unwrap_err();
        assert_eq!(e.code(), "bad_note", "a rejection says why");
        // finance approves: it goes to WeChat Pay; approving again has no second effect
        let v = s
            .decide_refund(&finance, "10.0.0.8", r1.id.as_str(), true, Some(BillRefundStatus::Requested), "核实")
            .await
            .unwrap();
        assert_eq!((v.status, v.approved_by.as_deref()), (BillRefundStatus::Submitted, Some("李敏")));
        let e = s
            .decide_refund(&finance2, "10.0.0.9", r1.id.as_str(), true, Some(BillRefundStatus::Requested), "")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "refund_not_waiting");
        assert_eq!(
            db.scalar_i64(&format!("SELECT COUNT(*) FROM provider_refunds WHERE bill_refund_id = '{}'", r1.id)).await,
            1
        );
        // the provider confirms (WeChat answers PROCESSING, then notifies): booked, the bill shows it
        assert_eq!(settle(s, &db, r1.id.as_str()).await, BillRefundStatus::Succeeded);
        assert_eq!(bill_row(&db, b1).await, ("partially_refunded".into(), 1860, 1860));
        let v = s.refund(&finance, r1.id.as_str()).await.unwrap();
        assert!(v.refunded_at_ms.is_some() && v.bill_refunded == m("18.60"), "{v:?}");
        assert_eq!(
            db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM journal_entries WHERE kind = 'refund' AND ref_type = 'bill_refund' AND ref_id = '{}'",
                r1.id
            ))
            .await,
            1
        );
        ledger_balances(&db).await;
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM outbox WHERE topic = 'bill.partially_refunded'").await, 1);
        // the same line again is refused; the rest by amount is allowed
        let e = s
            .request_refund(&cashier, "10.0.0.7", &ask(b1, RefundPart::Lines(vec![2]), "drug_returned", ""))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "line_already_refunded");
        let e = s
            .request_refund(&cashier, "10.0.0.7", &ask(b1, RefundPart::Amount(m("50.01")), "exam_cancelled", ""))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "refund_exceeds_paid");

        // above ¥50: two different finance approvers, never the requester
        let big = s
            .request_refund(
                &finance,
                "10.0.0.8",
                &ask(b2, RefundPart::Amount(m("60.00")), "price_correction", "收费错误"),
            )
            .await
            .unwrap()
            .refund;
        assert_eq!((big.status, big.approvals_needed), (BillRefundStatus::Requested, 2));
        let e = s.decide_refund(&finance, "10.0.0.8", big.id.as_str(), true, None, "").await.unwrap_err();
        assert_eq!(e.code(), "refund_own_request");
        let v = s.decide_refund(&finance2, "10.0.0.9", big.id.as_str(), true, None, "").await.unwrap();
        assert_eq!(v.status, BillRefundStatus::Approved, "one of two approvals");
        let e = s.decide_refund(&finance2, "10.0.0.9", big.id.as_str(), true, None, "").await.unwrap_err();
        assert_eq!(e.code(), "refund_same_approver");
        // nobody else may approve it: finance2 rejects it instead, which frees the money
        let v =
            s.decide_refund(&finance2, "10.0.0.9", big.id.as_str(), false, None, "金额有误，重新申请").await.unwrap();
        assert_eq!(v.status, BillRefundStatus::Rejected);
        assert_eq!(bill_row(&db, b2).await, ("paid".into(), 0, 0));
        // a finance officer's small refund goes straight to the provider
        let small = s
            .request_refund(&finance, "10.0.0.8", &ask(b2, RefundPart::Amount(m("8.00")), "other", "找零"))
            .await
            .unwrap()
            .refund;
        assert_eq!((small.status, small.approvals_needed), (BillRefundStatus::Submitted, 0));
        assert_eq!(settle(s, &db, small.id.as_str()).await, BillRefundStatus::Succeeded);
        assert_eq!(bill_row(&db, b2).await, ("partially_refunded".into(), 800, 800));

        // every step is in the audit log with before and after
        for action in ["refund_requested", "refund_approved", "refund_rejected"] {
            let n = db.scalar_i64(&format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}'")).await;
            assert!(n >= 1, "{backend}: {action}");
        }
        let detail = db
            .scalar_text(&format!(
                "SELECT detail FROM audit_log WHERE action = 'refund_approved' AND target_id = '{}'",
                r1.id
            ))
            .await;
        let detail: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(
            (detail["before"]["status"].as_str(), detail["after"]["status"].as_str()),
            (Some("requested"), Some("submitted"))
        );
        let chain = s.store.verify_audit_chain().await.unwrap();
        assert_eq!(chain.broken_at, None, "{backend}: audit chain intact");

        let all = s.refunds(&finance, Some(b1), &[], 50).await.unwrap();
        assert_eq!(all.len(), 1);
        let waiting =
            s.refunds(&finance, None, &[BillRefundStatus::Requested, BillRefundStatus::Approved], 50).await.unwrap();
        assert!(waiting.is_empty());
        assert_eq!(s.refund_counts(&finance).await.unwrap(), (0, 0));
    }
}

#[tokio::test]
async fn fifty_concurrent_refunds_never_exceed_what_was_paid() {
    for backend in backends() {
        let (app, db, (_, finance, _, _), ids) = scene(backend, &["HIS-RC-1"], "alipay").await;
        let b = ids[0].clone();
        // ¥1.40 each needs no approval (finance, below ¥10): 49 of them are the whole ¥68.60
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = app.services.clone();
            let f = finance.clone();
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                s.request_refund(
                    &f,
                    "127.0.0.1",
                    &ask(&b, RefundPart::Amount(m("1.40")), "other", &format!("并发 {i}")),
                )
                .await
            }));
        }
        let mut made = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    assert!(r.created);
                    made += 1
                }
                Err(e) => assert_eq!(e.code(), "refund_exceeds_paid", "{backend}: {e}"),
            }
        }
        assert_eq!(made, 49, "{backend}");
        assert_eq!(bill_row(&db, &b).await.2, 6860, "held exactly the total");
        assert_eq!(db.scalar_i64("SELECT CAST(SUM(amount_fen) AS BIGINT) FROM bill_refunds").await, 6860);
        // the database itself refuses to hold more, whatever the code does
        assert!(db
            .exec(&format!("UPDATE bills SET refund_held_fen = refund_held_fen + 1 WHERE id = '{b}'"))
            .await
            .is_err());
        // all through Alipay: the bill ends fully refunded, booked once each
        while app.services.refund_step().await.unwrap() > 0 {}
        let ok = db.scalar_i64("SELECT COUNT(*) FROM bill_refunds WHERE status = 'succeeded'").await;
        assert_eq!(ok, 49, "{backend}");
        assert_eq!(bill_row(&db, &b).await, ("refunded".into(), 6860, 6860));
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM journal_entries WHERE kind = 'refund'").await, 49);
        ledger_balances(&db).await;
        let e = app
            .services
            .request_refund(&finance, "127.0.0.1", &ask(&b, RefundPart::Amount(m("0.01")), "other", "x"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "bill_fully_refunded");
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM outbox WHERE topic = 'bill.refunded'").await, 1);
    }
}

/// What the refund worker records when the provider refuses a refund.
async fn fail(s: &Services, id: &clinicpay::ids::RefundId) {
    let p = RefundProgress::Failed { error: "ACQ.TRADE_STATUS_ERROR".into() };
    s.store.refund_progress(id, &p, s.now(), s.ids.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_failed_refund_is_retried_or_paid_by_hand_and_a_late_success_is_applied_once() {
    for backend in backends() {
        let (app, db, (_, finance, finance2, _), ids) =
            scene(backend, &["HIS-RX-A", "HIS-RX-B", "HIS-RX-C"], "alipay").await;
        let s = &app.services;
        let at = s.now();
        let mk = |b: &str| ask(b, RefundPart::Amount(m("5.00")), "duplicate_payment", "");

        // refused by the provider: failed, finance sees it; sent again: paid once
        let r = s.request_refund(&finance, "127.0.0.1", &mk(&ids[0])).await.unwrap().refund;
        fail(s, &r.id).await;
        let v = s.refund(&finance, r.id.as_str()).await.unwrap();
        assert_eq!(v.status, BillRefundStatus::Failed);
        assert!(v.last_error.as_deref().unwrap().contains("TRADE_STATUS"), "{v:?}");
        assert_eq!(s.refund_counts(&finance).await.unwrap(), (0, 1));
        let e = s.manual_refund(&finance, "127.0.0.1", r.id.as_str(), "").await.unwrap_err();
        assert_eq!(e.code(), "bad_note", "paying by hand says how");
        let v = s.retry_refund(&finance2, "127.0.0.1", r.id.as_str(), "").await.unwrap();
        assert_eq!(v.status, BillRefundStatus::Submitted);
        let e = s.retry_refund(&finance2, "127.0.0.1", r.id.as_str(), "").await.unwrap_err();
        assert_eq!(e.code(), "refund_not_failed");
        assert_eq!(settle(s, &db, r.id.as_str()).await, BillRefundStatus::Succeeded);
        assert_eq!(bill_row(&db, &ids[0]).await, ("partially_refunded".into(), 500, 500));

        // "failed" is not final: the provider's later success for the same number is applied
        let r = s.request_refund(&finance, "127.0.0.1", &mk(&ids[1])).await.unwrap().refund;
        fail(s, &r.id).await;
        let ok = RefundProgress::Succeeded { provider_refund_id: Some("2026120222001".into()) };
        s.store.refund_progress(&r.id, &ok, at, s.ids.as_ref()).await.unwrap();
        s.store.refund_progress(&r.id, &ok, at, s.ids.as_ref()).await.unwrap();
        assert_eq!(s.refund(&finance, r.id.as_str()).await.unwrap().status, BillRefundStatus::Succeeded);
        assert_eq!(bill_row(&db, &ids[1]).await, ("partially_refunded".into(), 500, 500), "booked once");

        // paid back by hand: booked against the bank; a later provider success books nothing more
        let r = s.request_refund(&finance, "127.0.0.1", &mk(&ids[2])).await.unwrap().refund;
        fail(s, &r.id).await;
        let v = s.manual_refund(&finance2, "127.0.0.1", r.id.as_str(), "现金退还，收据 0012").await.unwrap();
        assert_eq!(v.status, BillRefundStatus::Manual);
        assert_eq!(bill_row(&db, &ids[2]).await, ("partially_refunded".into(), 500, 500));
        s.store.refund_progress(&r.id, &ok, at, s.ids.as_ref()).await.unwrap();
        assert_eq!(bill_row(&db, &ids[2]).await, ("partially_refunded".into(), 500, 500), "not twice");
        let v = s.refund(&finance, r.id.as_str()).await.unwrap();
        assert_eq!(v.status, BillRefundStatus::Manual);
        assert!(v.last_error.as_deref().unwrap_or("").contains("twice"), "finance is told: {v:?}");
        let bank = db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM postings l JOIN journal_entries e ON e.id = l.entry_id \
                 WHERE e.ref_id = '{}' AND l.account_code = '1002' AND l.amount_fen = -500",
                r.id
            ))
            .await;
        assert_eq!(bank, 1, "{backend}: the manual refund left the bank account");
        ledger_balances(&db).await;
        assert_eq!(s.refund_counts(&finance).await.unwrap(), (0, 0));
    }
}

#[tokio::test]
async fn the_rest_api_takes_refunds_as_the_hospital_names_them() {
    for backend in backends() {
        let (app, db, (_, finance, _, _), ids) = scene(backend, &["HIS-RA-1"], "alipay").await;
        let api = Api::new(&app, Role::Cashier).await;
        let bill_no = db.scalar_text(&format!("SELECT bill_no FROM bills WHERE id = '{}'", ids[0])).await;

        // bad input: clear codes, nothing written
        for (body, status, code) in [
            (json!({"order_id": ids[0], "refund_amount": 12.5, "refund_reason": "x"}), 400, "bad_json"),
            (json!({"order_id": ids[0], "refund_amount": "12.505", "refund_reason": "x"}), 400, "bad_amount"),
            (json!({"order_id": ids[0], "refund_reason": "x"}), 400, "bad_amount"),
            (json!({"order_id": ids[0], "refund_amount": "100.00", "refund_reason": "x"}), 409, "refund_exceeds_paid"),
            (json!({"order_id": "NO-SUCH-BILL", "refund_amount": "1.00", "refund_reason": "x"}), 404, "not_found"),
            (
                json!({"order_id": ids[0], "items": [1], "refund_amount": "18.60", "refund_reason": "x"}),
                400,
                "amount_mismatch",
            ),
        ] {
            let (s, v) = api.post("/api/payment/refunds", body.clone(), None).await;
            assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{backend}: {body} → {v}");
        }
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM bill_refunds").await, 0);

        // by bill number, with an idempotency key: retried, the same refund
        let body = json!({"order_id": bill_no, "refund_amount": "18.60", "refund_reason": "退药", "reason_code": "drug_returned"});
        let (s1, v1) = api.post("/api/payment/refunds", body.clone(), Some("his-refund-1")).await;
        assert_eq!(s1, 201, "{v1}");
        assert_eq!(
            (v1["status"].as_str(), v1["refund_amount"].as_str(), v1["approvals_needed"].as_u64()),
            (Some("requested"), Some("18.60"), Some(1))
        );
        let (s2, v2) = api.post("/api/payment/refunds", body, Some("his-refund-1")).await;
        assert_eq!((s2, &v2["refund_id"]), (200, &v1["refund_id"]), "{v2}");
        let (s3, v3) = api
            .post(
                "/api/payment/refunds",
                json!({"order_id": bill_no, "refund_amount": "1.00", "refund_reason": "x"}),
                Some("his-refund-1"),
            )
            .await;
        assert_eq!((s3, v3["error"]["code"].as_str()), (409, Some("idempotency_key_reused")));
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM bill_refunds").await, 1);

        let id = v1["refund_id"].as_str().unwrap();
        let (s, v) = api.get(&format!("/api/payment/refunds/{id}")).await;
        assert_eq!((s, v["refund_no"].as_str().map(|n| n.starts_with("RF"))), (200, Some(true)), "{v}");
        let (s, v) = api.get(&format!("/api/payment/refunds?order_id={bill_no}&status=requested,approved")).await;
        assert_eq!((s, v["refunds"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
        let (s, v) = api.get("/api/payment/refunds?status=eaten").await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_status")));
        let (s, _) = api.get("/api/payment/refunds/ref_nonsense").await;
        assert_eq!(s, 400);

        // finance approves on its page; the REST caller sees it settle
        app.services.decide_refund(&finance, "127.0.0.1", id, true, None, "").await.unwrap();
        while app.services.refund_step().await.unwrap() > 0 {}
        let (_, v) = api.get(&format!("/api/payment/refunds/{id}")).await;
        assert_eq!((v["status"].as_str(), v["bill_refunded"].as_str()), (Some("succeeded"), Some("18.60")), "{v}");

        // no token: refused
        let r = reqwest::Client::new().get(format!("{}/api/payment/refunds", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        // the OpenAPI document names the endpoints
        let (_, doc) = api.get("/api/v1/openapi.json").await;
        assert!(doc["paths"]["/api/payment/refunds"]["post"].is_object());
        assert!(doc["paths"]["/api/payment/refunds/{refund_id}"]["get"].is_object());
    }
}
