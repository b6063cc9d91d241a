//! Events back to the HIS (issue 15 #2) over real HTTP on both backends: the HIS pushes bills,
//! the counter collects them, and a receiver on loopback gets `bill.paid` and `bill.voided`
//! events — signed, the same event id on every attempt, retried after a failure, failed when
//! the schedule runs out, re-sent by hand from the log; the outbox turns into deliveries once.

use crate::checkout_http::{trade, Api};
use crate::helpers::{backends, spawn_app, TestApp, TestDb};
use crate::intake::{bill, His};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clinicpay::auth::Role;
use clinicpay::services::webhooks::EndpointInput;
use clinicpay::webhooks::{verify_signature, DeliveryStatus, MAX_ATTEMPTS};
use serde_json::{json, Value};
use server::sandbox::SandboxControl;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
struct Received {
    event_id: String,
    event_type: String,
    attempt: String,
    signature: String,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answers to give, in order; 200 once they run out.
    answers: Arc<Mutex<Vec<u16>>>,
}

async fn receive(State(r): State<Receiver>, h: HeaderMap, body: String) -> (StatusCode, &'static str) {
    let hv = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    r.got.lock().unwrap().push(Received {
        event_id: hv("clinicpay-event-id"),
        event_type: hv("clinicpay-event-type"),
        attempt: hv("clinicpay-delivery-attempt"),
        signature: hv("clinicpay-signature"),
        body,
    });
    let code = {
        let mut a = r.answers.lock().unwrap();
        if a.is_empty() {
            200
        } else {
            a.remove(0)
        }
    };
    (StatusCode::from_u16(code).unwrap(), if code == 200 { "ok" } else { "his is down" })
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/his/events", axum::routing::post(receive)).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/his/events")
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }

    fn answer(&self, codes: &[u16]) {
        *self.answers.lock().unwrap() = codes.to_vec();
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn admin(app: &TestApp) -> clinicpay::auth::CurrentUser {
    app.services.store.user_by_username("admin").await.unwrap().unwrap().current()
}

/// Makes every pending delivery due now (as if the retry wait had passed).
async fn time_passes(db: &TestDb) {
    db.exec("UPDATE webhook_deliveries SET next_attempt_at = 0 WHERE status = 'pending'").await.unwrap();
}

#[tokio::test]
async fn the_his_receives_signed_paid_and_voided_events_with_retries_and_resend() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let db = TestDb::attach(&app).await;
        let s = &app.services;
        let admin = admin(&app).await;
        let rx = Receiver::default();
        let url = rx.start().await;
        // the demo's own payments were made before any endpoint existed: nothing to deliver
        while s.outbox_step().await.unwrap() > 0 {}

        // bad settings are refused and write nothing
        for (name, url, topics, code) in [
            ("", url.as_str(), vec!["bill.paid"], "bad_endpoint_name"),
            ("HIS", "ftp://his/", vec!["bill.paid"], "bad_url"),
            ("HIS", "http://user:pw@his/", vec!["bill.paid"], "bad_url"),
            ("HIS", url.as_str(), vec![], "no_topics"),
            ("HIS", url.as_str(), vec!["bill.eaten"], "bad_topic"),
        ] {
            let input = EndpointInput {
                name: name.into(),
                url: url.into(),
                topics: topics.into_iter().map(String::from).collect(),
                enabled: true,
            };
            let e = s.create_endpoint(&admin, "127.0.0.1", input).await.unwrap_err();
            assert_eq!(e.code(), code);
        }
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM webhook_endpoints").await, 0);
        let cashier = app.services.store.user_by_username("cashier").await.unwrap().unwrap().current();
        let e = s
            .create_endpoint(
                &cashier,
                "127.0.0.1",
                EndpointInput { name: "x".into(), url: url.clone(), topics: vec!["bill.paid".into()], enabled: true },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "forbidden");

        // the HIS's endpoint (paid + voided); a second one that only wants voids; a disabled one
        let input = |name: &str, topics: &[&str], enabled| EndpointInput {
            name: name.into(),
            url: url.clone(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            enabled,
        };
        let (secret, his_ep) =
            s.create_endpoint(&admin, "127.0.0.1", input("HIS", &["bill.paid", "bill.voided"], true)).await.unwrap();
        assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
        assert_eq!(his_ep.secret_mask, format!("whsec_…{}", &secret[secret.len() - 4..]));
        let (voids_secret, _) =
            s.create_endpoint(&admin, "127.0.0.1", input("Audit", &["bill.voided"], true)).await.unwrap();
        s.create_endpoint(&admin, "127.0.0.1", input("Off", &["bill.paid", "bill.voided"], false)).await.unwrap();
        let tail = &secret[10..30];
        let leaked = db
            .scalar_i64(&format!("SELECT COUNT(*) FROM webhook_endpoints WHERE secret_ciphertext LIKE '%{tail}%'"))
            .await;
        assert_eq!(leaked, 0, "the secret is stored sealed");

        // two HIS bills paid with one QR
        let his = His::new(&app).await;
        let counter = Api::new(&app, Role::Cashier).await;
        let pid = his.setup().await;
        for id in ["HIS-E-1", "HIS-E-2", "HIS-E-3"] {
            let (st, v) = his.post("/api/v1/intake/bills", bill(id)).await;
            assert_eq!(st, 201, "{v}");
        }
        let (_, b3) = his.get("/api/v1/intake/bills/HIS-E-3").await;
        let b3_id = b3["id"].as_str().unwrap().to_string();
        let unpaid: Vec<String> = counter.unpaid(&pid).await.into_iter().filter(|b| *b != b3_id).collect();
        assert_eq!(unpaid.len(), 2);
        let sess = counter.open_session(&pid, &unpaid, "alipay").await;
        app.sandboxes.clone().unwrap().alipay.pay(&trade(&sess)).await.unwrap();
        counter.wait_status(sess["session_id"].as_str().unwrap(), "paid").await;

        // the outbox becomes two events, one delivery each (only the HIS wants bill.paid)
        assert!(s.outbox_step().await.unwrap() >= 1);
        assert_eq!(s.outbox_step().await.unwrap(), 0, "published once");
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM webhook_events WHERE topic = 'bill.paid'").await, 2);
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM webhook_deliveries").await, 2);

        // the HIS is down: both attempts fail and wait 15 s for the next
        rx.answer(&[500, 503]);
        assert_eq!(s.webhook_step().await.unwrap(), 0);
        assert_eq!(s.webhook_step().await.unwrap(), 0, "nothing due before the retry time");
        let first = rx.take();
        assert_eq!(first.len(), 2);
        let log = s.list_deliveries(&admin, Some("pending"), None, 50).await.unwrap();
        assert_eq!(log.len(), 2);
        for d in &log {
            assert_eq!(d.attempts, 1);
            assert!(d.last_error.as_deref().unwrap().starts_with("HTTP 50"), "{d:?}");
            let wait = d.next_attempt_at_ms.unwrap() - s.now();
            assert!((10_000..=15_000).contains(&wait), "retry in {wait} ms");
        }

        // after the wait: delivered, the same event id and body, attempt 2
        time_passes(&db).await;
        assert_eq!(s.webhook_step().await.unwrap(), 2);
        let second = rx.take();
        assert_eq!(second.len(), 2);
        for r in second.iter() {
            let before = first.iter().find(|f| f.event_id == r.event_id).expect("same event ids on the retry");
            assert_eq!(
                (before.body.as_str(), before.attempt.as_str(), r.attempt.as_str()),
                (r.body.as_str(), "1", "2")
            );
            assert_eq!(r.event_type, "bill.paid");
            assert!(verify_signature(&secret, &r.signature, r.body.as_bytes(), now_s()), "signed: {}", r.signature);
            assert!(!verify_signature(&voids_secret, &r.signature, r.body.as_bytes(), now_s()));
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["id"], r.event_id.as_str());
            assert_eq!(v["type"], "bill.paid");
            let data = &v["data"];
            assert!(["HIS-E-1", "HIS-E-2"].contains(&data["bill"]["bill_id"].as_str().unwrap()), "{v}");
            assert_eq!(data["bill"]["his_patient_id"], "HIS-P-1");
            assert_eq!((data["paid_amount"].as_str(), data["bill"]["total"].as_str()), (Some("68.60"), Some("68.60")));
            assert!(data["receipt_no"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
            assert_eq!(data["payment"]["provider"], "alipay");
            assert_eq!(data["payment"]["amount"], "137.20");
            assert_eq!(data["payment"]["out_trade_no"], trade(&sess).as_str());
            assert_eq!(data["payment"]["bills"], 2);
        }
        let delivered = s.list_deliveries(&admin, Some("delivered"), None, 50).await.unwrap();
        assert_eq!(delivered.len(), 2);
        let d = s.delivery_detail(&admin, delivered[0].id.as_str()).await.unwrap();
        assert_eq!(d.attempts.len(), 2);
        assert!(matches!(d.attempts[0].status_code, Some(500 | 503)), "{d:?}");
        assert_eq!(d.attempts[1].status_code, Some(200));
        assert_eq!(d.attempts[1].response_excerpt.as_deref(), Some("ok"));

        // a void goes to both endpoints that want it, not to the disabled one
        let (st, v) = his.post("/api/v1/intake/bills/HIS-E-3/void", json!({"reason": "医嘱取消"})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(s.outbox_step().await.unwrap(), 1);
        assert_eq!(s.webhook_step().await.unwrap(), 2);
        let voids = rx.take();
        assert_eq!(voids.len(), 2);
        let sigs_ok = voids
            .iter()
            .filter(|r| {
                verify_signature(&secret, &r.signature, r.body.as_bytes(), now_s())
                    || verify_signature(&voids_secret, &r.signature, r.body.as_bytes(), now_s())
            })
            .count();
        assert_eq!(sigs_ok, 2);
        let v: Value = serde_json::from_str(&voids[0].body).unwrap();
        assert_eq!((v["type"].as_str(), v["data"]["bill"]["bill_id"].as_str()), (Some("bill.voided"), Some("HIS-E-3")));
        assert_eq!(v["data"]["void"]["reason"], "医嘱取消");
        let by_bill = s.list_deliveries(&admin, None, Some(&b3_id), 50).await.unwrap();
        assert_eq!(by_bill.len(), 2, "the log finds a bill's deliveries");

        // re-send from the log: the same event again, the audit line written
        let again = &delivered[0];
        s.resend_delivery(&admin, "127.0.0.1", again.id.as_str()).await.unwrap();
        assert_eq!(s.webhook_step().await.unwrap(), 1);
        let resent = rx.take();
        assert_eq!(
            (resent.len(), resent[0].event_id.as_str(), resent[0].attempt.as_str()),
            (1, again.event_id.as_str(), "3")
        );
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'webhook_resent'").await, 1);
        let e = s.resend_delivery(&admin, "127.0.0.1", "dlv_00000000000000000000000000").await.unwrap_err();
        assert_eq!(e.code(), "not_found");
        let e = s.resend_delivery(&cashier, "127.0.0.1", again.id.as_str()).await.unwrap_err();
        assert_eq!(e.code(), "forbidden");

        // the schedule runs out: the last failure leaves the delivery failed, for a person
        db.exec(&format!(
            "UPDATE webhook_deliveries SET status = 'pending', delivered_at = NULL, attempts = attempts + {n}, \
             round_attempts = {n}, next_attempt_at = 0 WHERE id = '{id}'",
            n = MAX_ATTEMPTS - 1,
            id = delivered[1].id
        ))
        .await
        .unwrap();
        rx.answer(&[502]);
        assert_eq!(s.webhook_step().await.unwrap(), 0);
        let failed = s.list_deliveries(&admin, Some("failed"), None, 50).await.unwrap();
        assert_eq!((failed.len(), failed[0].status, failed[0].next_attempt_at_ms), (1, DeliveryStatus::Failed, None));
        rx.take();

        // an endpoint that cannot be reached: the attempt is logged with the reason
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let eps = s.list_endpoints(&admin).await.unwrap();
        let his_now = eps.iter().find(|e| e.id == his_ep.id).unwrap();
        let e = s
            .update_endpoint(
                &admin,
                "127.0.0.1",
                his_ep.id.as_str(),
                his_now.version + 5,
                input("HIS", &["bill.paid"], true),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "stale_version");
        s.update_endpoint(
            &admin,
            "127.0.0.1",
            his_ep.id.as_str(),
            his_now.version,
            EndpointInput { url: format!("http://{closed}/gone"), ..input("HIS", &["bill.paid"], true) },
        )
        .await
        .unwrap();
        s.resend_delivery(&admin, "127.0.0.1", failed[0].id.as_str()).await.unwrap();
        assert_eq!(s.webhook_step().await.unwrap(), 0);
        let d = s.delivery_detail(&admin, failed[0].id.as_str()).await.unwrap();
        assert_eq!(d.delivery.status, DeliveryStatus::Pending, "retried on the schedule again after a re-send");
        assert_eq!(d.attempts.last().unwrap().error.as_deref(), Some("could not connect"), "{d:?}");

        // events are fixed; the database refuses to change one
        assert!(db.exec("UPDATE webhook_events SET body = '{}'").await.is_err());
        let audit = db.scalar_i64("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'webhook_endpoint_%'").await;
        assert_eq!(audit, 4, "three endpoints created, one changed");
    }
}

#[tokio::test]
async fn an_outbox_item_published_twice_makes_its_deliveries_once() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let db = TestDb::attach(&app).await;
        let s = &app.services;
        let admin = admin(&app).await;
        while s.outbox_step().await.unwrap() > 0 {}
        let input = EndpointInput {
            name: "HIS".into(),
            url: "http://127.0.0.1:9/events".into(),
            topics: vec!["bill.voided".into()],
            enabled: true,
        };
        s.create_endpoint(&admin, "127.0.0.1", input).await.unwrap();
        let his = His::new(&app).await;
        his.setup().await;
        his.post("/api/v1/intake/bills", bill("HIS-D-1")).await;
        let (st, _) = his.post("/api/v1/intake/bills/HIS-D-1/void", json!({"reason": "重复开单"})).await;
        assert_eq!(st, 200);
        // a worker that died after making the deliveries but before its commit: the item is
        // claimed again (its lease ran out) and published a second time
        let items = s.store.claim_outbox(s.now(), 60_000, 10).await.unwrap();
        let item = items.iter().find(|i| i.topic == "bill.voided").unwrap().clone();
        let events = s.events_for(&item).await.unwrap();
        assert_eq!(events.len(), 1);
        let made = s.store.publish_events(&item.id, &events, s.ids.as_ref(), s.now()).await.unwrap();
        let again = s.store.publish_events(&item.id, &events, s.ids.as_ref(), s.now()).await.unwrap();
        assert_eq!((made, again), (1, 0));
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM webhook_deliveries").await, 1);
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM webhook_events").await, 1);
        let pending = db.scalar_i64("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").await;
        assert_eq!(pending, 0);
    }
}
