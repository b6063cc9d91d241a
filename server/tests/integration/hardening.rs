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

/// #7: a flood of unauthenticated junk costs at most its source's budget of stored rows; past
/// it, junk is answered 429 without a write, while a genuine notification from the same address
/// still verifies, is stored and is applied. Rejected rows go at the end of their retention;
/// applied ones stay.
#[tokio::test]
async fn a_junk_flood_is_bounded_and_real_payments_still_land() {
    let budget = clinicpay::services::budget::BudgetPolicy::default();
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let before: std::collections::HashSet<_> =
            app.services.store.list_notifications(5000).await.unwrap().into_iter().map(|n| n.id).collect();
        let p = patients(&app).await[4].clone();
        let bills = api.unpaid(&p).await;
        let v = api.open_session(&p, &bills, "alipay").await;
        let no = trade(&v);
        sb.alipay.set_faults(&no, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
        sb.alipay.pay(&no).await.unwrap();
        let (headers, body) = sb.alipay.signed_success_notification(&no).await.unwrap();

        let form = vec![("content-type".to_string(), "application/x-www-form-urlencoded".to_string())];
        let flood = 3 * budget.per_source_burst as usize;
        let answers = futures::future::join_all((0..flood).map(|i| {
            let (app, form) = (&app, &form);
            async move { post_notification(app, "alipay", form, junk_form(i).as_bytes()).await.0 }
        }))
        .await;
        let throttled = answers.iter().filter(|s| **s == 429).count();
        assert!(answers.iter().all(|s| *s < 500), "{backend}: junk is never a server error: {answers:?}");
        let stored = app
            .services
            .store
            .list_notifications(5000)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| !before.contains(&n.id))
            .collect::<Vec<_>>();
        // all at once (join_all over loopback): the tokens are taken before storing, so requests
        // in flight together cannot overspend the budget
        let bound = budget.per_source_burst as usize;
        assert!(stored.len() <= bound, "{backend}: {} junk rows stored, bound {bound}", stored.len());
        assert!(throttled >= flood - bound, "{backend}: {throttled} of {flood} answered 429");
        assert!(stored.iter().all(|n| n.status == NotificationStatus::Rejected), "{backend}");

        // the genuine notification, from the same (throttled) address
        let (status, reply) = post_notification(&app, "alipay", &headers, &body).await;
        assert_eq!((status, reply.as_str()), (200, "success"), "{backend}: the real payment is acknowledged");
        let id = v["session_id"].as_str().unwrap();
        let st = api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await.1;
        assert_eq!(st["status"], "paid", "{backend}: {st}");
        let applied: Vec<_> = app
            .services
            .store
            .list_notifications(5000)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.status == NotificationStatus::Applied && n.out_trade_no.as_deref() == Some(no.as_str()))
            .collect();
        assert_eq!(applied.len(), 1, "{backend}: the genuine one was stored and applied");

        // retention: nothing goes before its time; after it, the rejected rows go and the
        // applied one stays
        assert_eq!(app.services.purge_step().await.unwrap(), 0, "{backend}");
        let mut later = app.services.clone();
        later.clock = Arc::new(Later(app.services.config.rejected_notification_retention_ms + 60_000));
        let mut purged = 0;
        loop {
            let n = later.purge_step().await.unwrap();
            if n == 0 {
                break;
            }
            purged += n;
        }
        assert!(purged >= stored.len(), "{backend}: {purged} purged, {} junk rows", stored.len());
        let left = app.services.store.list_notifications(5000).await.unwrap();
        assert!(left.iter().all(|n| n.status != NotificationStatus::Rejected), "{backend}: no rejected row left");
        assert!(left.iter().any(|n| n.id == applied[0].id), "{backend}: the applied notification is kept");
        assert_books(&app).await;
    }
}

/// #12: fail-closed defaults. With no configuration the server starts in production mode —
/// no sandboxes, no demo users — and so refuses to run without a master key; asking for the
/// sandboxes in production is refused unless explicitly allowed.
#[test]
fn an_unconfigured_server_does_not_start_open() {
    let dir = std::env::temp_dir().join("clinicpay-tests").join(format!("failclosed-{}", std::process::id()));
    let run = |extra: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_clinicpay"));
        c.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CLINICPAY_DATABASE_URL", format!("sqlite://{}", dir.join("x.db").display()))
            .env("CLINICPAY_DATA_DIR", dir.join("data"))
            .env("CLINICPAY_LISTEN", "127.0.0.1:0")
            .env("CLINICPAY_LOG", "error");
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = run(&[]);
    assert!(!ok && text.contains("master key"), "no configuration: refuses without a master key:\n{text}");
    assert!(!text.contains("Demo logins"), "{text}");
    let (ok, text) = run(&[("CLINICPAY_SANDBOX", "true")]);
    assert!(!ok && text.contains("refuses the built-in sandboxes"), "{text}");
    let (ok, text) = run(&[("CLINICPAY_SEED_DEMO", "true")]);
    assert!(!ok && text.contains("refuses demo data"), "{text}");
    assert!(!dir.join("data").join("sandbox-control-token").exists(), "no sandbox was set up");
}

