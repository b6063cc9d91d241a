//! Issue 13: what a payments review found, each as a test that failed before its fix.

use crate::checkout_http::{assert_books, patients, post_notification, trade, Api};
use crate::helpers::{backends, spawn_app};
use clinicpay::auth::Role;
use clinicpay::ids::NotificationId;
use clinicpay::payments::{NotificationStatus, Provider};
use clinicpay::ports::{Clock, NewNotification};
use clinicpay::time::Millis;
use serde_json::json;
use server::runtime::SystemClock;
use server::sandbox::{FaultSpec, SandboxControl};
use std::sync::Arc;

/// The real clock, `ahead_ms` later: re-drive after an outage.
struct Later(Millis);

impl Clock for Later {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.0
    }
}

fn junk_form(i: usize) -> String {
    format!("%00=a&%00=b&n%00{i}=%00")
}

/// #2: unauthenticated bodies with NUL bytes are refused and recorded with printable reasons, so
/// they never hold up re-drive. #6: a notification stored before an outage is checked against
/// when it arrived, not against the clock of the re-drive (WeChat's five-minute window).
#[tokio::test]
async fn hostile_bodies_and_an_outage_do_not_stop_redrive() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let before: std::collections::HashSet<_> =
            app.services.store.list_notifications(1000).await.unwrap().into_iter().map(|n| n.id).collect();
        // more junk than one re-drive batch (50)
        let form = [("content-type".to_string(), "application/x-www-form-urlencoded".to_string())];
        for i in 0..60 {
            let (status, _) = post_notification(&app, "alipay", &form, junk_form(i).as_bytes()).await;
            assert!(status < 500, "{backend}: junk is answered, not a server error ({status})");
        }
        // a WeChat payment whose notification was stored, then the process died before processing it
        let p = patients(&app).await[3].clone();
        let bills = api.unpaid(&p).await;
        let (_, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": p, "bill_ids": bills, "payment_method": "wechat"}),
                None,
            )
            .await;
        let (no, session) = (trade(&v), v["session_id"].as_str().unwrap().to_string());
        sb.wechatpay.set_faults(&no, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
        sb.wechatpay.pay(&no).await.unwrap();
        let (headers, body) = sb.wechatpay.signed_success_notification(&no).await.unwrap();
        let kept = serde_json::Value::Object(headers.iter().map(|(k, v)| (k.to_lowercase(), json!(v))).collect());
        app.services
            .store
            .insert_notification(&NewNotification {
                id: app.services.ids.new_id::<NotificationId>(),
                provider: Provider::WechatPay,
                received_at_ms: app.services.now(),
                remote_addr: "127.0.0.1".into(),
                content_type: "application/json".into(),
                headers: kept.to_string(),
                body,
            })
            .await
            .unwrap();
        // the server comes back ten minutes later; re-drive runs
        let mut later = app.services.clone();
        later.clock = Arc::new(Later(10 * 60_000));
        for _ in 0..3 {
            later.redrive_step().await.unwrap();
        }
        let status = api.get(&format!("/api/v1/finance/payment-sessions/{session}/status")).await.1;
        assert_eq!(status["status"], "paid", "{backend}: the stored notification was applied: {status}");
        let all = app.services.store.list_notifications(1000).await.unwrap();
        let unfinished: Vec<_> = all.iter().filter(|n| n.status == NotificationStatus::Received).collect();
        assert!(unfinished.is_empty(), "{backend}: nothing left unfinished: {unfinished:?}");
        let junk: Vec<_> = all.iter().filter(|n| n.provider == Provider::Alipay && !before.contains(&n.id)).collect();
        assert_eq!(junk.len(), 60, "{backend}: every request stored");
        for n in &junk {
            assert_eq!(n.status, NotificationStatus::Rejected, "{backend}: {n:?}");
            let reason = n.reason.as_deref().unwrap_or_default();
            assert!(!reason.is_empty() && !reason.contains('\0'), "{backend}: printable reason {reason:?}");
            assert!(reason.chars().count() <= clinicpay::payments::REASON_MAX_CHARS, "{backend}");
        }
        assert_books(&app).await;
    }
}

/// #2: re-drive counts its attempts; a notification it cannot finish is given up to `failed`
/// after the bound and no longer selected.
#[tokio::test]
async fn redrive_gives_up_after_its_attempts() {
    use clinicpay::services::workers::REDRIVE_MAX_ATTEMPTS;
    for backend in backends() {
        let app = spawn_app(backend, false).await;
        let id = app.services.ids.new_id::<NotificationId>();
        let store = &app.services.store;
        store
            .insert_notification(&NewNotification {
                id: id.clone(),
                provider: Provider::Alipay,
                received_at_ms: app.services.now() - 3_600_000,
                remote_addr: "127.0.0.1".into(),
                content_type: "application/x-www-form-urlencoded".into(),
                headers: "{}".into(),
                body: junk_form(0).into_bytes(),
            })
            .await
            .unwrap();
        // earlier re-drives that died before finishing it
        for n in 1..REDRIVE_MAX_ATTEMPTS {
            assert_eq!(store.count_redrive_attempt(&id).await.unwrap(), Some(n), "{backend}");
        }
        assert_eq!(app.services.redrive_step().await.unwrap(), 1, "{backend}");
        let n = store.list_notifications(10).await.unwrap().into_iter().find(|n| n.id == id).unwrap();
        assert_eq!(n.status, NotificationStatus::Failed, "{backend}: given up");
        assert!(n.reason.as_deref().unwrap_or_default().starts_with("redrive_gave_up"), "{backend}: {n:?}");
        assert_eq!(store.count_redrive_attempt(&id).await.unwrap(), None, "{backend}: finished rows are not counted");
        let due = store.unfinished_notifications(app.services.now(), REDRIVE_MAX_ATTEMPTS, 50).await.unwrap();
        assert!(due.is_empty(), "{backend}");
    }
}

