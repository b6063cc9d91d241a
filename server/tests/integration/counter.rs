//! What the counter must be told (issue 14 #5): a declined card reaches the session while it stays
//! payable; an order the payer cancelled is found closed by "check payment", and its bills are
//! free again. Over real HTTP: the bank sandbox's signed notification, our /notify/bank, the REST
//! API's sync.

use crate::checkout_http::{assert_books, patients, trade, Api};
use crate::helpers::{backends, spawn_app};
use clinicpay::auth::Role;
use clinicpay::services::workers::SyncAnswer;
use serde_json::{json, Value};
use server::sandbox::SandboxControl;
use std::time::{Duration, Instant};

async fn control(app: &crate::helpers::TestApp, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/sandbox/bank/control/trades/{path}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_declined_card_is_told_and_a_cancelled_order_ends_the_session() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let ps = patients(&app).await;
        let bills = api.unpaid(&ps[3]).await;
        let v = api.open_session(&ps[3], &bills, "bank_card").await;
        assert!(v["payer_failure"].is_null(), "{v}");
        let id = v["session_id"].as_str().unwrap().to_string();
        let no = trade(&v);

        // the payer's card is declined: the bank notifies PAYMENT_FAILED, the session says so
        let r = control(&app, &format!("{no}/pay"), json!({ "card_number": "4000000000000002" })).await;
        assert_eq!((r["state"].as_str(), r["result"].as_str()), (Some("WAITING"), Some("CARD_DECLINED")), "{r}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let seen = loop {
            let (_, s) = api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await;
            if s["payer_failure"].is_string() {
                break s;
            }
            assert!(Instant::now() < deadline, "{backend}: the decline never reached the session: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(seen["payer_failure"], "CARD_DECLINED", "{seen}");
        assert!(seen["payer_failure_at"].is_string(), "{seen}");
        assert_eq!(seen["status"], "pending", "the order stays payable: {seen}");

        // insufficient funds next: the newer note replaces the older
        control(&app, &format!("{no}/pay"), json!({ "card_number": "4000000000009995" })).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, s) = api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await;
            if s["payer_failure"] == "INSUFFICIENT_FUNDS" {
                break;
            }
            assert!(Instant::now() < deadline, "{backend}: the second decline never arrived: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // an older note arriving late (a provider's retry of the first decline) does not replace
        // the newer one
        let (_, before) = api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await;
        let store = &app.services.store;
        assert_eq!(store.note_payer_attempt(&no, "CARD_DECLINED", 1).await.unwrap(), None, "{backend}");
        let note_of = |v: &Value| (v["payer_failure"].clone(), v["payer_failure_at"].clone());
        let (_, again) = api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await;
        assert_eq!(note_of(&again), note_of(&before));

        // the payer cancels on the card page: the order closes at the bank, nobody notifies us;
        // "check payment" finds it closed, the session ends and the bills are free again
        control(&app, &format!("{no}/cancel"), json!({})).await;
        assert_eq!(app.services.sync_session(&id).await.unwrap(), SyncAnswer::Closed);
        let (_, after) = api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await;
        assert_eq!(
            (after["status"].as_str(), after["close_reason"].as_str()),
            (Some("expired"), Some("closed_at_provider"))
        );
        assert_eq!(note_of(&after), note_of(&before), "the note stays as it was");
        // nothing is noted on a session that is not pending
        let later = app.services.now() + 60_000;
        assert_eq!(store.note_payer_attempt(&no, "CARD_DECLINED", later).await.unwrap(), None, "{backend}");
        assert_eq!(api.unpaid(&ps[3]).await.len(), bills.len(), "{backend}: the bills are unpaid again");
        // asking again: the session is no longer pending
        assert_eq!(app.services.sync_session(&id).await.unwrap(), SyncAnswer::NotPending);
        assert_books(&app).await;
    }
}

#[tokio::test]
async fn check_payment_says_what_the_provider_answered() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;
        let bills = api.unpaid(&ps[4]).await;
        let v = api.open_session(&ps[4], &bills, "wechat").await;
        let id = v["session_id"].as_str().unwrap().to_string();
        let answer = app.services.sync_session(&id).await.unwrap();
        assert!(matches!(answer, SyncAnswer::Waiting | SyncAnswer::NotScanned), "{backend}: {answer:?}");
        sb.wechatpay
            .set_faults(&trade(&v), server::sandbox::FaultSpec { drop: true, ..Default::default() })
            .await
            .unwrap();
        sb.wechatpay.pay(&trade(&v)).await.unwrap();
        assert_eq!(app.services.sync_session(&id).await.unwrap(), SyncAnswer::Paid, "{backend}");
        assert_books(&app).await;
    }
}