/// #12: the sandboxes' control and registration endpoints need the credential; the payer's
/// page (its address is the capability) and the provider APIs (signed) do not.
#[tokio::test]
async fn sandbox_control_needs_its_credential() {
    use crate::helpers::{SANDBOX_TOKEN, SANDBOX_TOKEN_HEADER};
    let app = spawn_app("sqlite", true).await;
    let api = Api::new(&app, Role::Cashier).await;
    let p = patients(&app).await[5].clone();
    let bills = api.unpaid(&p).await;
    let v = api.open_session(&p, &bills, "alipay").await;
    let no = trade(&v);
    let http = reqwest::Client::new();
    let base = &app.base;
    let attempts = [
        ("POST", format!("{base}/sandbox/alipay/control/trades/{no}/pay")),
        ("GET", format!("{base}/sandbox/alipay/control/trades/{no}")),
        ("GET", format!("{base}/sandbox/alipay/control/trades/{no}/notification")),
        ("POST", format!("{base}/sandbox/wechatpay/control/defaults")),
        ("POST", format!("{base}/sandbox/bank/control/trades/{no}/faults")),
        ("POST", format!("{base}/sandbox/alipay/apps")),
        ("POST", format!("{base}/sandbox/wechatpay/merchants")),
        ("POST", format!("{base}/sandbox/bank/merchants")),
    ];
    for (method, url) in &attempts {
        for token in [None, Some("wrong-token-wrong-token"), Some(&SANDBOX_TOKEN[..SANDBOX_TOKEN.len() - 1])] {
            let mut rb = if *method == "GET" { http.get(url) } else { http.post(url).body("{}") };
            if let Some(t) = token {
                rb = rb.header(SANDBOX_TOKEN_HEADER, t);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {url} with {token:?}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "sandbox_token_required");
        }
    }
    let sb = app.sandboxes.clone().unwrap();
    assert_ne!(sb.alipay.trade_state(&no).await.as_deref(), Some("TRADE_SUCCESS"), "nothing was paid");
    // the payer's page works without it, and with the credential control works
    let page = v["qr_code_content"].as_str().unwrap().to_string();
    let r = http.get(&page).send().await.unwrap();
    assert_eq!(r.status(), 200, "the payer page {page}");
    let r = http
        .post(format!("{base}/sandbox/alipay/control/trades/{no}/pay"))
        .header(SANDBOX_TOKEN_HEADER, SANDBOX_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Deliverable 5 (S1): a staff session unused for 15 minutes must log in again; one in use
/// stays alive (each use refreshes the idle clock).
#[tokio::test]
async fn an_idle_staff_session_must_log_in_again() {
    use clinicpay::services::auth::LoginInput;
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let ok = app
            .services
            .login(LoginInput {
                username: "cashier".into(),
                password: "demo-cashier".into(),
                ip: "127.0.0.1".into(),
                user_agent: "test".into(),
            })
            .await
            .unwrap();
        let at = |ahead: Millis| {
            let mut s = app.services.clone();
            s.clock = Arc::new(Later(ahead));
            s
        };
        let min = 60_000;
        assert!(at(0).authenticate(&ok.token).await.unwrap().is_some(), "{backend}");
        // in use every 10 minutes: alive after an hour
        for t in [10, 20, 30, 40, 50, 60] {
            assert!(at(t * min).authenticate(&ok.token).await.unwrap().is_some(), "{backend}: used at {t} min");
        }
        // then left alone for 16 minutes
        assert!(at(76 * min).authenticate(&ok.token).await.unwrap().is_none(), "{backend}: idle 16 minutes");
        // a fresh login that is left alone
        let ok2 = app
            .services
            .login(LoginInput {
                username: "finance".into(),
                password: "demo-finance".into(),
                ip: "127.0.0.1".into(),
                user_agent: "test".into(),
            })
            .await
            .unwrap();
        assert!(at(14 * min).authenticate(&ok2.token).await.unwrap().is_some(), "{backend}: 14 minutes is not idle");
        assert!(
            at(30 * min).authenticate(&ok2.token).await.unwrap().is_none(),
            "{backend}: 16 minutes after its last use"
        );
    }
}