/// #3: sixty parallel wrong passwords for one user: at most `user_lock_after` of them reach the
/// password check (each audited as `login_failed`), the rest are refused as too many.
#[tokio::test]
async fn parallel_wrong_passwords_get_few_password_checks() {
    use clinicpay::services::{auth::LoginInput, ServiceError};
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let lock_after = app.services.config.throttle.user_lock_after;
        let mut tasks = Vec::new();
        for i in 0..60 {
            let services = app.services.clone();
            tasks.push(tokio::spawn(async move {
                services
                    .login(LoginInput {
                        username: "finance".into(),
                        password: format!("guess-{i}"),
                        ip: format!("10.0.0.{i}"),
                        user_agent: "burst".into(),
                    })
                    .await
            }));
        }
        let (mut checked, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Err(ServiceError::TooManyRequests { .. }) => refused += 1,
                Err(_) => checked += 1,
                Ok(_) => panic!("{backend}: a guess logged in"),
            }
        }
        assert!(checked <= lock_after as usize, "{backend}: {checked} password checks");
        assert_eq!(checked + refused, 60, "{backend}");
        let audited = app.services.store.list_audit(500).await.unwrap();
        let failed = audited.iter().filter(|a| a.action == "login_failed").count();
        assert_eq!(failed, checked, "{backend}: every check audited, nothing else");
    }
}

/// #5: at expiry the provider is asked first. A payment made just before the QR expired whose
/// notification has not come is booked as paid — not refunded as late; an unpaid trade is closed
/// at the provider before its session ends (nobody can pay it afterwards); a provider that cannot
/// be asked keeps the session open until the grace runs out, then it ends with its close queued.
#[tokio::test]
async fn expiry_asks_the_provider_first() {
    use clinicpay::services::workers::EXPIRY_GRACE_MS;
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;
        let at = |ahead: Millis| {
            let mut s = app.services.clone();
            s.clock = Arc::new(Later(ahead));
            s
        };
        // past the default 15-minute QR
        let past_expiry = 15 * 60_000 + 1_000;

        // A: the patient paid a moment before the expiry; the notification is lost
        let bills_a = api.unpaid(&ps[11]).await;
        let a = api.open_session(&ps[11], &bills_a, "alipay").await;
        sb.alipay.set_faults(&trade(&a), FaultSpec { drop: true, ..Default::default() }).await.unwrap();
        sb.alipay.pay(&trade(&a)).await.unwrap();
        // B: scanned, never paid
        let bills_b = api.unpaid(&ps[12]).await;
        let b = api.open_session(&ps[12], &bills_b, "alipay").await;
        sb.alipay.scan(&trade(&b)).await.unwrap();
        // C: its provider fails the next call
        let bills_c = api.unpaid(&ps[13]).await;
        let c = api.open_session(&ps[13], &bills_c, "wechat").await;
        sb.wechatpay.set_faults(&trade(&c), FaultSpec { fail_next_call: true, ..Default::default() }).await.unwrap();

        assert_eq!(at(past_expiry).expire_step().await.unwrap(), 1, "{backend}: only B ends");
        let status = |v: &serde_json::Value| {
            let id = v["session_id"].as_str().unwrap().to_string();
            let api = &api;
            async move { api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await.1 }
        };
        let sa = status(&a).await;
        assert_eq!(sa["status"], "paid", "{backend}: paid in time, booked as paid: {sa}");
        assert!(api.unpaid(&ps[11]).await.is_empty(), "{backend}: A's bills are paid");
        assert!(app.services.exceptions(false).await.unwrap().is_empty(), "{backend}: nothing is late");
        let sb_ = status(&b).await;
        assert_eq!((sb_["status"].as_str(), sb_["close_reason"].as_str()), (Some("expired"), Some("expired")), "{sb_}");
        assert_eq!(sb.alipay.trade_state(&trade(&b)).await.as_deref(), Some("TRADE_CLOSED"), "closed before it ended");
        assert_eq!(api.unpaid(&ps[12]).await.len(), bills_b.len(), "{backend}: B's bills are free");
        assert_eq!(status(&c).await["status"], "pending", "{backend}: C waits for its provider's word");

        // the provider still cannot be asked once the grace has run out: C ends unasked, its
        // close queued for the close worker
        sb.wechatpay.set_faults(&trade(&c), FaultSpec { fail_next_call: true, ..Default::default() }).await.unwrap();
        let later = at(past_expiry + EXPIRY_GRACE_MS + 1_000);
        assert_eq!(later.expire_step().await.unwrap(), 1, "{backend}: C ends after the grace");
        assert_eq!(status(&c).await["status"], "expired");
        assert_eq!(api.unpaid(&ps[13]).await.len(), bills_c.len());
        assert_eq!(later.close_step().await.unwrap(), 1, "{backend}: C's trade is closed at WeChat Pay");
        assert_books(&app).await;
    }
}
