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
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
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

/// Issue 14 #10 / S3: every operator action on a payment is in the audit log, in the same
/// transaction as the change, with before and after; the log is searched by who, what, when and
/// object, paged, its chain checked; a bad search changes nothing and names its field.
#[tokio::test]
async fn the_audit_log_has_every_payment_action_and_can_be_searched() {
    use clinicpay::auth::CurrentUser;
    use clinicpay::views::AuditSearch;
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let ps = patients(&app).await;
        let a = api.open_session(&ps[6], &api.unpaid(&ps[6]).await, "alipay").await;
        let a_id = a["session_id"].as_str().unwrap().to_string();
        let (s, _) = api.post(&format!("/api/v1/finance/payment-sessions/{a_id}/cancel"), json!({}), None).await;
        assert_eq!(s, 200, "{backend}");
        let b = api.open_session(&ps[7], &api.unpaid(&ps[7]).await, "wechat").await;
        let b_id = b["session_id"].as_str().unwrap().to_string();
        let (s, b2) = api.post(&format!("/api/v1/finance/payment-sessions/{b_id}/refresh"), json!({}), None).await;
        assert_eq!(s, 201, "{backend}: {b2}");
        let b2_id = b2["session_id"].as_str().unwrap().to_string();
        // a cancel that changes nothing writes nothing
        let (s, _) = api.post(&format!("/api/v1/finance/payment-sessions/{a_id}/cancel"), json!({}), None).await;
        assert_eq!(s, 409, "{backend}");

        let admin = CurrentUser {
            id: "usr_test_admin".into(),
            username: "admin".into(),
            display_name: "Admin".into(),
            role: Role::Admin,
        };
        let search = |q: AuditSearch| {
            let (services, admin) = (app.services.clone(), admin.clone());
            async move { services.search_audit_log(&admin, &q).await }
        };
        let all = search(AuditSearch::default()).await.unwrap();
        assert_eq!(all.chain_broken_at, None, "{backend}: the chain is intact");
        assert!(all.chain_entries >= all.entries.len() as i64);
        let of = |action: &str, target: &str| {
            all.entries.iter().filter(|e| e.action == action && e.target == format!("payment_session:{target}")).count()
        };
        assert_eq!(of("session_created", &a_id), 1, "{backend}");
        assert_eq!(of("session_cancelled", &a_id), 1, "{backend}: once, the refused second cancel wrote nothing");
        assert_eq!(of("session_created", &b_id), 1, "{backend}");
        assert_eq!(of("session_refreshed", &b2_id), 1, "{backend}");
        let cancel = all.entries.iter().find(|e| e.action == "session_cancelled").unwrap();
        let detail: Value = serde_json::from_str(&cancel.detail).unwrap();
        assert_eq!(
            (detail["before"]["status"].as_str(), detail["after"]["status"].as_str()),
            (Some("pending"), Some("cancelled"))
        );
        assert!(!cancel.ip.is_empty(), "{backend}: the address is kept");
        let refreshed = all.entries.iter().find(|e| e.action == "session_refreshed").unwrap();
        assert!(refreshed.detail.contains(&b_id), "{backend}: the refresh names the session it replaced");
        assert!(all.actions.iter().any(|a| a == "session_created"), "{backend}: {:?}", all.actions);

        // by what, by who, by object, by when
        let created = search(AuditSearch { action: "session_created".into(), ..Default::default() }).await.unwrap();
        assert!(created.entries.len() >= 2 && created.entries.iter().all(|e| e.action == "session_created"));
        let who = cancel.actor.clone();
        let by_who = search(AuditSearch { who: who.to_uppercase(), ..Default::default() }).await.unwrap();
        assert!(!by_who.entries.is_empty() && by_who.entries.iter().all(|e| e.actor == who), "{backend}: any case");
        let by_object = search(AuditSearch { target: a_id[4..].to_string(), ..Default::default() }).await.unwrap();
        assert_eq!(by_object.entries.len(), 2, "{backend}: session A was opened and cancelled");
        let today = clinicpay::time::local_date(app.services.now()).unwrap().format("%Y-%m-%d").to_string();
        let today_only =
            search(AuditSearch { from: today.clone(), to: today.clone(), ..Default::default() }).await.unwrap();
        assert!(
            today_only.entries.iter().any(|e| e.target == format!("payment_session:{a_id}")),
            "{backend}: today's search finds today's actions"
        );
        let none = search(AuditSearch { to: "2020-01-01".into(), ..Default::default() }).await.unwrap();
        assert!(none.entries.is_empty(), "{backend}");
        // a wildcard is a character, not a pattern
        let pct = search(AuditSearch { who: "%".into(), ..Default::default() }).await.unwrap();
        assert!(pct.entries.is_empty(), "{backend}: % matches only a %");

        // paging: one line a page would be too slow to build; make 60 lines and walk two pages
        for i in 0..60 {
            let input = app.services.audit_input(
                &clinicpay::services::auth::Actor::system("paging-test"),
                "paging_test",
                "test",
                &format!("t{i}"),
                json!({}),
            );
            app.services.store.append_audit(&input).await.unwrap();
        }
        let p1 = search(AuditSearch { action: "paging_test".into(), ..Default::default() }).await.unwrap();
        assert_eq!(p1.entries.len(), 50, "{backend}");
        let before = p1.older.expect("a second page");
        let p2 = search(AuditSearch { action: "paging_test".into(), before: before.to_string(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!((p2.entries.len(), p2.older), (10, None), "{backend}");
        assert!(p2.entries.iter().all(|e| e.seq < before), "{backend}");

        // bad input is refused with its field named
        for (q, field) in [
            (AuditSearch { from: "2026-13-01".into(), ..Default::default() }, "from"),
            (AuditSearch { to: "yesterday".into(), ..Default::default() }, "to"),
            (AuditSearch { from: "2026-02-02".into(), to: "2026-02-01".into(), ..Default::default() }, "from"),
            (AuditSearch { before: "-3".into(), ..Default::default() }, "before"),
            (AuditSearch { before: "1e9".into(), ..Default::default() }, "before"),
            (AuditSearch { who: "x".repeat(65), ..Default::default() }, "who"),
            (AuditSearch { target: "a\u{0}b".into(), ..Default::default() }, "target"),
            (AuditSearch { action: "Login' OR 1=1".into(), ..Default::default() }, "action"),
        ] {
            let e = search(q.clone()).await.unwrap_err();
            assert_eq!(e.code(), "bad_filter", "{backend}: {q:?}");
            assert!(e.to_string().starts_with(&format!("{field}:")), "{backend}: {q:?} → {e}");
        }
        // only an administrator reads it
        let cashier = CurrentUser { role: Role::Cashier, ..admin.clone() };
        let e = app.services.search_audit_log(&cashier, &AuditSearch::default()).await.unwrap_err();
        assert_eq!(e.code(), "forbidden", "{backend}");
        assert_books(&app).await;
    }
}

/// Issue 14 #9: a channel is configured field by field; a wrong key is named for what it is
/// (which field, which kind of key) and changes nothing; "test connection" asks the provider
/// and says whether both signatures held, and it is audited.
#[tokio::test]
async fn channels_are_checked_field_by_field_and_tested_against_the_provider() {
    use clinicpay::services::channels::ChannelInput;
    use server::crypto::PrivateKey;
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let admin = app.services.store.user_by_username("admin").await.unwrap().unwrap().current();
        let channels = app.services.list_channels(&admin).await.unwrap();
        assert!(channels.len() >= 3, "{backend}: the demo channels");
        for c in &channels {
            let t = app.services.test_channel(&admin, "127.0.0.1", c.id.as_str()).await.unwrap();
            assert!(t.ok && t.code == "ok", "{backend}: {} {t:?}", c.provider);
        }
        let alipay = channels.iter().find(|c| c.provider == clinicpay::payments::Provider::Alipay).unwrap();
        let settings: Value = serde_json::from_str(&alipay.settings).unwrap();
        let input = |settings: &Value, private_key: String| ChannelInput {
            provider: alipay.provider,
            name: alipay.name.clone(),
            settings: settings.to_string(),
            private_key,
            apiv3_key: String::new(),
            sandbox: true,
            enabled: true,
            make_default: false,
        };
        let other = PrivateKey::generate().unwrap();
        let mut no_app_id = settings.clone();
        no_app_id["app_id"] = json!("");
        let mut private_as_public = settings.clone();
        private_as_public["alipay_public_key"] = json!(other.to_pkcs8_pem());
        let mut bad_url = settings.clone();
        bad_url["gateway_url"] = json!("ftp://openapi.alipay.com/gateway.do");
        for (s, key, code, field) in [
            (&settings, other.public_key().to_pem(), "key_is_public", "private_key"),
            (&private_as_public, String::new(), "key_is_private", "alipay_public_key"),
            (&no_app_id, String::new(), "field_missing", "app_id"),
            (&bad_url, String::new(), "bad_url", "gateway_url"),
            (
                &settings,
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into(),
                "key_is_certificate",
                "private_key",
            ),
            (&settings, "not a key".into(), "key_unreadable", "private_key"),
        ] {
            let e = app
                .services
                .update_channel(&admin, "127.0.0.1", alipay.id.as_str(), alipay.version, input(s, key))
                .await
                .unwrap_err();
            assert_eq!(e.code(), code, "{backend}: {e}");
            assert!(e.to_string().starts_with(&format!("{field}:")), "{backend}: {e}");
            assert!(!e.to_string().contains("BEGIN"), "{backend}: no key text in the message");
        }
        let now = app.services.list_channels(&admin).await.unwrap();
        let same = now.iter().find(|c| c.id == alipay.id).unwrap();
        assert_eq!((same.version, &same.private_key_mask), (alipay.version, &alipay.private_key_mask), "{backend}");

        // a well-formed key that is not the one registered with Alipay: only the provider can tell
        let v = app
            .services
            .update_channel(
                &admin,
                "127.0.0.1",
                alipay.id.as_str(),
                alipay.version,
                input(&settings, other.to_pkcs8_pem()),
            )
            .await
            .unwrap();
        let t = app.services.test_channel(&admin, "127.0.0.1", alipay.id.as_str()).await.unwrap();
        assert_eq!((t.ok, t.code.as_str()), (false, "signature_refused"), "{backend}: {t:?}");
        // a gateway nobody answers at
        let mut dead = settings.clone();
        dead["gateway_url"] = json!("http://127.0.0.1:9/gateway.do");
        app.services
            .update_channel(&admin, "127.0.0.1", alipay.id.as_str(), v.version, input(&dead, String::new()))
            .await
            .unwrap();
        let t = app.services.test_channel(&admin, "127.0.0.1", alipay.id.as_str()).await.unwrap();
        assert_eq!((t.ok, t.code.as_str()), (false, "no_answer"), "{backend}: {t:?}");
        let audit = app.services.store.list_audit(100).await.unwrap();
        assert!(audit.iter().filter(|a| a.action == "channel_tested").count() >= 5, "{backend}: each test is audited");
        // only an administrator tests a channel
        let cashier = clinicpay::auth::CurrentUser { role: Role::Cashier, ..admin.clone() };
        let e = app.services.test_channel(&cashier, "127.0.0.1", alipay.id.as_str()).await.unwrap_err();
        assert_eq!(e.code(), "forbidden");
    }
}
